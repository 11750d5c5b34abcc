// Writes batches of staged transactions into the vault while the next batch stages.
// Two staging buffers on two DuckDB connections take turns: one fills from the
// stream on the main thread while the other's batch (or a large transaction's
// spill) is completed, written and committed on DuckDB's threads. At most one
// write is in flight, and it starts only after the one before it ended, so every
// batch and spill completes its deletes and TOAST markers against a history that
// holds everything staged before it.

import { rm } from 'node:fs/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import { VaultConflictError } from '../errors.js';
import { formatLsn, type Lsn } from '../timeline/index.js';
import {
  aboveFloorSql,
  newestVersions,
  openDuckDB,
  LayerBuffer,
  processScratchDirectory,
  type LayerEntry,
  type SchemaVersion,
  type Vault,
} from '../vault/index.js';
import { History } from './history.js';
import { planCompletion } from './resolve.js';

/** The transactions a batch holds, to name them if they cannot be ingested. */
export interface StagedRange {
  readonly first: { readonly xid: bigint; readonly lsn: Lsn };
  readonly last: { readonly xid: bigint; readonly lsn: Lsn };
  readonly transactions: number;
}

/** Staged transactions cut off at a commit, to be made durable as one manifest version. */
export interface Batch {
  /** The batch's last commit: the manifest is complete through it once the batch is durable. */
  readonly end: { readonly lsn: Lsn; readonly endLsn: Lsn; readonly time: bigint };
  readonly staged: StagedRange | undefined;
  /** The schema history as it was at the cut (later layouts belong to later batches). */
  readonly schemas: readonly SchemaVersion[];
  /** Tables found rewritten by the batch's transactions: imaged again with it. */
  readonly rewritten: readonly string[];
}

/** A batch or spill that could not be written: capture stops and names its transactions. */
export class BatchFailure extends Error {
  constructor(
    /** The batch's transactions; undefined for a spill (the transaction still open). */
    readonly staged: StagedRange | undefined,
    readonly rows: number,
    readonly bytes: number,
    override readonly cause: unknown,
  ) {
    super((cause as Error)?.message ?? String(cause));
  }
}

/** Where the writer writes, and where it says what it is doing. */
export interface BatchWriterContext {
  readonly vault: Vault;
  readonly log: (line: string) => void;
}

/** What the capture session does for one batch while it is written. */
export interface BatchHooks {
  /** Images rewritten tables again on `duck`, the batch's connection; the tables it could not image yet are left. */
  readonly reimage: (duck: DuckDBConnection, tables: readonly string[]) => Promise<{ layers: LayerEntry[]; left: string[] }>;
  /** Runs once the batch's manifest version is committed (acknowledging it, among others). */
  readonly durable: (layers: readonly LayerEntry[]) => Promise<void>;
}

export class BatchWriter {
  private inFlight: Promise<void> | undefined;
  private failure: BatchFailure | undefined;

  private constructor(
    private readonly context: BatchWriterContext,
    /** The buffer changes are appended to now. */
    private filling: LayerBuffer,
    /** The other buffer: empty, or holding the batch in flight. */
    private other: LayerBuffer,
    /** The buffers' parts directory, removed on close. */
    private readonly parts: string,
  ) {}

  static async create(context: BatchWriterContext): Promise<BatchWriter> {
    const storage = context.vault.storage;
    const scratch = await storage.scratchDirectory();
    // Parts in a directory of this process's own: another capture of this host (one waiting
    // for the slot) removes only what dead processes left, never what this one is writing.
    const parts = await processScratchDirectory(storage, 'capture');
    const first = await LayerBuffer.create(await openDuckDB(scratch), storage, parts);
    const second = await LayerBuffer.create(await openDuckDB(scratch), storage, parts);
    return new BatchWriter(context, first, second, parts);
  }

  /** The buffer the stream's changes are staged into. */
  get staging(): LayerBuffer {
    return this.filling;
  }

  /** Whether a batch or a spill is being written. */
  get writing(): boolean {
    return this.inFlight !== undefined;
  }

  /** Nothing staged, spilled or in flight. */
  get isEmpty(): boolean {
    return this.inFlight === undefined && this.filling.isEmpty;
  }

  /**
   * Starts making what is staged durable as `batch`, and stages what follows into the
   * other buffer meanwhile. The caller waits for the batch before it (`settle`) first.
   */
  write(batch: Batch, hooks: BatchHooks): void {
    this.inBackground(batch.staged, (buffer) => this.writeBatch(buffer, batch, hooks));
  }

  /**
   * Moves what is staged to part files in the background (a large transaction's rows
   * so far), staging on into the other buffer meanwhile; the parts then pass to that
   * buffer, so the transaction's batch holds them all, in order.
   */
  async spill(): Promise<void> {
    await this.settle();
    this.inBackground(undefined, async (buffer) => {
      await this.writeStaged(buffer);
      this.filling.adoptParts(buffer.takeParts());
    });
  }

