// The source's catalog as Recall sees it: which tables are captured, their columns,
// keys and replica identity, and which column names each table's tenant.

import type pg from 'pg';
import type { TenancyConfig } from './tenancy.js';

/** One column of a captured table. Stored generated columns are never captured (pgoutput does not send them). */
export interface SourceColumn {
  readonly name: string;
  /** format_type() of the column, e.g. "numeric(10,2)". */
  readonly type: string;
  readonly typeOid: number;
  readonly attnum: number;
  readonly generated: boolean;
}

/** A table of the source, partitions folded into their root. */
export interface SourceTable {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** Schema-qualified, quoted: the name used in every output. */
  readonly qualified: string;
  readonly partitioned: boolean;
  readonly columns: readonly SourceColumn[];
  /** Primary key columns in key order; empty without a primary key. */
  readonly primaryKey: readonly string[];
  /** relreplident: d(efault), n(othing), f(ull), i(ndex). */
  readonly replicaIdentity: string;
  /** The column naming the tenant; undefined for a global table. */
  readonly tenantColumn: string | undefined;
  readonly owned: boolean;
  readonly selectable: boolean;
}

/** Reads every user table (partitions excluded: they are captured through their root). */
export async function readCatalog(client: pg.Client, tenancy: TenancyConfig): Promise<SourceTable[]> {
  const { rows } = await client.query<{
    oid: string;
    schema: string;
    name: string;
    qualified: string;
    relkind: string;
    relreplident: string;
    owned: string;
    selectable: string;
    primary_key: string | null;
    columns: string;
  }>(`
    SELECT c.oid, n.nspname AS schema, c.relname AS name,
           format('%I.%I', n.nspname, c.relname) AS qualified,
           c.relkind, c.relreplident,
           pg_has_role(c.relowner, 'USAGE') AS owned,
           has_table_privilege(c.oid, 'SELECT') AS selectable,
           (SELECT json_agg(a.attname ORDER BY k.ord)
              FROM pg_index i
              CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             WHERE i.indrelid = c.oid AND i.indisprimary)::text AS primary_key,
           (SELECT json_agg(json_build_object(
                     'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
                     'typeOid', a.atttypid, 'attnum', a.attnum, 'generated', a.attgenerated <> '')
                   ORDER BY a.attnum)
              FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)::text AS columns
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p')
       AND NOT c.relispartition
       AND c.relpersistence = 'p'
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\\_%'
     ORDER BY 4`);
  return rows.map((row) => {
    const columns = (JSON.parse(row.columns ?? '[]') as SourceColumn[]).map((column) => ({ ...column, typeOid: Number(column.typeOid) }));
    const qualified = row.qualified;
    const primaryKey = row.primary_key ? (JSON.parse(row.primary_key) as string[]) : [];
    return {
      oid: Number(row.oid),
      schema: row.schema,
      name: row.name,
      qualified,
      partitioned: row.relkind === 'p',
      columns,
      primaryKey,
      replicaIdentity: row.relreplident,
      tenantColumn: tenantColumnOf(qualified, columns.map((column) => column.name), primaryKey, tenancy),
      owned: row.owned === 't',
      selectable: row.selectable === 't',
    };
  });
}

/** Which column names a table's tenant: recall.yml first, then the root table's key, then the default column. */
export function tenantColumnOf(
  qualified: string,
  columnNames: readonly string[],
  keyColumns: readonly string[],
  tenancy: TenancyConfig,
): string | undefined {
  const declared = tenancy.tables[qualified];
  if (declared === 'global') return undefined;
  if (declared !== undefined) return declared.column;
  if (qualified === tenancy.root && keyColumns.length === 1) return keyColumns[0];
  return columnNames.includes(tenancy.column) ? tenancy.column : undefined;
}
