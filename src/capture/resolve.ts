// Completing changes the stream sends incomplete, from the versions before them
// (in the vault, in parts spilled earlier, or earlier in the same batch): the
// removed row and tenant of a DELETE, unchanged TOASTed values, and the rows a
// TRUNCATE removed. Where each missing value comes from is worked out on narrow
// columns (positions and lengths); the values themselves are fetched by exact
// version, a bounded chunk at a time, so no join, sort or aggregate ever holds
// more than a part's worth of row text, however wide the rows.

import type { DuckDBConnection } from '@duckdb/node-api';
import { LAYER_COLUMN_NAMES, queryRows, sqlLiteral, storedTable } from '../vault/index.js';
import type { History } from './history.js';

/**
 * Orders versions of one key: commit LSN, then position in the transaction (a HUGEINT:
 * as a DOUBLE, positions of one commit would compare equal). A bucket image's rows sit
 * at (its LSN, 0), where the commit's first change may sit too; the image's row comes
 * just after that change, before the commit's next one.
 */
const position = (v: string): string => `((${v}.commit_lsn::HUGEINT * 4294967296 + ${v}.seq) * 2 + (${v}.op = 'image')::INT)`;

/** Later than any position (2^97 > (2^64 · 2^32) · 2). */
const AFTER_EVERY_POSITION = '(1::HUGEINT << 97)';

/** Whether version `v` is a bucket image's row: with its key, LSN, seq and tenant, it names one version. */
const image = (v: string): string => `(${v}.op = 'image')`;

/** A staged change is identified by its position and key (the rows of one TRUNCATE share a position). */
const IDENTITY = 'commit_lsn, seq, "key"';

/** One chunk of staged rows: `prepare` fetches the values it lacks, then `select` gives its rows complete. */
export interface CompletionChunk {
  prepare(): Promise<void>;
  readonly select: string;
}

/** What completing a batch of staged changes will take, and the chunks it is written in. */
export interface Completion {
  /** The chunks, each to be prepared and then written as one part, in order. */
  readonly chunks: readonly CompletionChunk[];
  /** Deletes with no earlier version anywhere: a gap in the history. */
  readonly orphans: number;
  /** Drops the working tables once every chunk is written. */
  drop(): Promise<void>;
}

/**
 * Plans the completion of every staged change. A change needs completing when it is
 * a DELETE without its row (the base is the newest earlier version of the key) or
 * carries TOAST markers (its own row is the base). Each marked column of the base
 * takes its value from the newest earlier version that holds it, which is never
 * itself a marked one, so chains of such updates resolve in one pass. The staged
 * rows are cut into chunks whose text, with the values they will receive, stays
 * under `size.chunkBytes`: each chunk is sorted and written whole. `size.stagedBytes`
 * is the staged text as counted while staging, so a batch that fits one chunk costs no
 * pass over the staged rows.
 */
