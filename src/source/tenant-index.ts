// Which tenant-scoped tables lack an index led by their tenant column. Restoring a
// tenant finds its live rows by that column: without such an index, staging them
// and checking them before commit read the whole table, so the cost follows the
// table, not the tenant. `recall init` says so; nothing stops on it.

import type pg from 'pg';
import type { SourceTable } from './catalog.js';

/** The tenant-scoped tables with no plain (non-partial) index whose first column is the tenant column. */
export async function tablesWithoutTenantIndex(client: pg.Client, tables: readonly SourceTable[]): Promise<SourceTable[]> {
  const scoped = tables.filter((table) => table.tenantColumn !== undefined);
  if (scoped.length === 0) return [];
  const { rows } = await client.query<{ oid: number }>(
    `SELECT t.oid::int8 AS oid FROM unnest($1::oid[], $2::text[]) AS t(oid, tenant_column)
      WHERE NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                         WHERE i.indrelid = t.oid AND a.attname = t.tenant_column AND i.indpred IS NULL)`,
    [scoped.map((table) => table.oid), scoped.map((table) => table.tenantColumn)],
  );
  const missing = new Set(rows.map((row) => Number(row.oid)));
  return scoped.filter((table) => missing.has(table.oid));
}
