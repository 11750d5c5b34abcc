// A streamed row's JSON, written from the message's bytes, is byte for byte what
// JSON.stringify gives for the decoded text: every escape, any UTF-8, NULL and TOAST
// markers, values large enough to grow the writer's buffer, and bytes that are not
// UTF-8 at all (a SQL_ASCII database), which become U+FFFD as a decoded string would.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodePgoutput, UNCHANGED_TOAST, type ColumnValue, type Tuple } from '../src/capture/pgoutput.js';
import { rowJson } from '../src/capture/row-json.js';

/** An Insert message as the walsender sends it: 'n' NULL, 'u' unchanged TOAST, 't' text. */
function insertMessage(columns: readonly (Buffer | null | typeof UNCHANGED_TOAST)[]): Buffer {
  const parts: Buffer[] = [Buffer.from('I'), Buffer.alloc(4), Buffer.from('N'), Buffer.alloc(2)];
  parts[3]!.writeInt16BE(columns.length);
  for (const column of columns) {
    if (column === null) parts.push(Buffer.from('n'));
    else if (column === UNCHANGED_TOAST) parts.push(Buffer.from('u'));
    else {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(column.length);
      parts.push(Buffer.from('t'), length, column);
    }
  }
  return Buffer.concat(parts);
}

function decodedTuple(columns: readonly (Buffer | null | typeof UNCHANGED_TOAST)[]): Tuple {
  const message = decodePgoutput(insertMessage(columns));
  assert.equal(message.tag, 'insert');
  return message.row;
}

/** What the row's JSON must be: JSON.stringify of each decoded value, in column order. */
function expected(names: readonly string[], values: readonly ColumnValue[]): string {
  return `{${names.map((name, i) => `${JSON.stringify(name)}:${typeof values[i] === 'string' ? JSON.stringify(values[i]) : 'null'}`).join(',')}}`;
}

function check(columns: readonly (Buffer | null | typeof UNCHANGED_TOAST)[]): void {
  const names = columns.map((_, i) => (i % 3 === 0 ? `c${i}` : i % 3 === 1 ? `"odd"\\${i}` : `é${i}`));
  const tuple = decodedTuple(columns);
  const values = columns.map((_, i) => tuple.value(i));
  const json = rowJson(
    names.map((name) => Buffer.from(`${JSON.stringify(name)}:`)),
    tuple,
  );
  assert.equal(json.toString('utf8'), expected(names, values));
  assert.deepEqual(
    JSON.parse(json.toString('utf8')),
    Object.fromEntries(names.map((name, i) => [name, typeof values[i] === 'string' ? values[i] : null])),
  );
}

test('plain text, NULL and unchanged TOAST values', () => {
  check([Buffer.from('42'), null, UNCHANGED_TOAST, Buffer.from(''), Buffer.from('2026-01-01 00:00:00+00')]);
  const tuple = decodedTuple([Buffer.from('a'), UNCHANGED_TOAST, null]);
  assert.equal(tuple.hasUnchanged, true);
  assert.deepEqual([tuple.value(0), tuple.value(1), tuple.value(2), tuple.value(3)], ['a', UNCHANGED_TOAST, null, null]);
});

test('every byte JSON escapes: quotes, backslashes and each control character', () => {
  const controls = Buffer.from(Array.from({ length: 32 }, (_, byte) => byte));
  check([controls, Buffer.from('say "hi" \\ back\\slash'), Buffer.from('{"n": 1, "note": "x\ny"}'), Buffer.from('\u007f del')]);
  // Escapes only after a long plain run, and a value that is one escape.
  check([Buffer.from(`${'p'.repeat(500)}"${'q'.repeat(500)}`), Buffer.from('"'), Buffer.from('\\')]);
});

test('any UTF-8: accents, CJK, emoji, the line and paragraph separators', () => {
  check([Buffer.from('café – 東京 😀'), Buffer.from('\u2028\u2029'), Buffer.from('\u{10ffff}')]);
});

test('values that grow the buffer: a megabyte of plain text, and one full of escapes', () => {
  check([Buffer.alloc(1024 * 1024, 'a'), Buffer.from('small')]);
  check([Buffer.alloc(3 * 1024 * 1024, '\u0001'), Buffer.alloc(20 * 1024 * 1024, '"')]);
  // The next ordinary row after the buffer was given back.
  check([Buffer.from('after'), null]);
});

test('bytes that are not UTF-8 become U+FFFD, as a decoded string would', () => {
  const invalid = [Buffer.from([0x61, 0xff, 0x62]), Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"ok"')];
  check(invalid);
  const json = rowJson([Buffer.from('"v":')], decodedTuple([Buffer.from([0x61, 0xff])]));
  assert.equal(json.toString('utf8'), '{"v":"a\ufffd"}');
});