export async function planCompletion(
  duck: DuckDBConnection,
  history: History,
  size: { chunkBytes: number; stagedBytes: number },
): Promise<Completion> {
  const staging = history.staging;
  const work = {
    versions: `${staging}_versions`,
    far: `${staging}_far`,
    lengths: `${staging}_lengths`,
    needs: `${staging}_needs`,
    patches: `${staging}_patches`,
    chunks: `${staging}_chunks`,
    fill: `${staging}_fill`,
    merged: `${staging}_merged`,
  };
  const drop = async (): Promise<void> => {
    for (const table of Object.values(work)) await duck.run(`DROP TABLE IF EXISTS ${table}`);
  };
  const plain = `SELECT ${LAYER_COLUMN_NAMES} FROM ${staging}`;
  // Where a row is only tested for NULL, the stored rows are read: the view would decode each one.
  const stored = storedTable(staging);
  const [counts] = await queryRows(
    duck,
    `SELECT count(*) FILTER (WHERE unchanged IS NOT NULL) AS marked, count(*) FILTER (WHERE op = 'delete' AND "row" IS NULL) AS keyless
       FROM ${stored}`,
  );
  const marked = Number(counts?.marked ?? 0) > 0;
  if (!marked && Number(counts?.keyless ?? 0) === 0)
    return { chunks: [{ prepare: async () => undefined, select: plain }], orphans: 0, drop };

  // Every version of the keys that need completing, narrow: where it is, what it lacks. The files are
  // read only for keys that staging cannot complete alone (a row deleted or updated soon after it was
  // written, the common case, needs no read of the history): a key staged without TOAST markers whose
  // first incomplete delete follows a staged version takes every base from staging, which is newer
  // than any file.
  const narrow = `v."table", v."key", v.commit_lsn, v.seq, v.op, v.tenant, v.schema_id, v.unchanged, ${position('v')} AS position`;
  const incompleteKeys = `(SELECT "table", "key" FROM ${stored} WHERE unchanged IS NOT NULL OR (op = 'delete' AND "row" IS NULL))`;
  await duck.run(`
    CREATE OR REPLACE TABLE ${work.versions} AS
    SELECT ${narrow} FROM ${history.staged} AS v SEMI JOIN ${incompleteKeys} AS x USING ("table", "key")
     WHERE v.op <> 'delete'`);
  const filed = history.filed;
  if (filed !== undefined) {
    await duck.run(`
      CREATE OR REPLACE TABLE ${work.far} AS
      SELECT "table", "key" FROM (SELECT "table", "key", op, "row", unchanged, ${position('s')} AS position
                                    FROM ${stored} AS s SEMI JOIN ${incompleteKeys} AS x USING ("table", "key"))
       GROUP BY ALL
      HAVING bool_or(unchanged IS NOT NULL)
          OR min(position) FILTER (WHERE op = 'delete' AND "row" IS NULL)
             < coalesce(min(position) FILTER (WHERE op <> 'delete'), ${AFTER_EVERY_POSITION})`);
    const [far] = await queryRows(duck, `SELECT count(*) AS n FROM ${work.far}`);
    if (Number(far?.n ?? 0) > 0) {
      await duck.run(`
        INSERT INTO ${work.versions}
        SELECT ${narrow} FROM ${filed} AS v SEMI JOIN ${work.far} USING ("table", "key") WHERE v.op <> 'delete'`);
    }
  }
  // Per change: the version its row comes from (a delete's previous version; a marked change's own row).
  await duck.run(`
    CREATE OR REPLACE TABLE ${work.needs} AS
    SELECT x.commit_lsn, x.seq, x."key", x."table", x.op, x.position, x.unchanged,
           arg_max({'lsn': v.commit_lsn, 'seq': v.seq, 'image': ${image('v')}, 'tenant': v.tenant, 'schema_id': v.schema_id,
                    'unchanged': v.unchanged}, v.position) FILTER (WHERE x.op = 'delete' AND v.position < x.position) AS base
      FROM (SELECT ${IDENTITY}, "table", op, unchanged, ${position('s')} AS position FROM ${stored} AS s
             WHERE unchanged IS NOT NULL OR (op = 'delete' AND "row" IS NULL)) AS x
      LEFT JOIN ${work.versions} AS v ON v."table" = x."table" AND v."key" = x."key"
     GROUP BY ALL`);
  // Per marked column of a base: the newest earlier version that holds its value (none, if nothing staged is marked:
  // a delete's base never carries markers then either, and the query is planned empty).
  await duck.run(`
    CREATE OR REPLACE TABLE ${work.patches} AS
    SELECT c.commit_lsn, c.seq, c."key", c."column",
           arg_max({'lsn': v.commit_lsn, 'seq': v.seq, 'image': ${image('v')}, 'tenant': v.tenant}, v.position) AS source
      FROM (SELECT commit_lsn, seq, "key", "table", position,
                   unnest(from_json(CASE WHEN op = 'delete' THEN base.unchanged ELSE unchanged END, '["VARCHAR"]')) AS "column"
              FROM ${work.needs} WHERE ${marked}) AS c
      JOIN ${work.versions} AS v ON v."table" = c."table" AND v."key" = c."key" AND v.position < c.position
       AND v.op <> 'truncate' AND NOT list_contains(coalesce(from_json(v.unchanged, '["VARCHAR"]'), []::VARCHAR[]), c."column")
     GROUP BY ALL`);

  // The length of each row a change will receive: read from the files holding those versions only.
  const sources = `SELECT n."table", n."key", n.base.lsn AS commit_lsn, n.base.seq AS seq, n.base.image AS image FROM ${work.needs} AS n WHERE n.op = 'delete' AND n.base IS NOT NULL
                   UNION SELECT n."table", p."key", p.source.lsn, p.source.seq, p.source.image FROM ${work.patches} AS p JOIN ${work.needs} AS n USING (${IDENTITY})`;
  await duck.run(`
    CREATE OR REPLACE TABLE ${work.lengths} AS
    SELECT "table", "key", commit_lsn, seq, image, length("row") AS len
      FROM (SELECT *, ${image('v')} AS image FROM ${history.holding(await lsnsOf(duck, `SELECT commit_lsn AS lsn FROM (${sources})`))} AS v)
      SEMI JOIN (${sources}) USING ("table", "key", commit_lsn, seq, image)`);
  // What each change receives: its delete's base row, its patched values (the whole source rows, an overestimate).
  const receives = `
    SELECT n.commit_lsn, n.seq, n."key", l.len FROM ${work.needs} AS n
      JOIN ${work.lengths} AS l ON l."table" = n."table" AND l."key" = n."key" AND l.commit_lsn = n.base.lsn AND l.seq = n.base.seq AND l.image = n.base.image
    UNION ALL
    SELECT p.commit_lsn, p.seq, p."key", l.len FROM ${work.patches} AS p JOIN ${work.needs} AS n USING (${IDENTITY})
      JOIN ${work.lengths} AS l ON l."table" = n."table" AND l."key" = p."key" AND l.commit_lsn = p.source.lsn AND l.seq = p.source.seq
       AND l.image = p.source.image`;
  // Received: added to the staged text the caller counted as it staged.
  const [totals] = await queryRows(
    duck,
    `SELECT (SELECT count(*) FROM ${work.needs} WHERE op = 'delete' AND base IS NULL) AS orphans,
            (SELECT coalesce(sum(len), 0) FROM (${receives})) AS received`,
  );
  const orphans = Number(totals?.orphans ?? 0);
  const chunkSize = Math.max(1, Math.floor(size.chunkBytes));
  if (size.stagedBytes + Number(totals?.received ?? 0) <= chunkSize) {
    return { chunks: [completedChunk(duck, history, work, marked, undefined)], orphans, drop };
  }
  // Chunks in the layers' order of the versions they read (tenant, table, key), so each chunk's reads
  // of the history skip most row groups.
  await duck.run(
    `CREATE OR REPLACE TABLE ${work.chunks} AS
         SELECT ${IDENTITY}, (sum(bytes) OVER (ORDER BY tenant NULLS FIRST, "table", "key", commit_lsn, seq ROWS UNBOUNDED PRECEDING) - 1) // ${chunkSize} AS chunk
           FROM (SELECT s.commit_lsn, s.seq, s."key", s."table", coalesce(n.base.tenant, s.tenant) AS tenant,
                        length(s."key") + coalesce(length(s."row"), 0) + coalesce(length(s.context), 0) + coalesce(r.len, 0) AS bytes
                   FROM ${staging} AS s
                   LEFT JOIN ${work.needs} AS n USING (${IDENTITY})
                   LEFT JOIN (SELECT ${IDENTITY}, sum(len) AS len FROM (${receives}) GROUP BY ALL) AS r USING (${IDENTITY}))`,
  );
  const [last] = await queryRows(duck, `SELECT max(chunk) AS n FROM ${work.chunks}`);
  const chunkCount = Number(last?.n ?? 0) + 1;
  const chunks: CompletionChunk[] = [];
  for (let chunk = 0; chunk < chunkCount; chunk++) chunks.push(completedChunk(duck, history, work, marked, chunk));
  return { chunks, orphans, drop };
}

