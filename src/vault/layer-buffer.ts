// Changes on their way into a layer: appended to a DuckDB table (which spills to
// disk, so a transaction of any size fits in bounded memory), then written out as
// one sorted, zstd-compressed Parquet file with the statistics the manifest keeps.
// The table holds each row's JSON as bytes; a view over it, which every query reads,
// gives it as text.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { DuckDBTimestampValue, type DuckDBAppender, type DuckDBConnection } from '@duckdb/node-api';
import { LAYER_COLUMN_NAMES, LAYER_ORDER, layerColumns, type StagedChange } from './change.js';
import { processMemoryBudget, queryRows } from './duckdb.js';
import { writeLayerFile } from './layer-file.js';
import type { LayerEntry } from './manifest.js';
import type { VaultStorage } from './storage.js';

/** Staged rows at which a part is spilled: the most any single sort or staging table holds. */
export const PART_ROWS = 20_000;

/** Buffers created in this process, for names unique in its shared DuckDB. */
let buffers = 0;

/** A part file in scratch and the entry it will have as a layer. */
interface SpilledPart {
  readonly local: string;
  readonly entry: LayerEntry;
}

/** Creates (again) a buffer's table of staged rows and the view that reads it. */
async function createStaging(duck: DuckDBConnection, view: string): Promise<void> {
  await duck.run(`CREATE TABLE ${storedTable(view)} (${layerColumns('BLOB')}, unchanged VARCHAR)`);
  // decode() checks the bytes are UTF-8, which capture made sure of (row-json.ts).
  await duck.run(`CREATE VIEW ${view} AS SELECT * REPLACE (decode("row") AS "row") FROM ${storedTable(view)}`);
}

/** The table behind a staging view, which rows are appended and inserted into. */
export const storedTable = (view: string): string => `${view}_stored`;

/** A DuckDB staging table of changes not yet in a layer. */
export class LayerBuffer {
  private appender: DuckDBAppender;
  private count = 0;
  private bytes = 0;
  private parts: SpilledPart[] = [];
  /**
   * Staged text (rows, keys, context) at which a part is spilled whatever the row count:
   * a part is sorted whole in DuckDB, which takes a few times its size, so wide rows
   * spill sooner than narrow ones (the budget's partBytes).
   */
  readonly partBytes = processMemoryBudget().partBytes;

  private constructor(
    private readonly duck: DuckDBConnection,
    private readonly storage: VaultStorage,
    /** Where its parts are written: a directory of this process's own (processScratchDirectory). */
    private readonly directory: string,
    readonly tableName: string,
    appender: DuckDBAppender,
  ) {
    this.appender = appender;
  }

  /** Creates the staging table `name` in the given DuckDB; parts go to `directory`. */
  static async create(duck: DuckDBConnection, storage: VaultStorage, directory: string, name = 'pending'): Promise<LayerBuffer> {
    // Connections of one process share one DuckDB catalog: a buffer's tables must not meet another's.
    const table = `${name}_${++buffers}`;
    await createStaging(duck, table);
    return new LayerBuffer(duck, storage, directory, table, await duck.createAppender(storedTable(table)));
  }

  /** The DuckDB connection holding the staging table, for resolution queries. */
  get connection(): DuckDBConnection {
    return this.duck;
  }

  /** Re-counts staged rows after SQL added or removed some. */
  async recount(): Promise<void> {
    await this.sync();
    const [row] = await queryRows(
      this.duck,
      `SELECT count(*) AS n, sum(length("key") + coalesce(octet_length("row"), 0) + coalesce(length(context), 0)) AS bytes FROM ${storedTable(this.tableName)}`,
    );
    this.count = Number(row?.n ?? 0);
    this.bytes = Number(row?.bytes ?? 0);
  }

  /** Changes staged since the last commit, parts included. */
  get stagedRows(): number {
    return this.count + this.parts.reduce((sum, part) => sum + part.entry.rows, 0);
  }

  /** Text staged since the last commit (the staging table's), plus the parts' file bytes. */
  get stagedBytes(): number {
    return this.bytes + this.parts.reduce((sum, part) => sum + part.entry.bytes, 0);
  }

  /** Text in the staging table (rows, keys, context; not counting spilled parts). */
  get stagedText(): number {
    return this.bytes;
  }

  /** Rows in the staging table (not counting spilled parts). */
  get size(): number {
    return this.count;
  }

  /** Whether the staged rows make a full part: time to spill (or flush). */
  get full(): boolean {
    return this.count >= PART_ROWS || this.bytes >= this.partBytes;
  }

