// `recall show`: a tenant's rows as of a point. Reconstruction takes, per key, the
// newest version at or below the point's LSN (images and deltas alike) and drops
// keys whose newest version is a delete; each row is then laid out in the columns
// its table had at the point, so rows written before an ADD/DROP/RENAME COLUMN read
// as the table looked then.

import { queryRows, type SchemaColumn, type SchemaVersion, type Vault } from '../vault/index.js';
import { compareKeys } from './key-order.js';
import type { Point } from './point.js';
import { VaultReader, type FutureBound } from './vault-reader.js';

/** One row of a tenant at a point. Values are PostgreSQL's text form or null. */
export interface ShownRow {
  readonly table: string;
  readonly row: Readonly<Record<string, string | null>>;
}

/** What to show. */
export interface ShowOptions {
  readonly vault: Vault;
  readonly tenant: string;
  readonly at: Point;
  readonly table?: string;
  /** LSN points past this are refused as in the future (unchecked when absent). */
  readonly future?: FutureBound | undefined;
}

/** The tenant's rows in every tenant-scoped table (or one) as of the point, ordered by table and key. */
export async function show(options: ShowOptions): Promise<ShownRow[]> {
  const reader = await VaultReader.open(options.vault, { future: options.future, tenant: options.tenant, atPoint: true });
  try {
    const lsn = await reader.resolve(options.at);
    const versions = await reader.tenantAt(options.tenant, lsn);
    await reader.assertTenant(options.tenant, versions);
    const table = options.table === undefined ? undefined : reader.capturedTable(options.table);
    const rows = await queryRows(
      reader.duck,
      `SELECT "table", "key", schema_id, "row" FROM (
         SELECT "table", "key", op, schema_id, "row",
                row_number() OVER (PARTITION BY "table", "key" ORDER BY commit_lsn DESC, seq DESC) AS newest
           FROM ${versions}
          WHERE tenant = $1 AND commit_lsn <= $2 ${table === undefined ? '' : 'AND "table" = $3'})
        WHERE newest = 1 AND op NOT IN ('delete', 'truncate')`,
      table === undefined ? [options.tenant, lsn] : [options.tenant, lsn, table],
    );
    const shown = rows.map((row) => {
      const name = row.table as string;
      const layout = reader.layoutAt(name, lsn);
      const written = reader.schema(Number(row.schema_id));
      return {
        table: name,
        key: JSON.parse(row.key as string) as (string | null)[],
        row: layOut(JSON.parse(row.row as string) as Record<string, string | null>, written, layout),
      };
    });
    shown.sort((a, b) => (a.table < b.table ? -1 : a.table > b.table ? 1 : compareKeys(a.key, b.key)));
    return shown.map(({ table: name, row }) => ({ table: name, row }));
  } finally {
    reader.close();
  }
}

/** A row written under one schema version, read in the layout of another. */
export function layOut(
  values: Readonly<Record<string, string | null>>,
  written: SchemaVersion | undefined,
  layout: SchemaVersion | undefined,
): Record<string, string | null> {
  if (layout === undefined || written === undefined || written.id === layout.id) return { ...values };
  // Built from entries: an assignment to a column named `__proto__` would set the prototype instead.
  return Object.fromEntries(
    layout.columns.map((column) => {
      const source = sourceColumn(written, column);
      const held = source !== undefined && Object.hasOwn(values, source.name);
      return [column.name, held ? (values[source.name] ?? null) : (column.missing ?? null)];
    }),
  );
}

/**
 * The column of a row written under `written` that holds a layout column's value:
 * followed by attnum across renames, by name when attnums are unknown. Undefined: the
 * row predates the column, which then holds its ADD COLUMN default (`missing`).
 */
export function sourceColumn(written: SchemaVersion, column: SchemaColumn): SchemaColumn | undefined {
  return column.attnum !== undefined
    ? written.columns.find((c) => c.attnum === column.attnum)
    : written.columns.find((c) => c.name === column.name);
}
