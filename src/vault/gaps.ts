// Gaps in the history: stretches of the source's life the vault never saw, because its
// slot was dropped, re-created or invalidated, or the source became another server or
// went back in time. A gap opens where the vault was last complete and closes at the
// consistent point of the fresh image `recall init --resume` takes; reads on either
// side are exact, and a point inside one is refused rather than answered with a guess.

import type { Manifest } from './manifest.js';

/** Why the history has a gap. */
export type GapCause = 'slot-dropped' | 'slot-invalidated' | 'slot-ahead' | 'source-changed' | 'source-rewound';

/** One gap, as the manifest records it. */
export interface GapRecord {
  readonly cause: GapCause;
  /** What capture found, in a sentence. */
  readonly detail: string;
  /** The vault's end when the gap was found: every commit at or below it is in the history. */
  readonly fromLsn: bigint;
  /** The commit time at `fromLsn` (µs since the epoch). */
  readonly fromTime: bigint;
  /** ISO time it was found. */
  readonly detectedAt: string;
  /** The consistent point of the image that closed it; absent while it is open. */
  readonly resumedLsn?: bigint;
  readonly resumedTime?: bigint;
  readonly resumedAt?: string;
}

/** The bigint fields of a gap record, for the manifest's JSON form. */
export const GAP_BIGINTS = ['fromLsn', 'fromTime', 'resumedLsn', 'resumedTime'] as const;

/** The gap capture stopped at and nothing has closed yet. */
export function openGap(manifest: Manifest): GapRecord | undefined {
  return manifest.gaps?.find((gap) => gap.resumedLsn === undefined);
}

/** The gap a position falls strictly inside, if any: the state there is unknown. */
export function gapAtLsn(manifest: Manifest, lsn: bigint): GapRecord | undefined {
  return manifest.gaps?.find((gap) => lsn > gap.fromLsn && (gap.resumedLsn === undefined || lsn < gap.resumedLsn));
}

/** The gap a time falls strictly inside, if any. */
export function gapAtTime(manifest: Manifest, micros: bigint): GapRecord | undefined {
  return manifest.gaps?.find((gap) => micros > gap.fromTime && (gap.resumedTime === undefined || micros < gap.resumedTime));
}

/**
 * The LSN below which no version counts for the state at `lsn`: the history's start,
 * or the newest fresh image at or before it. Rows deleted inside a gap left no record,
 * so only the image says they are gone.
 */
export function historyFloor(manifest: Manifest, lsn: bigint): bigint {
  let floor = manifest.startLsn;
  for (const gap of manifest.gaps ?? [])
    if (gap.resumedLsn !== undefined && gap.resumedLsn <= lsn && gap.resumedLsn > floor) floor = gap.resumedLsn;
  return floor;
}

/** DuckDB SQL: historyFloor for each row's own LSN expression (for reads whose point differs per key). */
export function historyFloorSql(manifest: Manifest, lsn: string): string {
  const resumed = (manifest.gaps ?? [])
    .map((gap) => gap.resumedLsn)
    .filter((at): at is bigint => at !== undefined && at > manifest.startLsn)
    .sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
  if (resumed.length === 0) return `${manifest.startLsn}::UBIGINT`;
  return `(CASE ${resumed.map((at) => `WHEN ${lsn} >= ${at} THEN ${at}::UBIGINT`).join(' ')} ELSE ${manifest.startLsn}::UBIGINT END)`;
}

/** Whether any gap lies between two positions (a log or report across it is exact on both sides only). */
export function gapsBetween(manifest: Manifest, from: bigint, to: bigint): readonly GapRecord[] {
  return (manifest.gaps ?? []).filter((gap) => gap.fromLsn < to && (gap.resumedLsn === undefined || gap.resumedLsn > from));
}

/**
 * The lowest commit LSN a transaction streamed to this vault may have and still be new.
 * Past a commit, that is the next position: the slot may resend what the vault holds.
 * At an image's consistent point with no commit after it (init's, or a resume's), a
 * commit record that starts exactly there was still running in the image's snapshot,
 * so it is new and must not be taken for a duplicate.
 */
export function firstNewCommitLsn(manifest: Manifest): bigint {
  const through = manifest.throughLsn;
  const imagePoint = through === manifest.startLsn || (manifest.gaps ?? []).some((gap) => gap.resumedLsn === through);
  if (!imagePoint) return through + 1n;
  return manifest.layers.some((layer) => layer.kind === 'delta' && layer.maxLsn >= through) ? through + 1n : through;
}

/**
 * Where the source's current lineage starts: after a gap to another server or a rewound
 * one, transaction ids begin again and may repeat older ones, so an id names a
 * transaction at or after this point only. The history's start without such a gap.
 */
export function lineageStart(manifest: Manifest): bigint {
  let start = manifest.startLsn;
  for (const gap of manifest.gaps ?? []) {
    const rebuilt = gap.cause === 'source-changed' || gap.cause === 'source-rewound';
    if (rebuilt && gap.resumedLsn !== undefined && gap.resumedLsn > start) start = gap.resumedLsn;
  }
  return start;
}
