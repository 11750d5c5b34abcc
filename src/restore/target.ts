// The target state a plan aims at, read from the vault: for a restore, a tenant's
// rows at a point; for an undo, every row the selected transactions touched as it
// was just before the first of them, with the later changes that make it a conflict.
// Each table's keys in scope are cut into ranges that fit DuckDB's memory; for each
// range, the position of each key's wanted version comes from narrow columns, then
// the rows are fetched by exact position and rendered as COPY text into a file
// (target-export.ts), so a selection of any size and width stays in bounded memory.

import { RECALL_ACTOR } from '../capture/context.js';
import { UsageError } from '../errors.js';
import { formatLsn, formatMicros, layOut, layoutAt, type Lsn, type VaultReader } from '../timeline/index.js';
import {
  fileList,
  gapsBetween,
  historyFloorSql,
  lineageStart,
  processMemoryBudget,
  queryRows,
  sqlLiteral,
  VECTOR_ROWS,
} from '../vault/index.js';
import { copyFieldSql, keyFieldsSql, rowFieldsSql, type StagedShape } from './copy-text.js';
import { exportedLineSql, TargetLines } from './target-lines.js';
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
  // A transaction at or before the history's start is part of its image: the versions before it are gone.
  const since = selector.sinceLsn ?? reader.manifest.startLsn;
  // Ids repeat across a rebuilt source's lineages (gaps.ts): only the current one's are meant.
  const bounds = `op <> 'image' AND commit_lsn <= ${selector.untilLsn} AND commit_lsn > ${since} AND commit_lsn >= ${lineageStart(reader.manifest)}`;
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
        `transaction${missing.length === 1 ? '' : 's'} ${missing.join(', ')} changed no captured row${reader.manifest.retention === undefined ? '' : ' after the retention horizon'}`,
        'check the ids with `recall log --tenant T` (the xid field); only transactions that changed captured rows can be undone',
      );
    }
    assertNoGapAfter(reader, rows);
    return found;
  }
  const rows = await queryRows(
    reader.duck,
    `SELECT xid, min(commit_lsn) AS lsn FROM ${reader.layersSql}
      WHERE ${bounds} AND json_extract_string(context, '$.actor') = $1 GROUP BY xid ORDER BY lsn`,
    [selector.actor ?? ''],
  );
  // Any role can claim the actor `recall`; only the transactions Recall recorded as its own are.
  const own = selector.actor === RECALL_ACTOR ? await reader.vault.ownTransactions() : undefined;
  const chosen = rows.filter((row) => own === undefined || own.has(row.xid as bigint));
  const selected = chosen.map((row) => row.xid as bigint);
  if (selected.length === 0) {
    throw new UsageError(
      `no transaction of actor "${selector.actor}" in the history${selector.sinceLsn === undefined ? '' : ' in that time range'}${own === undefined || rows.length === 0 ? '' : ` (${rows.length} claim the actor, but Recall did not write them)`}`,
      'check the actor with `recall log --tenant T --json` (context.actor) and widen --since/--until',
    );
  }
  assertNoGapAfter(reader, chosen);
  return selected;
}

/**
 * Refuses to undo a transaction that a gap in the history follows: what happened to its
 * rows inside the gap is unknown (a row deleted there left no record), so the undo could
 * not tell what it would overwrite. A restore to a point compares with the live rows instead.
 */
