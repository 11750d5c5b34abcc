// The target state a plan aims at, read from the vault: for a restore, a tenant's
// rows at a point; for an undo, every row the selected transactions touched as it
// was just before the first of them, with the later changes that make it a conflict.
// Rows stream table by table in chunks, so a tenant of any size stays in bounded memory.

import { UsageError } from '../errors.js';
import { formatLsn, formatMicros, layOut, type Lsn, type VaultReader } from '../timeline/index.js';
import { queryRows, sqlLiteral, type SchemaVersion } from '../vault/index.js';
import type { Key, Row } from './plan.js';

/** One row of the target state: the row the table must hold under this key, or null for none. */
export interface TargetRow {
  readonly table: string;
  readonly tenant: string | null;
  readonly key: Key;
  readonly row: Row | null;
  /** For an undo: an unselected change made after the selected ones, which the undo would overwrite. */
  readonly changedAfter?: LaterChange;
}

/** A change that came after the selected transactions. */
export interface LaterChange {
  readonly xid: string;
  readonly lsn: string;
  readonly commitTime: string;
  readonly actor: string | null;
  /** The row it left (null: it deleted the row). */
  readonly row: Row | null;
}

/** Which transactions an undo reverses. */
export interface UndoSelector {
  readonly xids?: readonly bigint[];
  readonly actor?: string;
  /** LSN bounds for --actor: commits in (since, until]. */
  readonly sinceLsn?: Lsn;
  readonly untilLsn: Lsn;
}

/** Position of a change in the history: commit LSN, then place in its transaction. */
const POSITION = '(commit_lsn::HUGEINT * 4294967296 + seq)';

/** The 64-bit ids of the transactions an undo selects, in commit order. */
export async function selectTransactions(reader: VaultReader, selector: UndoSelector): Promise<bigint[]> {
  const bounds = `op <> 'image' AND commit_lsn <= ${selector.untilLsn} ${selector.sinceLsn === undefined ? '' : `AND commit_lsn > ${selector.sinceLsn}`}`;
  if (selector.xids !== undefined) {
    const wanted = selector.xids.map(String).join(', ');
    // A 32-bit id (as BEGIN and older tools show it) matches the low half of the 64-bit one.
    const rows = await queryRows(
      reader.duck,
      `SELECT xid, min(commit_lsn) AS lsn FROM ${reader.layersSql}
        WHERE ${bounds} AND (xid IN (${wanted}) OR (xid % 4294967296) IN (${wanted})) GROUP BY xid ORDER BY lsn`,
    );
    const found = rows.map((row) => row.xid as bigint);
    const missing = selector.xids.filter((xid) => !found.some((f) => f === xid || f % 4294967296n === xid));
    if (missing.length > 0) {
      throw new UsageError(
        `transaction${missing.length === 1 ? '' : 's'} ${missing.join(', ')} changed no captured row`,
        'check the ids with `recall log --tenant T` (the xid field); only transactions that changed captured rows can be undone',
      );
    }
    return found;
  }
  const rows = await queryRows(
    reader.duck,
    `SELECT xid, min(commit_lsn) AS lsn FROM ${reader.layersSql}
      WHERE ${bounds} AND json_extract_string(context, '$.actor') = $1 GROUP BY xid ORDER BY lsn`,
    [selector.actor ?? ''],
  );
  if (rows.length === 0) {
    throw new UsageError(
      `no transaction of actor "${selector.actor}" in the history${selector.sinceLsn === undefined ? '' : ' in that time range'}`,
      'check the actor with `recall log --tenant T --json` (context.actor) and widen --since/--until',
    );
  }
  return rows.map((row) => row.xid as bigint);
}

/** The rows of the given tenants (or of every tenant and global table) at an LSN, table by table. */
export async function* restoreTargets(reader: VaultReader, tenants: readonly string[] | 'all', lsn: Lsn): AsyncGenerator<TargetRow> {
  const scope = tenants === 'all' ? 'true' : `tenant IN (${tenants.map(sqlLiteral).join(', ')})`;
  const result = await reader.duck.stream(
    `SELECT "table", tenant, "key", schema_id, "row" FROM (
       SELECT "table", tenant, "key", op, schema_id, "row",
              row_number() OVER (PARTITION BY "table", "key" ORDER BY commit_lsn DESC, seq DESC) AS newest
         FROM ${reader.layersSql} WHERE ${scope} AND commit_lsn <= ${lsn})
      WHERE newest = 1 AND op NOT IN ('delete', 'truncate')
      ORDER BY "table"`,
  );
  for await (const chunk of result.yieldRowObjectJson()) {
    for (const record of chunk) {
      const table = record.table as string;
      yield {
        table,
        tenant: record.tenant as string | null,
        key: JSON.parse(record.key as string) as Key,
        row: laidOut(reader, record.row as string, Number(record.schema_id), reader.layoutAt(table, lsn)),
      };
    }
  }
}

