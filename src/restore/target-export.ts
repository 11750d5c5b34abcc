// Target rows leave DuckDB as files in the vault's scratch directory, one per export
// (a table's rows, or a range of its keys), written by DuckDB's CSV writer with
// quoting off: a line per row, COPY text already (copy-text.ts), or the stored JSON
// with a few fields for Node to render (target-lines.ts). Each file is read in
// pieces and streamed on to the staging COPY while DuckDB writes the next. Nothing
// of the rows is held in memory but a piece; on disk are at most two exports' lines
// at a time.

import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { VaultReader } from '../timeline/index.js';
import { processScratchDirectory, sqlLiteral } from '../vault/index.js';
import type { TargetLines } from './target-lines.js';
import { TargetStatements } from './target-statements.js';

/**
 * Target rows of one table, as its staging table's COPY takes them: a line per row
 * with the staged columns, then "recall.present" (false: the table must not hold
 * this key, whose columns alone are set), "recall.group" (the tenant) and
 * "recall.later" (an undo's later change, or \N). Its pieces must be read to the
 * end before the next table is asked for; a table may come in several.
 */
export interface TargetTable {
  readonly table: string;
  readonly pieces: AsyncIterable<TargetPiece>;
}

/** A piece of a table's COPY text, cut anywhere; `rows` counts the lines it ends. */
export interface TargetPiece {
  readonly rows: number;
  readonly text: Buffer;
}

/** One file of target rows: `write` runs the statements that export them to `path`, `lines` (if any) renders the file. */
export interface TargetExport {
  readonly table: string;
  /** What turns the exported lines into COPY text; undefined: DuckDB wrote COPY text. */
  readonly lines: TargetLines | undefined;
  write(path: string): Promise<void>;
}

/** Writes a query's rows to a file as lines of its columns joined by tabs, as they come: a plain COPY streams in bounded memory. */
export function copyLinesSql(sql: string, path: string): string {
  return `COPY (${sql}) TO ${sqlLiteral(path)} (FORMAT csv, HEADER false, DELIMITER '\t', QUOTE '', ESCAPE '')`;
}

/**
 * Runs the exports `plan` gives (it may query too, through the statements it is
 * handed) and streams each file on. DuckDB writes the next file while the current
 * one streams. Stopped early (a failure downstream, or `signal`), it interrupts the
 * statement under way, waits for it, and removes its files.
 */
export async function* exportedTargets(
  reader: VaultReader,
  plan: (statements: TargetStatements) => AsyncIterable<TargetExport>,
  signal?: AbortSignal,
): AsyncGenerator<TargetTable> {
  const statements = new TargetStatements(reader.duck, signal);
  const directory = await processScratchDirectory(reader.vault.storage, 'targets');
  const exports = plan(statements)[Symbol.asyncIterator]();
  let written = 0;
  const produce = async (): Promise<{ table: string; path: string; lines: TargetLines | undefined } | undefined> => {
    const next = await exports.next();
    if (next.done === true) return undefined;
    const path = join(directory, `${written++}.copy`);
    await next.value.write(path);
    return { table: next.value.table, path, lines: next.value.lines };
  };
  let pending = produce();
  // Awaited below; until then a failure must not count as unhandled.
  pending.catch(() => undefined);
  let finished = false;
  try {
    for (let file = await pending; file !== undefined; file = await pending) {
      pending = produce();
      pending.catch(() => undefined);
      yield { table: file.table, pieces: piecesOf(file.path, file.lines) };
      await rm(file.path, { force: true });
    }
    finished = true;
  } finally {
    if (!finished) statements.stop();
    // Nothing of the computation may still run once the reader closes.
    await pending.catch(() => undefined);
    await exports.return?.(undefined).catch(() => undefined);
    await rm(directory, { recursive: true, force: true });
  }
}

/** Reads an exported file in pieces, rendering each into COPY text where DuckDB did not. */
async function* piecesOf(path: string, lines: TargetLines | undefined): AsyncGenerator<TargetPiece> {
  for await (const piece of createReadStream(path, { highWaterMark: READ_BYTES })) {
    if (lines === undefined) {
      yield { rows: linesIn(piece as Buffer), text: piece as Buffer };
      continue;
    }
    const rendered = lines.push(piece as Buffer);
    if (rendered.rows > 0) yield rendered;
  }
  lines?.end();
}

/** Bytes read from an exported file at a time. */
const READ_BYTES = 1 << 20;

/** COPY lines in a piece of an exported file: one newline ends each (a value's own newlines are escaped). */
function linesIn(text: Buffer): number {
  let lines = 0;
  for (let at = text.indexOf(10); at >= 0; at = text.indexOf(10, at + 1)) lines++;
  return lines;
}
