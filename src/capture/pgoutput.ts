// Decoder for the pgoutput logical replication protocol (protocol version 1 with
// logical messages). Unlike general-purpose parsers it never converts a value: each
// column stays the exact text the walsender rendered, so every type round-trips. A row's
// columns stay bytes until something asks for one's text (its key, its tenant).

import type { Lsn } from '../timeline/index.js';

/** Marks a TOASTed column that an UPDATE left unchanged: its value is not sent. */
export const UNCHANGED_TOAST = Symbol('unchanged-toast');

/** One column of a tuple: PostgreSQL's text form, NULL, or "unchanged, not sent". */
export type ColumnValue = string | null | typeof UNCHANGED_TOAST;

/** A span's start for a NULL column, and for a TOASTed one an UPDATE left unchanged. */
const NULL_SPAN = -1;
const UNCHANGED_SPAN = -2;

/**
 * A row as the stream sent it: each column a span of the walsender's text in a private
 * copy of the message's bytes (the socket reader reuses its buffer), so its JSON can be
 * written from the bytes (row-json.ts) and only the columns asked for become strings.
 */
export class Tuple {
  constructor(
    /** The tuple's bytes, its own copy. */
    readonly bytes: Buffer,
    /** Per column, the start and end of its text in `bytes`; a start below zero is NULL or unchanged. */
    readonly spans: readonly number[],
    /** Whether some column is an unchanged TOAST value (not sent). */
    readonly hasUnchanged: boolean,
  ) {}

  /** Column `i`'s text, NULL (also past the last column), or the unchanged marker. */
  value(i: number): ColumnValue {
    const start = this.spans[2 * i] ?? NULL_SPAN;
    if (start === UNCHANGED_SPAN) return UNCHANGED_TOAST;
    return start < 0 ? null : this.bytes.toString('utf8', start, this.spans[2 * i + 1]);
  }

  isUnchanged(i: number): boolean {
    return this.spans[2 * i] === UNCHANGED_SPAN;
  }
}

/** A column as the Relation message describes it. */
export interface RelationColumn {
  readonly name: string;
  readonly typeOid: number;
  readonly typeMod: number;
  /** Part of the replica identity (the primary key by default). */
  readonly isKey: boolean;
}

/** Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01). */
const PG_EPOCH_OFFSET_MICROS = 946_684_800_000_000n;

/** A decoded pgoutput message. Times are microseconds since the Unix epoch. */
export type PgoutputMessage =
  | { readonly tag: 'begin'; readonly finalLsn: Lsn; readonly commitTime: bigint; readonly xid: number }
  | { readonly tag: 'commit'; readonly commitLsn: Lsn; readonly endLsn: Lsn; readonly commitTime: bigint }
  | {
      readonly tag: 'relation';
      readonly relationId: number;
      readonly schema: string;
      readonly name: string;
      readonly replicaIdentity: string;
      readonly columns: readonly RelationColumn[];
    }
  | { readonly tag: 'type'; readonly typeOid: number; readonly schema: string; readonly name: string }
  | { readonly tag: 'origin'; readonly lsn: Lsn; readonly name: string }
  | { readonly tag: 'insert'; readonly relationId: number; readonly row: Tuple }
  | {
      readonly tag: 'update';
      readonly relationId: number;
      /** The old key ('K') or old row ('O'), sent only when the key changed or identity is FULL. */
      readonly old: Tuple | undefined;
      /** Whether `old` is the whole old row ('O', REPLICA IDENTITY FULL), not only its key. */
      readonly oldWhole: boolean;
      readonly row: Tuple;
    }
  | {
      readonly tag: 'delete';
      readonly relationId: number;
      readonly old: Tuple;
      /** Whether `old` is the whole row removed ('O', REPLICA IDENTITY FULL), not only its key. */
      readonly oldWhole: boolean;
    }
  | {
      readonly tag: 'truncate';
      readonly relationIds: readonly number[];
      readonly cascade: boolean;
      readonly restartIdentity: boolean;
    }
  | {
      readonly tag: 'message';
      readonly transactional: boolean;
      readonly lsn: Lsn;
      readonly prefix: string;
      readonly content: Buffer;
    };

