// Completing changes the stream sends incomplete, from the versions before them
// (in the vault, in parts spilled earlier, or earlier in the same batch): the
// removed row and tenant of a DELETE, unchanged TOASTed values, and the rows a
// TRUNCATE removed. Where each missing value comes from is worked out on narrow
// columns (positions and lengths); the values themselves are fetched by exact
// version, a bounded chunk at a time, so no join, sort or aggregate ever holds
// more than a part's worth of row text, however wide the rows.

import type { DuckDBConnection } from '@duckdb/node-api';
import { LAYER_COLUMN_NAMES, fileList, queryRows, sqlLiteral } from '../vault/index.js';

/** A SQL source of every version known: the given layer files plus the staging table (with its TOAST markers). */
export function historySql(layerFiles: readonly string[], staging: string): string {
  const staged = `SELECT ${LAYER_COLUMN_NAMES}, unchanged FROM ${staging}`;
  if (layerFiles.length === 0) return `(${staged})`;
  return `(SELECT ${LAYER_COLUMN_NAMES}, NULL::VARCHAR AS unchanged FROM read_parquet(${fileList(layerFiles)}) UNION ALL ${staged})`;
}

/** Orders versions of one key: commit LSN, then position in the transaction. */
const POSITION = '(commit_lsn::HUGEINT * 4294967296 + seq)';

/** The columns a version left unchanged (its TOAST markers), as a list; empty for complete versions. */
const UNCHANGED_LIST = `coalesce(from_json(unchanged, '["VARCHAR"]'), []::VARCHAR[])`;

/** A staged change is identified by its position and key (the rows of one TRUNCATE share a position). */
const IDENTITY = 'commit_lsn, seq, "key"';

/** One chunk of staged rows: the statement that fetches the values it lacks, then the SELECT of its rows complete. */
export interface CompletionChunk {
  readonly fill?: string;
  readonly select: string;
}

