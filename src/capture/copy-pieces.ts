// COPY text cut into pieces: the bytes of each table's `COPY … TO STDOUT` go to files
// in a scratch directory, and every `pieceBytes` (at a line's end) the files written so
// far become a piece, handed on to be turned into a layer while the next one is read.
// A piece holds the end of one table and the start of the next, so small tables share.

import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { SchemaVersion } from '../vault/index.js';
import { COPY_FILE_HEADER, type CopyFile, type Segment } from './image-rows.js';

/** The files that become one layer. */
export interface Piece {
  readonly segments: readonly Segment[];
  readonly bytes: number;
}

/** Chunks are gathered up to this much before one write. */
const WRITE_BYTES = 1024 * 1024;

/** A file being written: its chunks not yet written, and what is known of its lines. */
class OpenFile {
  private chunks: Buffer[] = [];
  private pending = 0;
  /** Bytes since the last line break seen, and the longest line this file can hold. */
  private sinceBreak = 0;
  private longest = 0;
  bytes = 0;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  static async create(path: string): Promise<OpenFile> {
    const file = new OpenFile(path, await open(path, 'w'));
    file.chunks.push(Buffer.from(COPY_FILE_HEADER));
    return file;
  }

  async write(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return;
    // Bounds from two searches per chunk, not one per line: a line inside a chunk is no longer than the chunk.
    const first = chunk.indexOf(10);
    if (first === -1) {
      this.sinceBreak += chunk.length;
    } else {
      this.longest = Math.max(this.longest, this.sinceBreak + first + 1, chunk.length);
      this.sinceBreak = chunk.length - chunk.lastIndexOf(10) - 1;
    }
    this.chunks.push(chunk);
    this.pending += chunk.length;
    this.bytes += chunk.length;
    if (this.pending >= WRITE_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    const chunks = this.chunks;
    this.chunks = [];
    this.pending = 0;
    await this.handle.writev(chunks);
  }

  async close(): Promise<CopyFile> {
    await this.flush();
    await this.handle.close();
    return { path: this.path, longestLine: Math.max(this.longest, this.sinceBreak) };
  }
}

/** Writes tables' COPY text into pieces of about `pieceBytes`, handing each to `accept` (which may wait). */
export class PieceWriter {
  private segments: Segment[] = [];
  private bytes = 0;
  private files = 0;

  constructor(
    private readonly directory: string,
    private readonly pieceBytes: number,
    private readonly accept: (piece: Piece) => Promise<void>,
  ) {}

  /** A sink for one table's COPY stream; `onBytes` hears of every chunk. */
  sink(schema: SchemaVersion, onBytes: (bytes: number) => void): Writable {
    let file: OpenFile | undefined;
    const start = async (): Promise<OpenFile> => OpenFile.create(join(this.directory, `${++this.files}.copy`));
    const end = async (): Promise<void> => {
      if (file === undefined) return;
      const done = file;
      file = undefined;
      const copy = await done.close();
      if (done.bytes === 0) await rm(copy.path, { force: true });
      else {
        this.segments.push({ schema, file: copy });
        this.bytes += done.bytes;
      }
    };
    const write = async (chunk: Buffer): Promise<void> => {
      file ??= await start();
      onBytes(chunk.length);
      const room = this.pieceBytes - this.bytes - file.bytes;
      const cut = room <= chunk.length ? chunk.lastIndexOf(10) : -1;
      if (cut === -1) return file.write(chunk);
      await file.write(chunk.subarray(0, cut + 1));
      await end();
      await this.handOn();
      if (cut + 1 < chunk.length) {
        file = await start();
        await file.write(chunk.subarray(cut + 1));
      }
    };
    return new Writable({
      write: (chunk: Buffer, _encoding, done) => void write(chunk).then(() => done(), done),
      final: (done) => void end().then(() => done(), done),
      destroy: (error, done) => {
        const open = file;
        file = undefined;
        void (open?.close() ?? Promise.resolve()).then(
          () => done(error),
          () => done(error),
        );
      },
    });
  }

  /** Hands on what is written and not yet in a piece (after the last table). */
  async finish(): Promise<void> {
    if (this.segments.length > 0) await this.handOn();
  }

  private async handOn(): Promise<void> {
    const piece = { segments: this.segments, bytes: this.bytes };
    this.segments = [];
    this.bytes = 0;
    await this.accept(piece);
  }
}
