// A streamed row's JSON text, written as UTF-8 bytes straight from the message's bytes:
// no string per column, no JSON.stringify, no re-encoding for DuckDB. The bytes are
// exactly what JSON.stringify of the decoded text gives, in the relation's column order.

import { isUtf8 } from 'node:buffer';
import type { Tuple } from './pgoutput.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const NULL = Buffer.from('null');

/** What JSON.stringify writes for each byte that it escapes (the others are copied). */
const ESCAPES: (Buffer | undefined)[] = Array.from({ length: 256 }, (_, byte) =>
  byte < 0x20 || byte === QUOTE || byte === BACKSLASH ? Buffer.from(JSON.stringify(String.fromCharCode(byte)).slice(1, -1)) : undefined,
);

/** The writer's buffer starts this large, and is given back when a wide row grew it past the second. */
const INITIAL_BYTES = 64 * 1024;
const KEPT_BYTES = 16 * 1024 * 1024;

let out = Buffer.allocUnsafe(INITIAL_BYTES);
let at = 0;

function reserve(bytes: number): void {
  if (at + bytes <= out.length) return;
  const grown = Buffer.allocUnsafe(Math.max(2 * out.length, at + bytes));
  out.copy(grown, 0, 0, at);
  out = grown;
}

/**
 * The row's JSON object, column name to text or null (a TOASTed value not sent is null
 * too: its marker travels beside the row). `names` are the columns' JSON names with
 * their colon, in column order. The result is a view of the writer's own buffer, valid
 * until the next call: the caller copies it (DuckDB's appender does) at once. Text that
 * is not valid UTF-8 (a database in SQL_ASCII) takes U+FFFD for each bad sequence, as a
 * decoded string would.
 */
export function rowJson(names: readonly Buffer[], tuple: Tuple): Buffer {
  if (out.length > KEPT_BYTES) out = Buffer.allocUnsafe(INITIAL_BYTES);
  const row = write(names, tuple, false);
  return isUtf8(row) ? row : write(names, tuple, true);
}

function write(names: readonly Buffer[], tuple: Tuple, decoded: boolean): Buffer {
  at = 0;
  reserve(1);
  out[at++] = 0x7b; // {
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    reserve(name.length + 1);
    if (i > 0) out[at++] = COMMA;
    put(name, 0, name.length);
    const start = tuple.spans[2 * i] ?? -1;
    if (start < 0) {
      reserve(NULL.length);
      put(NULL, 0, NULL.length);
    } else if (decoded) {
      const text = Buffer.from(JSON.stringify(tuple.value(i)));
      reserve(text.length);
      put(text, 0, text.length);
    } else {
      value(tuple.bytes, start, tuple.spans[2 * i + 1]!);
    }
  }
  reserve(1);
  out[at++] = 0x7d; // }
  return out.subarray(0, at);
}

/** Values this short are copied byte by byte: Buffer.copy's own checks cost more than the copy. */
const SHORT = 64;

/** Copies bytes[from, to) to the writer's buffer, which has the room. */
function put(bytes: Buffer, from: number, to: number): void {
  if (to - from > SHORT) {
    at += bytes.copy(out, at, from, to);
    return;
  }
  for (let i = from; i < to; i++) out[at++] = bytes[i]!;
}

/** One column's text as a JSON string: copied as it is when nothing in it needs escaping, the common case. */
function value(bytes: Buffer, start: number, end: number): void {
  let i = start;
  while (i < end) {
    const byte = bytes[i]!;
    if (byte < 0x20 || byte === QUOTE || byte === BACKSLASH) break;
    i++;
  }
  if (i === end) {
    reserve(end - start + 2);
    out[at++] = QUOTE;
    put(bytes, start, end);
    out[at++] = QUOTE;
    return;
  }
  // Up to six bytes per byte from the first one escaped: reserve what it needs exactly.
  let needed = i - start + 2;
  for (let j = i; j < end; j++) needed += ESCAPES[bytes[j]!]?.length ?? 1;
  reserve(needed);
  out[at++] = QUOTE;
  put(bytes, start, i);
  for (let j = i; j < end; j++) {
    const rest = bytes[j]!;
    const escaped = ESCAPES[rest];
    if (escaped === undefined) out[at++] = rest;
    else put(escaped, 0, escaped.length);
  }
  out[at++] = QUOTE;
}
