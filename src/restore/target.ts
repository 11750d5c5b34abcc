// The target state a plan aims at, read from the vault: for a restore, a tenant's
// rows at a point; for an undo, every row the selected transactions touched as it
// was just before the first of them, with the later changes that make it a conflict.
// Each table's keys in scope are cut into ranges that fit DuckDB's memory; for each
// range, the position of each key's wanted version comes from narrow columns, then
// the rows are fetched by exact position and rendered as COPY text into a file
// (target-export.ts), so a selection of any size and width stays in bounded memory.

import { UsageError } from '../errors.js';
import { formatMicros, layOut, layoutAt, type Lsn, type VaultReader } from '../timeline/index.js';
import { queryRows, sqlLiteral } from '../vault/index.js';
import { copyFieldSql, exportedLineSql, TargetLines, type StagedShape } from './copy-text.js';
import { inKeyRange, keyRanges, keysPerRange, type KeyRange } from './key-ranges.js';
import type { Row } from './plan.js';
import { copyLinesSql, exportedTargets, type TargetExport, type TargetTable } from './target-export.js';
import { TargetStatements } from './target-statements.js';

export type { TargetPiece, TargetTable } from './target-export.js';

/** Which transactions an undo reverses. */
export interface UndoSelector {
  readonly xids?: readonly bigint[];
  readonly actor?: string;
  /** LSN bounds for --actor: commits in (since, until]. */
  readonly sinceLsn?: Lsn;
  readonly untilLsn: Lsn;
}

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

/** What a share's target computation is told and tells. */
export interface TargetHooks {
  /** Stops the computation (another session of the plan failed). */
  readonly signal?: AbortSignal;
  /** Called once the sizes are known, with about how many target rows the share stages. */
  readonly onEstimate?: (rows: number) => void;
}

/** The size of a table's part of the scope, from narrow columns. */
interface TableSize {
  /** Rows the scope holds (changes or versions), which the key ranges are sampled from. */
  readonly rows: number;
  /** Keys of the table in scope, at most: what a range's memory follows. */
  readonly keys: number;
  readonly keyBytes: number;
}

/** Sizes per table of a scope (`where`, on the layers), in one narrow pass; `keys` is SQL for the count of keys. */
async function tableSizes(statements: TargetStatements, reader: VaultReader, where: string, keys: string): Promise<Map<string, TableSize>> {
  const rows = await statements.rows(
    `SELECT "table", count(*) AS n, ${keys} AS keys, avg(length("key")) AS key_bytes FROM ${reader.layersSql} WHERE ${where} GROUP BY "table"`,
  );
  return new Map(
    rows.map((row) => [row.table as string, { rows: Number(row.n), keys: Number(row.keys), keyBytes: Number(row.key_bytes) }]),
  );
}

/**
 * The ranges of each staged table's keys (in staging order) that a scope touches,
 * `keysSql` giving the scope's keys of a table; tells the estimate of rows to stage.
 */
async function* rangesOf(
  statements: TargetStatements,
  shapes: readonly StagedShape[],
  sizes: ReadonlyMap<string, TableSize>,
  keysSql: (table: string) => string,
  hooks: TargetHooks,
): AsyncGenerator<{ shape: StagedShape; range: KeyRange }> {
  hooks.onEstimate?.([...sizes.values()].reduce((sum, size) => sum + size.keys, 0));
  for (const shape of shapes) {
    const size = sizes.get(shape.name);
    if (size === undefined) continue;
    const perRange = keysPerRange(size.keyBytes);
    // The sample's rows are changes or versions: a range holds keys in proportion to them.
    const ranges = await keyRanges(statements, keysSql(shape.name), size.rows, Math.max(1, Math.floor((perRange * size.rows) / size.keys)));
    for (const range of ranges) yield { shape, range };
  }
}

/** Position of a change in the history: commit LSN, then place in its transaction. */
const POSITION = '(commit_lsn::HUGEINT * 4294967296 + seq)';

/** Temporary table of a range's wanted versions (connections do not share temporary tables). */
const WANTED = 'recall_wanted';

