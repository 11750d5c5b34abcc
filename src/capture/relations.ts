// What each relation id in the stream means: its table, its columns, its key and
// tenant column, and the schema version its rows are written under. A Relation
// message whose layout differs from the newest known one starts a new version, so
// rows captured before an ADD/DROP/RENAME COLUMN stay readable.

import type pg from 'pg';
import type { RelationColumn } from './pgoutput.js';
import { identityKeySql, tenantColumnOf, formatTableName, type TenancyConfig } from '../source/index.js';
import type { SchemaColumn, SchemaVersion } from '../vault/index.js';
import type { AnnouncedLayout } from './ddl-hook.js';

/** A relation of the stream, ready to turn tuples into changes. */
export interface StreamRelation {
  readonly table: string;
  readonly columnNames: readonly string[];
  /**
   * Each column's name as a JSON object member's start, `"name":`, in UTF-8. A row's text
   * is written member by member, in the table's column order (as the image writes it),
   * where an object passed to JSON.stringify would put integer-like names first and take
   * `__proto__` for its prototype.
   */
  readonly jsonNames: readonly Buffer[];
  readonly keyIndexes: readonly number[];
  readonly tenantIndex: number | undefined;
  readonly schemaId: number;
}

/** Keeps the schema history and the relation-id map of one capture session. */
export class RelationMap {
  private readonly byId = new Map<number, StreamRelation>();
  private readonly schemas: SchemaVersion[];
  /** Tables a new layout showed were rewritten: their rows changed without change records. */
  private readonly rewrittenTables = new Set<string>();
  /** How many versions the vault's manifest holds. */
  private saved: number;

  constructor(
    schemas: readonly SchemaVersion[],
    private readonly tenancy: TenancyConfig,
    private readonly catalog: pg.Client,
  ) {
    this.schemas = [...schemas];
    this.saved = schemas.length;
  }

  /** Whether a version or a rewrite is known that the manifest does not hold yet. */
  get unsaved(): boolean {
    return this.schemas.length > this.saved || this.rewrittenTables.size > 0;
  }

  /** Notes that the manifest now holds the first `versions` schema versions (a batch cut earlier holds no later ones). */
  markSaved(versions: number): void {
    this.saved = Math.max(this.saved, versions);
  }

  /** Every schema version known, new ones included (for the next manifest). */
  get history(): readonly SchemaVersion[] {
    return this.schemas;
  }

  /** The newest layout known of a table. */
  private latest(table: string): SchemaVersion | undefined {
    return latestVersion(this.schemas, table);
  }

  /** Tables found rewritten since the last call: each needs a fresh image. */
  takeRewritten(): string[] {
    const tables = [...this.rewrittenTables];
    this.rewrittenTables.clear();
    return tables;
  }

  /** The relation for an id; a change for an unknown id is a protocol violation. */
  get(relationId: number): StreamRelation {
    const relation = this.byId.get(relationId);
    if (relation === undefined) throw new Error(`pgoutput: change for relation ${relationId} before its Relation message`);
    return relation;
  }

  /**
   * Records a Relation message; `lsn` is the commit LSN of the transaction it arrived
   * in. In a transaction the vault already holds (sent again after a crash), the layout
   * may be an older one: it maps the relation but never starts a version.
   */
  async define(
    message: { relationId: number; schema: string; name: string; columns: readonly RelationColumn[] },
    lsn: bigint,
    replayed = false,
  ): Promise<void> {
    const table = formatTableName(message);
    const names = message.columns.map((column) => column.name);
    const key = await this.keyOf(message.relationId, names);
    const tenantColumn = tenantColumnOf(table, names, key, this.tenancy) ?? null;
    // Described every time: a column dropped and added again under its old name differs only by attnum.
    const described = await this.describe(message.relationId, message.columns, this.latest(table));
    const layout = { ...described, key, tenantColumn };
    const version = replayed ? this.knownLayout(table, layout) : this.layout(table, layout, lsn);
    const tenantIndex = tenantColumn === null ? undefined : names.indexOf(tenantColumn);
    this.byId.set(message.relationId, {
      table,
      columnNames: names,
      jsonNames: names.map((name) => Buffer.from(`${JSON.stringify(name)}:`)),
      keyIndexes: key.map((column) => names.indexOf(column)),
      tenantIndex: tenantIndex === -1 ? undefined : tenantIndex,
      schemaId: version.id,
    });
  }

