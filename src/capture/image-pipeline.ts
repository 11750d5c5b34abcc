// The image pipeline: every table of a snapshot read by `COPY … TO STDOUT` (text) into
// pieces on disk, and each piece turned into a sorted layer by DuckDB while the next
// ones are read, so PostgreSQL's output and the layers' writing overlap on the two
// cores. Node only moves bytes; memory is two pieces' sorts, whatever the tables' size.

import { rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import type pg from 'pg';
import { to as copyTo, type CopyToStreamQuery } from 'pg-copy-streams';
import type { SourceTable } from '../source/index.js';
import {
  openDuckDB,
  processMemoryBudget,
  processScratchDirectory,
  writeLayerFile,
  type LayerEntry,
  type LayerFile,
  type SchemaVersion,
  type VaultStorage,
} from '../vault/index.js';
import { PieceWriter, type Piece } from './copy-pieces.js';
import { copySelectList, imageRowsSql } from './image-rows.js';

/** One table to image and the schema version its rows are written under. */
export interface ImageTarget {
  readonly table: SourceTable;
  readonly schema: SchemaVersion;
}

/** Where an image stands, for a progress display: the table being read and how far. */
export interface ImageProgress {
  readonly table: string;
  /** 1-based position of the table, of `tables`. */
  readonly index: number;
  readonly tables: number;
  /** COPY text read so far from this table. */
  readonly bytes: number;
  /** The table's size on disk (heap and TOAST), an estimate of its text; and its row estimate, if it was ever analysed. */
  readonly estimatedBytes: number;
  readonly estimatedRows: number | undefined;
  /** Whether the table is read whole. */
  readonly done: boolean;
}

/** How an image runs. */
export interface ImageOptions {
  /** COPY text per piece (defaultPieceBytes unless given). */
  readonly pieceBytes?: number;
  readonly onProgress?: (progress: ImageProgress) => void;
}

/** The largest piece: nothing overlaps the last pieces' conversion, so smaller ones end the image sooner. */
const MAX_PIECE_BYTES = 64 * 1024 * 1024;

/**
 * COPY text per piece. DuckDB's JSON functions hold some sixteen times a vector's text
 * at once, and a vector of a piece whose lines are no longer than the piece holds at
 * most two pieces' text: so each of the two converters may need 32 pieces, and the
 * two together at most DuckDB's share of the budget (the sorts hold far less).
 */
function defaultPieceBytes(): number {
  return Math.min(MAX_PIECE_BYTES, Math.floor(processMemoryBudget().duckdbBytes / (32 * CONVERTERS)));
}

/**
 * Pieces converted at once, each on its own connection: while PostgreSQL streams, they
 * keep up with it on the other core; once the tables are read, they use both cores.
 */
const CONVERTERS = 2;

/** Pieces waiting on disk for a converter: one keeps PostgreSQL streaming, more would only take disk. */
const WAITING_PIECES = 1;

/** An image's layers (in the vault, not yet in a manifest) and the rows of each table. */
export interface ImageResult {
  readonly layers: LayerEntry[];
  readonly rows: ReadonlyMap<string, number>;
}

/**
 * Images `targets` as the reader's snapshot sees them into layer files (image rows at
 * `at`) and moves them into the vault; `duck` and one more connection to the process's
 * DuckDB convert the pieces. The reader's transaction ends as soon as the last table
 * is read, so the source does not keep its snapshot while the last layers are written.
 */
export async function imageTables(
  reader: pg.Client,
  duck: DuckDBConnection,
  storage: VaultStorage,
  targets: readonly ImageTarget[],
  at: { lsn: bigint; micros: bigint },
  options: ImageOptions,
): Promise<ImageResult> {
  const pieceBytes = options.pieceBytes ?? defaultPieceBytes();
  // Files by piece number: converters finish out of order.
  const files: (LayerFile | undefined)[] = [];
  let pieceCount = 0;
  const extra = await Promise.all(Array.from({ length: CONVERTERS - 1 }, async () => openDuckDB(await storage.scratchDirectory())));
  const directory = await processScratchDirectory(storage, 'image');
  const layers = new LayerWriter(
    [duck, ...extra].map((connection) => async (piece: Piece) => {
      const n = pieceCount++;
      // A line longer than a piece could put far more than a piece's text in one vector.
      const writing = piece.segments.every((segment) => segment.file.longestLine <= pieceBytes) ? 'functions' : 'concatenation';
      files[n] = await writeLayerFile(connection, directory, 'image', imageRowsSql(piece.segments, at, writing));
      await Promise.all(piece.segments.map((segment) => rm(segment.file.path, { force: true })));
    }),
  );
  try {
    const pieces = new PieceWriter(directory, pieceBytes, (piece) => layers.accept(piece));
    const estimates = options.onProgress === undefined ? undefined : await sizeEstimates(reader, targets);
    const copies: { table: string; copy: CopyToStreamQuery }[] = [];
    for (const [i, { table, schema }] of targets.entries()) {
      const from = `${table.partitioned ? '' : 'ONLY '}${table.sql}`;
      const copy = reader.query(
        copyTo(`COPY (SELECT ${copySelectList(schema, (name) => reader.escapeIdentifier(name))} FROM ${from}) TO STDOUT`),
      );
      copies.push({ table: table.qualified, copy });
      const estimate = estimates?.get(table.oid);
      let bytes = 0;
      const report = (done: boolean): void =>
        options.onProgress?.({
          table: table.qualified,
          index: i + 1,
          tables: targets.length,
          bytes,
          estimatedBytes: estimate?.bytes ?? 0,
          estimatedRows: estimate?.rows,
          done,
        });
      report(false);
      await pipeline(
        copy,
        pieces.sink(schema, (chunk) => {
          bytes += chunk;
          report(false);
        }),
      );
      report(true);
    }
    await pieces.finish();
    // Once the transaction has ended, every COPY has completed and counted its rows.
    await reader.query('COMMIT');
    await layers.finish();
    const written = files.filter((file): file is LayerFile => file !== undefined);
    for (const file of written) await storage.putFile(file.entry.path, file.local);
    return { layers: written.map((file) => file.entry), rows: new Map(copies.map(({ table, copy }) => [table, copy.rowCount])) };
  } catch (error) {
    await layers.abandon();
    throw error;
  } finally {
    for (const connection of extra) connection.closeSync();
    await rm(directory, { recursive: true, force: true });
  }
}

/**
 * Turns pieces into layers, one per converter at a time, in the order they come;
 * `accept` waits while WAITING_PIECES are queued, and fails once a conversion failed.
 */
class LayerWriter {
  private readonly queue: Piece[] = [];
  private failure: { error: unknown } | undefined;
  private closed = false;
  private idle: (() => void)[] = [];
  private wakeProducer: (() => void) | undefined;
  private readonly running: Promise<unknown>;

  constructor(converters: readonly ((piece: Piece) => Promise<void>)[]) {
    this.running = Promise.all(converters.map((convert) => this.run(convert)));
  }

  async accept(piece: Piece): Promise<void> {
    while (this.failure === undefined && this.queue.length >= WAITING_PIECES) {
      await new Promise<void>((resolve) => (this.wakeProducer = resolve));
    }
    if (this.failure !== undefined) throw this.failure.error;
    this.queue.push(piece);
    this.idle.shift()?.();
  }

  /** Waits until every accepted piece is a layer file. */
  async finish(): Promise<void> {
    await this.close();
    if (this.failure !== undefined) throw this.failure.error;
  }

  /** Drops the pieces still queued and waits for those being converted. */
  async abandon(): Promise<void> {
    this.queue.length = 0;
    await this.close();
  }

  private async close(): Promise<void> {
    this.closed = true;
    for (const wake of this.idle.splice(0)) wake();
    await this.running;
  }

  private async run(convert: (piece: Piece) => Promise<void>): Promise<void> {
    while (this.failure === undefined) {
      const piece = this.queue.shift();
      if (piece === undefined) {
        if (this.closed) return;
        await new Promise<void>((resolve) => this.idle.push(resolve));
        continue;
      }
      this.wake();
      try {
        await convert(piece);
      } catch (error) {
        this.failure ??= { error };
        this.queue.length = 0;
        this.wake();
        for (const wake of this.idle.splice(0)) wake();
      }
    }
  }

  private wake(): void {
    const wake = this.wakeProducer;
    this.wakeProducer = undefined;
    wake?.();
  }
}

/** Each table's size on disk and row estimate (partitions summed), for progress. */
async function sizeEstimates(
  reader: pg.Client,
  targets: readonly ImageTarget[],
): Promise<Map<number, { bytes: number; rows: number | undefined }>> {
  const { rows } = await reader.query<{ oid: string; bytes: string; rows: string | null }>(
    `SELECT t.oid::text, sum(pg_table_size(c.oid))::text AS bytes,
            CASE WHEN bool_and(c.reltuples >= 0) THEN sum(c.reltuples)::bigint::text END AS rows
       FROM unnest($1::oid[]) AS t(oid)
       JOIN pg_class c ON c.oid = t.oid OR c.oid IN (SELECT relid FROM pg_partition_tree(t.oid) WHERE isleaf)
      WHERE c.relkind <> 'p' GROUP BY t.oid`,
    [targets.map((target) => target.table.oid)],
  );
  return new Map(
    rows.map((row) => [Number(row.oid), { bytes: Number(row.bytes), rows: row.rows === null ? undefined : Number(row.rows) }]),
  );
}