/**
 * One chunk's rows complete. A delete's base row is fetched by exact version into a
 * small table; a base with TOASTed values missing gets them in Node, taken from the
 * source versions' rows (JSON.parse and JSON.stringify): DuckDB's JSON functions hold
 * some sixteen times the text of a vector (2,048 rows of 3 KB took more than a 128 MiB
 * budget's share), so wide rows never pass through them. Only the chunk's rows are held.
 */
function completedChunk(
  duck: DuckDBConnection,
  history: History,
  work: { needs: string; patches: string; chunks: string; fill: string; merged: string },
  /** Whether some staged change carries TOAST markers (else no value is patched). */
  marked: boolean,
  /** The chunk's number; undefined: the batch is one chunk, every staged change. */
  chunk: number | undefined,
): CompletionChunk {
  const staging = history.staging;
  const chunkJoin = chunkFilter(work, chunk);
  const prepare = async (): Promise<void> => {
    const sources = await sourceBounds(duck, work, chunkJoin);
    const source = `(SELECT * FROM ${history.holding(sources.lsns)} AS v WHERE ${sources.near})`;
    await duck.run(`
      CREATE OR REPLACE TABLE ${work.fill} AS
      SELECT n.commit_lsn, n.seq, n."key", v."row" AS base, n.base.tenant AS tenant, n.base.schema_id AS schema_id
        FROM (SELECT * FROM ${work.needs} ${chunkJoin} WHERE op = 'delete' AND base IS NOT NULL) AS n
        JOIN ${source} AS v
          ON v."table" = n."table" AND v."key" = n."key" AND v.commit_lsn = n.base.lsn AND v.seq = n.base.seq AND ${image('v')} = n.base.image
         AND v.tenant IS NOT DISTINCT FROM n.base.tenant`);
    await duck.run(`CREATE OR REPLACE TABLE ${work.merged} (commit_lsn UBIGINT, seq UINTEGER, "key" VARCHAR, "row" VARCHAR)`);
    if (!marked) return;
    const values = await queryRows(
      duck,
      `SELECT p.commit_lsn, p.seq, p."key", p."column", v."row" AS source
         FROM (SELECT p.*, n."table" FROM ${work.patches} AS p JOIN ${work.needs} AS n USING (${IDENTITY})
                ${chunkJoin}) AS p
         JOIN ${source} AS v
           ON v."table" = p."table" AND v."key" = p."key" AND v.commit_lsn = p.source.lsn AND v.seq = p.source.seq
          AND ${image('v')} = p.source.image AND v.tenant IS NOT DISTINCT FROM p.source.tenant`,
    );
    if (values.length === 0) return;
    const bases = await queryRows(
      duck,
      `SELECT s.commit_lsn, s.seq, s."key", coalesce(f.base, s."row") AS base
         FROM (SELECT * FROM ${staging} SEMI JOIN (SELECT DISTINCT ${IDENTITY} FROM ${work.patches}) USING (${IDENTITY})
                ${chunkJoin}) AS s
         LEFT JOIN ${work.fill} AS f USING (${IDENTITY})`,
    );
    const identity = (row: Record<string, unknown>): string => `${String(row.commit_lsn)}/${String(row.seq)}/${String(row.key)}`;
    const patched = new Map<string, Record<string, string | null>>();
    for (const base of bases) {
      if (typeof base.base === 'string') patched.set(identity(base), JSON.parse(base.base) as Record<string, string | null>);
    }
    for (const value of values) {
      const row = patched.get(identity(value));
      const column = value.column as string;
      const held = typeof value.source === 'string' ? (JSON.parse(value.source) as Record<string, string | null>)[column] : undefined;
      if (row !== undefined && typeof held === 'string') row[column] = held;
    }
    const appender = await duck.createAppender(work.merged);
    try {
      for (const base of bases) {
        const row = patched.get(identity(base));
        if (row === undefined) continue;
        appender.appendUBigInt(base.commit_lsn as bigint);
        appender.appendUInteger(Number(base.seq));
        appender.appendVarchar(base.key as string);
        appender.appendVarchar(JSON.stringify(row));
        appender.endRow();
      }
    } finally {
      appender.closeSync();
    }
  };
  const select = `
    SELECT s.commit_lsn, s.seq, s.commit_time, s.xid, s."table", s.op, coalesce(s.tenant, f.tenant) AS tenant, s."key",
           coalesce(f.schema_id, s.schema_id) AS schema_id, coalesce(m."row", f.base, s."row") AS "row", s.context
      FROM (SELECT * FROM ${staging} ${chunkJoin}) AS s
      LEFT JOIN ${work.fill} AS f USING (${IDENTITY})
      LEFT JOIN ${work.merged} AS m USING (${IDENTITY})`;
  return { prepare, select };
}

