// A table's keys in scope, cut into ranges small enough for DuckDB's memory. The
// target of a key is found in two steps: the position of the wanted version, from
// narrow columns in a per-key aggregate, then the row itself, fetched by exact
// position in a join whose build side is that range's positions. Both hold a range's
// keys, never the whole selection's, and never a row's text in an aggregate.
//
// Why ranges of the key's text and not buckets of its hash: layers are sorted by
// tenant, table and key, and each row group's statistics give its smallest and
// largest key, so a range reads only the row groups that can hold its keys (with
// keys led by the tenant, about one pass over the rows in play whatever the number
// of ranges), where each hash bucket would read every row group again.

import { processMemoryBudget, sqlLiteral, VECTOR_ROWS } from '../vault/index.js';
import type { TargetStatements } from './target-statements.js';

/** Keys from `from` (inclusive) to `to` (exclusive), as the vault's key text sorts; open where absent. */
export interface KeyRange {
  readonly from?: string;
  readonly to?: string;
}

/** DuckDB SQL: the column "key" lies in the range (comparisons the Parquet reader checks against row-group statistics). */
export function inKeyRange(range: KeyRange): string {
  const bounds = [
    ...(range.from === undefined ? [] : [`"key" >= ${sqlLiteral(range.from)}`]),
    ...(range.to === undefined ? [] : [`"key" < ${sqlLiteral(range.to)}`]),
  ];
  return bounds.length === 0 ? 'true' : bounds.join(' AND ');
}

/**
 * DuckDB memory a range takes per key: its positions (about 170 bytes a key in a
 * temporary table), the aggregate that finds them, and the join that fetches the rows.
 * Measured: 40,000 keys of 13 bytes fetched in a 44.7 MiB limit, 76,000 did not;
 * twice the measured cost leaves room.
 */
const BYTES_PER_KEY = 2048;

/**
 * DuckDB memory the fetch of a range takes whatever its keys, per byte of a vector's
 * rows (2,048 of the widest): the page being read, the vector of rows, and the CSV
 * writer's buffer, which doubles past what a vector holds (16 MB for rows of 3 KB).
 */
const ROW_VECTORS = 4;

/**
 * Keys a range may hold under the budget in force, for keys of `keyBytes` on average
 * and rows of up to `rowBytes`: what the rows' vectors leave of DuckDB's share.
 */
export function keysPerRange(keyBytes: number, rowBytes: number): number {
  const left = processMemoryBudget().planDuckdbBytes - ROW_VECTORS * VECTOR_ROWS * rowBytes;
  return Math.max(MIN_KEYS, Math.floor(left / (BYTES_PER_KEY + 4 * keyBytes)));
}

/** Below this many keys a range costs more in passes than it saves in memory. */
const MIN_KEYS = 1000;

/** Sampled keys per range: enough that the ranges come out within a few percent of each other. */
const SAMPLE_PER_RANGE = 256;
const MAX_SAMPLE = 65_536;

/**
 * Cuts the keys that `keysSql` yields (a query with a "key" column, a row per change
 * or version in scope, `count` of them) into ranges of about `perRange`, at the
 * quantiles of a sample: only the sample is held, never the keys.
 */
export async function keyRanges(statements: TargetStatements, keysSql: string, count: number, perRange: number): Promise<KeyRange[]> {
  const ranges = Math.ceil(count / perRange);
  if (ranges <= 1) return [{}];
  const fractions = Array.from({ length: ranges - 1 }, (_, i) => ((i + 1) / ranges).toFixed(6));
  const sample = Math.min(MAX_SAMPLE, SAMPLE_PER_RANGE * ranges);
  const [row] = await statements.rows(
    `SELECT quantile_disc("key", [${fractions.join(', ')}]) AS cuts FROM (${keysSql}) USING SAMPLE reservoir(${sample} ROWS)`,
  );
  const cuts = [...new Set(((row?.cuts as { items?: unknown[] } | null)?.items ?? []) as string[])];
  return [undefined, ...cuts].map((from, i) => ({
    ...(from === undefined ? {} : { from }),
    ...(cuts[i] === undefined ? {} : { to: cuts[i] }),
  }));
}
