// `recall capture`: streams the slot into the vault. Changes are staged per
// transaction and cut into a batch at a transaction boundary at least every
// second; the batch is written (completed, layers, manifest) in the background
// while the next one stages (batch-writer.ts). The slot is acknowledged only up
// to the last commit whose layer and manifest are durable (invariant 1). After a
// crash, transactions the vault already holds are recognised by commit LSN and skipped.
//
//   connect ──▶ stream ──▶ stage txn ──▶ (due?) cut ──▶ write batch: resolve, layer, manifest ──▶ ack
//      ▲                       ▲                                   │ (meanwhile the next batch stages)
//      │                       └───────────────────────────────────┘
//      └──── backoff with jitter ◀── connection lost / server restart

import type { DuckDBConnection } from '@duckdb/node-api';
import type pg from 'pg';
import { RecallError } from '../errors.js';
import {
  assertTenancyFits,
  backoffDelay,
  connectSource,
  currentWalLsn,
  readCatalog,
  readSourceIdentity,
  sleep,
  type SourceConfig,
  type TenancyConfig,
} from '../source/index.js';
import { formatLsn, type Lsn } from '../timeline/index.js';
import {
  type LayerBuffer,
  type LayerEntry,
  processMemoryBudget,
  Compactor,
  firstNewCommitLsn,
  type Retention,
  type SchemaVersion,
  type Vault,
} from '../vault/index.js';
import { assertNoGap } from './history-gaps.js';
import { asStuck } from './stuck.js';
import { isTransient, slotBusy, slotRefusal } from './failures.js';
import { keyOf, StreamTransaction } from './transaction.js';
import { AcknowledgedPosition } from './acknowledged-position.js';
import { XidWidener } from './xid.js';
import { BatchFailure, BatchWriter, type Batch, type StagedRange } from './batch-writer.js';
import { DDL_MESSAGE_PREFIX, parseAnnouncedLayout } from './ddl-hook.js';
import { reimageTables } from './image.js';
import type { PgoutputMessage, Tuple } from './pgoutput.js';
import { latestVersion, RelationMap, type StreamRelation } from './relations.js';
import { ReplicationStream } from './replication-stream.js';
import { truncateChunks } from './resolve.js';

/** How `capture` runs. */
export interface CaptureOptions {
  readonly source: SourceConfig;
  readonly vault: Vault;
  readonly tenancy: TenancyConfig;
  /** Stop once the vault holds everything committed before capture started. */
  readonly untilCaughtUp?: boolean;
  /** Stops capture cleanly (SIGINT/SIGTERM): staged transactions are flushed first. */
  readonly signal?: AbortSignal;
  /** Longest time a committed change waits in staging (the recovery point is this plus a write). */
  readonly flushIntervalMs?: number;
  /**
   * Keep the vault compact in the background on the compaction budget (recall capture as
   * a service does): merges, images, folds past `retention`, and gc after `gcGraceMs`.
   */
  readonly compact?: false | { readonly retention?: Retention | undefined; readonly gcGraceMs?: number };
  readonly log?: (line: string) => void;
}

/** What a capture run did. */
export interface CaptureSummary {
  readonly transactions: number;
  readonly changes: number;
  readonly layers: number;
  readonly throughLsn: string;
}

/** What a capture run has done so far, across its sessions. */
interface Totals {
  transactions: number;
  changes: number;
  layers: number;
}

/** WAL between what the server has written and what capture receives past which capture counts as lagging: compaction backs off. */
const LAGGING_BYTES = 64n * 1024n * 1024n;

const STATUS_INTERVAL_MS = 10_000;
const IDLE_STATUS_MS = 1_000;
const CATCH_UP_IDLE_MS = 20;
const REIMAGE_RETRY_MS = 60_000;
const HEALTHY_SESSION_MS = 30_000;

/** Streams changes into the vault until stopped (or caught up). */
export async function capture(options: CaptureOptions): Promise<CaptureSummary> {
  const log = options.log ?? (() => undefined);
  const totals: Totals = { transactions: 0, changes: 0, layers: 0 };
  let session: CaptureSession | undefined;
  const compactor = options.compact
    ? new Compactor({
        ...options.compact,
        vault: options.vault,
        log,
        lagging: () => session === undefined || session.lagging,
        streaming: () => session !== undefined,
      })
    : undefined;
  try {
    await stream(options, totals, log, (current) => (session = current));
  } finally {
    session = undefined;
    await compactor?.stop();
  }
  return { ...totals, throughLsn: formatLsn(options.vault.manifest.throughLsn) };
}

