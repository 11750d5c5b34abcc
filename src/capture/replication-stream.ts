// The walsender connection: START_REPLICATION on a named slot, the CopyBoth frames
// decoded in arrival order, and standby status updates sent only with positions the
// caller says are durable. Built directly on node-postgres so that keepalives and
// data pass through one ordered queue (no acknowledgement can overtake data).

import type pg from 'pg';
import { SourceUnreachableError } from '../errors.js';
import { formatLsn, type Lsn } from '../timeline/index.js';
import { decodePgoutput, type PgoutputMessage } from './pgoutput.js';

/** What the stream yields. 'idle' comes when nothing arrived for a while, so the caller can flush on time. */
export type ReplicationFrame =
  | { readonly kind: 'data'; readonly walStart: Lsn; readonly walEnd: Lsn; readonly message: PgoutputMessage }
  | { readonly kind: 'keepalive'; readonly walEnd: Lsn; readonly replyRequested: boolean }
  | { readonly kind: 'idle' };

/** Queue length at which the socket is paused (backpressure), and resumed below half of it. */
const HIGH_WATER = 2_000;
/** Queued frame bytes at which the socket is paused whatever their number, unless told otherwise. */
const HIGH_WATER_BYTES = 32 * 1024 * 1024;
/** Quiet time after which the stream yields 'idle' (unless told otherwise). */
const IDLE_MS = 250;
/**
 * Longest run of queued frames handed out without a turn of the event loop. The queue
 * drains in microtasks, which run before any I/O callback: without a turn now and then,
 * a full queue would hold back the batch being written in the background (each of its
 * file and DuckDB steps completes as a callback) until the queue is empty.
 */
const TURN_EVERY_MS = 1;
/** Milliseconds between the Unix epoch and PostgreSQL's epoch, 2000-01-01. */
const PG_EPOCH_MS = 946_684_800_000;

interface PgConnection {
  on(event: 'copyData', listener: (message: { chunk: Buffer }) => void): void;
  once(event: 'replicationStart', listener: () => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: { pause(): void; resume(): void };
}

/** A running logical replication stream. */
export class ReplicationStream implements AsyncIterable<ReplicationFrame> {
  private readonly queue: { frame: ReplicationFrame; bytes: number }[] = [];
  /** Wire bytes of the frames queued: rows of megabytes must pause the socket long before 2,000 frames. */
  private queuedBytes = 0;
  private wake: (() => void) | undefined;
  private failure: unknown;
  private ended = false;
  private paused = false;
  private stopped = false;
  private readonly connection: PgConnection;
  /** Settles when the server answers START_REPLICATION: streaming (the slot is ours) or its refusal. */
  readonly started: Promise<void>;
  private settleStart: ((error?: unknown) => void) | undefined;

  private constructor(
    private readonly client: pg.Client,
    private readonly idleMs: number,
    private readonly highWaterBytes: number,
  ) {
    // node-postgres has no public API for CopyBoth; its Connection object does the framing.
    this.connection = (client as unknown as { connection: PgConnection }).connection;
    this.started = new Promise<void>((resolve, reject) => {
      this.settleStart = (error?: unknown) => (error === undefined ? resolve() : reject(error));
    });
    // A caller that never awaits the start still sees a refusal, from the iterator.
    this.started.catch(() => undefined);
    this.connection.once('replicationStart', () => this.settleStarted());
  }

  /** Starts streaming a slot with pgoutput from `startLsn` (0 = the slot's confirmed position). */
  static start(
    client: pg.Client,
    options: { slot: string; publication: string; startLsn: Lsn; idleMs?: number; highWaterBytes?: number },
  ): ReplicationStream {
    const stream = new ReplicationStream(client, options.idleMs ?? IDLE_MS, options.highWaterBytes ?? HIGH_WATER_BYTES);
    stream.connection.on('copyData', ({ chunk }) => stream.receive(chunk));
    const escape = (text: string): string => text.replaceAll("'", "''");
    client
      .query(
        `START_REPLICATION SLOT "${options.slot.replaceAll('"', '""')}" LOGICAL ${formatLsn(options.startLsn)} ` +
          `(proto_version '1', publication_names '${escape(options.publication)}', messages 'true')`,
      )
      .then(
        () => stream.finish(undefined),
        (error: unknown) => stream.finish(error),
      );
    client.on('error', (error) => stream.finish(error));
    client.on('end', () => stream.finish(undefined));
    return stream;
  }

