// A row's fingerprint, computed alike by PostgreSQL over a live row and by DuckDB over
// the vault's JSON of it: the MD5 of the JSON array of its values' text forms (the
// type's output function, as pgoutput and COPY render them; null for NULL). Its first
// 60 bits are a BIGINT, so that their sum is a table's digest. The two engines escape
// JSON alike; where they might not, a digest differs and the rows themselves are
// compared (verify.ts), so an artefact of the form never reads as a difference.

import { sqlIdentifier, type SourceTable } from '../source/index.js';
import { sqlLiteral, type SchemaVersion } from '../vault/index.js';
import { jsonArraySql, stringifiedSql } from '../capture/index.js';
import { sourceColumn } from '../timeline/index.js';

/** A captured table as verify compares it: its layout at the point, and the live table. */
export interface ComparedTable {
  /** Schema-qualified name, as the vault has it. */
  readonly name: string;
  readonly live: SourceTable;
  /** The table's layout at the point: the columns compared, in order. */
  readonly layout: SchemaVersion;
}

/** The value columns and key columns compared, by name. */
const columnsOf = (table: ComparedTable): { values: string[]; key: string[] } => ({
  values: table.layout.columns.map((column) => column.name),
  key: [...table.layout.key],
});

/** SQL on PostgreSQL: a column's text form (its type's output function), or NULL. */
export function liveText(alias: string, column: string): string {
  // num_nulls: a composite whose fields are all NULL is a value, which `IS NULL` would call NULL.
  return `CASE WHEN num_nulls(${alias}.${sqlIdentifier(column)}) = 1 THEN NULL ELSE format('%s', ${alias}.${sqlIdentifier(column)}) END`;
}

/** The canonical text of some values (SQL expressions giving text or NULL): their JSON array, on PostgreSQL. */
function liveCanonical(values: readonly string[]): string {
  return `to_json(ARRAY[${values.join(', ')}]::text[])::text`;
}

/**
 * The same on DuckDB: its JSON functions write nine control characters' escapes with
 * capital hex digits, which capture's JSON text (json-text-sql.ts) lowers, as
 * PostgreSQL writes them.
 */
function vaultCanonical(values: readonly string[]): string {
  const array = jsonArraySql(
    values.map((sql) => ({ sql, plain: false })),
    'functions',
  );
  return stringifiedSql(array, 'functions');
}

/** The first 60 bits of an MD5 as a BIGINT, on PostgreSQL. */
const liveHash = (text: string): string => `('x' || left(md5(${text}), 15))::bit(60)::bigint`;
/** The same on DuckDB. */
const vaultHash = (text: string): string => `('0x' || left(md5(${text}), 15))::BIGINT`;

/** The live table as the history holds it: a partitioned table with its partitions, any other without inheritance children (captured as tables of their own). */
export function liveRelation(table: ComparedTable): string {
  return `${table.live.partitioned ? '' : 'ONLY '}${table.live.sql}`;
}

/** SQL on PostgreSQL: the fingerprint of a live row's key (alias `alias`). */
export function liveKeyFingerprint(table: ComparedTable, alias: string): string {
  return `md5(${liveCanonical(table.layout.key.map((column) => liveText(alias, column)))})`;
}

/**
 * The live side: a subquery over `table` (alias l) restricted by `where`, giving
 * `tenant` (text or NULL), `kfp` (the key's fingerprint) and `h` (the row's). It is
 * one plain scan, which PostgreSQL may run in parallel; `relation` reads one leaf of
 * it instead (a partition, in chunks).
 */
export function liveFingerprints(table: ComparedTable, where: string, relation = liveRelation(table)): string {
  const { values } = columnsOf(table);
  const tenant = table.live.tenantColumn === undefined ? 'NULL::text' : liveText('l', table.live.tenantColumn);
  return `(SELECT ${tenant} AS tenant, ${liveKeyFingerprint(table, 'l')} AS kfp,
                  ${liveHash(liveCanonical(values.map((column) => liveText('l', column))))} AS h
             FROM ${relation} AS l WHERE ${where})`;
}

/** A JSON pointer to a member of an object: the vault's rows are objects of column name to text. */
const pointer = (name: string): string => sqlLiteral(`/${name.replaceAll('~', '~0').replaceAll('/', '~1')}`);

/**
 * The vault side, for one table's versions (alias v: the layer columns). `values` reads
 * every member the fingerprint needs from the row's JSON in one parse, as a list; `kfp`
 * (the key's fingerprint) reads the key, and `h` (the row's) reads that list as `x`,
 * the row laid out in the table's layout at the point whatever schema version it was
 * written under (as time travel lays it out).
 */
export function vaultFingerprints(table: ComparedTable, versions: readonly SchemaVersion[]): { values: string; kfp: string; h: string } {
  const { values, key } = columnsOf(table);
  const written = versions.filter((version) => version.table === table.name);
  const members: string[] = [];
  const member = (name: string): string => {
    if (!members.includes(name)) members.push(name);
    return `x[${members.indexOf(name) + 1}]`;
  };
  const valueText = (name: string): string => {
    const column = table.layout.columns.find((c) => c.name === name);
    if (column === undefined) return 'NULL';
    const from = (version: SchemaVersion): string => {
      const source = sourceColumn(version, column);
      if (source !== undefined) return member(source.name);
      return column.missing === null || column.missing === undefined ? 'NULL::VARCHAR' : sqlLiteral(column.missing);
    };
    const forms = new Map(written.map((version) => [version.id, from(version)]));
    const distinct = new Set(forms.values());
    if (distinct.size <= 1) return [...distinct][0] ?? member(name);
    return `CASE v.schema_id ${[...forms].map(([id, form]) => `WHEN ${id} THEN ${form}`).join(' ')} END`;
  };
  const h = vaultHash(vaultCanonical(values.map(valueText)));
  return {
    values: `json_extract_string(v."row", [${members.map(pointer).join(', ')}]::VARCHAR[])`,
    kfp: `md5(${vaultCanonical(key.map((_, i) => `json_extract_string(v."key", '$[${i}]')`))})`,
    h,
  };
}
