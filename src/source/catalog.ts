// The source's catalog as Recall sees it: which tables are captured, their columns,
// keys and replica identity, and which column names each table's tenant.

import type pg from 'pg';
import { formatTableName, sqlTableName } from './table-name.js';
import type { TenancyConfig } from './tenancy.js';

/** One column of a captured table. Stored generated columns are never captured (pgoutput does not send them). */
export interface SourceColumn {
  readonly name: string;
  /** format_type() of the column, e.g. "numeric(10,2)". */
  readonly type: string;
  readonly typeOid: number;
  readonly attnum: number;
  readonly generated: boolean;
  /** attidentity: 'a' GENERATED ALWAYS, 'd' BY DEFAULT, '' none. Inserting identity values needs OVERRIDING SYSTEM VALUE. */
  readonly identity: '' | 'a' | 'd';
}

/** A table of the source, partitions folded into their root. */
export interface SourceTable {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** Schema-qualified, quoted where needed: the name used in every output and in the vault. */
  readonly qualified: string;
  /** The same name, always quoted, for SQL statements. */
  readonly sql: string;
  readonly partitioned: boolean;
  readonly columns: readonly SourceColumn[];
  /** Primary key columns in key order; empty without a primary key. */
  readonly primaryKey: readonly string[];
  /** The columns that identify a row in the vault: see identityKeySql. */
  readonly key: readonly string[];
  /** relreplident: d(efault), n(othing), f(ull), i(ndex). */
  readonly replicaIdentity: string;
  /** Whether an index is marked as the replica identity (REPLICA IDENTITY USING INDEX). */
  readonly identityIndex: boolean;
  /** The column naming the tenant; undefined for a global table. */
  readonly tenantColumn: string | undefined;
  /** Whether this role owns the table or is a member of the role that does (which counts as owning it). */
  readonly owned: boolean;
  /** The role that owns the table: membership in it is what a per-table publication needs. */
  readonly owner: string;
  readonly selectable: boolean;
}

/**
 * Reads every user table (partitions excluded: they are captured through their root)
 * that capture can see: permanent ones. `unlogged` adds UNLOGGED tables too,
 * whose changes logical decoding never sees: verify compares a captured table that was
 * switched to UNLOGGED, since every write to it since is missing from the history.
 */
export async function readCatalog(client: pg.Client, tenancy: TenancyConfig, options: { unlogged?: boolean } = {}): Promise<SourceTable[]> {
  const { rows } = await client.query<{
    oid: string;
    schema: string;
    name: string;
    relkind: string;
    relreplident: string;
    owned: string;
    owner: string;
    selectable: string;
    primary_key: string | null;
    identity_key: string | null;
    identity_index: string;
    columns: string;
  }>(`
    SELECT c.oid, n.nspname AS schema, c.relname AS name,
           c.relkind, c.relreplident,
           pg_has_role(c.relowner, 'USAGE') AS owned, pg_get_userbyid(c.relowner) AS owner,
           has_table_privilege(c.oid, 'SELECT') AS selectable,
           (SELECT json_agg(a.attname ORDER BY k.ord)
              FROM pg_index i
              CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             WHERE i.indrelid = c.oid AND i.indisprimary)::text AS primary_key,
           ${identityKeySql('c.oid')} AS identity_key,
           EXISTS (SELECT 1 FROM pg_index r WHERE r.indrelid = c.oid AND r.indisreplident)::text AS identity_index,
           (SELECT json_agg(json_build_object(
                     'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
                     'typeOid', a.atttypid, 'attnum', a.attnum, 'generated', a.attgenerated <> '',
                     'identity', a.attidentity)
                   ORDER BY a.attnum)
              FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)::text AS columns
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p')
       AND NOT c.relispartition
       AND c.relpersistence IN ('p'${options.unlogged === true ? ", 'u'" : ''})
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\\_%'
     ORDER BY n.nspname, c.relname`);
  return rows.map((row) => {
    const columns = (JSON.parse(row.columns ?? '[]') as SourceColumn[]).map((column) => ({ ...column, typeOid: Number(column.typeOid) }));
    const qualified = formatTableName(row);
    const primaryKey = row.primary_key ? (JSON.parse(row.primary_key) as string[]) : [];
    const identity = row.identity_key ? (JSON.parse(row.identity_key) as string[]) : [];
    return {
      oid: Number(row.oid),
      schema: row.schema,
      name: row.name,
      qualified,
      sql: sqlTableName(row),
      partitioned: row.relkind === 'p',
      columns,
      primaryKey,
      key: identity.length > 0 ? identity : columns.filter((column) => !column.generated).map((column) => column.name),
      replicaIdentity: row.relreplident,
      identityIndex: row.identity_index === 'true',
      tenantColumn: tenantColumnOf(
        qualified,
        columns.map((column) => column.name),
        primaryKey,
        tenancy,
      ),
      owned: row.owned === 't',
      owner: row.owner,
      selectable: row.selectable === 't',
    };
  });
}

/**
 * SQL for the columns that identify a row of relation `relid`, in column order (as pgoutput
 * lists key columns): the primary key, else the replica identity index, else NULL (then
 * every column is the key, as under REPLICA IDENTITY FULL). The image and the stream
 * both use it, so a row keeps one key across them whatever the replica identity.
 */
export function identityKeySql(relid: string): string {
  return `(SELECT json_agg(a.attname ORDER BY a.attnum)::text
             FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = ${relid}
              AND i.indexrelid = coalesce(
                    (SELECT p.indexrelid FROM pg_index p WHERE p.indrelid = ${relid} AND p.indisprimary),
                    (SELECT r.indexrelid FROM pg_index r WHERE r.indrelid = ${relid} AND r.indisreplident)))`;
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