/** Sessions one after the other, reconnecting after transient failures, until stopped (or caught up). */
async function stream(
  options: CaptureOptions,
  totals: Totals,
  log: (line: string) => void,
  opened: (session: CaptureSession) => void,
): Promise<void> {
  let target: Lsn | undefined;
  for (let attempt = 0; ; attempt++) {
    if (options.signal?.aborted) break;
    const startedAt = Date.now();
    try {
      const session = await CaptureSession.open(options, totals, log);
      opened(session);
      try {
        target ??= options.untilCaughtUp ? await session.currentWalLsn() : undefined;
        const done = await session.run(target);
        if (done) break;
      } finally {
        await session.close();
      }
    } catch (error) {
      if (!isTransient(error)) throw error;
      // Only a session that lasted counts as recovered; quick failures keep backing off.
      if (Date.now() - startedAt > HEALTHY_SESSION_MS) attempt = 0;
      const delay = backoffDelay(attempt);
      log(`capture: ${(error as Error).message}; retrying in ${(delay / 1000).toFixed(1)} s`);
      await sleep(delay, options.signal);
      continue;
    }
    if (options.signal?.aborted) break;
    // The server ended the stream without an error (a clean shutdown): reconnect, but not in a tight loop.
    await sleep(backoffDelay(Date.now() - startedAt > HEALTHY_SESSION_MS ? 0 : attempt), options.signal);
  }
}

/** One connection's worth of capture. */
class CaptureSession {
  private transaction: StreamTransaction | undefined;
  /** WAL bytes the server had written past the newest frame received. */
  private behind = 0n;
  private lastCommit: { lsn: Lsn; endLsn: Lsn; time: bigint } | undefined;
  private stagedSince: number | undefined;
  /** The transactions staged since the last cut, to name them if they cannot be ingested. */
  private staged: StagedRange | undefined;
  /** Commit LSN of the newest batch cut: a cut needs a newer commit. */
  private cutThrough: Lsn;
  private firstNewOf: { readonly version: number; readonly lsn: Lsn } | undefined;
  /** A failure recorded by an earlier capture, cleared by the first flush that gets past it. */
  private failureRecorded = false;
  private lastStatusAt = 0;
  /** No attempt to image rewritten tables again before this time (ms since the epoch). */
  private reimageAfter = 0;

  private constructor(
    private readonly options: CaptureOptions,
    private readonly totals: Totals,
    private readonly log: (line: string) => void,
    private readonly catalog: pg.Client,
    private readonly stream: ReplicationStream,
    private readonly writer: BatchWriter,
    private readonly relations: RelationMap,
    private readonly xids: XidWidener,
    private readonly ack: AcknowledgedPosition,
  ) {
    // A commit at an image's own point is new (firstNewCommitLsn): cut through the position just before it.
    this.cutThrough = firstNewCommitLsn(options.vault.manifest) - 1n;
  }