  /** Stages one change; `unchanged` lists TOASTed columns whose value must come from the previous version. */
  append(change: StagedChange, unchanged?: readonly string[]): void {
    const a = this.appender;
    a.appendUBigInt(change.commitLsn);
    a.appendUInteger(change.seq);
    a.appendTimestamp(new DuckDBTimestampValue(change.commitTime));
    if (change.xid === null) a.appendNull();
    else a.appendUBigInt(change.xid);
    a.appendVarchar(change.table);
    a.appendVarchar(change.op);
    if (change.tenant === null) a.appendNull();
    else a.appendVarchar(change.tenant);
    a.appendVarchar(change.key);
    a.appendUInteger(change.schemaId);
    if (change.row === null) a.appendNull();
    else a.appendBlob(change.row);
    if (change.context === null) a.appendNull();
    else a.appendVarchar(change.context);
    if (unchanged === undefined || unchanged.length === 0) a.appendNull();
    else a.appendVarchar(JSON.stringify(unchanged));
    a.endRow();
    this.count++;
    this.bytes += change.key.length + (change.row?.length ?? 0) + (change.context?.length ?? 0);
  }

  /** Gives the staged changes of one transaction its context (sent after some of them were staged). */
  async setContext(commitLsn: bigint, context: string): Promise<void> {
    await this.sync();
    await this.duck.run(`UPDATE ${storedTable(this.tableName)} SET context = $1 WHERE commit_lsn = $2`, [context, commitLsn]);
    await this.recount();
  }

  /** Makes appended rows visible to SQL on the staging table. */
  async sync(): Promise<void> {
    this.appender.flushSync();
  }

  /**
   * Writes the staged rows, sorted, to a part file in scratch and empties the staging table.
   * Parts bound memory: however large a transaction, no sort or table holds more than one
   * part's rows. They become layers only when `commitLayers` moves them into the vault.
   */
  async spill(kind: LayerEntry['kind']): Promise<void> {
    await this.sync();
    if (this.count === 0) return;
    await this.writePart(kind, `SELECT ${LAYER_COLUMN_NAMES} FROM ${this.tableName}`);
    await this.clear();
  }

  /**
   * Writes the rows a SELECT (in layer columns) gives, sorted, as one part file, with the
   * statistics the manifest keeps; the caller keeps the SELECT within a part's size.
   */
  async writePart(kind: LayerEntry['kind'], select: string): Promise<void> {
    await this.sync();
    const ordered = `SELECT ${LAYER_COLUMN_NAMES} FROM (${select}) ORDER BY ${LAYER_ORDER}`;
    const part = await writeLayerFile(this.duck, this.directory, kind, ordered);
    if (part !== undefined) this.parts.push(part);
  }

  /** Hands over the parts spilled since the last commit (to the buffer that stages the rest of their transaction). */
  takeParts(): readonly SpilledPart[] {
    const parts = this.parts;
    this.parts = [];
    return parts;
  }

  /** Takes parts another buffer spilled: they come before everything this buffer stages. */
  adoptParts(parts: readonly SpilledPart[]): void {
    this.parts = [...parts, ...this.parts];
  }

  /** The parts spilled since the last commit (local file, commit LSNs spanned), for queries over the history. */
  get partFiles(): { local: string; minLsn: bigint; maxLsn: bigint }[] {
    return this.parts.map((part) => ({ local: part.local, minLsn: part.entry.minLsn, maxLsn: part.entry.maxLsn }));
  }

  /** Spills what is staged, then moves every part into the vault durably; the entries for the manifest. */
  async commitLayers(kind: LayerEntry['kind']): Promise<LayerEntry[]> {
    await this.spill(kind);
    const entries: LayerEntry[] = [];
    for (const part of this.parts) {
      await this.storage.putFile(part.entry.path, part.local);
      entries.push(part.entry);
    }
    this.parts = [];
    return entries;
  }

  /** Forgets everything staged and spilled (a transaction was cut off; the slot sends it again). */
  async discard(): Promise<void> {
    for (const part of this.parts) await rm(part.local, { force: true });
    this.parts = [];
    await this.clear();
  }

  /** Nothing staged and nothing spilled since the last commit. */
  get isEmpty(): boolean {
    return this.count === 0 && this.parts.length === 0;
  }

  /** Drops every staged row (after a layer was written, or to forget a partial transaction). */
  async clear(): Promise<void> {
    this.appender.closeSync();
    // Dropped and created again, not DELETEd: an in-memory DuckDB never reclaims the
    // string space that deleted and updated rows held, so the memory would only grow.
    await this.duck.run(`DROP VIEW ${this.tableName}`);
    await this.duck.run(`DROP TABLE ${storedTable(this.tableName)}`);
    await createStaging(this.duck, this.tableName);
    this.appender = await this.duck.createAppender(storedTable(this.tableName));
    this.count = 0;
    this.bytes = 0;
  }

  /** Releases the appender and the staging table (the process's DuckDB outlives it). */
  async close(): Promise<void> {
    this.appender.closeSync();
    await this.duck.run(`DROP VIEW IF EXISTS ${this.tableName}`);
    await this.duck.run(`DROP TABLE IF EXISTS ${storedTable(this.tableName)}`);
  }
}

/** SHA-256 of a file, streamed. */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
