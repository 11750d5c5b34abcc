// The target state a plan aims at, read from the vault: for a restore, a tenant's
// rows at a point; for an undo, every row the selected transactions touched as it
// was just before the first of them, with the later changes that make it a conflict.
// DuckDB renders the rows as COPY text into files, table by table, and their bytes
// stream on, so a tenant of any size stays in bounded memory.

import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { formatMicros, layOut, layoutAt, type Lsn, type VaultReader } from '../timeline/index.js';
import { processScratchDirectory, queryRows, sqlLiteral, type Manifest } from '../vault/index.js';
import { copyFieldSql, keyFieldsSql, rowFieldsSql, type StagedShape } from './copy-text.js';
import type { Row } from './plan.js';

/**
 * Target rows of one table, as its staging table's COPY takes them: a line per row
 * with the staged columns, then "recall.present" (false: the table must not hold
 * this key, whose columns alone are set), "recall.group" (the tenant) and
 * "recall.later" (an undo's later change, or \N). Its pieces must be read to the
 * end before the next table is asked for.
 */
export interface TargetTable {
  readonly table: string;
  readonly pieces: AsyncIterable<TargetPiece>;
}

/** A piece of a table's COPY text, cut anywhere; `rows` counts the lines it ends. */
export interface TargetPiece {
  readonly rows: number;
  readonly text: Buffer;
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
 * the staged tables. For named tenants, a query per table, each reading only the
 * tenants' row groups: each table's rows stream into staging while DuckDB computes
 * the next. For every tenant, one pass over the vault into a DuckDB table, then
 * exported table by table (a query per table would read the whole vault each time).
 */
export async function* restoreTargets(
  reader: VaultReader,
  shapes: readonly StagedShape[],
  tenants: readonly string[] | 'all',
  lsn: Lsn,
): AsyncGenerator<TargetTable> {
  const newest = (where: string, partition: string, fields: string): string =>
    `SELECT "table", ${fields} || chr(9) || 't' || chr(9) || ${copyFieldSql('tenant')} || chr(9) || '\\N' AS line
       FROM (SELECT "table", tenant, op, schema_id, "row",
                    row_number() OVER (PARTITION BY ${partition} ORDER BY commit_lsn DESC, seq DESC) AS newest
               FROM ${reader.layersSql} WHERE ${where} AND commit_lsn <= ${lsn})
      WHERE newest = 1 AND op NOT IN ('delete', 'truncate')`;
  if (tenants === 'all') {
    yield* tabledTargets(
      reader,
      shapes,
      newest(inShapes(shapes), '"table", "key"', rowFieldsSql(reader, shapes, lsn, '"row"', 'schema_id')),
    );
    return;
  }
  const scope = `tenant IN (${tenants.map(sqlLiteral).join(', ')})`;
  yield* exportedTargets(
    reader,
    shapes.map((shape) => ({
      table: shape.name,
      sql: `SELECT line FROM (${newest(`${scope} AND "table" = ${sqlLiteral(shape.name)}`, '"key"', rowFieldsSql(reader, [shape], lsn, '"row"', 'schema_id'))})`,
    })),
  );
}

/**
 * The targets a query ("table", line) computes for many tables at once, kept in a
 * DuckDB table (which spills to the scratch directory past its memory limit) and
 * exported table by table.
 */
async function* tabledTargets(reader: VaultReader, shapes: readonly StagedShape[], sql: string): AsyncGenerator<TargetTable> {
  await reader.duck.run(`CREATE OR REPLACE TEMP TABLE exported_targets AS ${sql}`);
  try {
    yield* exportedTargets(
      reader,
      shapes.map((shape) => ({ table: shape.name, sql: `SELECT line FROM exported_targets WHERE "table" = ${sqlLiteral(shape.name)}` })),
    );
  } finally {
    await reader.duck.run('DROP TABLE IF EXISTS exported_targets');
  }
}

/** A DuckDB query for one table's target rows: a single column, each row's COPY line. */
interface TargetExport {
  readonly table: string;
  readonly sql: string;
}

/**
 * Runs each export into a file with DuckDB's CSV writer, quoting off (the lines are
 * COPY text already), and streams the file's bytes on. DuckDB writes the next table
 * while the current one streams, and Node never turns a value into a string: both
 * cost more than the query. Nothing of the rows is held in memory; on disk, in the
 * vault's scratch directory, are at most two tables' lines at a time.
 */
async function* exportedTargets(reader: VaultReader, exports: readonly TargetExport[]): AsyncGenerator<TargetTable> {
  const directory = await processScratchDirectory(reader.vault.storage, 'targets');
  const fileOf = (i: number): string => join(directory, `${i}.copy`);
  let running = false;
  const run = (i: number): Promise<unknown> | undefined => {
    const target = exports[i];
    if (target === undefined) return undefined;
    running = true;
    const exported = reader.duck.run(`COPY (${target.sql}) TO ${sqlLiteral(fileOf(i))} (FORMAT csv, HEADER false, QUOTE '', ESCAPE '')`);
    // Awaited below; until then a failure must not count as unhandled.
    exported.then(
      () => (running = false),
      () => (running = false),
    );
    return exported;
  };
  let next = run(0);
  let finished = false;
  try {
    for (const [i, target] of exports.entries()) {
      await next;
      next = run(i + 1);
      yield { table: target.table, pieces: piecesOf(fileOf(i)) };
      await rm(fileOf(i), { force: true });
    }
    finished = true;
  } finally {
    // Stopped early (a failure downstream): an export still under way is of no use.
    if (!finished && running) reader.duck.interrupt();
    await next?.catch(() => undefined);
    await rm(directory, { recursive: true, force: true });
  }
}

/** Reads an exported file in pieces. */
async function* piecesOf(path: string): AsyncGenerator<TargetPiece> {
  for await (const text of createReadStream(path, { highWaterMark: READ_BYTES })) {
    yield { rows: linesIn(text as Buffer), text: text as Buffer };
  }
}

/** Bytes read from an exported file at a time. */
const READ_BYTES = 1 << 20;

/** COPY lines in a piece of an exported file: one newline ends each (a value's own newlines are escaped). */
function linesIn(text: Buffer): number {
  let lines = 0;
  for (let at = text.indexOf(10); at >= 0; at = text.indexOf(10, at + 1)) lines++;
  return lines;
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
): AsyncGenerator<TargetTable> {
  // A query per chunk of tenants: the per-key aggregate holds one chunk's keys, not the whole undo's.
  const chunks = [];
  for (let i = 0; i < share.tenants.length; i += UNDO_CHUNK_TENANTS) {
    chunks.push(
      `tenant IN (${share.tenants
        .slice(i, i + UNDO_CHUNK_TENANTS)
        .map(sqlLiteral)
        .join(', ')})`,
    );
  }
  if (share.global) chunks.push('tenant IS NULL');
  // Computed once per chunk, then exported a table at a time.
  for (const mine of chunks) yield* tabledTargets(reader, shapes, undoTargetsSql(reader, shapes, xids, planId, mine));
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
              arg_max({'op': v.op, 'row': v."row", 'schema_id': v.schema_id, 'xid': v.xid::VARCHAR,
                       'time': epoch_us(v.commit_time)::VARCHAR, 'actor': json_extract_string(v.context, '$.actor')}, v.position)
                FILTER (WHERE v.position > t.first_position AND NOT v.selected AND NOT v.ours AND v.op <> 'image') AS later
         FROM touched t JOIN versions v USING ("table", "key")
        GROUP BY t."table", t."key", t.tenant)
     SELECT "table", ${fields} || chr(9) || ${copyFieldSql('to_json(later)::VARCHAR')} AS line FROM targets`;
}

/** A later change as the undo query stages it in "recall.later". */
interface StoredLaterChange {
  readonly op: string;
  readonly row: string | null;
  readonly schema_id: number;
  readonly xid: string;
  readonly time: string;
  readonly actor: string | null;
}

/**
 * An undo's changed-after conflict from its staged later change: what changed the
 * row, and the row it left, read in the table's newest layout (the one an undo
 * writes) from the schema history of the manifest the plan was computed from.
 */
export function changedAfter(manifest: Manifest, table: string, stored: string): { detail: string; theirs: Row | null } {
  const later = JSON.parse(stored) as StoredLaterChange;
  const actor = later.actor === null ? '' : ` (actor ${later.actor})`;
  const removed = later.op === 'delete' || later.op === 'truncate' || later.row === null;
  return {
    detail: `changed later by transaction ${later.xid}${actor} at ${formatMicros(BigInt(later.time))}`,
    theirs: removed
      ? null
      : layOut(
          JSON.parse(later.row as string) as Record<string, string | null>,
          manifest.schemas[Number(later.schema_id)],
          layoutAt(manifest, table, manifest.throughLsn),
        ),
  };
}