  /**
   * Records a layout the DDL hook announced (ddl-hook.ts) in the transaction that
   * changed it: the version starts at that commit, not at the table's next change.
   * A table the history does not hold yet is left to its first Relation message.
   */
  async defineFromDdl(announced: AnnouncedLayout, lsn: bigint): Promise<void> {
    const table = formatTableName(announced);
    const latest = this.latest(table);
    if (latest === undefined || announced.partition) return;
    // As the stream sends them: generated columns are computed by the server, never sent.
    const catalog = announced.columns.filter((column) => !column.generated);
    const names = catalog.map((column) => column.name);
    const key = await this.keyOf(announced.oid, names);
    const tenantColumn = tenantColumnOf(table, names, key, this.tenancy) ?? null;
    this.layout(table, { ...versionColumns(latest, catalog), key, tenantColumn }, lsn);
  }

  /** The newest version with this layout, else the newest of the table (replayed changes are dropped anyway). */
  private knownLayout(table: string, layout: { columns: SchemaColumn[]; key: string[]; tenantColumn: string | null }): SchemaVersion {
    const versions = this.schemas.filter((version) => version.table === table);
    const same = versions.filter((version) => sameLayout(version, layout.columns, layout.key, layout.tenantColumn)).at(-1);
    const found = same ?? versions.at(-1);
    if (found === undefined) throw new Error(`pgoutput: replayed change for ${table}, which the vault never held`);
    return found;
  }

  /** The version a layout belongs to: the newest, or a new one starting at `lsn` (noting a rewrite). */
  private layout(
    table: string,
    layout: { columns: SchemaColumn[]; rewritten: boolean; key: string[]; tenantColumn: string | null },
    lsn: bigint,
  ): SchemaVersion {
    const latest = this.latest(table);
    if (latest !== undefined && sameLayout(latest, layout.columns, layout.key, layout.tenantColumn)) return latest;
    if (latest !== undefined && layout.rewritten) this.rewrittenTables.add(table);
    const created: SchemaVersion = {
      id: this.schemas.length,
      table,
      sinceLsn: lsn,
      columns: layout.columns,
      key: layout.key,
      tenantColumn: layout.tenantColumn,
    };
    this.schemas.push(created);
    return created;
  }

  /**
   * The row identity, the same rule as the image's (catalog.identityKeySql): pgoutput's own
   * key flags mark every column under REPLICA IDENTITY FULL, which would give one row two keys.
   */
  private async keyOf(relationId: number, names: readonly string[]): Promise<string[]> {
    const { rows } = await this.catalog.query<{ key: string | null }>(`SELECT ${identityKeySql('$1::oid')} AS key`, [relationId]);
    const key = rows[0]?.key ? (JSON.parse(rows[0].key) as string[]) : [];
    return key.length > 0 && key.every((column) => names.includes(column)) ? key : [...names];
  }