/** The versions a chunk's rows take values from (tenant, key, lsn): its deletes' bases and its patches' sources. */
function sourceVersions(work: { needs: string; patches: string }, chunkJoin: string): string {
  return `SELECT n.base.tenant AS tenant, n."key", n.base.lsn AS lsn FROM ${work.needs} AS n ${chunkJoin}
           WHERE n.base IS NOT NULL
          UNION ALL
          SELECT p.source.tenant, p."key", p.source.lsn FROM ${work.patches} AS p ${chunkJoin}`;
}

/** What keeps a chunk's own changes in a FROM: a semi-join on its identities, or nothing if the batch is one chunk. */
function chunkFilter(work: { chunks: string }, chunk: number | undefined): string {
  return chunk === undefined ? '' : `SEMI JOIN (SELECT ${IDENTITY} FROM ${work.chunks} WHERE chunk = ${chunk}) USING (${IDENTITY})`;
}

/** The distinct commit LSNs (column `lsn`) of a query's rows. */
async function lsnsOf(duck: DuckDBConnection, query: string): Promise<bigint[]> {
  const rows = await queryRows(duck, `SELECT DISTINCT lsn FROM (${query}) WHERE lsn IS NOT NULL`);
  return rows.map((row) => row.lsn as bigint);
}

/**
 * The versions a chunk fetches: their distinct commit LSNs (which pick the files to
 * read), and a condition they all meet, for DuckDB to skip the rest of those files by
 * row-group statistics: their commit LSN range, their tenant range, and within one
 * tenant their key range. It only narrows; the join still matches each version exactly.
 */
