// The live side of a comparison, read in the snapshot whose LSN the vault side is
// reconstructed at: digests per tenant and table in one pass over each table, then,
// only where a digest differs, the fingerprints of that tenant's rows (streamed by
// COPY into DuckDB, however many) and the rows under the keys that differ.

import type { DuckDBConnection } from '@duckdb/node-api';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { sqlIdentifier } from '../source/index.js';
import { IMAGE_BUCKETS } from '../vault/index.js';
import { liveFingerprints, liveKeyFingerprint, liveText, type ComparedTable } from './fingerprint.js';
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
  if (scope.tenants !== undefined) return { sql: `l.${sqlIdentifier(column)} = ANY($1::text[]::${type}[])`, params: [scope.tenants] };
  if (scope.buckets.length === IMAGE_BUCKETS) return { sql: 'true', params: [] };
  // The vault's bucket of a tenant (tenant-bucket.ts): the first 32 bits of the MD5 of its text, modulo 16.
  return {
    sql: `(('x' || left(md5(${liveText('l', column)}), 8))::bit(32)::bigint % ${IMAGE_BUCKETS}) = ANY($1::int[])`,
    params: [scope.buckets],
  };
}

/** SQL (alias l) and parameters: one tenant's rows of a table (tenant null: a global table, every row). */
function tenantFilter(table: ComparedTable, tenant: string | null): { sql: string; params: unknown[] } {
  const column = table.live.tenantColumn;
  if (column === undefined || tenant === null) return { sql: 'true', params: [] };
  const type = table.live.columns.find((c) => c.name === column)?.type ?? 'text';
  return { sql: `l.${sqlIdentifier(column)} = $1::text::${type}`, params: [tenant] };
}

/** Rows and digest of each tenant's share of the table, for the scope's tenants. */
export async function liveDigests(reader: pg.Client, table: ComparedTable, scope: BatchScope): Promise<Digest[]> {
  const filter = scopeFilter(table, scope);
  const { rows } = await reader.query<{ tenant: string | null; n: string; s: string }>(
    `SELECT f.tenant, count(*)::text AS n, coalesce(sum(f.h), 0)::text AS s FROM ${liveFingerprints(table, filter.sql)} AS f GROUP BY f.tenant`,
    filter.params,
  );
  return rows.map((row) => ({ table: table.name, tenant: row.tenant, rows: Number(row.n), sum: row.s }));
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
    const filter = tenantFilter(table, tenant);
    const where = tenant === null ? filter.sql : filter.sql.replace('$1', reader.escapeLiteral(tenant));
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
  const filter = tenantFilter(table, tenant);
  const names = table.layout.columns.map((column) => column.name);
  const at = filter.params.length + 1;
  // Arrays come back as JSON: this connection leaves every value as PostgreSQL's text.
  const { rows } = await reader.query<{ kfp: string; values: string; key: string }>(
    `SELECT f.kfp, f.values, f.key FROM (
       SELECT ${liveKeyFingerprint(table, 'l')} AS kfp,
              to_json(ARRAY[${names.map((name) => liveText('l', name)).join(', ')}]::text[])::text AS values,
              to_json(ARRAY[${table.layout.key.map((name) => liveText('l', name)).join(', ')}]::text[])::text AS key
         FROM ${table.live.sql} AS l WHERE ${filter.sql}) AS f
      WHERE f.kfp = ANY($${at}::text[])`,
    [...filter.params, kfps],
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
