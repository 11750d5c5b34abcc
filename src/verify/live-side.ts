// The live side of a comparison, read in the snapshot whose LSN the vault side is
// reconstructed at: digests per tenant and table in one pass over each table, then,
// only where a digest differs, the fingerprints of that tenant's rows (streamed by
// COPY into DuckDB, however many) and the rows under the keys that differ.

import type { DuckDBConnection } from '@duckdb/node-api';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { sqlIdentifier } from '../source/index.js';
import { IMAGE_BUCKETS } from '../vault/index.js';
import { liveFingerprints, liveKeyFingerprint, liveRelation, liveText, type ComparedTable } from './fingerprint.js';
import type { SourcePacing } from './pacing.js';
import type { BatchScope, Digest } from './vault-side.js';

/** A live row under a key that differs. */
export interface LiveRow {
  readonly kfp: string;
  readonly key: (string | null)[];
  readonly row: Record<string, string | null>;
}

/** SQL (alias l) and its parameters: the table's rows that belong to the scope. */
function scopeFilter(table: ComparedTable, scope: BatchScope): { sql: string; params: unknown[] } {
  const column = table.live.tenantColumn;
  if (column === undefined) return { sql: 'true', params: [] };
  const type = table.live.columns.find((c) => c.name === column)?.type ?? 'text';
  const text = liveText('l', column);
  if (scope.tenants !== undefined) {
    // Typed, for the tenant index; as text too, for the exact form the history holds (03 is not 3).
    return { sql: `l.${sqlIdentifier(column)} = ANY($1::text[]::${type}[]) AND ${text} = ANY($1::text[])`, params: [scope.tenants] };
  }
  // A row with no tenant goes with the global tables, in bucket 0, as the history holds it (tenantBucketSql).
  const orphans = scope.global ? `l.${sqlIdentifier(column)} IS NULL OR ` : '';
  if (scope.buckets.length === IMAGE_BUCKETS) return { sql: scope.global ? 'true' : `l.${sqlIdentifier(column)} IS NOT NULL`, params: [] };
  // The vault's bucket of a tenant (tenant-bucket.ts): the first 32 bits of the MD5 of its text, modulo 16.
  return {
    sql: `(${orphans}(('x' || left(md5(${text}), 8))::bit(32)::bigint % ${IMAGE_BUCKETS}) = ANY($1::int[]))`,
    params: [scope.buckets],
  };
}

/** SQL (alias l): one tenant's rows of a table (tenant null: those with no tenant, or every row of a global table), `literal` its SQL. */
function tenantFilter(table: ComparedTable, tenant: string | null, literal: string): string {
  const column = table.live.tenantColumn;
  if (column === undefined) return 'true';
  if (tenant === null) return `l.${sqlIdentifier(column)} IS NULL`;
  const type = table.live.columns.find((c) => c.name === column)?.type ?? 'text';
  return `l.${sqlIdentifier(column)} = ${literal}::text::${type} AND ${liveText('l', column)} = ${literal}::text`;
}

/**
 * SQL: the relations (`relid`) holding the rows of table $1 (an oid): its partitions,
 * or the table itself (pg_partition_tree lists nothing for a table that is neither a
 * partition nor partitioned).
 */
const LEAVES_SQL = `(SELECT p.relid FROM pg_catalog.pg_partition_tree($1::oid::regclass) AS p WHERE p.isleaf
                     UNION ALL
                     SELECT $1::oid::regclass WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree($1::oid::regclass)))`;

/** Pages of a table read by one statement of a full pass: some 10 MB, tens of thousands of rows. */
const CHUNK_PAGES = 1280;

/**
 * Rows and digest of each tenant's share of the table, for the scope's tenants. Named
 * tenants are found by the tenant index in one statement, and so is a whole table
 * while the source is idle (PostgreSQL may scan it in parallel). While the source is
 * busy, each leaf of the table is read in chunks of its pages (a TID range scan, in
 * the one snapshot), paced between them (pacing.ts), so that verify never holds the
 * source's cores for a whole large table while the application waits.
 */
