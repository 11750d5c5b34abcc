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

/**
 * Finds the members of the JSON object in json[start, end) and writes, for member i,
 * its key's bytes (between the quotes) at spans[4i], spans[4i+1] and its value's at
 * spans[4i+2], spans[4i+3] (-1, -1 for JSON null). Returns how many members, or -1
 * when the text is not in the form capture writes (compact, every value a string or
 * null) or has more members than `spans` holds: the caller parses it properly then.
 */
export function scanObject(json: Buffer, start: number, end: number, spans: Int32Array): number {
  if (json[start] !== 0x7b || json[end - 1] !== 0x7d) return -1;
  let at = start + 1;
  if (at === end - 1) return 0;
  for (let member = 0; 4 * member + 3 < spans.length; member++) {
    if (json[at] !== QUOTE) return -1;
    const keyEnd = stringEnd(json, at + 1, end);
    if (keyEnd < 0 || json[keyEnd + 1] !== COLON) return -1;
    spans[4 * member] = at + 1;
    spans[4 * member + 1] = keyEnd;
    at = valueAt(json, keyEnd + 2, end, spans, 4 * member + 2);
    if (at < 0) return -1;
    if (json[at] === 0x7d) return at === end - 1 ? member + 1 : -1;
    if (json[at] !== COMMA) return -1;
    at++;
  }
  return -1;
}

/** Like scanObject, for a JSON array of strings and nulls: element i's value at spans[2i], spans[2i+1]. */
export function scanArray(json: Buffer, start: number, end: number, spans: Int32Array): number {
  if (json[start] !== 0x5b || json[end - 1] !== 0x5d) return -1;
  let at = start + 1;
  if (at === end - 1) return 0;
  for (let element = 0; 2 * element + 1 < spans.length; element++) {
    at = valueAt(json, at, end, spans, 2 * element);
    if (at < 0) return -1;
    if (json[at] === 0x5d) return at === end - 1 ? element + 1 : -1;
    if (json[at] !== COMMA) return -1;
    at++;
  }
  return -1;
}

/** Records a string's bytes (or -1, -1 for null) at spans[slot]; returns where the text continues, -1 if neither. */
function valueAt(json: Buffer, at: number, end: number, spans: Int32Array, slot: number): number {
  if (json[at] === QUOTE) {
    const close = stringEnd(json, at + 1, end);
    if (close < 0) return -1;
    spans[slot] = at + 1;
    spans[slot + 1] = close;
    return close + 1;
  }
  if (json[at] === 0x6e && json[at + 1] === 0x75 && json[at + 2] === 0x6c && json[at + 3] === 0x6c) {
    spans[slot] = -1;
    spans[slot + 1] = -1;
    return at + 4;
  }
  return -1;
}

/**
 * The position of `byte` in json[from, end), or -1. Most values are short: a loop finds
 * them sooner than a call into native code, which takes over for long ones.
 */
export function find(json: Buffer, byte: number, from: number, end: number): number {
  const near = Math.min(end, from + 64);
  for (let i = from; i < near; i++) if (json[i] === byte) return i;
  if (near === end) return -1;
  const at = json.indexOf(byte, near);
  return at < end ? at : -1;
}

/** The position of the quote that ends a string whose first byte is at `from` (-1: none before `end`). */
function stringEnd(json: Buffer, from: number, end: number): number {
  for (let quote = find(json, QUOTE, from, end); quote >= 0; quote = find(json, QUOTE, quote + 1, end)) {
    // Escaped if an odd number of backslashes comes right before it.
    let slashes = 0;
    while (json[quote - 1 - slashes] === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return quote;
  }
  return -1;
}

/** Whether json[start, end) holds exactly the bytes of `expected`. */
export function sameBytes(json: Buffer, start: number, end: number, expected: Buffer): boolean {
  if (end - start !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (json[start + i] !== expected[i]) return false;
  return true;
}

/** Copies json[start, end) into `out` at `at`; returns where it ends (a loop for the short runs most values are). */
export function copyBytes(json: Buffer, start: number, end: number, out: Buffer, at: number): number {
  if (end - start > 32) return at + json.copy(out, at, start, end);
  for (let i = start; i < end; i++) out[at++] = json[i] as number;
  return at;
}

/**
 * Appends the COPY field of the JSON string json[start, end) to `out` at `at`; returns
 * where it ends. `out` must have room for end - start bytes (a field is never longer).
 * `escapes` false says the text holds no backslash (the caller looked once per row).
 */
export function copyFieldInto(json: Buffer, start: number, end: number, out: Buffer, at: number, escapes = true): number {
  if (!escapes) return copyBytes(json, start, end, out, at);
  let from = start;
  for (let escape = json.indexOf(BACKSLASH, from); escape >= 0 && escape < end; escape = json.indexOf(BACKSLASH, escape + 2)) {
    if (json[escape + 1] !== 0x75) continue;
    // \uXXXX: the one escape COPY does not share.
    at = copyBytes(json, from, escape, out, at);
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
  return copyBytes(json, from, end, out, at);
}
