// The process's memory budget: one figure (--memory-limit, memory-limit in
// recall.yml, RECALL_MEMORY_LIMIT) that every embedded DuckDB and Node's own
// buffers share. This module parses it, picks the default, and splits it.

import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { UsageError } from '../errors.js';

const MiB = 1024 * 1024;

/** The smallest budget accepted: below it Node and DuckDB alone leave no room for work. */
export const MIN_MEMORY_LIMIT = 128 * MiB;

/** The smallest default, whatever the machine. */
const MIN_DEFAULT = 256 * MiB;

/**
 * How the budget is shared. DuckDB's native memory runs past its limit (allocator
 * slack, buffers outside its buffer pool), and Node, its heap and the frames in
 * flight need the rest, so DuckDB is given well under half.
 */
const DUCKDB_SHARE = 0.35;
const STREAM_SHARE = 0.1;

/**
 * DuckDB's share while a restore or undo plans: Node then holds little (a piece of
 * target rows, the plan), and DuckDB's plain export of rows of 3 KB takes 35 MB, most
 * of a 128 MiB budget's usual share, so it gets half.
 */
const PLAN_DUCKDB_SHARE = 0.5;

/** A process's budget, split into the parts its consumers respect. */
export interface MemoryBudget {
  /** The whole budget, in bytes. */
  readonly bytes: number;
  /** The memory_limit of the process's DuckDB, shared by every connection in it. */
  readonly duckdbBytes: number;
  /** DuckDB's memory_limit while a restore or undo computes its targets. */
  readonly planDuckdbBytes: number;
  /** Replication frames queued ahead of staging, by size, before the socket is paused. */
  readonly streamBytes: number;
  /**
   * Staged change text at which capture writes a part: a part is sorted and written
   * in DuckDB whole, which takes a few times its size, so it is a fraction of DuckDB's share.
   */
  readonly partBytes: number;
}

/** Splits a budget of `bytes` among its consumers. */
export function memoryBudget(bytes: number): MemoryBudget {
  const duckdbBytes = Math.floor(bytes * DUCKDB_SHARE);
  return Object.freeze({
    bytes,
    duckdbBytes,
    planDuckdbBytes: Math.floor(bytes * PLAN_DUCKDB_SHARE),
    streamBytes: Math.floor(bytes * STREAM_SHARE),
    partBytes: Math.floor(duckdbBytes / 6),
  });
}

/** 25% of the memory this process may use (the machine's, or its cgroup's if smaller), at least 256 MB. */
export function defaultMemoryLimit(): number {
  const available = Math.min(totalmem(), cgroupLimit() ?? Number.POSITIVE_INFINITY);
  return Math.max(MIN_DEFAULT, Math.floor(available / 4));
}

/** cgroup v2's memory.max (or v1's limit) for this process, if it sets one. */
function cgroupLimit(): number | undefined {
  for (const path of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const text = readFileSync(path, 'utf8').trim();
      const value = Number(text);
      // v1 reports "no limit" as a huge number near 2^63.
      if (Number.isFinite(value) && value > 0 && value < 2 ** 60) return value;
    } catch {
      // not this cgroup layout
    }
  }
  return undefined;
}

const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  tb: 1000 ** 4,
  k: 1024,
  m: MiB,
  g: 1024 ** 3,
  kib: 1024,
  mib: MiB,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** Parses a size such as 512MB, 2GB, 1.5GiB or a byte count; `origin` names where it came from. */
export function parseSize(text: string, origin: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = UNITS[(match?.[2] ?? '').toLowerCase()];
  if (match === null || unit === undefined) {
    throw new UsageError(`${origin} "${text}" is not a size`, 'give a size such as 512MB, 2GB or 1.5GiB');
  }
  return Math.floor(Number(match[1]) * unit);
}

/** Parses a memory limit (a size, at least MIN_MEMORY_LIMIT); `origin` names where it came from. */
export function parseMemoryLimit(text: string, origin: string): number {
  const bytes = parseSize(text, origin);
  if (bytes < MIN_MEMORY_LIMIT) {
    throw new UsageError(
      `${origin} ${text} is below the minimum of ${MIN_MEMORY_LIMIT / MiB} MiB`,
      `give at least 128MiB; without it Recall takes 25% of the machine's memory (at least 256 MiB)`,
    );
  }
  return bytes;
}

/**
 * The budget in force: the flag, else RECALL_MEMORY_LIMIT, else recall.yml's memory-limit
 * (`origin` names its file and line), else the default. The file's value is parsed even
 * when the flag or the variable wins: recall.yml is validated whole on every command.
 */
export function resolveMemoryLimit(
  flag: string | undefined,
  configured: { readonly value: string | number; readonly origin: string } | undefined,
  env: NodeJS.ProcessEnv = process.env,
): number {
  const fromConfig = configured === undefined ? undefined : parseMemoryLimit(String(configured.value), configured.origin);
  if (flag !== undefined) return parseMemoryLimit(flag, '--memory-limit');
  const fromEnv = env.RECALL_MEMORY_LIMIT;
  if (fromEnv !== undefined && fromEnv !== '') return parseMemoryLimit(fromEnv, 'RECALL_MEMORY_LIMIT');
  if (fromConfig !== undefined) return fromConfig;
  return defaultMemoryLimit();
}
