// What a restore must respect besides the rows themselves: foreign keys (the order
// of writes and dangling references), unique keys (values another row holds now)
// and the sequences behind serial and identity columns (moved past restored values).

import type pg from 'pg';
import { formatTableName } from './table-name.js';

/** A foreign key between two captured tables (partitions folded into their roots). */
export interface ForeignKey {
  readonly name: string;
  /** Qualified name of the referencing table. */
  readonly child: string;
  readonly childColumns: readonly string[];
  /** Qualified name of the referenced table. */
  readonly parent: string;
  readonly parentColumns: readonly string[];
}

/** A unique index over plain columns, other than the primary key. */
export interface UniqueKey {
  readonly name: string;
  readonly table: string;
  readonly columns: readonly string[];
}

/** A sequence that feeds a column (serial or identity). */
export interface OwnedSequence {
  readonly table: string;
  readonly column: string;
  /** The sequence's name as SQL (regclass text: schema-qualified and quoted where needed). */
  readonly sequence: string;
}

/** The constraints of the source that shape restores. */
export interface Constraints {
  readonly foreignKeys: readonly ForeignKey[];
  readonly uniqueKeys: readonly UniqueKey[];
  readonly sequences: readonly OwnedSequence[];
}

const TABLE_NAME = `(SELECT json_build_object('schema', n.nspname, 'name', c.relname)::text
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $oid)`;

/** Reads foreign keys, unique keys and owned sequences of every user table. */
export async function readConstraints(client: pg.Client): Promise<Constraints> {
  const columnsOf = (relid: string, attnums: string) =>
    `(SELECT json_agg(a.attname ORDER BY pos.ord)::text FROM unnest(${attnums}) WITH ORDINALITY AS pos(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = ${relid} AND a.attnum = pos.attnum)`;
  const foreignKeys = await client.query<{ name: string; child: string; child_columns: string; parent: string; parent_columns: string }>(`
    SELECT k.conname AS name,
           ${TABLE_NAME.replace('$oid', 'k.conrelid')} AS child, ${columnsOf('k.conrelid', 'k.conkey')} AS child_columns,
           ${TABLE_NAME.replace('$oid', 'k.confrelid')} AS parent, ${columnsOf('k.confrelid', 'k.confkey')} AS parent_columns
      FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
     WHERE k.contype = 'f' AND k.conparentid = 0 AND NOT c.relispartition`);
  // Partial and expression indexes are left out: their conflicts cannot be judged by column values alone.
  const uniqueKeys = await client.query<{ name: string; table: string; columns: string }>(`
    SELECT x.relname AS name, ${TABLE_NAME.replace('$oid', 'i.indrelid')} AS table, ${columnsOf('i.indrelid', 'i.indkey::int2[]')} AS columns
      FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class x ON x.oid = i.indexrelid
     WHERE i.indisunique AND NOT i.indisprimary AND i.indpred IS NULL AND i.indexprs IS NULL
       AND NOT c.relispartition AND c.relnamespace <> 'pg_catalog'::regnamespace`);
  const sequences = await client.query<{ table: string; column: string; sequence: string }>(`
    SELECT ${TABLE_NAME.replace('$oid', 'd.refobjid')} AS table, a.attname AS column, d.objid::regclass::text AS sequence
      FROM pg_depend d
      JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
      JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')`);
  const table = (json: string): string => formatTableName(JSON.parse(json) as { schema: string; name: string });
  return {
    foreignKeys: foreignKeys.rows.map((row) => ({
      name: row.name,
      child: table(row.child),
      childColumns: JSON.parse(row.child_columns) as string[],
      parent: table(row.parent),
      parentColumns: JSON.parse(row.parent_columns) as string[],
    })),
    uniqueKeys: uniqueKeys.rows.map((row) => ({ name: row.name, table: table(row.table), columns: JSON.parse(row.columns) as string[] })),
    sequences: sequences.rows.map((row) => ({ table: table(row.table), column: row.column, sequence: row.sequence })),
  };
}
