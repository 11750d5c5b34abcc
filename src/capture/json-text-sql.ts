// JSON text of text values in DuckDB SQL, byte for byte what JSON.stringify writes of
// the same values (capture's form, which the image's keys and rows must match), in two
// ways: DuckDB's JSON functions, fast but holding some sixteen times a vector's text
// at once, and concatenation, slower but holding no more than the text itself.

import { sqlLiteral } from '../vault/index.js';

/** How JSON text is written: 'functions' for rows of ordinary width, 'concatenation' where one vector's text could be large. */
export type JsonWriting = 'functions' | 'concatenation';

/** A text value: its SQL, and whether its type's text never holds a backslash, a double quote or a control character. */
export interface TextValue {
  readonly sql: string;
  readonly plain: boolean;
}

/** The JSON array of `values` (each a string, or null). */
export function jsonArraySql(values: readonly TextValue[], writing: JsonWriting): string {
  if (values.length === 0) return `'[]'`;
  if (writing === 'functions') return `to_json([${values.map((value) => value.sql).join(', ')}]::VARCHAR[])::VARCHAR`;
  return `concat('[', ${values.map(jsonStringSql).join(", ',', ")}, ']')`;
}

/** The JSON object of `members`, in their order (each a string, or null). */
export function jsonObjectSql(members: readonly (TextValue & { readonly name: string })[], writing: JsonWriting): string {
  if (members.length === 0) return `'{}'`;
  if (writing === 'functions')
    return `json_object(${members.map((member) => `${sqlLiteral(member.name)}, ${member.sql}`).join(', ')})::VARCHAR`;
  const parts = members.map(
    (member, i) => `${sqlLiteral(`${i === 0 ? '{' : ','}${JSON.stringify(member.name)}:`)}, ${jsonStringSql(member)}`,
  );
  return `concat(${parts.join(', ')}, '}')`;
}

/** Control characters DuckDB's JSON functions write as \u00XX with capitals, where JSON.stringify writes small letters. */
const CAPITAL_ESCAPES = ['0B', '0E', '0F', '1A', '1B', '1C', '1D', '1E', '1F'];

/**
 * The text `json` (a column of JSON text written as `writing` says) as JSON.stringify
 * writes it. The functions' text differs only in those hex digits: an escaped
 * backslash (\\) is set aside first, so that "\\u001F" (a backslash, then the text
 * u001F) stays as it is; JSON text never holds a raw chr(1). Concatenation's is already.
 */
export function stringifiedSql(json: string, writing: JsonWriting): string {
  if (writing === 'concatenation') return json;
  const lowered = CAPITAL_ESCAPES.reduce(
    (text, hex) => `replace(${text}, '\\u00${hex}', '\\u00${hex.toLowerCase()}')`,
    `replace(${json}, '\\\\', chr(1))`,
  );
  return `CASE WHEN contains(${json}, '\\u00') THEN replace(${lowered}, chr(1), '\\\\') ELSE ${json} END`;
}

/** JSON.stringify's escapes for control characters: five short ones, \u00xx with small hex digits for the rest. */
const CONTROL_ESCAPES = Array.from({ length: 31 }, (_, i) => JSON.stringify(String.fromCharCode(i + 1)).slice(1, -1));

/** JSON.stringify of one value by concatenation; only a value holding a backslash, a quote or a control character is escaped. */
function jsonStringSql(value: TextValue): string {
  // || (unlike concat) gives NULL for NULL.
  const quoted = `'"' || ${value.sql} || '"'`;
  if (value.plain) return `coalesce(${quoted}, 'null')`;
  const escaped = CONTROL_ESCAPES.reduce(
    (text, escape, i) => `replace(${text}, chr(${i + 1}), ${sqlLiteral(escape)})`,
    `replace(replace(${value.sql}, '\\', '\\\\'), '"', '\\"')`,
  );
  return `CASE WHEN ${value.sql} IS NULL THEN 'null' WHEN regexp_matches(${value.sql}, '["\\\\\\x01-\\x1f]') THEN '"' || ${escaped} || '"' ELSE ${quoted} END`;
}