/**
 * Every row the selected transactions touched, as it was before the first selected
 * change to it (null where the row did not exist then), table by table. Later
 * unselected changes are reported with the row, except those made by this plan itself
 * (a rerun after a crash sees its own earlier writes, and they are not conflicts).
 * A session takes its share: rows first touched in its tenants, or in global tables.
 */
export async function* undoTargets(
  reader: VaultReader,
  xids: readonly bigint[],
  planId: string,
  share: { readonly tenants: readonly string[]; readonly global: boolean },
): AsyncGenerator<TargetRow> {
  // A query per chunk of tenants: the per-key aggregate holds one chunk's keys, not the whole undo's.
  for (let i = 0; i < share.tenants.length; i += UNDO_CHUNK_TENANTS) {
    yield* undoTargetsOf(
      reader,
      xids,
      planId,
      `tenant IN (${share.tenants
        .slice(i, i + UNDO_CHUNK_TENANTS)
        .map(sqlLiteral)
        .join(', ')})`,
    );
  }
  if (share.global) yield* undoTargetsOf(reader, xids, planId, 'tenant IS NULL');
}

/** Tenants whose undo targets one query computes. */
const UNDO_CHUNK_TENANTS = 25;

/** undoTargets for the rows first touched in the tenants `mine` selects. */
async function* undoTargetsOf(reader: VaultReader, xids: readonly bigint[], planId: string, mine: string): AsyncGenerator<TargetRow> {
  const selected = `xid IN (${xids.join(', ')})`;
  const ours = `(json_extract_string(context, '$.actor') = 'recall' AND json_extract_string(context, '$.plan') = ${sqlLiteral(planId)})`;
  const newestLsn = reader.manifest.throughLsn;
  const result = await reader.duck.stream(
    `WITH touched AS (
       SELECT "table", "key", min(${POSITION}) AS first_position, arg_min(tenant, ${POSITION}) AS tenant
         FROM ${reader.layersSql} WHERE op <> 'image' AND ${selected} AND ${mine} GROUP BY "table", "key"),
     versions AS (
       SELECT v.*, ${POSITION} AS position, ${selected} AS selected, coalesce(${ours}, false) AS ours
         FROM ${reader.layersSql} AS v SEMI JOIN touched USING ("table", "key"))
     SELECT t."table", t."key", t.tenant,
            arg_max({'op': v.op, 'row': v."row", 'schema_id': v.schema_id, 'tenant': v.tenant}, v.position)
              FILTER (WHERE v.position < t.first_position) AS before,
            arg_max({'op': v.op, 'row': v."row", 'schema_id': v.schema_id, 'xid': v.xid::VARCHAR, 'lsn': v.commit_lsn::VARCHAR,
                     'time': epoch_us(v.commit_time)::VARCHAR, 'actor': json_extract_string(v.context, '$.actor')}, v.position)
              FILTER (WHERE v.position > t.first_position AND NOT v.selected AND NOT v.ours) AS later
       FROM touched t JOIN versions v USING ("table", "key")
      GROUP BY t."table", t."key", t.tenant
      ORDER BY t."table"`,
  );
  for await (const chunk of result.yieldRowObjectJson()) {
    for (const record of chunk) {
      const table = record.table as string;
      const layout = reader.layoutAt(table, newestLsn);
      const before = record.before as { op: string; row: string | null; schema_id: number; tenant: string | null } | null;
      const later = record.later as {
        op: string;
        row: string | null;
        schema_id: number;
        xid: string;
        lsn: string;
        time: string;
        actor: string | null;
      } | null;
      const exists = before !== null && before.op !== 'delete' && before.op !== 'truncate' && before.row !== null;
      yield {
        table,
        tenant: exists ? before.tenant : (record.tenant as string | null),
        key: JSON.parse(record.key as string) as Key,
        row: exists ? laidOut(reader, before.row as string, Number(before.schema_id), layout) : null,
        ...(later === null
          ? {}
          : {
              changedAfter: {
                xid: later.xid,
                lsn: formatLsn(BigInt(later.lsn)),
                commitTime: formatMicros(BigInt(later.time)),
                actor: later.actor,
                row:
                  later.op === 'delete' || later.op === 'truncate' || later.row === null
                    ? null
                    : laidOut(reader, later.row, Number(later.schema_id), layout),
              },
            }),
      };
    }
  }
}

/** A stored row read in the layout the plan writes. */
function laidOut(reader: VaultReader, json: string, schemaId: number, layout: SchemaVersion | undefined): Row {
  return layOut(JSON.parse(json) as Record<string, string | null>, reader.schema(schemaId), layout);
}
