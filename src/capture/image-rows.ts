// Image rows from COPY text, in DuckDB: the `COPY … TO STDOUT` lines of one or more
// tables, read from files by DuckDB's CSV reader, become layer rows in layer order,
// whose key and row are the very text JSON.stringify makes of the values (as the
// stream's rows are), so that the image and the stream meet by key.

import { sqlLiteral, type SchemaVersion } from '../vault/index.js';

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
 * A SELECT of the segments' lines as layer rows (LAYER_COLUMN_NAMES), image rows at `at`,
 * sorted in layer order (tenant, table, key: the LSN and position are the same for all).
 * Only the tenant, the key and the raw fields go through the sort, and each row's JSON
 * is built after it: DuckDB's sort costs by the bytes it moves, and JSON repeats every
 * column name. Schema ids tell the tables apart after the sort.
 */
export function imageRowsSql(segments: readonly Segment[], at: { lsn: bigint; micros: bigint }): string {
  const width = Math.max(...segments.map((segment) => copyFieldCount(segment.schema)));
  const fields = Array.from({ length: width }, (_, i) => `f${i}`);
  const reads = segments.map(({ schema, file }) => {
    const own = fields.slice(0, copyFieldCount(schema));
    const value = (name: string): string => {
      const i = schema.columns.findIndex((column) => column.name === name);
      return i === -1 ? 'NULL::VARCHAR' : unescapedSql(`f${i}`);
    };
    const key = schema.key.map(value);
    const tenant = schema.tenantColumn === null ? 'NULL::VARCHAR' : value(schema.tenantColumn);
    const lineBytes = Math.max(MIN_LINE_BYTES, file.longestLine + 1);
    const read = `read_csv(${sqlLiteral(file.path)}, delim = chr(9), quote = '', escape = '', nullstr = '\\N', header = true,
        auto_detect = false, max_line_size = ${lineBytes}, buffer_size = ${Math.max(MIN_BUFFER_BYTES, 2 * lineBytes)},
        columns = {${own.map((field) => `'${field}': 'VARCHAR'`).join(', ')}})`;
    const padded = fields.map((field, i) => (i < own.length ? field : `NULL::VARCHAR AS ${field}`));
    return `SELECT ${schema.id}::UINTEGER AS schema_id, ${sqlLiteral(schema.table)} AS "table", ${tenant} AS tenant,
                   to_json([${key.join(', ')}]::VARCHAR[])::VARCHAR AS "key", ${padded.join(', ')} FROM ${read}`;
  });
  const rows = segments.map(({ schema }) => {
    const members = schema.columns.map((column, i) => `${sqlLiteral(column.name)}, ${unescapedSql(`f${i}`)}`);
    return `WHEN ${schema.id} THEN json_object(${members.join(', ')})::VARCHAR`;
  });
  return `SELECT ${at.lsn}::UBIGINT AS commit_lsn, 0::UINTEGER AS seq, make_timestamp(${at.micros}::BIGINT) AS commit_time,
                 NULL::UBIGINT AS xid, "table", 'image' AS op, tenant, ${stringifiedSql('"key"')} AS "key", schema_id,
                 ${stringifiedSql('"row"')} AS "row", NULL::VARCHAR AS context
            FROM (SELECT schema_id, "table", tenant, "key", CASE schema_id ${rows.join(' ')} END AS "row"
                    FROM (${reads.join('\nUNION ALL\n')}
                          ORDER BY tenant, "table", "key"))`;
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

/** Control characters DuckDB's JSON writes as \u00XX with capitals, where JSON.stringify writes small letters. */
const CAPITAL_ESCAPES = ['0B', '0E', '0F', '1A', '1B', '1C', '1D', '1E', '1F'];

/**
 * DuckDB's JSON text made JSON.stringify's: the same but for the hex digits of those
 * escapes. An escaped backslash (\\) is set aside first, so that "\\u001F" (a backslash
 * followed by the text u001F) stays as it is; JSON text never holds a raw chr(1).
 */
function stringifiedSql(json: string): string {
  const lowered = CAPITAL_ESCAPES.reduce(
    (text, hex) => `replace(${text}, '\\u00${hex}', '\\u00${hex.toLowerCase()}')`,
    `replace(${json}, '\\\\', chr(1))`,
  );
  return `CASE WHEN contains(${json}, '\\u00') THEN replace(${lowered}, chr(1), '\\\\') ELSE ${json} END`;
}
