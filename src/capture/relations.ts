// What each relation id in the stream means: its table, its columns, its key and
// tenant column, and the schema version its rows are written under. A Relation
// message whose layout differs from the newest known one starts a new version, so
// rows captured before an ADD/DROP/RENAME COLUMN stay readable.

import type pg from 'pg';
import type { RelationColumn } from './pgoutput.js';
import { identityKeySql, tenantColumnOf, formatTableName, type TenancyConfig } from '../source/index.js';
import type { SchemaColumn, SchemaVersion } from '../vault/index.js';

/** A relation of the stream, ready to turn tuples into changes. */
export interface StreamRelation {
  readonly table: string;
  readonly columnNames: readonly string[];
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

  constructor(
    schemas: readonly SchemaVersion[],
    private readonly tenancy: TenancyConfig,
    private readonly catalog: pg.Client,
  ) {
    this.schemas = [...schemas];
  }

  /** Every schema version known, new ones included (for the next manifest). */
  get history(): readonly SchemaVersion[] {
    return this.schemas;
  }

  /** The newest layout known of a table. */
  latest(table: string): SchemaVersion | undefined {
    return this.schemas.filter((version) => version.table === table).at(-1);
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

  /** Records a Relation message; `lsn` is the commit LSN of the transaction it arrived in. */
  async define(
    message: { relationId: number; schema: string; name: string; columns: readonly RelationColumn[] },
    lsn: bigint,
  ): Promise<void> {
    const table = formatTableName(message);
    const names = message.columns.map((column) => column.name);
    const key = await this.keyOf(message.relationId, names);
    const tenantColumn = tenantColumnOf(table, names, key, this.tenancy) ?? null;
    const latest = this.latest(table);
    // Described every time: a column dropped and added again under its old name differs only by attnum.
    const { columns, rewritten } = await this.describe(message.relationId, message.columns, latest);
    let version = latest;
    if (latest === undefined || !sameLayout(latest, columns, key, tenantColumn)) {
      if (latest !== undefined && rewritten) this.rewrittenTables.add(table);
      const created: SchemaVersion = { id: this.schemas.length, table, sinceLsn: lsn, columns, key, tenantColumn };
      this.schemas.push(created);
      version = created;
    }
    const tenantIndex = tenantColumn === null ? undefined : names.indexOf(tenantColumn);
    this.byId.set(message.relationId, {
      table,
      columnNames: names,
      keyIndexes: key.map((column) => names.indexOf(column)),
      tenantIndex: tenantIndex === -1 ? undefined : tenantIndex,
      schemaId: (version as SchemaVersion).id,
    });
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

  /**
   * Type names, attnums and ADD COLUMN defaults, read from the source's catalog; and
   * whether the table was rewritten since `previous`: a kept column changed type (its
   * values were converted), or a column came with a default that is not a stored
   * missing value (a volatile default, computed row by row).
   */
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
    const known = new Map(previous?.columns.map((column) => [column.attnum ?? column.name, column]));
    let rewritten = false;
    const described = rows.map((row, i) => {
      const attnum = row.attnum === null ? undefined : Number(row.attnum);
      const before = known.get(attnum ?? row.name);
      if (before !== undefined && before.type !== row.type) rewritten = true;
      if (before === undefined && row.has_default === 'true' && row.has_missing !== 'true') rewritten = true;
      return {
        name: row.name,
        type: row.type,
        typeOid: columns[i]?.typeOid,
        attnum,
        // Only a column new in this version can hold a value rows never stored.
        missing: before === undefined && row.has_missing === 'true' ? row.missing : null,
      };
    });
    return { columns: described, rewritten };
  }
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
