// COPY text for the staging tables, rendered by DuckDB next to the vault's rows: a
// stored row's values, laid out as the plan writes its table and escaped as COPY's
// text format, one string per row. DuckDB's JSON functions take about nine times the
// text of a vector's rows, so rows too wide for the budget are rendered in Node
// instead (target-lines.ts).

import { sourceColumn, type VaultReader } from '../timeline/index.js';
import { sqlLiteral, type SchemaVersion } from '../vault/index.js';

/** What a staging table takes: the columns given values, in order, and the key. */
export interface StagedShape {
  readonly name: string;
  readonly columns: readonly string[];
  readonly key: readonly string[];
}

/** One field of COPY's text format: \N for NULL, backslash escapes for the rest. */
export function copyField(value: string | null): string {
  if (value === null) return '\\N';
  return value.replace(/[\\\n\r\t]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t'));
}

/** copyField in DuckDB SQL, for a VARCHAR expression. */
export function copyFieldSql(value: string): string {
  // Few values hold a character to escape, and one scan for them costs less than four replaces.
  const escaped = `replace(replace(replace(replace(${value}, '\\', '\\\\'), chr(10), '\\n'), chr(13), '\\r'), chr(9), '\\t')`;
  return `coalesce(CASE WHEN regexp_matches(${value}, '[\\\\\\n\\r\\t]') THEN ${escaped} ELSE ${value} END, '\\N')`;
}

/** A JSON pointer (RFC 6901) to a member or an element, as a DuckDB literal. */
function pointer(member: string | number): string {
  return sqlLiteral(`/${String(member).replaceAll('~', '~0').replaceAll('/', '~1')}`);
}

/**
 * DuckDB SQL for the COPY fields of a stored row: `rowSql` is its JSON text and
 * `schemaSql` the id of the schema version it was written under; the fields are the
 * staging table's columns in the layout its table has at `layoutLsn` (a column the
 * row predates holds its ADD COLUMN default). NULL for a schema of another table.
 */
export function rowFieldsSql(
  reader: VaultReader,
  shapes: readonly StagedShape[],
  layoutLsn: bigint,
  rowSql: string,
  schemaSql: string,
): string {
  const cases: string[] = [];
  for (const shape of shapes) {
    const layout = reader.layoutAt(shape.name, layoutLsn);
    for (const written of reader.manifest.schemas.filter((version) => version.table === shape.name)) {
      cases.push(`WHEN ${written.id} THEN ${fieldsOf(shape, written, layout, rowSql)}`);
    }
  }
  return cases.length === 0 ? 'NULL::VARCHAR' : `CASE ${schemaSql} ${cases.join(' ')} END`;
}

function fieldsOf(shape: StagedShape, written: SchemaVersion, layout: SchemaVersion | undefined, rowSql: string): string {
  const paths: string[] = [];
  const defaults: string[] = [];
  shape.columns.forEach((name, i) => {
    const column = layout?.columns.find((c) => c.name === name);
    const source = column === undefined ? written.columns.find((c) => c.name === name) : sourceColumn(written, column);
    // The pointer "/" names the member "", which no column is: it yields NULL, and a
    // column the row predates takes its default in its place.
    paths.push(pointer(source?.name ?? ''));
    if (source === undefined && column?.missing != null) defaults.push(`WHEN ${i + 1} THEN ${sqlLiteral(copyField(column.missing))}`);
  });
  // One parse of the JSON per row: json_extract_string with a list of paths gives a list.
  const values = `json_extract_string(${rowSql}, [${paths.join(', ')}])`;
  const render = (field: string): string =>
    `array_to_string(list_transform(${values}, ${defaults.length === 0 ? `lambda x: ${field}` : `lambda x, i: CASE i ${defaults.join(' ')} ELSE ${field} END`}), chr(9))`;
  // JSON writes a backslash, tab, newline or carriage return inside a string as an
  // escape (\\, \t, \n, \r, or \u00XX): a row whose text has none of those holds no
  // value COPY needs escaped, and one scan of the row spares a scan of every value.
  return `CASE WHEN regexp_matches(${rowSql}, '\\\\[\\\\nrt]|\\\\u00') THEN ${render(copyFieldSql('x'))} ELSE ${render(`coalesce(x, '\\N')`)} END`;
}

/**
 * DuckDB SQL for the COPY fields of a row known only by its key (`keySql`, a JSON
 * array; `tableSql`, its table): the key columns set, the others NULL.
 */
export function keyFieldsSql(shapes: readonly StagedShape[], tableSql: string, keySql: string): string {
  const cases = shapes.map((shape) => {
    const values = shape.columns.map((name) => {
      const position = shape.key.indexOf(name);
      return position < 0 ? 'NULL::VARCHAR' : `json_extract_string(${keySql}, ${pointer(position)})`;
    });
    return `WHEN ${sqlLiteral(shape.name)} THEN ${values.map(copyFieldSql).join(' || chr(9) || ')}`;
  });
  return cases.length === 0 ? 'NULL::VARCHAR' : `CASE ${tableSql} ${cases.join(' ')} END`;
}