async function sourceBounds(
  duck: DuckDBConnection,
  work: { needs: string; patches: string },
  chunkJoin: string,
): Promise<{ lsns: bigint[]; near: string }> {
  const [bounds] = await queryRows(
    duck,
    `SELECT min(lsn) AS lo_lsn, max(lsn) AS hi_lsn, min(tenant) AS lo_tenant, max(tenant) AS hi_tenant,
            count(*) FILTER (WHERE tenant IS NULL) AS global, count(*) AS n, min("key") AS lo_key, max("key") AS hi_key,
            list(DISTINCT lsn) FILTER (WHERE lsn IS NOT NULL) AS lsns
       FROM (${sourceVersions(work, chunkJoin)})`,
  );
  if (bounds === undefined || Number(bounds.n) === 0) return { lsns: [], near: 'false' };
  const lsns = ((bounds.lsns as { items?: unknown[] } | null)?.items ?? []) as bigint[];
  const conditions = [`v.commit_lsn BETWEEN ${String(bounds.lo_lsn)} AND ${String(bounds.hi_lsn)}`];
  const keys = `v."key" BETWEEN ${sqlLiteral(String(bounds.lo_key))} AND ${sqlLiteral(String(bounds.hi_key))}`;
  const global = Number(bounds.global);
  if (global === Number(bounds.n)) conditions.push('v.tenant IS NULL', keys);
  else if (global === 0) {
    conditions.push(`v.tenant BETWEEN ${sqlLiteral(String(bounds.lo_tenant))} AND ${sqlLiteral(String(bounds.hi_tenant))}`);
    if (bounds.lo_tenant === bounds.hi_tenant) conditions.push(keys);
  }
  return { lsns, near: conditions.join(' AND ') };
}

/**
 * The rows alive in `table` just before a TRUNCATE (the newest version of each key),
 * staged a chunk of about `chunkBytes` of row text at a time: each call of the
 * returned `stageNext` stages the next chunk as 'truncate' changes, read from
 * `current` (the history as it is by then), and says whether more are left. Chunks
 * are runs of whole tenants (a tenant too large for one is split by key range), so
 * each chunk's reads skip the other tenants' row groups (layers are sorted by
 * tenant) and no statement holds more than a chunk's keys. A row left with TOAST
 * markers keeps them, so the flush completes it.
 */
