// Retention: history older than `vault.retention` is folded into bucket images at a
// horizon, and the history then starts there: the files wholly before it are retired
// (gc deletes them), points before it are refused, and a tenant gone before it is gone.
// The horizon trails now − retention by at most a fold step, so folds stay rare.

import { rm } from 'node:fs/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import { InternalError } from '../errors.js';
import { writeBucketImages } from './bucket-images.js';
import type { CompactionResult } from './compaction.js';
import { fileList, queryRows } from './duckdb.js';
import type { LayerEntry, Manifest } from './manifest.js';
import { processScratchDirectory } from './process-directory.js';
import { IMAGE_BUCKETS, readSet } from './read-set.js';
import type { Vault } from './vault.js';

/** How long history is kept, as configured. */
export interface Retention {
  readonly ms: number;
  /** As written in recall.yml ("35d"), for messages and the manifest. */
  readonly text: string;
}

/** The most a fold step may be: with a month's retention, the horizon moves once a day. */
const MAX_FOLD_STEP_MS = 24 * 60 * 60 * 1000;

/** How far the history's start may trail now − retention: a tenth of the span, at most a day. */
export function foldStepMs(retention: Retention): number {
  return Math.min(retention.ms / 10, MAX_FOLD_STEP_MS);
}

/** A fold: the state at the last commit before `before` written as images, and the history before it retired. */
export interface FoldStep {
  readonly kind: 'fold';
  /** Microseconds since the epoch: now − retention when the step was planned. */
  readonly before: bigint;
  readonly retention: Retention;
}

/** The horizon retention asks for now, in microseconds since the epoch. */
export function retentionHorizon(retention: Retention, now = Date.now()): bigint {
  return BigInt(now - retention.ms) * 1000n;
}

/**
 * A fold, when the history starts more than a fold step before the horizon and a layer
 * after the start holds a commit before the horizon (so a fold finds a commit to move to).
 */
export function foldDue(manifest: Manifest, retention: Retention, now = Date.now()): FoldStep | undefined {
  const before = retentionHorizon(retention, now);
  if (before - manifest.startTime < BigInt(Math.ceil(foldStepMs(retention))) * 1000n) return undefined;
  const movable = manifest.layers.some((layer) => layer.kind === 'delta' && layer.minLsn > manifest.startLsn && layer.minTime <= before);
  return movable ? { kind: 'fold', before, retention } : undefined;
}

/**
 * Folds the history before the step's horizon: finds the last commit H at or before it,
 * writes every bucket's image at H (each from its own newest image), then commits, in
 * one manifest version, the images, the history's new start at H, and the retirement of
 * every layer wholly at or before H. Layers that straddle H stay; their older rows are
 * shadowed by the floor of every read (read-set.ts).
 */
export async function fold(vault: Vault, duck: DuckDBConnection, step: FoldStep): Promise<CompactionResult> {
  const manifest = vault.manifest;
  const candidates = manifest.layers.filter((layer) => layer.maxLsn > manifest.startLsn && layer.minTime <= step.before);
  if (candidates.length === 0) return { replaced: [], written: [], committed: false };
  const [found] = await queryRows(
    duck,
    `SELECT commit_lsn AS lsn, epoch_us(commit_time) AS time FROM read_parquet(${fileList(await vault.layerFiles(candidates))})
      WHERE commit_time <= make_timestamp(${step.before}::BIGINT) AND commit_lsn > ${manifest.startLsn}
      ORDER BY commit_lsn DESC LIMIT 1`,
  );
  if (found === undefined) return { replaced: [], written: [], committed: false };
  const lsn = found.lsn as bigint;
  const time = found.time as bigint;
  const buckets = Array.from({ length: IMAGE_BUCKETS }, (_, index) => {
    const bucket = { index, of: IMAGE_BUCKETS };
    return { bucket, ...readSet(manifest, { bucket }, lsn) };
  });
  const inputs = [...new Map(buckets.flatMap((one) => one.layers).map((layer) => [layer.path, layer])).values()];
  const directory = await processScratchDirectory(vault.storage, 'compact');
  try {
    const files = await writeBucketImages(vault, duck, directory, {
      buckets: buckets.map(({ bucket, floor }) => ({ bucket, floor })),
      inputs,
      lsn,
      time,
    });
    for (const file of files) await vault.putLayer(file);
    const written = files.map((file) => file.entry);
    let replaced: LayerEntry[] = [];
    const committed = await vault.update((current) => {
      if (current === undefined) throw new InternalError('a vault with history to fold has no manifest');
      // Another process folded as far meanwhile, or replaced an input (a merge, an erasure): these images are gc's.
      const live = new Set(current.layers.map((layer) => layer.path));
      if (current.startLsn >= lsn || !inputs.every((layer) => live.has(layer.path))) return undefined;
      replaced = current.layers.filter((layer) => layer.maxLsn <= lsn);
      const at = new Date().toISOString();
      return {
        ...current,
        startLsn: lsn,
        startTime: time,
        retention: { keep: step.retention.text, foldedAt: at },
        layers: [...current.layers.filter((layer) => layer.maxLsn > lsn), ...written],
        retired: [...(current.retired ?? []), ...replaced.map((layer) => ({ path: layer.path, bytes: layer.bytes, at }))],
      };
    });
    const moved = committed.startLsn === lsn && written.every((entry) => committed.layers.some((layer) => layer.path === entry.path));
    return moved ? { replaced, written, committed: true } : { replaced: [], written: [], committed: false };
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}
