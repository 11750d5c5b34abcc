// Compaction as a background job beside capture: one step at a time (a merge, a fold
// past the retention horizon, images), on a CPU budget of its own (docs/ARCHITECTURE.md,
// "Compaction"), backing off while capture lags, with a gc now and then; stopped at once
// (the step in flight is interrupted; what it wrote is gc's).

import { setTimeout as sleep } from 'node:timers/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import { compact, describeResult, describeStep, nextCompactionStep, type CompactionResult } from './compaction.js';
import { openDuckDB } from './duckdb.js';
import { collectGarbage, DEFAULT_GC_GRACE_MS, planGc } from './gc.js';
import type { Retention } from './retention.js';
import type { Vault } from './vault.js';

/** The CPU a compactor may take: seconds per second of wall time. */
export const COMPACTION_CPU_SHARE = 0.5;

/**
 * …and while capture lags. Never nothing: a catch-up with no new images makes each of
 * capture's lookups of deleted rows read every change since the last one, so a long
 * backlog would slow capture more the longer it is.
 */
export const LAGGING_CPU_SHARE = 0.2;

/** How long it waits before looking again when there is nothing to merge. */
const IDLE_MS = 1_000;

/** How long it waits after a merge failed before it tries again (the failure is logged, capture goes on). */
const AFTER_FAILURE_MS = 60_000;

/**
 * How often it runs gc: at most every 10 minutes (a gc lists every layer file), and as
 * often as the grace period allows when that is shorter (at least 10 s apart), so that
 * the manifest's list of replaced files stays short.
 */
const GC_EVERY_MAX_MS = 10 * 60_000;
const GC_EVERY_MIN_MS = 10_000;

export interface CompactorOptions {
  readonly vault: Vault;
  readonly log: (line: string) => void;
  /** Whether capture is behind: compaction backs off, since the recovery point comes first. */
  readonly lagging: () => boolean;
  /** Whether capture streams (its session is open): compaction and gc wait for that, so a capture that cannot start does no work. */
  readonly streaming: () => boolean;
  /** vault.retention: history before it is folded away; undefined keeps all. */
  readonly retention?: Retention | undefined;
  readonly gcGraceMs?: number;
}

/** Runs merges in the background until stopped. */
export class Compactor {
  private readonly stopping = new AbortController();
  private duck: DuckDBConnection | undefined;
  private readonly done: Promise<void>;
  /** Steps committed so far. */
  merges = 0;
  /** The first gc comes once capture streams: it clears what an earlier crash left. */
  private lastGc = -Infinity;

  constructor(private readonly options: CompactorOptions) {
    this.done = this.loop();
  }

  /** Interrupts the merge in flight, if any, and waits for the loop to end. */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.duck?.interrupt();
    await this.done;
    this.duck?.closeSync();
  }

  private async loop(): Promise<void> {
    const { vault, log, lagging, streaming, retention } = this.options;
    while (!this.stopping.signal.aborted) {
      // Nothing before capture streams: the slot, which one connection holds, is what keeps a second
      // capture waiting for it (and its compactor) off a vault whose store lacks conditional writes.
      if (!streaming()) {
        await this.pause(IDLE_MS);
        continue;
      }
      // Lagging or not: a long catch-up's merges retire files, and only gc deletes them.
      if (performance.now() - this.lastGc >= this.gcEveryMs) await this.collect();
      const step = nextCompactionStep(vault.manifest, retention);
      if (step === undefined) {
        await this.pause(IDLE_MS);
        continue;
      }
      const wall = performance.now();
      const cpu = process.cpuUsage();
      let result: CompactionResult;
      try {
        this.duck ??= await openDuckDB(await vault.storage.scratchDirectory());
        log(`compact: ${describeStep(step)}`);
        result = await compact(vault, this.duck, step);
      } catch (error) {
        if (this.stopping.signal.aborted) return;
        log(`compact: warning: ${describeStep(step)} failed (${(error as Error).message}); trying again in a minute`);
        await this.pause(AFTER_FAILURE_MS);
        continue;
      }
      if (result.committed) {
        this.merges += 1;
        log(`compact: ${describeResult(step, result)}`);
      }
      // The process's CPU over the merge, capture's included: an overcount, so the share holds.
      const used = process.cpuUsage(cpu);
      const seconds = (used.user + used.system) / 1e6;
      const elapsed = (performance.now() - wall) / 1000;
      const share = lagging() ? LAGGING_CPU_SHARE : COMPACTION_CPU_SHARE;
      await this.pause(Math.max(0, seconds / share - elapsed) * 1000);
    }
  }

  /** One gc; a failure is logged and capture goes on (the next gc finishes what this one could not). */
  private async collect(): Promise<void> {
    const { vault, log, retention, gcGraceMs = DEFAULT_GC_GRACE_MS } = this.options;
    this.lastGc = performance.now();
    try {
      const plan = await planGc(vault, gcGraceMs, retention);
      if (plan.due.length === 0 && plan.manifest === undefined) return;
      await collectGarbage(vault, plan);
      const pruned = plan.manifest === undefined ? '' : `, pruned manifest versions ${plan.manifest.from}–${plan.manifest.to - 1}`;
      log(`compact: gc deleted ${plan.due.length} files (${plan.due.reduce((sum, file) => sum + file.bytes, 0)} bytes)${pruned}`);
    } catch (error) {
      log(`compact: warning: gc failed (${(error as Error).message}); trying again in ${Math.round(this.gcEveryMs / 1000)} s`);
    }
  }

  private get gcEveryMs(): number {
    return Math.min(GC_EVERY_MAX_MS, Math.max(GC_EVERY_MIN_MS, this.options.gcGraceMs ?? DEFAULT_GC_GRACE_MS));
  }

  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stopping.signal }).catch(() => undefined);
  }
}