/** Decodes one pgoutput message (the payload of an XLogData frame). */
export function decodePgoutput(buffer: Buffer): PgoutputMessage {
  const reader = new Reader(buffer);
  const tag = String.fromCharCode(reader.byte());
  switch (tag) {
    case 'B': {
      const finalLsn = reader.uint64();
      const commitTime = reader.int64() + PG_EPOCH_OFFSET_MICROS;
      return { tag: 'begin', finalLsn, commitTime, xid: reader.uint32() };
    }
    case 'C': {
      reader.byte(); // flags: unused by the protocol so far
      const commitLsn = reader.uint64();
      const endLsn = reader.uint64();
      return { tag: 'commit', commitLsn, endLsn, commitTime: reader.int64() + PG_EPOCH_OFFSET_MICROS };
    }
    case 'R': {
      const relationId = reader.uint32();
      const schema = reader.cstring();
      const name = reader.cstring();
      const replicaIdentity = String.fromCharCode(reader.byte());
      const columns: RelationColumn[] = [];
      for (let count = reader.int16(); count > 0; count--) {
        const flags = reader.byte();
        columns.push({ name: reader.cstring(), typeOid: reader.uint32(), typeMod: reader.int32(), isKey: (flags & 1) === 1 });
      }
      return { tag: 'relation', relationId, schema: schema === '' ? 'pg_catalog' : schema, name, replicaIdentity, columns };
    }
    case 'Y': {
      const typeOid = reader.uint32();
      return { tag: 'type', typeOid, schema: reader.cstring(), name: reader.cstring() };
    }
    case 'O': {
      const lsn = reader.uint64();
      return { tag: 'origin', lsn, name: reader.cstring() };
    }
    case 'I': {
      const relationId = reader.uint32();
      reader.expect('N');
      return { tag: 'insert', relationId, row: reader.tuple() };
    }
    case 'U': {
      const relationId = reader.uint32();
      let marker = String.fromCharCode(reader.byte());
      let old: Tuple | undefined;
      const oldWhole = marker === 'O';
      if (marker === 'K' || marker === 'O') {
        old = reader.tuple();
        marker = String.fromCharCode(reader.byte());
      }
      if (marker !== 'N') throw new Error(`pgoutput: unexpected update marker ${marker}`);
      return { tag: 'update', relationId, old, oldWhole, row: reader.tuple() };
    }
    case 'D': {
      const relationId = reader.uint32();
      const marker = String.fromCharCode(reader.byte());
      if (marker !== 'K' && marker !== 'O') throw new Error(`pgoutput: unexpected delete marker ${marker}`);
      return { tag: 'delete', relationId, old: reader.tuple(), oldWhole: marker === 'O' };
    }
    case 'T': {
      const count = reader.uint32();
      const options = reader.byte();
      const relationIds: number[] = [];
      for (let i = 0; i < count; i++) relationIds.push(reader.uint32());
      return { tag: 'truncate', relationIds, cascade: (options & 1) !== 0, restartIdentity: (options & 2) !== 0 };
    }
    case 'M': {
      const transactional = (reader.byte() & 1) === 1;
      const lsn = reader.uint64();
      const prefix = reader.cstring();
      const length = reader.uint32();
      return { tag: 'message', transactional, lsn, prefix, content: reader.bytes(length) };
    }
    default:
      throw new Error(`pgoutput: unknown message type ${JSON.stringify(tag)}`);
  }
}

/** A cursor over a big-endian protocol buffer. */
class Reader {
  private offset = 0;

  constructor(private readonly buffer: Buffer) {}

  /** Moves past `size` bytes; returns the offset where they start. */
  private advance(size: number): number {
    const at = this.offset;
    this.offset += size;
    return at;
  }

  byte(): number {
    return this.buffer.readUInt8(this.advance(1));
  }

  int16(): number {
    return this.buffer.readInt16BE(this.advance(2));
  }

  int32(): number {
    return this.buffer.readInt32BE(this.advance(4));
  }

  uint32(): number {
    return this.buffer.readUInt32BE(this.advance(4));
  }

  int64(): bigint {
    return this.buffer.readBigInt64BE(this.advance(8));
  }

  uint64(): bigint {
    return this.buffer.readBigUInt64BE(this.advance(8));
  }

  cstring(): string {
    const end = this.buffer.indexOf(0, this.offset);
    if (end < 0) throw new Error('pgoutput: unterminated string');
    const text = this.buffer.toString('utf8', this.offset, end);
    this.offset = end + 1;
    return text;
  }

  /** A copy: the frame's buffer belongs to the socket reader, which reuses it for later frames. */
  bytes(length: number): Buffer {
    const at = this.advance(length);
    return Buffer.from(this.buffer.subarray(at, at + length));
  }

  expect(marker: string): void {
    const got = String.fromCharCode(this.byte());
    if (got !== marker) throw new Error(`pgoutput: expected ${marker}, got ${got}`);
  }

  tuple(): Tuple {
    const count = this.int16();
    const start = this.offset;
    const spans: number[] = [];
    let unchanged = false;
    for (let i = 0; i < count; i++) {
      const kind = this.byte();
      if (kind === 0x6e /* n */) spans.push(NULL_SPAN, 0);
      else if (kind === 0x75 /* u */) {
        spans.push(UNCHANGED_SPAN, 0);
        unchanged = true;
      } else if (kind === 0x74 /* t */) {
        const length = this.uint32();
        const at = this.advance(length) - start;
        spans.push(at, at + length);
      } else {
        const format = JSON.stringify(String.fromCharCode(kind));
        throw new Error(`pgoutput: unsupported column format ${format} (binary mode is never requested)`);
      }
    }
    if (this.offset > this.buffer.length) throw new Error('pgoutput: a tuple runs past the end of its message');
    return new Tuple(Buffer.from(this.buffer.subarray(start, this.offset)), spans, unchanged);
  }
}
