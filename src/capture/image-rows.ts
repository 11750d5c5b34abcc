// Image rows from COPY text, in DuckDB: the `COPY … TO STDOUT` lines of one or more
// tables, read from files by DuckDB's CSV reader, become layer rows in layer order,
// whose key and row are the very text JSON.stringify makes of the values (as the
// stream's rows are), so that the image and the stream meet by key.

import { sqlLiteral, type SchemaVersion } from '../vault/index.js';
import { jsonArraySql, jsonObjectSql, stringifiedSql, type JsonWriting, type TextValue } from './json-text-sql.js';

/** The first line of every file of COPY text, skipped as a header (a BOM at a file's start would be dropped). */
export const COPY_FILE_HEADER = 'recall image\n';

/** How many fields a table's COPY lines hold: a line of one field, or none, gets a second one so that it is never empty. */
function copyFieldCount(schema: SchemaVersion): number {
  return Math.max(schema.columns.length, 2);
}

/** The SELECT list whose `COPY (…) TO STDOUT` a file holds, in the schema's column order. */
export function copySelectList(schema: SchemaVersion, quote: (name: string) => string): string {
  // DuckDB's CSV reader skips empty lines: a one-column row holding '' would vanish.
  const padding = Array.from({ length: copyFieldCount(schema) - schema.columns.length }, () => "''");
  return [...schema.columns.map((column) => quote(column.name)), ...padding].join(', ');
}

/** One file of a table's COPY text, and the longest line it can hold (DuckDB's reader must be told). */
export interface CopyFile {
  readonly path: string;
  readonly longestLine: number;
}

/** A table's lines in one file. */
export interface Segment {
  readonly schema: SchemaVersion;
  readonly file: CopyFile;
}

/** The reader's smallest line limit and buffer: its defaults, which most files never approach. */
const MIN_LINE_BYTES = 2 * 1024 * 1024;
const MIN_BUFFER_BYTES = 16 * 1024 * 1024;

/**
 * Built-in types whose text form never holds a backslash, a double quote or a control
 * character (numbers, booleans, uuids, dates and times, network addresses, bit
 * strings): COPY writes them as they are and JSON needs no escape in them, so their
 * fields skip both checks. Domains have their own type ids and take the general path.
 */
const PLAIN_TYPES = new Set([
  16, 20, 21, 23, 26, 28, 650, 700, 701, 774, 790, 829, 869, 1082, 1083, 1114, 1184, 1186, 1266, 1560, 1562, 1700, 2950, 3220, 5069,
]);

/**
 * A SELECT of the segments' lines as layer rows (LAYER_COLUMN_NAMES), image rows at `at`,
 * sorted in layer order (tenant, table, key: the LSN and position are the same for all),
 * their JSON written as `writing` says. Only the tenant, the key and the values go
 * through the sort, and each row's JSON is built after it: DuckDB's sort costs by the
 * bytes it moves, and JSON repeats every column name. Schema ids tell tables apart.
 */
export function imageRowsSql(segments: readonly Segment[], at: { lsn: bigint; micros: bigint }, writing: JsonWriting): string {
  const width = Math.max(...segments.map((segment) => copyFieldCount(segment.schema)));
  const values = Array.from({ length: width }, (_, i) => `v${i}`);
  const reads = segments.map(({ schema, file }) => {
    const fields = Array.from({ length: copyFieldCount(schema) }, (_, i) => `f${i}`);
    const unescaped = values.map((name, i) => {
      const column = schema.columns[i];
      if (column === undefined) return `NULL::VARCHAR AS ${name}`;
      return `${plain(column) ? `f${i}` : unescapedSql(`f${i}`)} AS ${name}`;
    });
    const value = (name: string): TextValue => {
      const i = schema.columns.findIndex((column) => column.name === name);
      const column = schema.columns[i];
      return column === undefined ? { sql: 'NULL::VARCHAR', plain: true } : { sql: `v${i}`, plain: plain(column) };
    };
    const tenant = schema.tenantColumn === null ? 'NULL::VARCHAR' : value(schema.tenantColumn).sql;
    const lineBytes = Math.max(MIN_LINE_BYTES, file.longestLine + 1);
    const read = `read_csv(${sqlLiteral(file.path)}, delim = chr(9), quote = '', escape = '', nullstr = '\\N', header = true,
        auto_detect = false, max_line_size = ${lineBytes}, buffer_size = ${Math.max(MIN_BUFFER_BYTES, 2 * lineBytes)},
        columns = {${fields.map((field) => `'${field}': 'VARCHAR'`).join(', ')}})`;
    // The key is sorted on in its final text, so its capitals are lowered before the sort.
    return `SELECT ${schema.id}::UINTEGER AS schema_id, ${sqlLiteral(schema.table)} AS "table", ${tenant} AS tenant,
                   ${stringifiedSql('k', writing)} AS "key", ${values.join(', ')}
              FROM (SELECT *, ${jsonArraySql(schema.key.map(value), writing)} AS k FROM (SELECT ${unescaped.join(', ')} FROM ${read}))`;
  });
  const rows = segments.map(({ schema }) => {
    const members = schema.columns.map((column, i) => ({ name: column.name, sql: `v${i}`, plain: plain(column) }));
    return `WHEN ${schema.id} THEN ${jsonObjectSql(members, writing)}`;
  });
  return `SELECT ${at.lsn}::UBIGINT AS commit_lsn, 0::UINTEGER AS seq, make_timestamp(${at.micros}::BIGINT) AS commit_time,
                 NULL::UBIGINT AS xid, "table", 'image' AS op, tenant, "key", schema_id, ${stringifiedSql('"row"', writing)} AS "row",
                 NULL::VARCHAR AS context
            FROM (SELECT schema_id, "table", tenant, "key", CASE schema_id ${rows.join(' ')} END AS "row"
                    FROM (${reads.join('\nUNION ALL\n')}
                          ORDER BY tenant, "table", "key"))`;
}

function plain(column: Segment['schema']['columns'][number]): boolean {
  return PLAIN_TYPES.has(column.typeOid ?? 0);
}

/**
 * A COPY text field's value: COPY writes a backslash as \\ and six control characters
 * as \b \f \n \r \t \v, nothing else. Split at each \\ (every backslash begins a
 * two-character escape, so the split falls between escapes), each piece holds only the
 * six, and the pieces join again with one backslash. Most values hold none: one scan.
 */
function unescapedSql(field: string): string {
  const controls: [string, number][] = [
    ['n', 10],
    ['t', 9],
    ['r', 13],
    ['b', 8],
    ['f', 12],
    ['v', 11],
  ];
  const piece = controls.reduce((text, [letter, code]) => `replace(${text}, '\\${letter}', chr(${code}))`, 'p');
  return `CASE WHEN contains(${field}, '\\') THEN array_to_string(list_transform(string_split(${field}, '\\\\'), p -> ${piece}), '\\') ELSE ${field} END`;
}