  /** Type names, attnums and ADD COLUMN defaults, read from the source's catalog, as a version after `previous`. */
  private async describe(
    relationId: number,
    columns: readonly RelationColumn[],
    previous: SchemaVersion | undefined,
  ): Promise<{ columns: SchemaColumn[]; rewritten: boolean }> {
    const { rows } = await this.catalog.query<{
      name: string;
      type: string;
      attnum: string | null;
      missing: string | null;
      has_missing: string | null;
      has_default: string | null;
    }>(
      // A partitioned root stores no rows, so the ADD COLUMN default lives on its partitions
      // (pg_partition_tree lists nothing for a plain table, hence the table itself too).
      `SELECT c.name, format_type(c.oid, c.mod) AS type, a.attnum::text AS attnum,
              m.missing, (m.missing IS NOT NULL)::text AS has_missing, a.atthasdef::text AS has_default
         FROM unnest($2::text[], $3::oid[], $4::int[]) WITH ORDINALITY AS c(name, oid, mod, ord)
         LEFT JOIN pg_attribute a ON a.attrelid = $1 AND a.attname = c.name AND NOT a.attisdropped
         LEFT JOIN LATERAL (
                SELECT (p.attmissingval::text::text[])[1] AS missing
                  FROM (SELECT $1::regclass AS relid UNION ALL SELECT relid FROM pg_partition_tree($1::regclass)) t
                  JOIN pg_attribute p ON p.attrelid = t.relid AND p.attname = c.name AND NOT p.attisdropped AND p.atthasmissing
                 LIMIT 1) m ON true
        ORDER BY c.ord`,
      [relationId, columns.map((c) => c.name), columns.map((c) => c.typeOid), columns.map((c) => c.typeMod)],
    );
    return versionColumns(
      previous,
      rows.map((row, i) => ({
        name: row.name,
        type: row.type,
        typeOid: columns[i]?.typeOid,
        attnum: row.attnum === null ? undefined : Number(row.attnum),
        missing: row.has_missing === 'true' ? row.missing : undefined,
        hasDefault: row.has_default === 'true',
      })),
    );
  }
}

/** A column as the catalog describes it when a new layout appears. */
export interface CatalogColumn {
  readonly name: string;
  readonly type: string;
  readonly typeOid: number | undefined;
  readonly attnum: number | undefined;
  /** The stored ADD COLUMN default (attmissingval); undefined if there is none. */
  readonly missing: string | null | undefined;
  readonly hasDefault: boolean;
}

/**
 * The columns of a new schema version, and whether the table was rewritten since
 * `previous`: a kept column changed type (its values were converted), or a column
 * came with a default that is not a stored missing value (a volatile default,
 * computed row by row).
 */
function versionColumns(
  previous: SchemaVersion | undefined,
  catalog: readonly CatalogColumn[],
): { columns: SchemaColumn[]; rewritten: boolean } {
  const known = new Map(previous?.columns.map((column) => [column.attnum ?? column.name, column]));
  let rewritten = false;
  const columns = catalog.map((column) => {
    const before = known.get(column.attnum ?? column.name);
    if (before !== undefined && before.type !== column.type) rewritten = true;
    if (before === undefined && column.hasDefault && column.missing === undefined) rewritten = true;
    return {
      name: column.name,
      type: column.type,
      typeOid: column.typeOid,
      attnum: column.attnum,
      // What rows from before the column existed hold: read when it is added, then kept (same attnum, same column).
      missing: before === undefined ? (column.missing ?? null) : (before.missing ?? null),
    };
  });
  return { columns, rewritten };
}

/** Whether a schema version has exactly these columns (names, types, attnums), key and tenant column. */
export function sameLayout(
  version: SchemaVersion,
  columns: readonly SchemaColumn[],
  key: readonly string[],
  tenantColumn: string | null,
): boolean {
  const same = (a: SchemaColumn, b: SchemaColumn | undefined): boolean =>
    b !== undefined &&
    a.name === b.name &&
    a.type === b.type &&
    (a.typeOid ?? b.typeOid) === b.typeOid &&
    (a.attnum ?? b.attnum) === b.attnum;
  return (
    version.tenantColumn === tenantColumn &&
    version.columns.length === columns.length &&
    version.columns.every((column, i) => same(column, columns[i])) &&
    version.key.length === key.length &&
    version.key.every((column, i) => column === key[i])
  );
}

/** The newest layout of a table in a schema history. */
export function latestVersion(schemas: readonly SchemaVersion[], table: string): SchemaVersion | undefined {
  return schemas.filter((version) => version.table === table).at(-1);
}