async function liveDigests(reader: pg.Client, table: ComparedTable, scope: BatchScope, pacing: SourcePacing): Promise<Digest[]> {
  const filter = scopeFilter(table, scope);
  const digestsOf = async (relation: string, where: string): Promise<{ tenant: string | null; n: string; s: string }[]> =>
    (
      await reader.query<{ tenant: string | null; n: string; s: string }>(
        `SELECT f.tenant, count(*)::text AS n, coalesce(sum(f.h), 0)::text AS s FROM ${liveFingerprints(table, where, relation)} AS f GROUP BY f.tenant`,
        filter.params,
      )
    ).rows;
  // Named tenants by the tenant index; a whole table at once (in parallel) while the source is idle.
  const busy = await pacing.before(reader);
  if (scope.tenants !== undefined || !busy) {
    const started = performance.now();
    const rows = await digestsOf(liveRelation(table), filter.sql);
    pacing.after(
      rows.reduce((sum, row) => sum + Number(row.n), 0),
      performance.now() - started,
    );
    return rows.map((row) => ({ table: table.name, tenant: row.tenant, rows: Number(row.n), sum: row.s }));
  }
  const totals = new Map<string | null, { rows: number; sum: bigint }>();
  const leaves = await leavesOf(reader, table);
  for (const leaf of leaves) {
    for (let first = 0; first < Math.max(leaf.pages, 1); first += CHUNK_PAGES) {
      if (first > 0 || leaf !== leaves[0]) await pacing.before(reader);
      const started = performance.now();
      const pages = `l.ctid >= '(${first},0)'::tid AND l.ctid < '(${first + CHUNK_PAGES},0)'::tid`;
      // The last chunk runs to the end: the table may have grown since its size was read.
      const range = first + CHUNK_PAGES >= leaf.pages ? `l.ctid >= '(${first},0)'::tid` : pages;
      const rows = await digestsOf(`ONLY ${leaf.sql}`, `${range} AND (${filter.sql})`);
      let read = 0;
      for (const row of rows) {
        const total = totals.get(row.tenant) ?? { rows: 0, sum: 0n };
        total.rows += Number(row.n);
        total.sum += BigInt(row.s);
        totals.set(row.tenant, total);
        read += Number(row.n);
      }
      pacing.after(read, performance.now() - started);
    }
  }
  return [...totals].map(([tenant, total]) => ({ table: table.name, tenant, rows: total.rows, sum: total.sum.toString() }));
}

/** The leaves whose rows make up the table as the history holds it (itself, or its partitions), and their sizes in pages. */
async function leavesOf(reader: pg.Client, table: ComparedTable): Promise<{ sql: string; pages: number }[]> {
  // This connection leaves every value as PostgreSQL's text.
  const { rows } = await reader.query<{ sql: string; pages: string }>(
    `SELECT l.relid::regclass::text AS sql, (pg_catalog.pg_relation_size(l.relid) / current_setting('block_size')::int)::text AS pages
       FROM ${LEAVES_SQL} AS l ORDER BY 1`,
    [table.live.oid],
  );
  return rows.map((row) => ({ sql: row.sql, pages: Number(row.pages) }));
}

/**
 * The digests of one table, or why it was left out: a lock it waited for more than the
 * lock timeout for (verify never queues an ALTER TABLE and the application behind it),
 * a table this role may not read, or one truncated or rewritten after the snapshot,
 * which it would read as empty (PostgreSQL's MVCC caveat for TRUNCATE and rewriting
 * ALTER TABLE): its files then are not those the snapshot's catalog names. Run in a
 * savepoint, so the snapshot's transaction goes on with the other tables.
 */