  static async open(options: CaptureOptions, totals: Totals, log: (line: string) => void): Promise<CaptureSession> {
    const vault = options.vault;
    const manifest = await vault.refresh();
    const catalog = await connectSource(options.source);
    // A server crash or shutdown ends this (mostly idle) session with an 'error' event, which
    // would kill the process unhandled; the session ends instead and capture reconnects.
    let onCatalogError = (): void => undefined;
    catalog.on('error', () => onCatalogError());
    let writer: BatchWriter | undefined;
    let stream: ReplicationStream | undefined;
    try {
      const identity = await readSourceIdentity(catalog);
      if (identity.database !== manifest.source.database) vault.assertSource(identity);
      // New relations take their tenant column from recall.yml: a typo there stops capture before it streams.
      assertTenancyFits(await readCatalog(catalog, options.tenancy), options.tenancy);
      // Never over a gap: streaming would start at the slot's position and skip what the vault lacks.
      await assertNoGap(catalog, vault, identity, true);
      const slot = await catalog.query<{ active_pid: string | null }>(
        `SELECT active_pid::text FROM pg_replication_slots WHERE slot_name = $1`,
        [manifest.source.slot],
      );
      const activePid = slot.rows[0]?.active_pid ?? null;
      if (activePid !== null) throw slotBusy(manifest.source.slot, activePid);
      const xid = await catalog.query<{ next: string }>(`SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS next`);
      // Staging first: nothing may fail between starting the stream and owning it (it holds the slot).
      writer = await BatchWriter.create({ vault, log });
      const relations = new RelationMap(manifest.schemas, options.tenancy, catalog);
      const replication = await connectSource(options.source, { replication: true });
      stream = ReplicationStream.start(replication, {
        slot: manifest.source.slot,
        publication: manifest.source.publication,
        startLsn: 0n,
        highWaterBytes: processMemoryBudget().streamBytes,
        // Catching up, each quiet moment asks the server where WAL ends: a restore waits on the answer.
        ...(options.untilCaughtUp ? { idleMs: CATCH_UP_IDLE_MS } : {}),
      });
      const started = stream;
      onCatalogError = () => void started.close();
      await started.started.catch((error: unknown) => {
        throw slotRefusal(error, manifest.source.slot);
      });
      log(`capture: streaming slot "${manifest.source.slot}" from ${formatLsn(manifest.throughLsn)} into ${vault.storage.location}`);
      const recorded = (await vault.acknowledgedLsn()) ?? vault.manifest.throughLsn;
      const session = new CaptureSession(
        options,
        totals,
        log,
        catalog,
        stream,
        writer,
        relations,
        new XidWidener(BigInt(xid.rows[0]?.next ?? '0')),
        new AcknowledgedPosition(recorded),
      );
      session.failureRecorded = (await vault.captureFailure()) !== null;
      return session;
    } catch (error) {
      await stream?.close();
      await writer?.close();
      await catalog.end().catch(() => undefined);
      throw error;
    }
  }

  /** Whether capture is behind the source (or its writer cannot keep up): background work waits. */
  get lagging(): boolean {
    return this.behind > LAGGING_BYTES || (this.writer.writing && this.staging.full);
  }

  /** The source's current WAL insert position: "caught up" means the vault reached it. */
  async currentWalLsn(): Promise<Lsn> {
    return currentWalLsn(this.catalog);
  }

