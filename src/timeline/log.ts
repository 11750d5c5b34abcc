// `recall log`: a tenant's changes after the initial image, one per row change,
// oldest first, with the transaction context that came with each.

import { PointBeforeHistoryError } from '../errors.js';
import { gapsBetween, queryRows, type ChangeOp, type Vault } from '../vault/index.js';
import { formatLsn } from './lsn.js';
import { formatMicros, type Point } from './point.js';
import { VaultReader, type FutureBound } from './vault-reader.js';
import type { DuckDBTimestampValue } from '@duckdb/node-api';

/** One change as `log` reports it. */
export interface LoggedChange {
  readonly lsn: string;
  readonly commitTime: string;
  readonly xid: number;
  readonly table: string;
  readonly op: Exclude<ChangeOp, 'image'>;
  readonly key: readonly (string | null)[];
  /** The row after the change; for a delete or truncate, the row removed. */
  readonly row: Readonly<Record<string, string | null>> | null;
  readonly context: Readonly<Record<string, unknown>> | null;
}

/** What to list. */
export interface LogOptions {
  readonly vault: Vault;
  readonly tenant: string;
  readonly since?: Point;
  readonly until?: Point;
  readonly table?: string;
  /** LSN points past this are refused as in the future (unchecked when absent). */
  readonly future?: FutureBound | undefined;
  /** Hears a note for the reader: a gap in the history inside the window. */
  readonly note?: (line: string) => void;
}

/** The tenant's changes in (since, until], oldest first. */
export async function log(options: LogOptions): Promise<LoggedChange[]> {
  const reader = await VaultReader.open(options.vault, { future: options.future, tenant: options.tenant });
  try {
    const since = options.since === undefined ? reader.manifest.startLsn : await resolveSince(reader, options.since);
    const until = options.until === undefined ? reader.manifest.throughLsn : await reader.resolve(options.until);
    await reader.assertTenant(options.tenant);
    for (const gap of gapsBetween(reader.manifest, since, until)) {
      const to = gap.resumedLsn === undefined ? 'capture stopped there' : `until lsn:${formatLsn(gap.resumedLsn)}`;
      options.note?.(
        `note: the history has a gap from lsn:${formatLsn(gap.fromLsn)}, ${to} (${gap.detail}): changes inside it are unknown`,
      );
    }
    const table = options.table === undefined ? undefined : reader.capturedTable(options.table);
    const rows = await queryRows(
      reader.duck,
      `SELECT commit_lsn, commit_time, xid, "table", op, "key", "row", context
         FROM ${reader.layersSql}
        WHERE tenant = $1 AND op <> 'image' AND commit_lsn > $2 AND commit_lsn <= $3 ${table === undefined ? '' : 'AND "table" = $4'}
        ORDER BY commit_lsn, seq`,
      table === undefined ? [options.tenant, since, until] : [options.tenant, since, until, table],
    );
    return rows.map((row) => ({
      lsn: formatLsn(row.commit_lsn as bigint),
      commitTime: formatMicros((row.commit_time as DuckDBTimestampValue).micros),
      xid: Number(row.xid as bigint),
      table: row.table as string,
      op: row.op as LoggedChange['op'],
      key: JSON.parse(row.key as string) as (string | null)[],
      row: row.row === null ? null : (JSON.parse(row.row as string) as Record<string, string | null>),
      context: row.context === null ? null : (JSON.parse(row.context as string) as Record<string, unknown>),
    }));
  } finally {
    reader.close();
  }
}

/** Resolves --since; a point before the history says how to list all of it instead. */
async function resolveSince(reader: VaultReader, since: Point): Promise<bigint> {
  try {
    return await reader.resolve(since);
  } catch (error) {
    if (error instanceof PointBeforeHistoryError) {
      throw new PointBeforeHistoryError(error.message, `${error.hint ?? ''}; leave out --since to list every change the history holds`);
    }
    throw error;
  }
}
