// The target state a plan aims at, read from the vault: for a restore, a tenant's
// rows at a point; for an undo, every row the selected transactions touched as it
// was just before the first of them, with the later changes that make it a conflict.
// Rows stream table by table in chunks, so a tenant of any size stays in bounded memory.

import { UsageError } from '../errors.js';
import { formatLsn, formatMicros, layOut, type Lsn, type VaultReader } from '../timeline/index.js';
import { queryRows, sqlLiteral } from '../vault/index.js';
import { copyField, copyFieldSql, keyFieldsSql, rowFieldsSql, type StagedShape } from './copy-text.js';
import type { Row } from './plan.js';

/**
 * Target rows of one table, as its staging table's COPY takes them: a line per row
 * with the staged columns, then "recall.present" (false: the table must not hold
 * this key, whose columns alone are set), "recall.group" (the tenant) and
 * "recall.later" (an undo's changed-after conflict, or \N).
 */
export interface TargetBatch {
  readonly table: string;
  readonly rows: number;
  readonly text: string;
}

/** A change that came after the selected transactions. */
interface LaterChange {
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

/**
 * The rows of the given tenants (or of every tenant and global table) at an LSN, in
 * the staged tables, a query per table: each streams its first rows at once, so
 * staging starts while DuckDB still reads, where one query sorted by table would
 * render every row before the first.
 */
export async function* restoreTargets(
  reader: VaultReader,
  shapes: readonly StagedShape[],
  tenants: readonly string[] | 'all',
  lsn: Lsn,
): AsyncGenerator<TargetBatch> {
  const scope = tenants === 'all' ? 'true' : `tenant IN (${tenants.map(sqlLiteral).join(', ')})`;
  for (const shape of shapes) {
    const fields = `${rowFieldsSql(reader, [shape], lsn, '"row"', 'schema_id')} || chr(9) || 't' || chr(9) || ${copyFieldSql('tenant')}`;
    yield* streamTargets(
      reader,
      `SELECT "table", ${fields} AS fields, NULL::VARCHAR AS later FROM (
         SELECT "table", tenant, op, schema_id, "row",
                row_number() OVER (PARTITION BY "key" ORDER BY commit_lsn DESC, seq DESC) AS newest
           FROM ${reader.layersSql} WHERE ${scope} AND "table" = ${sqlLiteral(shape.name)} AND commit_lsn <= ${lsn})
        WHERE newest = 1 AND op NOT IN ('delete', 'truncate')`,
    );
  }
}

/**
 * Streams a target query's rows ("table", fields, and later: JSON text or NULL) as a
 * batch per DuckDB chunk and table. Whole columns at a time, and a string per batch:
 * converting and passing on row by row costs more than the query.
 */
async function* streamTargets(reader: VaultReader, sql: string): AsyncGenerator<TargetBatch> {
  const result = await reader.duck.stream(sql);
  for (;;) {
    const chunk = await result.fetchChunk();
    if (chunk === null || chunk.rowCount === 0) return;
    const [tables, fields, laters] = chunk.getColumns() as (string | null)[][];
    let table = tables?.[0] as string;
    let text = '';
    let rows = 0;
    for (let i = 0; i < chunk.rowCount; i++) {
      if (tables?.[i] !== table) {
        yield { table, rows, text };
        [table, text, rows] = [tables?.[i] as string, '', 0];
      }
      const later = laters?.[i];
      text += `${fields?.[i] as string}\t${later == null ? '\\N' : copyField(changedAfterDoc(laterChange(reader, table, JSON.parse(later) as StoredLaterChange)))}\n`;
      rows++;
    }
    yield { table, rows, text };
  }
}

/** Only the staged tables: rows of a table the source no longer has are left out. */
function inShapes(shapes: readonly StagedShape[]): string {
  return shapes.length === 0 ? 'false' : `"table" IN (${shapes.map((shape) => sqlLiteral(shape.name)).join(', ')})`;
}

/**
 * Every row the selected transactions touched, as it was before the first selected
 * change to it (absent where the row did not exist then), in the staged tables, table
 * by table. Later unselected changes are reported with the row, except those made by
 * this plan itself (a rerun after a crash sees its own earlier writes, and they are
 * not conflicts). A session takes its share: rows first touched in its tenants, or in
 * global tables.
 */
export async function* undoTargets(
  reader: VaultReader,
  shapes: readonly StagedShape[],
  xids: readonly bigint[],
  planId: string,
  share: { readonly tenants: readonly string[]; readonly global: boolean },
): AsyncGenerator<TargetBatch> {
  // A query per chunk of tenants: the per-key aggregate holds one chunk's keys, not the whole undo's.
  for (let i = 0; i < share.tenants.length; i += UNDO_CHUNK_TENANTS) {
    const chunk = share.tenants.slice(i, i + UNDO_CHUNK_TENANTS);
    yield* streamTargets(reader, undoTargetsSql(reader, shapes, xids, planId, `tenant IN (${chunk.map(sqlLiteral).join(', ')})`));
  }
  if (share.global) yield* streamTargets(reader, undoTargetsSql(reader, shapes, xids, planId, 'tenant IS NULL'));
}

/** Tenants whose undo targets one query computes. */
const UNDO_CHUNK_TENANTS = 25;

/** The undo targets of the rows first touched in the tenants `mine` selects. */
function undoTargetsSql(
  reader: VaultReader,
  shapes: readonly StagedShape[],
  xids: readonly bigint[],
  planId: string,
  mine: string,
): string {
  const selected = `xid IN (${xids.join(', ')})`;
  const ours = `(json_extract_string(context, '$.actor') = 'recall' AND json_extract_string(context, '$.plan') = ${sqlLiteral(planId)})`;
  const layoutLsn = reader.manifest.throughLsn;
  const exists = `(before.op NOT IN ('delete', 'truncate') AND before."row" IS NOT NULL)`;
  const fields = `CASE WHEN ${exists}
      THEN ${rowFieldsSql(reader, shapes, layoutLsn, 'before."row"', 'before.schema_id')} || chr(9) || 't' || chr(9) || ${copyFieldSql('before.tenant')}
      ELSE ${keyFieldsSql(shapes, '"table"', '"key"')} || chr(9) || 'f' || chr(9) || ${copyFieldSql('tenant')} END`;
  return `WITH touched AS (
       SELECT "table", "key", min(${POSITION}) AS first_position, arg_min(tenant, ${POSITION}) AS tenant
         FROM ${reader.layersSql} WHERE op <> 'image' AND ${selected} AND ${mine} AND ${inShapes(shapes)} GROUP BY "table", "key"),
     versions AS (
       SELECT v.*, ${POSITION} AS position, ${selected} AS selected, coalesce(${ours}, false) AS ours
         FROM ${reader.layersSql} AS v SEMI JOIN touched USING ("table", "key")),
     targets AS (
       SELECT t."table", t."key", t.tenant,
              arg_max({'op': v.op, 'row': v."row", 'schema_id': v.schema_id, 'tenant': v.tenant}, v.position)
                FILTER (WHERE v.position < t.first_position) AS before,
              arg_max({'op': v.op, 'row': v."row", 'schema_id': v.schema_id, 'xid': v.xid::VARCHAR, 'lsn': v.commit_lsn::VARCHAR,
                       'time': epoch_us(v.commit_time)::VARCHAR, 'actor': json_extract_string(v.context, '$.actor')}, v.position)
                FILTER (WHERE v.position > t.first_position AND NOT v.selected AND NOT v.ours AND v.op <> 'image') AS later
         FROM touched t JOIN versions v USING ("table", "key")
        GROUP BY t."table", t."key", t.tenant)
     SELECT "table", ${fields} AS fields, to_json(later)::VARCHAR AS later FROM targets ORDER BY "table"`;
}

/** A later change as the undo query returns it. */
interface StoredLaterChange {
  readonly op: string;
  readonly row: string | null;
  readonly schema_id: number;
  readonly xid: string;
  readonly lsn: string;
  readonly time: string;
  readonly actor: string | null;
}

/** A later change, its row read in the table's newest layout (the one an undo writes). */
function laterChange(reader: VaultReader, table: string, later: StoredLaterChange): LaterChange {
  const removed = later.op === 'delete' || later.op === 'truncate' || later.row === null;
  return {
    xid: later.xid,
    lsn: formatLsn(BigInt(later.lsn)),
    commitTime: formatMicros(BigInt(later.time)),
    actor: later.actor,
    row: removed
      ? null
      : layOut(
          JSON.parse(later.row as string) as Record<string, string | null>,
          reader.schema(Number(later.schema_id)),
          reader.layoutAt(table, reader.manifest.throughLsn),
        ),
  };
}

/** The conflict document of a row an unselected transaction changed after the undone ones. */
function changedAfterDoc(later: LaterChange): string {
  const actor = later.actor === null ? '' : ` (actor ${later.actor})`;
  return JSON.stringify({
    kind: 'changed-after',
    detail: `changed later by transaction ${later.xid}${actor} at ${later.commitTime}`,
    theirs: later.row,
  });
}