  /** Processes frames until stopped (false: reconnect) or caught up (true). */
  async run(target: Lsn | undefined): Promise<boolean> {
    const signal = this.options.signal;
    // A stop ends the iteration only: the final flush below still acknowledges what it made durable.
    const onAbort = (): void => this.stream.stop();
    signal?.addEventListener('abort', onAbort, { once: true });
    // Stopped while the session was opening: the listener above came too late for that.
    if (signal?.aborted) onAbort();
    // Ask at once where WAL ends: with nothing to receive, the answer is what ends the wait.
    if (target !== undefined) this.sendStatus(true);
    try {
      return await this.ingest(target);
    } catch (error) {
      if (error instanceof BatchFailure) {
        if (isTransient(error.cause)) throw error.cause;
        throw await this.stuck(error.cause, error.staged ?? this.staged, error);
      }
      if (isTransient(error)) throw error;
      throw await this.stuck(error, this.staged, { rows: this.staging.stagedRows, bytes: this.staging.stagedBytes });
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * The frame loop of `run`. Each frame moves the session through these states:
   *
   *   between transactions ──BEGIN──▶ in a transaction ──row──▶ staged (spilled to a part when staging is full)
   *      ▲      │                          │ COMMIT
   *      │      │ due (time, size, target) └──▶ between transactions
   *      │      ▼
   *      │    cut: the batch writes in the background ──durable──▶ acknowledge (the slot may follow)
   *      └────┘
   *   between transactions, nothing staged, target reached ──▶ caught up: return
   *   every 10 s (every 1 s when idle) ──▶ record and send the acknowledged position
   */
  private async ingest(target: Lsn | undefined): Promise<boolean> {
    const signal = this.options.signal;
    for await (const frame of this.stream) {
      // A batch written in the background failed: stop at once, naming it.
      this.writer.assertHealthy();
      if (frame.kind === 'data') {
        this.behind = frame.walEnd - frame.walStart;
        await this.handle(frame.message);
      } else if (frame.kind === 'keepalive') {
        // The server idles between frames only once it has sent what it has.
        this.behind = 0n;
        await this.keepalive(frame.walEnd, frame.replyRequested);
      }
      if (this.transaction !== undefined && this.staging.full) await this.withHeartbeat(() => this.spill());
      if (this.transaction === undefined && this.flushDue(target)) await this.cut();
      if (target !== undefined && this.transaction === undefined) {
        if (this.nothingStaged && this.reached(target)) {
          // The WAL end the server just reported holds nothing of ours: the slot may follow it.
          await this.acknowledge();
          return true;
        }
        // Only to learn where WAL ends (the reply's keepalive): nothing new is acknowledged here.
        if (frame.kind === 'idle') this.stream.sendStatus(this.ack.recorded, true);
      }
      if (Date.now() - this.lastStatusAt > STATUS_INTERVAL_MS) await this.acknowledge();
      else if (
        frame.kind === 'idle' &&
        this.nothingStaged &&
        this.transaction === undefined &&
        Date.now() - this.lastStatusAt > IDLE_STATUS_MS
      ) {
        // Idle: ask the server where WAL ends, so the slot's confirmed position follows it
        // within a second or two; a restore waits on that position to know the vault is current.
        await this.acknowledge(true);
      }
    }
    await this.withHeartbeat(() => this.writer.settle());
    if (this.transaction === undefined) {
      await this.cut();
      await this.withHeartbeat(() => this.writer.settle());
    } else {
      // Cut off mid-transaction: forget everything not yet durable; the slot sends it again next time.
      await this.writer.discard();
      this.transaction = undefined;
    }
    return signal?.aborted === true;
  }

  /**
   * The error capture stops with when it cannot ingest what it staged: it names the
   * transactions, says nothing was lost and what to do, and is recorded in the vault
   * for `recall status`. Capture stops rather than retrying a failure that would only
   * repeat; the slot keeps the WAL meanwhile.
   */
  private async stuck(error: unknown, staged: StagedRange | undefined, size: { rows: number; bytes: number }): Promise<unknown> {
    // The batch in flight ends first, so its commit cannot clear the failure recorded here.
    await this.writer.settle().catch(() => undefined);
    // Recall's own errors (a lost slot, a vault conflict) say what they are; with nothing staged there is no transaction to name.
    if (error instanceof RecallError || staged === undefined) return error;
    const { first, last, transactions } = staged;
    const which =
      transactions === 1
        ? `transaction ${first.xid} (commit lsn:${formatLsn(first.lsn)}`
        : `${transactions} transactions ${first.xid}…${last.xid} (commit lsn:${formatLsn(first.lsn)}…${formatLsn(last.lsn)}`;
    const stuck = asStuck(error, `${which}, ${size.rows} changes, ${(size.bytes / 2 ** 20).toFixed(1)} MiB staged so far)`);
    await this.options.vault
      .recordCaptureFailure({ at: new Date().toISOString(), message: stuck.message, hint: stuck.hint ?? '', lsn: formatLsn(first.lsn) })
      .catch(() => undefined);
    return stuck;
  }

  async close(): Promise<void> {
    await this.writer.close();
    await this.stream.close();
    await this.catalog.end().catch(() => undefined);
  }

  /**
   * Nothing waits to be made durable: no staged rows, no batch being written, and no
   * layout the manifest lacks (a DDL-only transaction stages no row, yet its layout must
   * be flushed before the slot moves past it, or it would never be sent again).
   */
  private get nothingStaged(): boolean {
    return this.writer.isEmpty && !this.relations.unsaved;
  }

  /** The buffer changes are staged into now. */
  private get staging(): LayerBuffer {
    return this.writer.staging;
  }

  private reached(target: Lsn): boolean {
    return this.options.vault.manifest.throughLsn >= target || this.ack.idleWalEnd >= target || (this.lastCommit?.endLsn ?? 0n) >= target;
  }

  private async keepalive(walEnd: Lsn, replyRequested: boolean): Promise<void> {
    // Nothing staged and no transaction open: everything up to walEnd is either in the vault or not ours.
    if (this.transaction === undefined && this.nothingStaged) this.ack.idle(walEnd);
    if (replyRequested) await this.acknowledge();
  }

  /**
   * Records the durable position in the vault if it moved past the last record, then
   * sends it: the slot is never acknowledged past what the vault says it acknowledged,
   * so a vault that is not the one capture wrote (a stale copy) can tell (history-gaps.ts).
   */
  private async acknowledge(replyRequested = false): Promise<void> {
    const idle = this.nothingStaged && this.transaction === undefined;
    const position = this.ack.toRecord(this.options.vault.manifest.throughLsn, idle);
    if (position !== undefined) {
      await this.options.vault.recordAcknowledged(position);
      this.ack.recordedAs(position);
    }
    this.sendStatus(replyRequested);
  }

  /** Sends the recorded position (a heartbeat during long work sends no more than that). */
  private sendStatus(replyRequested = false): void {
    this.lastStatusAt = Date.now();
    this.stream.sendStatus(this.ack.recorded, replyRequested);
  }

  private flushDue(target: Lsn | undefined): boolean {
    if (this.nothingStaged || this.stagedSince === undefined) return false;
    if (target !== undefined && (this.lastCommit?.endLsn ?? 0n) >= target) return true;
    return Date.now() - this.stagedSince >= (this.options.flushIntervalMs ?? 1000) || this.staging.full;
  }

  /** firstNewCommitLsn of the current manifest, computed once per version (it looks at every layer). */
  private firstNew(): Lsn {
    const manifest = this.options.vault.manifest;
    if (this.firstNewOf?.version !== manifest.version) this.firstNewOf = { version: manifest.version, lsn: firstNewCommitLsn(manifest) };
    return this.firstNewOf.lsn;
  }

  private async handle(message: PgoutputMessage): Promise<void> {
    switch (message.tag) {
      case 'begin': {
        const duplicate = message.finalLsn < this.firstNew();
        this.transaction = new StreamTransaction(message.finalLsn, message.commitTime, this.xids.widen(message.xid), duplicate);
        this.stagedSince ??= Date.now();
        if (!duplicate) {
          const at = { xid: this.transaction.xid, lsn: message.finalLsn };
          this.staged = { first: this.staged?.first ?? at, last: at, transactions: (this.staged?.transactions ?? 0) + 1 };
        }
        return;
      }
      case 'relation':
        await this.relations.define(
          message,
          this.transaction?.commitLsn ?? this.options.vault.manifest.throughLsn,
          this.transaction?.duplicate === true,
        );
        return;
      case 'message': {
        const txn = this.transaction;
        if (!message.transactional || txn === undefined) return;
        if (message.prefix === 'recall') txn.setContext(message.content);
        else if (message.prefix === DDL_MESSAGE_PREFIX && !txn.duplicate) {
          const layout = parseAnnouncedLayout(message.content);
          if (layout !== undefined) await this.relations.defineFromDdl(layout, txn.commitLsn);
        }
        return;
      }
      case 'insert':
        return this.stage('insert', this.relations.get(message.relationId), message.row);
      case 'update': {
        const relation = this.relations.get(message.relationId);
        if (message.old !== undefined && keyOf(relation, message.old) !== keyOf(relation, message.row)) {
          // The key changed: the old key's row is gone.
          this.stage('delete', relation, message.old, message.oldWhole);
        }
        return this.stage('update', relation, message.row);
      }
      case 'delete':
        return this.stage('delete', this.relations.get(message.relationId), message.old, message.oldWhole);
      case 'truncate':
        for (const relationId of message.relationIds) await this.truncate(this.relations.get(relationId));
        return;
      case 'commit':
        return this.commit(message.endLsn, message.commitTime);
      case 'type':
      case 'origin':
        return;
    }
  }

  private stage(op: 'insert' | 'update' | 'delete', relation: StreamRelation, tuple: Tuple, whole = true): void {
    const txn = this.transaction;
    if (txn === undefined) throw new Error(`pgoutput: ${op} outside a transaction`);
    if (txn.duplicate) return;
    const { change, unchanged } = txn.change(op, relation, tuple, whole);
    this.staging.append(change, unchanged);
    this.totals.changes++;
  }

  /**
   * Stages one 'truncate' change per row alive in the table, a part's worth at a time:
   * a TRUNCATE of a large table removes more rows than any one statement may hold.
   */
  private async truncate(relation: StreamRelation): Promise<void> {
    const txn = this.transaction;
    if (txn === undefined || txn.duplicate) return;
    const change = {
      table: relation.table,
      commitLsn: txn.commitLsn,
      seq: txn.seq++,
      commitTime: txn.commitTime,
      xid: txn.xid,
      context: txn.context,
    };
    await this.withHeartbeat(async () => {
      // The rows alive before the TRUNCATE include those of the batch being written.
      await this.writer.settle();
      const staging = this.staging;
      const chunks = await truncateChunks(staging.connection, await this.writer.history(), change, staging.partBytes);
      // Staging holds one chunk at a time: what was staged before goes to a part first. The history
      // is asked for again each time, since a part written meanwhile took rows out of staging.
      for (let more = true; more;) {
        await staging.sync();
        if (staging.size > 0) await this.writer.writeStaged(staging);
        more = await chunks.stageNext(await this.writer.history());
        await staging.recount();
      }
    });
  }

  private async commit(endLsn: Lsn, commitTime: bigint): Promise<void> {
    const txn = this.transaction;
    this.transaction = undefined;
    if (txn === undefined) throw new Error('pgoutput: COMMIT without BEGIN');
    if (txn.duplicate) {
      // Already durable in the vault: safe to acknowledge once nothing newer is staged.
      if (this.nothingStaged) this.ack.committed(endLsn, false);
      return;
    }
    if (txn.context !== null && txn.contextLate) await this.staging.setContext(txn.commitLsn, txn.context);
    this.lastCommit = { lsn: txn.commitLsn, endLsn, time: commitTime };
    this.totals.transactions++;
  }

  /**
   * Runs vault work that may take long while telling the server we are alive, so that
   * wal_sender_timeout does not drop the connection (the socket may be paused meanwhile).
   */
  private async withHeartbeat<T>(work: () => Promise<T>): Promise<T> {
    const timer = setInterval(() => this.sendStatus(), STATUS_INTERVAL_MS);
    try {
      return await work();
    } finally {
      clearInterval(timer);
    }
  }

  /**
   * Cuts what is staged into a batch and starts writing it. While the batch before is
   * still being written, staging goes on and a later frame cuts, unless staging is full:
   * then capture waits for that batch (backpressure keeps memory bounded).
   */
  private async cut(): Promise<void> {
    if (this.writer.writing) {
      if (!this.staging.full) return;
      await this.withHeartbeat(() => this.writer.settle());
    }
    const end = this.lastCommit;
    if (end === undefined || end.lsn <= this.cutThrough) {
      this.stagedSince = undefined;
      return;
    }
    const batch: Batch = {
      end,
      staged: this.staged,
      schemas: [...this.relations.history],
      rewritten: this.relations.takeRewritten(),
    };
    this.cutThrough = end.lsn;
    this.stagedSince = undefined;
    this.staged = undefined;
    this.writer.write(batch, {
      reimage: (duck, tables) => this.reimage(duck, tables, batch.schemas),
      durable: (layers) => this.durable(batch, layers),
    });
  }

  /** Moves the staged part of a large transaction to a part file, so memory stays bounded. */
  private async spill(): Promise<void> {
    const txn = this.transaction;
    // Context that arrives after a spill reaches only the rows still staged (see ARCHITECTURE.md).
    if (txn?.context && txn.contextLate) await this.staging.setContext(txn.commitLsn, txn.context);
    await this.writer.spill();
  }

  /** A batch's manifest version is committed: the slot may follow it. */
  private async durable(batch: Batch, layers: readonly LayerEntry[]): Promise<void> {
    this.relations.markSaved(batch.schemas.length);
    this.totals.layers += layers.length;
    if (this.failureRecorded) {
      await this.options.vault.recordCaptureFailure(null);
      this.failureRecorded = false;
    }
    // The manifest version just committed records the batch's end as acknowledged.
    this.ack.committed(batch.end.endLsn, true);
    await this.acknowledge();
  }

  /**
   * Images rewritten tables again (see image.ts). After a failed attempt (a long
   * transaction blocks the temporary slot) the tables wait a minute before the next.
   */
  private async reimage(
    duck: DuckDBConnection,
    tables: readonly string[],
    schemas: readonly SchemaVersion[],
  ): Promise<{ layers: LayerEntry[]; left: string[] }> {
    if (Date.now() < this.reimageAfter) return { layers: [], left: [...tables] };
    const { source, tenancy, vault } = this.options;
    const images = await reimageTables(
      { source, tenancy, storage: vault.storage, duck, catalog: this.catalog, log: this.log },
      tables,
      // The layouts the batch commits: one the stream showed since belongs to a later batch.
      (table) => latestVersion(schemas, table),
    );
    if (images.left.length > 0) this.reimageAfter = Date.now() + REIMAGE_RETRY_MS;
    return images;
  }
}