  /** Swaps the buffers and runs `work` on the one that was filling; its failure is kept for `settle`. */
  private inBackground(staged: StagedRange | undefined, work: (buffer: LayerBuffer) => Promise<void>): void {
    if (this.inFlight !== undefined) throw new Error('capture: a write started while the one before it was still in flight');
    const buffer = this.filling;
    this.filling = this.other;
    this.other = buffer;
    const size = { rows: buffer.stagedRows, bytes: buffer.stagedBytes };
    this.inFlight = work(buffer).then(
      () => {
        this.inFlight = undefined;
      },
      (error: unknown) => {
        this.failure ??= new BatchFailure(staged, size.rows, size.bytes, error);
        this.inFlight = undefined;
      },
    );
  }

  /** Waits for the write in flight, if any; a write that failed fails here (and on every call after). */
  async settle(): Promise<void> {
    await this.inFlight;
    this.assertHealthy();
  }

  /** Throws the failure of a batch written in the background, as soon as it is known. */
  assertHealthy(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /**
   * Every version known to the staging buffer: the vault's layers as the newest manifest
   * has them, its parts spilled since the last commit, and its staging table. Complete
   * only when nothing is in flight: callers settle first.
   */
  async history(buffer = this.filling): Promise<History> {
    await buffer.sync();
    const vault = this.context.vault;
    // Another process may have replaced layers (compact, forget, which deletes the old files at once): read the newest.
    const newest = newestVersions(await vault.refresh());
    const layers = (await vault.layerFiles(newest.layers)).map((local, i) => ({ local, ...newest.layers[i]! }));
    return new History([...layers, ...buffer.partFiles], buffer.tableName, aboveFloorSql(newest.floors, 'commit_lsn', 'tenant'));
  }

  /** Forgets what is staged and spilled but not committed (a transaction was cut off; the slot sends it again). */
  async discard(): Promise<void> {
    await this.inFlight;
    await this.filling.discard();
    await this.other.discard();
  }

  /** Waits for the write in flight (whatever its outcome), then releases both buffers and their connections. */
  async close(): Promise<void> {
    await this.inFlight;
    for (const buffer of [this.filling, this.other]) {
      await buffer.close();
      buffer.connection.closeSync();
    }
    await rm(this.parts, { recursive: true, force: true });
  }

  /**
   * Completes what a buffer stages (TOAST values, deleted rows) and writes it as parts, in
   * chunks that each stay within a part's size once complete, then empties its staging table.
   */
  async writeStaged(buffer: LayerBuffer): Promise<void> {
    await buffer.sync();
    if (buffer.size === 0) return;
    const completion = await planCompletion(buffer.connection, await this.history(buffer), {
      // A chunk's completed rows sit in DuckDB twice while it is written (the tables they are
      // fetched into, and the sort), where a plain part's sit in staging and the sort.
      chunkBytes: buffer.partBytes / 2,
      stagedBytes: buffer.stagedText,
    });
    try {
      if (completion.orphans > 0) {
        this.context.log(
          `capture: warning: ${completion.orphans} deleted rows have no earlier version in the vault (a gap in the history); their tenant is unknown`,
        );
      }
      for (const chunk of completion.chunks) {
        await chunk.prepare();
        await buffer.writePart('delta', chunk.select);
      }
    } finally {
      await completion.drop();
    }
    await buffer.clear();
  }

  /** Writes a batch as delta layers, images rewritten tables, and commits the manifest version. */
  private async writeBatch(buffer: LayerBuffer, batch: Batch, hooks: BatchHooks): Promise<void> {
    const vault = this.context.vault;
    await this.writeStaged(buffer);
    const layers = await buffer.commitLayers('delta');
    const manifest = vault.manifest;
    // Committed with the deltas that revealed the rewrite, so a crash before it cannot lose it.
    const rewritten = [...new Set([...(manifest.pendingImages ?? []), ...batch.rewritten])];
    const images = rewritten.length === 0 ? { layers: [], left: [] } : await hooks.reimage(buffer.connection, rewritten);
    // Computed from the newest state: a compaction may have replaced layers meanwhile, in
    // this process or another. Only this capture moves throughLsn; a newer one is another's.
    const capturedThrough = manifest.throughLsn;
    await vault.update((current = manifest) => {
      if (current.throughLsn !== capturedThrough) {
        throw new VaultConflictError(
          `another capture wrote to ${vault.storage.location} (through ${formatLsn(current.throughLsn)}, where this one had ${formatLsn(capturedThrough)})`,
          'run only one `recall capture` per vault',
        );
      }
      return {
        ...current,
        throughLsn: batch.end.lsn,
        throughTime: batch.end.time,
        acknowledgedLsn: batch.end.endLsn,
        layers: [...current.layers, ...layers, ...images.layers],
        schemas: batch.schemas,
        pendingImages: images.left.length === 0 ? undefined : images.left,
      };
    });
    await hooks.durable(layers);
    if (layers.length > 0) {
      const rows = layers.reduce((sum, layer) => sum + layer.rows, 0);
      this.context.log(`capture: ${rows} changes through ${formatLsn(batch.end.lsn)} → ${layers.map((layer) => layer.path).join(', ')}`);
    }
  }
}