/**
 * The rows of the given tenants (or of every tenant and global table) at an LSN, in
 * the staged tables: each key's newest version at or below it, unless that is a delete.
 */
export function restoreTargets(
  reader: VaultReader,
  shapes: readonly StagedShape[],
  tenants: readonly string[] | 'all',
  lsn: Lsn,
  hooks: TargetHooks = {},
): AsyncGenerator<TargetTable> {
  const tenantsIn = tenants === 'all' ? '' : `tenant IN (${tenants.map(sqlLiteral).join(', ')}) AND `;
  const scope = `${tenantsIn}${inShapes(shapes)} AND commit_lsn <= ${lsn}`;
  return exportedTargets(
    reader,
    async function* (statements): AsyncGenerator<TargetExport> {
      // A key's versions at or below the point are at most its count of versions; HyperLogLog says about how many keys.
      const sizes = await tableSizes(statements, reader, scope, 'approx_count_distinct("key")');
      const keysSql = (table: string): string => `SELECT "key" FROM ${reader.layersSql} WHERE ${scope} AND "table" = ${sqlLiteral(table)}`;
      for await (const { shape, range } of rangesOf(statements, shapes, sizes, keysSql, hooks)) {
        const versions = `${scope} AND "table" = ${sqlLiteral(shape.name)} AND ${inKeyRange(range)}`;
        yield {
          table: shape.name,
          lines: new TargetLines(reader, shape, lsn),
          write: async (path) => {
            await statements.run(
              `CREATE OR REPLACE TEMP TABLE ${WANTED} AS
               SELECT "key", newest.lsn AS lsn, newest.seq AS seq
                 FROM (SELECT "key", arg_max({'lsn': commit_lsn, 'seq': seq, 'op': op}, ${POSITION}) AS newest
                         FROM ${reader.layersSql} WHERE ${versions} GROUP BY "key")
                WHERE newest.op NOT IN ('delete', 'truncate')`,
            );
            const line = exportedLineSql({ schemaId: 'v.schema_id', tenant: 'v.tenant', later: "'\\N'", key: 'v."key"', row: 'v."row"' });
            await statements.run(
              copyLinesSql(
                `SELECT ${line}
                   FROM (SELECT "key", commit_lsn, seq, "row", schema_id, tenant FROM ${reader.layersSql} WHERE ${versions}) AS v
                   JOIN ${WANTED} AS w ON v."key" = w."key" AND v.commit_lsn = w.lsn AND v.seq = w.seq`,
                path,
              ),
            );
            await statements.run(`DROP TABLE ${WANTED}`);
          },
        };
      }
    },
    hooks.signal,
  );
}

/** Only the staged tables: rows of a table the source no longer has are left out. */
function inShapes(shapes: readonly StagedShape[]): string {
  return shapes.length === 0 ? 'false' : `"table" IN (${shapes.map((shape) => sqlLiteral(shape.name)).join(', ')})`;
}

/**
 * Every row the selected transactions touched, as it was before the first selected
 * change to it (absent where the row did not exist then), in the staged tables. Later
 * unselected changes are reported with the row, except those made by this plan itself
 * (a rerun after a crash sees its own earlier writes, and they are not conflicts). A
 * session takes its share: rows first touched in its tenants, or in global tables.
 */
export function undoTargets(
  reader: VaultReader,
  shapes: readonly StagedShape[],
  xids: readonly bigint[],
  planId: string,
  share: { readonly tenants: readonly string[]; readonly global: boolean },
  hooks: TargetHooks = {},
): AsyncGenerator<TargetTable> {
  const selected = `xid IN (${xids.join(', ')})`;
  const mine = [
    ...(share.tenants.length === 0 ? [] : [`tenant IN (${share.tenants.map(sqlLiteral).join(', ')})`]),
    ...(share.global ? ['tenant IS NULL'] : []),
  ];
  const changes = `op <> 'image' AND ${selected} AND (${mine.length === 0 ? 'false' : mine.join(' OR ')}) AND ${inShapes(shapes)}`;
  return exportedTargets(
    reader,
    async function* (statements): AsyncGenerator<TargetExport> {
      // Each key counts once per change: the count is the keys' at most, and exact when each changed once.
      const sizes = await tableSizes(statements, reader, changes, 'count(*)');
      const keysSql = (table: string): string =>
        `SELECT "key" FROM ${reader.layersSql} WHERE ${changes} AND "table" = ${sqlLiteral(table)}`;
      for await (const { shape, range } of rangesOf(statements, shapes, sizes, keysSql, hooks)) {
        yield {
          table: shape.name,
          lines: new TargetLines(reader, shape, reader.manifest.throughLsn),
          write: (path) => writeUndoRange(statements, reader, range, { table: shape.name, changes, selected, planId }, path),
        };
      }
    },
    hooks.signal,
  );
}

