// The DuckDB statements that compute a plan's target rows. Every connection of the
// process shares one DuckDB memory limit, and a statement that fetches wide rows
// needs most of it, so the statements of every session take turns: one runs at a
// time in the process, with all of DuckDB's share, while the sessions' PostgreSQL
// work goes on side by side. A stopped computation interrupts the statement under
// way and runs no other, so nothing of it is left running when its reader closes.

import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import { InternalError, TargetMemoryError } from '../errors.js';
import { processMemoryBudget, queryRows } from '../vault/index.js';

/** The end of the queue of target statements in this process. */
let queue: Promise<unknown> = Promise.resolve();

/** Runs `work` once every target statement queued before it has ended. */
function inTurn<T>(work: () => Promise<T>): Promise<T> {
  const mine = queue.then(work, work);
  queue = mine.catch(() => undefined);
  return mine;
}

/** One reader's target statements: run in turn, and stopped all at once. */
export class TargetStatements {
  private stopped = false;
  private running = false;

  constructor(
    private readonly duck: DuckDBConnection,
    signal?: AbortSignal,
  ) {
    signal?.addEventListener('abort', () => this.stop(), { once: true });
    if (signal?.aborted) this.stop();
  }

  /** Runs a statement. */
  async run(sql: string): Promise<void> {
    await this.take(() => this.duck.run(sql));
  }

  /** Runs a query and returns its rows. */
  async rows(sql: string): Promise<Record<string, DuckDBValue>[]> {
    return this.take(() => queryRows(this.duck, sql));
  }

  /**
   * Interrupts the statement under way, if one is (an interrupt of an idle connection
   * has nothing to stop), and refuses every later one.
   */
  stop(): void {
    this.stopped = true;
    if (this.running) this.duck.interrupt();
  }

  private take<T>(work: () => Promise<T>): Promise<T> {
    return inTurn(async () => {
      if (this.stopped) throw new InternalError('a target statement was asked for after the plan stopped');
      this.running = true;
      try {
        return await work();
      } catch (error) {
        throw outOfMemory(error) ?? error;
      } finally {
        this.running = false;
      }
    });
  }
}

/** DuckDB's out-of-memory error, said as what it means for the command, or undefined for any other error. */
function outOfMemory(error: unknown): TargetMemoryError | undefined {
  const message = (error as Error | undefined)?.message ?? '';
  if (!message.startsWith('Out of Memory Error')) return undefined;
  const share = (processMemoryBudget().planDuckdbBytes / 2 ** 20).toFixed(1);
  return new TargetMemoryError(
    `reading the plan's target rows took more than DuckDB's ${share} MiB share of the memory budget (${message.split('\n')[0]}); nothing was written`,
    'give the command a larger --memory-limit (or RECALL_MEMORY_LIMIT); layers written before row groups of 2,048 rows hold wide rows in pages of tens of MB, which DuckDB reads whole',
    { cause: error },
  );
}