/** What completing a batch of staged changes will take, and the chunks it is written in. */
export interface Completion {
  /** The chunks, each to be filled (if it says so) and then written as one part. */
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
 * under `chunkBytes`: each chunk is sorted and written whole.
 */
export async function planCompletion(
  duck: DuckDBConnection,
  history: string,
  staging: string,
  chunkBytes: number,
): Promise<Completion> {
  const work = {
    versions: `${staging}_versions`,
    needs: `${staging}_needs`,
    patches: `${staging}_patches`,
    chunks: `${staging}_chunks`,
    fill: `${staging}_fill`,
  };
  const drop = async (): Promise<void> => {
    for (const table of Object.values(work)) await duck.run(`DROP TABLE IF EXISTS ${table}`);
  };
  const plain = `SELECT ${LAYER_COLUMN_NAMES} FROM ${staging}`;
  const [incomplete] = await queryRows(
    duck,
    `SELECT count(*) AS n FROM ${staging} WHERE unchanged IS NOT NULL OR (op = 'delete' AND "row" IS NULL)`,
  );
  if (Number(incomplete?.n ?? 0) === 0) return { chunks: [{ select: plain }], orphans: 0, drop };

  // Every version of the keys that need completing, narrow: where it is, what it lacks, how long its row is.
  await duck.run(`
    CREATE OR REPLACE TABLE ${work.versions} AS
    SELECT v."table", v."key", v.commit_lsn, v.seq, v.op, v.tenant, v.schema_id, v.unchanged,
           length(v."row") AS len, ${POSITION} AS position
      FROM ${history} AS v
      SEMI JOIN (SELECT "table", "key" FROM ${staging} WHERE unchanged IS NOT NULL OR (op = 'delete' AND "row" IS NULL)) AS x
        USING ("table", "key")
     WHERE v."row" IS NOT NULL AND v.op <> 'delete'`);
  // Per change: the version its row comes from (a delete's previous version; a marked change's own row).
  await duck.run(`
    CREATE OR REPLACE TABLE ${work.needs} AS
    SELECT x.commit_lsn, x.seq, x."key", x."table", x.op, x.position, x.unchanged,
           arg_max({'lsn': v.commit_lsn, 'seq': v.seq, 'tenant': v.tenant, 'schema_id': v.schema_id,
                    'unchanged': v.unchanged, 'len': v.len}, v.position) FILTER (WHERE v.position < x.position) AS base
      FROM (SELECT ${IDENTITY}, "table", op, unchanged, ${POSITION} AS position FROM ${staging}
             WHERE unchanged IS NOT NULL OR (op = 'delete' AND "row" IS NULL)) AS x
      LEFT JOIN ${work.versions} AS v ON v."table" = x."table" AND v."key" = x."key" AND x.op = 'delete'
     GROUP BY ALL`);
  // Per marked column of a base: the newest earlier version that holds its value.
  await duck.run(`
    CREATE OR REPLACE TABLE ${work.patches} AS
    SELECT c.commit_lsn, c.seq, c."key", c."column",
           arg_max({'lsn': v.commit_lsn, 'seq': v.seq, 'len': v.len}, v.position) AS source
      FROM (SELECT commit_lsn, seq, "key", "table", position,
                   unnest(from_json(CASE WHEN op = 'delete' THEN base.unchanged ELSE unchanged END, '["VARCHAR"]')) AS "column"
              FROM ${work.needs}) AS c
      JOIN ${work.versions} AS v ON v."table" = c."table" AND v."key" = c."key" AND v.position < c.position
       AND v.op <> 'truncate' AND NOT list_contains(${UNCHANGED_LIST.replace('unchanged', 'v.unchanged')}, c."column")
     GROUP BY ALL`);
  const [orphans] = await queryRows(duck, `SELECT count(*) AS n FROM ${work.needs} WHERE op = 'delete' AND base IS NULL`);

  // Chunks in staging order, by the text each row will hold once complete.
  await duck.run(`
    CREATE OR REPLACE TABLE ${work.chunks} AS
    SELECT ${IDENTITY}, (sum(bytes) OVER (ORDER BY commit_lsn, seq, "key" ROWS UNBOUNDED PRECEDING) - 1) // ${Math.max(1, Math.floor(chunkBytes))} AS chunk
      FROM (SELECT s.commit_lsn, s.seq, s."key",
                   length(s."key") + coalesce(length(s."row"), 0) + coalesce(length(s.context), 0)
                     + coalesce(n.base.len, 0) + coalesce(p.len, 0) AS bytes
              FROM ${staging} AS s
              LEFT JOIN ${work.needs} AS n USING (${IDENTITY})
              LEFT JOIN (SELECT ${IDENTITY}, sum(source.len) AS len FROM ${work.patches} GROUP BY ALL) AS p USING (${IDENTITY}))`);
  const [last] = await queryRows(duck, `SELECT max(chunk) AS n FROM ${work.chunks}`);
  const chunkCount = Number(last?.n ?? 0) + 1;
  const chunks: CompletionChunk[] = [];
  for (let chunk = 0; chunk < chunkCount; chunk++) chunks.push(completedChunkSql(history, staging, work, chunk));
  return { chunks, orphans: Number(orphans?.n ?? 0), drop };
}

/**
 * One chunk's rows complete: its values are fetched by exact version into a small
 * table first, then joined on, so only the chunk's own values are ever held.
 */
function completedChunkSql(
  history: string,
  staging: string,
  work: { needs: string; patches: string; chunks: string; fill: string },
  chunk: number,
): CompletionChunk {
  const mine = `(SELECT ${IDENTITY} FROM ${work.chunks} WHERE chunk = ${chunk})`;
  const fill = `
    CREATE OR REPLACE TABLE ${work.fill} AS
    SELECT n.commit_lsn, n.seq, n."key", NULL::VARCHAR AS "column", v."row" AS value, n.base.tenant AS tenant, n.base.schema_id AS schema_id
      FROM (SELECT * FROM ${work.needs} SEMI JOIN ${mine} USING (${IDENTITY}) WHERE op = 'delete' AND base IS NOT NULL) AS n
      JOIN ${history} AS v ON v."table" = n."table" AND v."key" = n."key" AND v.commit_lsn = n.base.lsn AND v.seq = n.base.seq
    UNION ALL
    SELECT p.commit_lsn, p.seq, p."key", p."column",
           json_extract(v."row", '/' || replace(replace(p."column", '~', '~0'), '/', '~1'))::VARCHAR, NULL, NULL
      FROM (SELECT p.*, n."table" FROM ${work.patches} AS p JOIN ${work.needs} AS n USING (${IDENTITY})
             SEMI JOIN ${mine} USING (${IDENTITY})) AS p
      JOIN ${history} AS v ON v."table" = p."table" AND v."key" = p."key" AND v.commit_lsn = p.source.lsn AND v.seq = p.source.seq`;
  const select = `
    SELECT s.commit_lsn, s.seq, s.commit_time, s.xid, s."table", s.op, coalesce(s.tenant, b.tenant) AS tenant, s."key",
           coalesce(b.schema_id, s.schema_id) AS schema_id,
           CASE WHEN t.patch IS NULL THEN coalesce(s."row", b.value)
                ELSE json_merge_patch(coalesce(s."row", b.value), t.patch)::VARCHAR END AS "row",
           s.context
      FROM (SELECT * FROM ${staging} SEMI JOIN ${mine} USING (${IDENTITY})) AS s
      LEFT JOIN (SELECT * FROM ${work.fill} WHERE "column" IS NULL) AS b USING (${IDENTITY})
      LEFT JOIN (SELECT ${IDENTITY}, '{' || string_agg(to_json("column")::VARCHAR || ':' || value, ',') || '}' AS patch
                   FROM ${work.fill} WHERE "column" IS NOT NULL AND value IS NOT NULL AND value <> 'null' GROUP BY ALL) AS t
        USING (${IDENTITY})`;
  return { fill, select };
}

/**
 * The rows alive in `table` just before a TRUNCATE, as the newest version of each
 * key (narrow), in chunks of at most `chunkBytes` of row text: each call of the
 * returned `stageNext` stages the next chunk as 'truncate' changes, its rows read
 * from `current` (the history as it is by then), and says whether more are left. A row left with TOAST markers keeps them, so the flush completes it.
 */
export async function truncateChunks(
  duck: DuckDBConnection,
  history: string,
  staging: string,
  change: { table: string; commitLsn: bigint; seq: number; commitTime: bigint; xid: bigint; context: string | null },
  chunkBytes: number,
): Promise<{ stageNext(history: string): Promise<boolean>; drop(): Promise<void> }> {
  const alive = `${staging}_truncated`;
  await duck.run(
    `CREATE OR REPLACE TABLE ${alive} AS
     SELECT "key", newest.lsn AS lsn, newest.seq AS seq, newest.len AS len
       FROM (SELECT "key", arg_max({'lsn': commit_lsn, 'seq': seq, 'op': op, 'len': coalesce(length("row"), 0)}, ${POSITION}) AS newest
               FROM ${history} WHERE "table" = ${sqlLiteral(change.table)}
                AND (commit_lsn < ${change.commitLsn} OR (commit_lsn = ${change.commitLsn} AND seq < ${change.seq}))
              GROUP BY "key")
      WHERE newest.op NOT IN ('delete', 'truncate')`,
  );
  // Buckets by key hash, not a running sum: a window over every key of a large table would be held whole.
  const [total] = await queryRows(duck, `SELECT count(*) AS n, coalesce(sum(len), 0) AS bytes FROM ${alive}`);
  const chunkCount = Number(total?.n ?? 0) === 0 ? 0 : Math.max(1, Math.ceil(Number(total?.bytes ?? 0) / chunkBytes));
  let next = 0;
  return {
    async stageNext(current: string) {
      if (next >= chunkCount) return false;
      await duck.run(
        `INSERT INTO ${staging} (${LAYER_COLUMN_NAMES}, unchanged)
         SELECT $1, $2, make_timestamp($3::BIGINT), $4, h."table", 'truncate', h.tenant, h."key", h.schema_id, h."row", $6, h.unchanged
           FROM ${current} AS h
           JOIN (SELECT * FROM ${alive} WHERE hash("key") % ${chunkCount} = ${next}) AS a ON h."key" = a."key" AND h.commit_lsn = a.lsn AND h.seq = a.seq
          WHERE h."table" = $5`,
        [change.commitLsn, change.seq, change.commitTime, change.xid, change.table, change.context] as never,
      );
      next++;
      return next < chunkCount;
    },
    async drop() {
      await duck.run(`DROP TABLE IF EXISTS ${alive}`);
    },
  };
}