/**
 * One range of an undo's targets: the positions first (the first selected change of
 * each key, the version before it, the newest later change by someone else), from
 * narrow columns; then the rows before, fetched by exact position.
 */
async function writeUndoRange(
  statements: TargetStatements,
  reader: VaultReader,
  range: KeyRange,
  selection: { readonly table: string; readonly changes: string; readonly selected: string; readonly planId: string },
  path: string,
): Promise<void> {
  const table = sqlLiteral(selection.table);
  const inRange = `"table" = ${table} AND ${inKeyRange(range)}`;
  const ours = `coalesce(json_extract_string(context, '$.actor') = 'recall' AND json_extract_string(context, '$.plan') = ${sqlLiteral(selection.planId)}, false)`;
  // Every version of the touched keys, whatever its tenant: a row may have moved between tenants.
  await statements.run(
    `CREATE OR REPLACE TEMP TABLE ${WANTED} AS
     WITH touched AS (
       SELECT "key", min(${POSITION}) AS first_position, arg_min(tenant, ${POSITION}) AS tenant
         FROM ${reader.layersSql} WHERE ${selection.changes} AND ${inRange} GROUP BY "key"),
     versions AS (
       SELECT "key", ${POSITION} AS position, commit_lsn, seq, op, tenant, xid, commit_time, schema_id, context,
              ${selection.selected} AS selected, ${ours} AS ours
         FROM ${reader.layersSql} WHERE ${inRange}),
     found AS (
       SELECT t."key", t.tenant,
              arg_max({'lsn': v.commit_lsn, 'seq': v.seq, 'tenant': v.tenant}, v.position)
                FILTER (WHERE v.position < t.first_position) AS before,
              arg_max({'op': v.op, 'lsn': v.commit_lsn::VARCHAR, 'seq': v.seq, 'schema_id': v.schema_id, 'xid': v.xid::VARCHAR,
                       'time': epoch_us(v.commit_time)::VARCHAR, 'actor': json_extract_string(v.context, '$.actor')}, v.position)
                FILTER (WHERE v.position > t.first_position AND NOT v.selected AND NOT v.ours AND v.op <> 'image') AS later
         FROM touched t JOIN versions v USING ("key")
        GROUP BY t."key", t.tenant)
     SELECT "key", tenant, before.lsn AS before_lsn, before.seq AS before_seq, before.tenant AS before_tenant,
            ${copyFieldSql('to_json(later)::VARCHAR')} AS later
       FROM found`,
  );
  // The rows before are read only from the row groups of their tenants (layers are sorted by tenant).
  const tenants = (await statements.rows(`SELECT DISTINCT before_tenant AS tenant FROM ${WANTED} WHERE before_lsn IS NOT NULL`)).map(
    (row) => row.tenant as string | null,
  );
  const exists = `v.op NOT IN ('delete', 'truncate') AND v."row" IS NOT NULL`;
  const before = exportedLineSql({
    schemaId: 'v.schema_id',
    tenant: `CASE WHEN ${exists} THEN v.tenant ELSE w.tenant END`,
    later: 'w.later',
    key: 'w."key"',
    row: `CASE WHEN ${exists} THEN v."row" END`,
  });
  const none = exportedLineSql({ schemaId: '0', tenant: 'w.tenant', later: 'w.later', key: 'w."key"', row: 'NULL' });
  await statements.run(
    copyLinesSql(
      `SELECT ${before}
         FROM (SELECT "key", commit_lsn, seq, op, "row", schema_id, tenant FROM ${reader.layersSql} WHERE ${inRange} AND (${ofTenants(tenants)})) AS v
         JOIN ${WANTED} AS w ON v."key" = w."key" AND v.commit_lsn = w.before_lsn AND v.seq = w.before_seq
       UNION ALL
       SELECT ${none} FROM ${WANTED} AS w WHERE w.before_lsn IS NULL`,
      path,
    ),
  );
  await statements.run(`DROP TABLE ${WANTED}`);
}