function assertNoGapAfter(reader: VaultReader, transactions: readonly Record<string, unknown>[]): void {
  for (const transaction of transactions) {
    const lsn = transaction.lsn as bigint;
    const [gap] = gapsBetween(reader.manifest, lsn, reader.manifest.throughLsn + 1n);
    if (gap === undefined) continue;
    throw new UsageError(
      `transaction ${String(transaction.xid)} committed at lsn:${formatLsn(lsn)}, before a gap in the history (${gap.detail}): what became of its rows inside the gap is unknown, so it cannot be undone`,
      'restore its tenants to a point instead (`recall restore --tenant T --to P`), which compares with the live rows, or undo only transactions after the gap',
    );
  }
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

/** Keys of one or more tables whose wanted versions one statement finds: every table at once while they fit one range. */
interface Batch {
  readonly shapes: readonly StagedShape[];
  readonly range: KeyRange;
}

/** DuckDB SQL: a row is of the batch's tables and keys. */
function inBatch(batch: Batch): string {
  return `${inShapes(batch.shapes)} AND ${inKeyRange(batch.range)}`;
}

/**
 * The batches of a scope's keys, in staging order: one for every table while their
 * keys fit one range (a statement costs more than its rows for small tenants), else
 * each table's ranges. `keysSql` gives the scope's keys of a table; the estimate of
 * rows to stage is told first.
 */
async function* batchesOf(
  statements: TargetStatements,
  shapes: readonly StagedShape[],
  sizes: ReadonlyMap<string, TableSize>,
  rowBytes: number,
  keysSql: (table: string) => string,
  hooks: TargetHooks,
): AsyncGenerator<Batch> {
  const present = shapes.flatMap((shape) => {
    const size = sizes.get(shape.name);
    return size === undefined ? [] : [{ shape, size }];
  });
  const keys = present.reduce((sum, { size }) => sum + size.keys, 0);
  hooks.onEstimate?.(keys);
  if (present.length === 0) return;
  const keyBytes = present.reduce((sum, { size }) => sum + size.keyBytes * size.keys, 0) / Math.max(1, keys);
  if (keys <= keysPerRange(keyBytes, rowBytes)) {
    yield { shapes: present.map(({ shape }) => shape), range: {} };
    return;
  }
  for (const { shape, size } of present) {
    // The sample's rows are changes or versions: a range holds keys in proportion to them.
    const perRange = Math.max(1, Math.floor((keysPerRange(size.keyBytes, rowBytes) * size.rows) / Math.max(1, size.keys)));
    for (const range of await keyRanges(statements, keysSql(shape.name), size.rows, perRange)) yield { shapes: [shape], range };
  }
}

/**
 * A batch's exports, a table each: the first finds the batch's wanted versions into
 * WANTED, each fetches its table's rows, the last drops WANTED.
 */
function batchExports(
  batch: Batch,
  statements: TargetStatements,
  parts: {
    readonly lines: (shape: StagedShape) => TargetLines | undefined;
    readonly find: () => Promise<void>;
    readonly fetch: (shape: StagedShape, path: string) => Promise<void>;
  },
): TargetExport[] {
  return batch.shapes.map((shape, i) => ({
    table: shape.name,
    lines: parts.lines(shape),
    write: async (path) => {
      if (i === 0) await parts.find();
      await parts.fetch(shape, path);
      if (i === batch.shapes.length - 1) await statements.run(`DROP TABLE ${WANTED}`);
    },
  }));
}

/**
 * The text of the widest rows: the largest average row of any row group's row column,
 * from the layers' footers (no row is read).
 */
async function widestRows(statements: TargetStatements, reader: VaultReader): Promise<number> {
  if (reader.files.length === 0) return 0;
  const [row] = await statements.rows(
    `SELECT max(total_uncompressed_size / num_values) AS bytes FROM parquet_metadata(${fileList(reader.files)}) WHERE path_in_schema = 'row'`,
  );
  return Number(row?.bytes ?? 0);
}

/**
 * A batch whose rows' text takes at most this fraction of DuckDB's memory is read in
 * one statement a table, a window over its versions: a sort holds 1.5-4 times its
 * rows, and a statement costs more than a narrow pass over a small tenant saves.
 */
const INLINE_SHARE = 8;

/** The SQL of one exported line's parts: a present row from its JSON and schema version, an absent one from its key. */
interface LineParts {
  readonly present: string;
  readonly row: string;
  readonly schemaId: string;
  readonly key: string;
  readonly tenant: string;
  /** An undo's later change, a COPY field already. */
  readonly later: string;
}

/** Who renders a plan's COPY lines: the SQL of an exported line, and what turns it into COPY text (none: it is). */
interface Rendering {
  line(shape: StagedShape, parts: LineParts): string;
  lines(shape: StagedShape): TargetLines | undefined;
}

/**
 * DuckDB renders the lines while its JSON functions' memory, about ten times the text
 * of a vector's 2,048 rows, fits a quarter of its share: it is faster, and works on its
 * own threads. Wider rows are exported as stored and rendered in Node from their bytes.
 */
function renderingFor(reader: VaultReader, rowBytes: number, layoutLsn: Lsn): Rendering {
  if (JSON_FACTOR * VECTOR_ROWS * rowBytes <= processMemoryBudget().planDuckdbBytes / 4) {
    return {
      line: (shape, parts) =>
        `CASE WHEN ${parts.present} THEN ${rowFieldsSql(reader, [shape], layoutLsn, parts.row, parts.schemaId)} || chr(9) || 't'
              ELSE ${keyFieldsSql([shape], sqlLiteral(shape.name), parts.key)} || chr(9) || 'f' END
           || chr(9) || ${copyFieldSql(parts.tenant)} || chr(9) || ${parts.later}`,
      lines: () => undefined,
    };
  }
  return {
    line: (_shape, parts) => exportedLineSql({ ...parts, row: `CASE WHEN ${parts.present} THEN ${parts.row} END` }),
    lines: (shape) => new TargetLines(reader, shape, layoutLsn),
  };
}

/** Memory DuckDB's JSON functions take, per byte of the rows of a vector (measured: 32 MB for 2,048 rows of 1.7 KB). */
const JSON_FACTOR = 10;

/** Position of a change in the history: commit LSN, then place in its transaction. */
const POSITION = '(commit_lsn::HUGEINT * 4294967296 + seq)';

/** The commit LSN and place of a position, as the layers' columns hold them. */
const lsnOf = (position: string): string => `(${position} // 4294967296)::UBIGINT`;
const seqOf = (position: string): string => `(${position} % 4294967296)::UINTEGER`;

/** Temporary table of a batch's wanted versions (connections do not share temporary tables). */
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
  // Past a gap, only the fresh image that closed it and what followed count.
  const layers = reader.layersSqlAt(lsn);
  return exportedTargets(
    reader,
    async function* (statements): AsyncGenerator<TargetExport> {
      // A key's versions at or below the point are at most its count of versions; HyperLogLog says about how many keys.
      const sizes = await tableSizes(statements, reader, scope, 'approx_count_distinct("key")');
      const keysSql = (table: string): string => `SELECT "key" FROM ${layers} WHERE ${scope} AND "table" = ${sqlLiteral(table)}`;
      const rowBytes = await widestRows(statements, reader);
      const rendering = renderingFor(reader, rowBytes, lsn);
      const line = (shape: StagedShape): string =>
        rendering.line(shape, {
          present: 'true',
          row: 'v."row"',
          schemaId: 'v.schema_id',
          key: 'v."key"',
          tenant: 'v.tenant',
          later: "'\\N'",
        });
      for await (const batch of batchesOf(statements, shapes, sizes, rowBytes, keysSql, hooks)) {
        const versions = (shape: StagedShape): string => `${scope} AND "table" = ${sqlLiteral(shape.name)} AND ${inKeyRange(batch.range)}`;
        const rows = batch.shapes.reduce((sum, shape) => sum + (sizes.get(shape.name)?.rows ?? 0), 0);
        if (rows * rowBytes <= processMemoryBudget().planDuckdbBytes / INLINE_SHARE) {
          yield* batch.shapes.map((shape) => ({
            table: shape.name,
            lines: rendering.lines(shape),
            write: (path: string) =>
              statements.run(
                copyLinesSql(
                  `SELECT ${line(shape)}
                     FROM (SELECT "key", op, "row", schema_id, tenant FROM ${layers} WHERE ${versions(shape)}
                           QUALIFY row_number() OVER (PARTITION BY "key" ORDER BY commit_lsn DESC, seq DESC) = 1) AS v
                    WHERE v.op NOT IN ('delete', 'truncate')`,
                  path,
                ),
              ),
          }));
          continue;
        }
        yield* batchExports(batch, statements, {
          lines: (shape) => rendering.lines(shape),
          find: () =>
            statements.run(
              `CREATE OR REPLACE TEMP TABLE ${WANTED} AS
               SELECT "table", "key", ${lsnOf('newest')} AS lsn, ${seqOf('newest')} AS seq
                 FROM (SELECT "table", "key", max(${POSITION}) AS newest,
                              max(${POSITION}) FILTER (WHERE op NOT IN ('delete', 'truncate')) AS kept
                         FROM ${layers} WHERE ${scope} AND ${inBatch(batch)} GROUP BY "table", "key")
                WHERE newest = kept`,
            ),
          fetch: (shape, path) =>
            statements.run(
              copyLinesSql(
                `SELECT ${line(shape)}
                   FROM (SELECT "key", commit_lsn, seq, "row", schema_id, tenant FROM ${layers} WHERE ${versions(shape)}) AS v
                   JOIN (SELECT * FROM ${WANTED} WHERE "table" = ${sqlLiteral(shape.name)}) AS w
                     ON v."key" = w."key" AND v.commit_lsn = w.lsn AND v.seq = w.seq`,
                path,
              ),
            ),
        });
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
  const selected = `(xid IN (${xids.join(', ')}) AND commit_lsn >= ${lineageStart(reader.manifest)})`;
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
      const rowBytes = await widestRows(statements, reader);
      const rendering = renderingFor(reader, rowBytes, reader.manifest.throughLsn);
      for await (const batch of batchesOf(statements, shapes, sizes, rowBytes, keysSql, hooks)) {
        // The tenants of each table's rows before, found with the positions.
        let tenants = new Map<string, (string | null)[]>();
        yield* batchExports(batch, statements, {
          lines: (shape) => rendering.lines(shape),
          find: async () => {
            await statements.run(undoPositionsSql(reader, batch, { changes, selected, planId }));
            tenants = new Map();
            for (const row of await statements.rows(`SELECT DISTINCT "table", before_tenant FROM ${WANTED} WHERE before_lsn IS NOT NULL`)) {
              tenants.set(row.table as string, [...(tenants.get(row.table as string) ?? []), row.before_tenant as string | null]);
            }
          },
          fetch: (shape, path) =>
            statements.run(copyLinesSql(undoRowsSql(reader, rendering, batch, shape, tenants.get(shape.name) ?? []), path)),
        });
      }
    },
    hooks.signal,
  );
}

/**
 * An undo's positions for a batch, into WANTED, from narrow columns: per key, its
 * first selected change (and that change's tenant), the version before it, and the
 * newest later change by an unselected transaction other than this plan's own.
 */
function undoPositionsSql(
  reader: VaultReader,
  batch: Batch,
  selection: { readonly changes: string; readonly selected: string; readonly planId: string },
): string {
  const plan = sqlLiteral(selection.planId);
  // Only a context that names the plan is parsed.
  const ours = `CASE WHEN contains(context, ${plan}) THEN coalesce(json_extract_string(context, '$.actor') = 'recall' AND json_extract_string(context, '$.plan') = ${plan}, false) ELSE false END`;
  const later = `v.position > t.first_position AND v.op <> 'image' AND NOT v.selected AND NOT v.ours`;
  // The version before a change is never one a gap's fresh image shadows (a row deleted inside the gap left no record).
  const before = `v.position < t.first_position AND ${lsnOf('v.position')} >= ${historyFloorSql(reader.manifest, lsnOf('t.first_position'))}`;
  // Every version of the touched keys, whatever its tenant: a row may have moved between tenants.
  return `CREATE OR REPLACE TEMP TABLE ${WANTED} AS
     WITH touched AS (
       SELECT "table", "key", min(${POSITION}) AS first_position, arg_min(tenant, ${POSITION}) AS tenant
         FROM ${reader.layersSql} WHERE ${selection.changes} AND ${inBatch(batch)} GROUP BY "table", "key"),
     versions AS (
       SELECT "table", "key", ${POSITION} AS position, op, tenant, xid, commit_time, schema_id, context,
              ${selection.selected} AS selected, ${ours} AS ours
         FROM ${reader.layersSql} WHERE ${inBatch(batch)}),
     found AS (
       SELECT t."table", t."key", t.tenant,
              max(v.position) FILTER (WHERE ${before}) AS before,
              arg_max(v.tenant, v.position) FILTER (WHERE ${before}) AS before_tenant,
              arg_max({'op': v.op, 'position': v.position, 'schema_id': v.schema_id, 'xid': v.xid, 'time': v.commit_time, 'context': v.context},
                      v.position) FILTER (WHERE ${later}) AS later
         FROM touched t JOIN versions v USING ("table", "key")
        GROUP BY t."table", t."key", t.tenant)
     SELECT "table", "key", tenant, ${lsnOf('before')} AS before_lsn, ${seqOf('before')} AS before_seq, before_tenant,
            ${copyFieldSql(`CASE WHEN later IS NOT NULL THEN to_json({'op': later.op, 'lsn': ${lsnOf('later.position')}::VARCHAR, 'seq': ${seqOf('later.position')},
              'schema_id': later.schema_id, 'xid': later.xid::VARCHAR, 'time': epoch_us(later.time)::VARCHAR,
              'actor': json_extract_string(later.context, '$.actor')})::VARCHAR END`)} AS later
       FROM found`;
}

/** An undo's rows of one table of a batch: each key's row before, fetched by exact position, or its key alone. */
function undoRowsSql(
  reader: VaultReader,
  rendering: Rendering,
  batch: Batch,
  shape: StagedShape,
  tenants: readonly (string | null)[],
): string {
  const table = sqlLiteral(shape.name);
  const exists = `v.op NOT IN ('delete', 'truncate') AND v."row" IS NOT NULL`;
  const before = rendering.line(shape, {
    present: exists,
    row: 'v."row"',
    schemaId: 'v.schema_id',
    key: 'w."key"',
    tenant: `CASE WHEN ${exists} THEN v.tenant ELSE w.tenant END`,
    later: 'w.later',
  });
  const none = rendering.line(shape, {
    present: 'false',
    row: 'NULL::VARCHAR',
    schemaId: '0',
    key: 'w."key"',
    tenant: 'w.tenant',
    later: 'w.later',
  });
  // The rows before are read only from the row groups of their tenants (layers are sorted by tenant).
  return `SELECT ${before}
       FROM (SELECT "key", commit_lsn, seq, op, "row", schema_id, tenant FROM ${reader.layersSql}
              WHERE "table" = ${table} AND ${inKeyRange(batch.range)} AND (${ofTenants(tenants)})) AS v
       JOIN (SELECT * FROM ${WANTED} WHERE "table" = ${table}) AS w ON v."key" = w."key" AND v.commit_lsn = w.before_lsn AND v.seq = w.before_seq
     UNION ALL
     SELECT ${none} FROM ${WANTED} AS w WHERE w."table" = ${table} AND w.before_lsn IS NULL`;
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
