// The values of a stored row as COPY text fields, read from its JSON's bytes without
// decoding them. Capture stores a row as JSON.stringify of an object whose values are
// strings or null, and a key as JSON.stringify of an array of them. JSON's escapes in
// a string (\" \\ \/ \b \f \n \r \t) mean the same in COPY's text format, where any
// other backslashed character stands for itself, and JSON never holds a raw tab or
// line break: so a string's bytes between its quotes are its COPY field as they are.
// Only \uXXXX differs: it becomes \xXX for a control character, or the character's
// UTF-8 bytes. Why not DuckDB's JSON functions: they take about nine times the text
// of 2,048 rows at once, more than a small budget's DuckDB share for rows of 2 KB.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;

/** Where a member's value lies: the bytes between its quotes, or null for JSON null. */
export type ValueSpan = readonly [start: number, end: number] | null;

/**
 * Calls `member` for each member of the JSON object in json[start, end), with where its
 * key's bytes lie (between the quotes) and where its value lies. Returns false, having
 * called nothing past the fault, when the text is not in the form capture writes
 * (compact, every value a string or null): the caller parses it properly then.
 */
export function scanObject(
  json: Buffer,
  start: number,
  end: number,
  member: (keyStart: number, keyEnd: number, value: ValueSpan) => void,
): boolean {
  if (json[start] !== 0x7b || json[end - 1] !== 0x7d) return false;
  let at = start + 1;
  if (at === end - 1) return true;
  for (;;) {
    if (json[at] !== QUOTE) return false;
    const keyEnd = stringEnd(json, at + 1, end);
    if (keyEnd < 0 || json[keyEnd + 1] !== COLON) return false;
    const value = valueAt(json, keyEnd + 2, end);
    if (value === undefined) return false;
    member(at + 1, keyEnd, value.span);
    at = value.next;
    if (json[at] === 0x7d) return at === end - 1;
    if (json[at] !== COMMA) return false;
    at++;
  }
}

/** Calls `element` for each element of the JSON array in json[start, end); false when it is not strings and nulls. */
export function scanArray(json: Buffer, start: number, end: number, element: (index: number, value: ValueSpan) => void): boolean {
  if (json[start] !== 0x5b || json[end - 1] !== 0x5d) return false;
  let at = start + 1;
  if (at === end - 1) return true;
  for (let index = 0; ; index++) {
    const value = valueAt(json, at, end);
    if (value === undefined) return false;
    element(index, value.span);
    at = value.next;
    if (json[at] === 0x5d) return at === end - 1;
    if (json[at] !== COMMA) return false;
    at++;
  }
}

/** A string or null value at `at`, and where the text continues after it. */
function valueAt(json: Buffer, at: number, end: number): { span: ValueSpan; next: number } | undefined {
  if (json[at] === QUOTE) {
    const close = stringEnd(json, at + 1, end);
    return close < 0 ? undefined : { span: [at + 1, close], next: close + 1 };
  }
  if (json[at] === 0x6e && json[at + 1] === 0x75 && json[at + 2] === 0x6c && json[at + 3] === 0x6c) return { span: null, next: at + 4 };
  return undefined;
}

/** The position of the quote that ends a string whose first byte is at `from` (-1: none before `end`). */
function stringEnd(json: Buffer, from: number, end: number): number {
  for (let quote = json.indexOf(QUOTE, from); quote >= 0 && quote < end; quote = json.indexOf(QUOTE, quote + 1)) {
    // Escaped if an odd number of backslashes comes right before it.
    let slashes = 0;
    while (json[quote - 1 - slashes] === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return quote;
  }
  return -1;
}

/**
 * Appends the COPY field of the JSON string json[start, end) to `out` at `at`; returns
 * where it ends. `out` must have room for end - start bytes (a field is never longer).
 */
export function copyFieldInto(json: Buffer, start: number, end: number, out: Buffer, at: number): number {
  let from = start;
  for (let escape = json.indexOf(BACKSLASH, from); escape >= 0 && escape < end; escape = json.indexOf(BACKSLASH, escape + 2)) {
    if (json[escape + 1] !== 0x75) continue;
    // \uXXXX: the one escape COPY does not share.
    at += json.copy(out, at, from, escape);
    let code = parseInt(json.toString('latin1', escape + 2, escape + 6), 16);
    let next = escape + 6;
    if (code >= 0xd800 && code <= 0xdbff && json[next] === BACKSLASH && json[next + 1] === 0x75) {
      const low = parseInt(json.toString('latin1', next + 2, next + 6), 16);
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        next += 6;
      }
    }
    at +=
      code < 0x20 ? out.write(`\\x${code.toString(16).padStart(2, '0')}`, at, 'latin1') : out.write(String.fromCodePoint(code), at, 'utf8');
    from = next;
    escape = next - 2;
  }
  return at + json.copy(out, at, from, end);
}