/** DuckDB SQL: the column "tenant" is one of `tenants` (null for global rows); past a thousand, any. */
function ofTenants(tenants: readonly (string | null)[]): string {
  if (tenants.length > MAX_LISTED_TENANTS) return 'true';
  const named = tenants.filter((tenant): tenant is string => tenant !== null);
  const clauses = [
    ...(named.length === 0 ? [] : [`tenant IN (${named.map(sqlLiteral).join(', ')})`]),
    ...(named.length < tenants.length ? ['tenant IS NULL'] : []),
  ];
  return clauses.length === 0 ? 'false' : clauses.join(' OR ');
}

/** Tenants named in a range's row fetch; with more, it reads every tenant's row groups of the range. */
const MAX_LISTED_TENANTS = 1000;

/** A later change as the undo stages it in "recall.later": where it is in the history, not its row. */
interface StoredLaterChange {
  readonly op: string;
  readonly lsn: string;
  readonly seq: number;
  readonly schema_id: number;
  readonly xid: string;
  readonly time: string;
  readonly actor: string | null;
}

/**
 * An undo's changed-after conflicts from their staged later changes (the JSON text
 * of "recall.later"): what changed each row, and the row it left, fetched from the
 * vault by exact position and read in the table's newest layout (the one an undo
 * writes) from the schema history of the manifest the plan was computed from.
 */
export async function changedAfter(
  reader: VaultReader,
  table: string,
  stored: readonly string[],
): Promise<Map<string, { detail: string; theirs: Row | null }>> {
  const changes = stored.map((text) => ({ text, later: JSON.parse(text) as StoredLaterChange }));
  const kept = changes.filter(({ later }) => later.op !== 'delete' && later.op !== 'truncate');
  const rows = new Map<string, string>();
  if (kept.length > 0) {
    const positions = kept.map(({ later }) => `(${BigInt(later.lsn)}::UBIGINT, ${Number(later.seq)}::UINTEGER)`);
    const lsns = kept.map(({ later }) => BigInt(later.lsn));
    // The LSN bounds let the scan skip the row groups (and layers) that cannot hold them.
    const [first, last] = [lsns.reduce((a, b) => (a < b ? a : b)), lsns.reduce((a, b) => (a > b ? a : b))];
    const found = await new TargetStatements(reader.duck).rows(
      `SELECT v.commit_lsn::VARCHAR AS lsn, v.seq, v."row" FROM ${reader.layersSql} AS v
         SEMI JOIN (VALUES ${positions.join(', ')}) AS p(lsn, seq) ON v.commit_lsn = p.lsn AND v.seq = p.seq
        WHERE v."table" = ${sqlLiteral(table)} AND v.op <> 'image' AND v.commit_lsn BETWEEN ${first} AND ${last}`,
    );
    for (const row of found) if (row.row !== null) rows.set(`${row.lsn}/${row.seq}`, row.row as string);
  }
  const manifest = reader.manifest;
  const layout = layoutAt(manifest, table, manifest.throughLsn);
  return new Map(
    changes.map(({ text, later }) => {
      const actor = later.actor === null ? '' : ` (actor ${later.actor})`;
      const row = rows.get(`${later.lsn}/${later.seq}`);
      return [
        text,
        {
          detail: `changed later by transaction ${later.xid}${actor} at ${formatMicros(BigInt(later.time))}`,
          theirs:
            row === undefined
              ? null
              : layOut(JSON.parse(row) as Record<string, string | null>, manifest.schemas[Number(later.schema_id)], layout),
        },
      ];
    }),
  );
}