export async function readTable(
  reader: pg.Client,
  table: ComparedTable,
  scope: BatchScope,
  pacing: SourcePacing,
): Promise<Digest[] | { skipped: string }> {
  await reader.query('SAVEPOINT recall_table');
  try {
    await reader.query(`LOCK TABLE ${liveRelation(table)} IN ACCESS SHARE MODE`);
    // relfilenode as the snapshot's catalog has it, against pg_relation_filenode's current one.
    const { rows } = await reader.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM ${LEAVES_SQL} AS l
         JOIN pg_catalog.pg_class AS c ON c.oid = l.relid
        WHERE c.relfilenode IS DISTINCT FROM pg_catalog.pg_relation_filenode(c.oid)`,
      [table.live.oid],
    );
    if (rows[0]?.n !== '0') {
      await reader.query('ROLLBACK TO SAVEPOINT recall_table');
      return { skipped: 'it was truncated or rewritten after the snapshot, which would read it as empty; run verify again' };
    }
    const digests = await liveDigests(reader, table, scope, pacing);
    await reader.query('RELEASE SAVEPOINT recall_table');
    return digests;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code !== '55P03' && code !== '42501') throw error;
    await reader.query('ROLLBACK TO SAVEPOINT recall_table');
    return {
      skipped:
        code === '55P03'
          ? 'another session held a lock on it longer than verify waits (an ALTER TABLE?); run verify again'
          : `this role may not read it (${(error as Error).message}); grant it SELECT`,
    };
  }
}

/** Streams the fingerprints of one tenant's live rows of a table into a new DuckDB table `into` (kfp, h). */
export async function copyLiveKeys(
  reader: pg.Client,
  duck: DuckDBConnection,
  table: ComparedTable,
  tenant: string | null,
  into: string,
): Promise<void> {
  await duck.run(`CREATE TEMP TABLE ${into} (kfp VARCHAR, h BIGINT)`);
  const appender = await duck.createAppender(into);
  try {
    // COPY cannot take parameters: the tenant goes in as a literal.
    const where = tenantFilter(table, tenant, tenant === null ? 'NULL' : reader.escapeLiteral(tenant));
    const stream = reader.query(copyTo(`COPY (SELECT f.kfp, f.h FROM ${liveFingerprints(table, where)} AS f) TO STDOUT`));
    let rest = '';
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const lines = (rest + chunk.toString('latin1')).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        const tab = line.indexOf('\t');
        appender.appendVarchar(line.slice(0, tab));
        appender.appendBigInt(BigInt(line.slice(tab + 1)));
        appender.endRow();
      }
    }
  } finally {
    appender.closeSync();
  }
}

/** The live rows of one tenant's table under some key fingerprints, as text forms. */
export async function liveRowsOf(
  reader: pg.Client,
  table: ComparedTable,
  tenant: string | null,
  kfps: readonly string[],
): Promise<LiveRow[]> {
  if (kfps.length === 0) return [];
  const names = table.layout.columns.map((column) => column.name);
  // Arrays come back as JSON: this connection leaves every value as PostgreSQL's text.
  const { rows } = await reader.query<{ kfp: string; values: string; key: string }>(
    `SELECT f.kfp, f.values, f.key FROM (
       SELECT ${liveKeyFingerprint(table, 'l')} AS kfp,
              to_json(ARRAY[${names.map((name) => liveText('l', name)).join(', ')}]::text[])::text AS values,
              to_json(ARRAY[${table.layout.key.map((name) => liveText('l', name)).join(', ')}]::text[])::text AS key
         FROM ${liveRelation(table)} AS l WHERE ${tenantFilter(table, tenant, '$2')}) AS f
      WHERE f.kfp = ANY($1::text[])`,
    // $2 is there only for a tenant's rows: PostgreSQL refuses a parameter it cannot type.
    tenant === null || table.live.tenantColumn === undefined ? [kfps] : [kfps, tenant],
  );
  return rows.map((row) => {
    const values = JSON.parse(row.values) as (string | null)[];
    return {
      kfp: row.kfp,
      key: JSON.parse(row.key) as (string | null)[],
      row: Object.fromEntries(names.map((name, i) => [name, values[i] ?? null])),
    };
  });
}