  /** Tells the server everything up to `lsn` is durable; it may recycle WAL and advance the slot. */
  sendStatus(lsn: Lsn, replyRequested = false): void {
    if (this.ended) return;
    const message = Buffer.alloc(34);
    message.write('r', 0, 'latin1');
    message.writeBigUInt64BE(lsn, 1); // written
    message.writeBigUInt64BE(lsn, 9); // flushed
    message.writeBigUInt64BE(lsn, 17); // applied
    message.writeBigInt64BE(BigInt(Date.now() - PG_EPOCH_MS) * 1000n, 25);
    message.writeUInt8(replyRequested ? 1 : 0, 33);
    this.connection.sendCopyFromChunk(message);
  }

  /** Ends the iteration but keeps the connection, so a last status update can still be sent. */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  /** Ends the connection; the iterator then finishes. */
  async close(): Promise<void> {
    this.ended = true;
    this.wake?.();
    await this.client.end().catch(() => undefined);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ReplicationFrame> {
    let turnAt = performance.now();
    for (;;) {
      // A failure wins over queued frames: a transaction must never commit without a change that failed to decode.
      if (this.failure !== undefined) throw this.failure;
      if (this.stopped) return;
      if (this.queue.length > 0 && performance.now() - turnAt > TURN_EVERY_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        turnAt = performance.now();
        continue;
      }
      const queued = this.queue.shift();
      if (queued !== undefined) {
        this.queuedBytes -= queued.bytes;
        if (this.paused && this.queue.length < HIGH_WATER / 2 && this.queuedBytes < this.highWaterBytes / 2) {
          this.paused = false;
          this.connection.stream.resume();
        }
        yield queued.frame;
        continue;
      }
      if (this.ended) return;
      const arrived = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), this.idleMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      this.wake = undefined;
      turnAt = performance.now();
      if (!arrived) yield { kind: 'idle' };
    }
  }

  private receive(chunk: Buffer): void {
    const type = chunk[0];
    if (type === 0x77) {
      // XLogData: 'w', walStart, walEnd, sendTime, payload
      let message: PgoutputMessage;
      try {
        message = decodePgoutput(chunk.subarray(25));
      } catch (error) {
        this.finish(error);
        return;
      }
      this.queue.push({
        frame: { kind: 'data', walStart: chunk.readBigUInt64BE(1), walEnd: chunk.readBigUInt64BE(9), message },
        bytes: chunk.length,
      });
      this.queuedBytes += chunk.length;
    } else if (type === 0x6b) {
      // Primary keepalive: 'k', walEnd, sendTime, replyRequested
      this.queue.push({ frame: { kind: 'keepalive', walEnd: chunk.readBigUInt64BE(1), replyRequested: chunk[17] === 1 }, bytes: 0 });
    }
    if (!this.paused && (this.queue.length >= HIGH_WATER || this.queuedBytes >= this.highWaterBytes)) {
      this.paused = true;
      this.connection.stream.pause();
    }
    this.wake?.();
  }

  private finish(error: unknown): void {
    if (error !== undefined && this.failure === undefined && !this.ended) this.failure = error;
    this.ended = true;
    // Ended before the server answered (a shutdown, or capture closing it as the source went away): waited out.
    this.settleStarted(
      error ?? new SourceUnreachableError('the replication connection ended before the server streamed the slot', 'capture reconnects'),
    );
    this.wake?.();
  }

  private settleStarted(error?: unknown): void {
    this.settleStart?.(error);
    this.settleStart = undefined;
  }
}