export async function truncateChunks(
  duck: DuckDBConnection,
  history: History,
  change: { table: string; commitLsn: bigint; seq: number; commitTime: bigint; xid: bigint; context: string | null },
  chunkBytes: number,
): Promise<{ stageNext(current: History): Promise<boolean> }> {
  const before = (v: string): string =>
    `${v}."table" = ${sqlLiteral(change.table)} AND (${v}.commit_lsn < ${change.commitLsn} OR (${v}.commit_lsn = ${change.commitLsn} AND ${v}.seq < ${change.seq}))`;
  // Sizes by every version, not only the newest: an overestimate, which only makes chunks smaller.
  const tenants = await queryRows(
    duck,
    `SELECT v.tenant, sum(coalesce(length(v."row"), 0)) AS bytes FROM ${history.sql} AS v WHERE ${before('v')} GROUP BY v.tenant ORDER BY v.tenant NULLS FIRST`,
  );
  const chunks: TenantChunk[] = [];
  for (const chunk of tenantChunks(
    tenants.map((row) => ({ tenant: row.tenant as string | null, bytes: Number(row.bytes) })),
    chunkBytes,
  )) {
    if (chunk.splits <= 1) {
      chunks.push(chunk);
      continue;
    }
    // Key ranges of about equal counts: keys are sorted within a tenant's part of each layer.
    const fractions = Array.from({ length: chunk.splits - 1 }, (_, i) => (i + 1) / chunk.splits);
    const [row] = await queryRows(
      duck,
      `SELECT quantile_disc(v."key", [${fractions.join(', ')}]) AS bounds FROM ${history.sql} AS v WHERE ${before('v')} AND ${inScope(chunk, 'v')}`,
    );
    const bounds = [...new Set(((row?.bounds as { items?: unknown[] } | null)?.items ?? []).map(String))];
    for (let i = 0; i <= bounds.length; i++) chunks.push({ ...chunk, keys: [bounds[i - 1] ?? null, bounds[i] ?? null] });
  }
  let next = 0;
  return {
    async stageNext(current: History) {
      const chunk = chunks[next++];
      if (chunk === undefined) return false;
      const scope = (v: string): string => `${before(v)} AND ${inScope(chunk, v)}`;
      await duck.run(
        `INSERT INTO ${storedTable(current.staging)} (${LAYER_COLUMN_NAMES}, unchanged)
         SELECT $1, $2, make_timestamp($3::BIGINT), $4, h."table", 'truncate', h.tenant, h."key", h.schema_id, encode(h."row"), $5, h.unchanged
           FROM ${current.sql} AS h
           JOIN (SELECT v."key", max(${position('v')}) AS position FROM ${current.sql} AS v WHERE ${scope('v')} GROUP BY v."key") AS newest
             ON h."key" = newest."key" AND ${position('h')} = newest.position
          WHERE ${scope('h')} AND h.op NOT IN ('delete', 'truncate')`,
        [change.commitLsn, change.seq, change.commitTime, change.xid, change.context] as never,
      );
      return next < chunks.length;
    },
  };
}

/** The SQL condition on version `v` for the tenants and keys of a chunk. */
function inScope(chunk: TenantChunk, v: string): string {
  const tenants =
    chunk.tenants === null
      ? `${v}.tenant IS NULL`
      : `${v}.tenant BETWEEN ${sqlLiteral(chunk.tenants[0])} AND ${sqlLiteral(chunk.tenants[1])}`;
  const [after, through] = chunk.keys ?? [null, null];
  return [
    tenants,
    ...(after === null ? [] : [`${v}."key" > ${sqlLiteral(after)}`]),
    ...(through === null ? [] : [`${v}."key" <= ${sqlLiteral(through)}`]),
  ].join(' AND ');
}

/**
 * A run of tenants (first and last; null: the rows of a global table); a tenant
 * larger than a chunk is to be split `splits` ways, each a range of keys (after, through].
 */
interface TenantChunk {
  readonly tenants: readonly [string, string] | null;
  readonly splits: number;
  readonly keys?: readonly [string | null, string | null];
}

/** Groups consecutive tenants into chunks of about `chunkBytes`; a tenant larger than that is marked to be split. */
function tenantChunks(tenants: readonly { tenant: string | null; bytes: number }[], chunkBytes: number): TenantChunk[] {
  const chunks: TenantChunk[] = [];
  let run: { first: string; last: string; bytes: number } | undefined;
  const close = (): void => {
    if (run !== undefined) chunks.push({ tenants: [run.first, run.last], splits: 1 });
    run = undefined;
  };
  for (const { tenant, bytes } of tenants) {
    if (tenant === null || bytes > chunkBytes) {
      close();
      chunks.push({ tenants: tenant === null ? null : [tenant, tenant], splits: Math.max(1, Math.ceil(bytes / chunkBytes)) });
      continue;
    }
    if (run !== undefined && run.bytes + bytes > chunkBytes) close();
    run = run === undefined ? { first: tenant, last: tenant, bytes } : { ...run, last: tenant, bytes: run.bytes + bytes };
  }
  close();
  return chunks;
}
