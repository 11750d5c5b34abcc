// Completing changes the stream sends incomplete, from the versions before them
// (in the vault or earlier in the same batch): unchanged TOASTed values, the
// removed row and tenant of a DELETE, and the rows a TRUNCATE removed.

import type { DuckDBConnection } from '@duckdb/node-api';
import { LAYER_COLUMN_NAMES, fileList, queryRows } from '../vault/index.js';

/** A SQL source of every version known: the vault's layers plus the staging table. */
export function historySql(layerFiles: readonly string[], staging: string): string {
  const staged = `SELECT ${LAYER_COLUMN_NAMES} FROM ${staging}`;
  if (layerFiles.length === 0) return `(${staged})`;
  return `(SELECT ${LAYER_COLUMN_NAMES} FROM read_parquet(${fileList(layerFiles)}) UNION ALL ${staged})`;
}

/** Orders versions of one key: commit LSN, then position in the transaction. */
const VERSION_ORDER = '(h.commit_lsn::HUGEINT * 4294967296 + h.seq)';
const BEFORE = '(h.commit_lsn < d.commit_lsn OR (h.commit_lsn = d.commit_lsn AND h.seq < d.seq))';

/** Fills TOASTed values an UPDATE left unchanged, oldest first so chains of such updates resolve. */
export async function fillUnchangedToast(duck: DuckDBConnection, history: string, staging: string): Promise<number> {
  const targets = await queryRows(
    duck,
    `SELECT commit_lsn, seq, "table", "key", "row", unchanged FROM ${staging} WHERE unchanged IS NOT NULL ORDER BY commit_lsn, seq`,
  );
  for (const target of targets) {
    const [previous] = await queryRows(
      duck,
      `SELECT h."row" FROM ${history} h
        WHERE h."table" = $1 AND h."key" = $2 AND h."row" IS NOT NULL
          AND (h.commit_lsn < $3 OR (h.commit_lsn = $3 AND h.seq < $4))
        ORDER BY h.commit_lsn DESC, h.seq DESC LIMIT 1`,
      [target.table, target.key, target.commit_lsn, target.seq] as never,
    );
    const row = JSON.parse(target.row as string) as Record<string, string | null>;
    const before = previous ? (JSON.parse(previous.row as string) as Record<string, string | null>) : {};
    for (const column of JSON.parse(target.unchanged as string) as string[]) row[column] = before[column] ?? null;
    await duck.run(`UPDATE ${staging} SET "row" = $1, unchanged = NULL WHERE commit_lsn = $2 AND seq = $3`, [
      JSON.stringify(row),
      target.commit_lsn,
      target.seq,
    ] as never);
  }
  return targets.length;
}

/** Deletes completed per statement: the join and aggregate hold this many deletes' versions at most. */
const DELETE_BATCH = 20_000;

/**
 * Gives each DELETE the row it removed and that row's tenant (the stream sends only the key).
 * Returns how many deletes found no earlier version: a gap in the history, to be reported.
 */
export async function completeDeletes(duck: DuckDBConnection, history: string, staging: string): Promise<number> {
  const incomplete = `SELECT count(*) AS n FROM ${staging} WHERE op = 'delete' AND "row" IS NULL`;
  const [pending] = await queryRows(duck, incomplete);
  if (Number(pending?.n ?? 0) === 0) return 0; // spares a join against the whole history
  // Batches in commit order keep memory bounded whatever the transaction's size (capture's
  // DuckDB has 48 MB): within a batch, the semi join first narrows the history to the
  // deleted keys, so the join and the aggregate hold only those versions.
  const after = (lsn: string, seq: string) => `(commit_lsn > ${lsn} OR (commit_lsn = ${lsn} AND seq > ${seq}))`;
  let from: [bigint, number] = [0n, -1];
  for (;;) {
    const batch = `op = 'delete' AND "row" IS NULL AND ${after(String(from[0]), String(from[1]))}`;
    const [last] = await queryRows(
      duck,
      `SELECT max(commit_lsn::HUGEINT * 4294967296 + seq) AS position, count(*) AS n FROM
         (SELECT commit_lsn, seq FROM ${staging} WHERE ${batch} ORDER BY commit_lsn, seq LIMIT ${DELETE_BATCH})`,
    );
    if (Number(last?.n ?? 0) === 0) break;
    const position = BigInt(String(last?.position));
    const through: [bigint, number] = [position / 4294967296n, Number(position % 4294967296n)];
    await duck.run(`
      WITH d AS (SELECT commit_lsn, seq, "table", "key" FROM ${staging}
                  WHERE ${batch} AND NOT ${after(String(through[0]), String(through[1]))}),
           h AS (SELECT * FROM ${history} AS v SEMI JOIN d USING ("table", "key") WHERE v.op <> 'delete')
      UPDATE ${staging} AS p
         SET tenant = coalesce(p.tenant, r.previous.tenant), "row" = r.previous."row", schema_id = r.previous.schema_id
        FROM (SELECT d.commit_lsn, d.seq,
                     arg_max({'tenant': h.tenant, 'row': h."row", 'schema_id': h.schema_id}, ${VERSION_ORDER}) AS previous
                FROM d JOIN h ON h."table" = d."table" AND h."key" = d."key" AND ${BEFORE}
               GROUP BY d.commit_lsn, d.seq) AS r
       WHERE p.commit_lsn = r.commit_lsn AND p.seq = r.seq AND p.op = 'delete'`);
    from = through;
  }
  const [left] = await queryRows(duck, incomplete);
  return Number(left?.n ?? 0);
}

/** Stages one 'truncate' change per row alive in `table` just before the TRUNCATE. */
export async function expandTruncate(
  duck: DuckDBConnection,
  history: string,
  staging: string,
  change: { table: string; commitLsn: bigint; seq: number; commitTime: bigint; xid: bigint; context: string | null },
): Promise<void> {
  await duck.run(
    `INSERT INTO ${staging} (${LAYER_COLUMN_NAMES})
     SELECT $1, $2, make_timestamp($3::BIGINT), $4, "table", 'truncate', tenant, "key", schema_id, "row", $6
       FROM (SELECT h.*, row_number() OVER (PARTITION BY h."key" ORDER BY h.commit_lsn DESC, h.seq DESC) AS newest
               FROM ${history} h
              WHERE h."table" = $5 AND (h.commit_lsn < $1 OR (h.commit_lsn = $1 AND h.seq < $2)))
      WHERE newest = 1 AND op NOT IN ('delete', 'truncate')`,
    [change.commitLsn, change.seq, change.commitTime, change.xid, change.table, change.context] as never,
  );
}
