// How hard verify reads the source: each read after a probe of the source. A source
// with other sessions running statements (not Recall's own) is busy: verify then
// reads in chunks, each after a wait in proportion to the last one's work, longer
// while the source stays busy, and the application's transactions get the source
// back. `--max-rate` caps rows a second on top. An idle source is read at full speed.

import type pg from 'pg';
import { RECALL_APPLICATION, sleep } from '../source/index.js';
import { Throttle } from '../restore/index.js';

/** Looks at the source's sessions per probe. */
const LOOKS = 4;
/** While busy, each chunk waits this many times the last one's duration, doubling up to MAX_BACKOFF. */
const FIRST_BACKOFF = 1;
const MAX_BACKOFF = 8;

/** Paces one verify's reads of the live database. */
export class SourcePacing {
  private readonly throttle: Throttle;
  private backoff = 0;
  private lastChunkMs = 0;
  private serial: boolean | undefined;
  /** Chunks verify waited before, for its log. */
  waited = 0;

  constructor(
    maxRowsPerSecond: number | undefined,
    private readonly signal?: AbortSignal,
  ) {
    this.throttle = new Throttle(maxRowsPerSecond);
  }

  /**
   * Before a read: the rate cap's wait, then a probe of the source. While it is busy,
   * verify sleeps in proportion to its last read and reads without parallel workers,
   * which would take every core of a small server for the read's duration; the
   * answer says whether it is (the caller then reads in chunks).
   */
  async before(reader: pg.Client): Promise<boolean> {
    await this.throttle.pace(this.signal);
    const busy = await this.probe(reader);
    if (busy) {
      this.backoff = this.backoff === 0 ? FIRST_BACKOFF : Math.min(MAX_BACKOFF, this.backoff * 2);
      this.waited++;
      await sleep(this.lastChunkMs * this.backoff, this.signal);
    } else {
      // Eased off, not dropped: a source between two statements of its application is still in use.
      this.backoff = Math.floor(this.backoff / 2);
    }
    const serial = this.backoff > 0;
    if (serial !== this.serial) {
      await reader.query(serial ? 'SET max_parallel_workers_per_gather = 0' : 'RESET max_parallel_workers_per_gather');
      this.serial = serial;
    }
    return serial;
  }

  /** After a chunk of `rows` that took `ms`. */
  after(rows: number, ms: number): void {
    this.throttle.wrote(rows);
    this.lastChunkMs = ms;
  }

  /**
   * Whether other sessions run statements, at any of a few looks (an application's
   * short transactions leave a single look empty more often than not). Not how long a
   * look takes: verify's own DuckDB work on the same host would slow it too.
   */
  private async probe(reader: pg.Client): Promise<boolean> {
    for (let look = 0; look < LOOKS; look++) {
      // Within a transaction PostgreSQL answers pg_stat_activity from the snapshot of it taken first: take a new one.
      await reader.query('SELECT pg_catalog.pg_stat_clear_snapshot()');
      // Other sessions' states show to a role with pg_read_all_stats (or their own role): without it, every source looks idle.
      const { rows } = await reader.query<{ active: string }>(
        `SELECT count(*)::text AS active FROM pg_catalog.pg_stat_activity
          WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()
            AND application_name <> $1`,
        [RECALL_APPLICATION],
      );
      if (Number(rows[0]?.active ?? 0) > 0) return true;
    }
    return false;
  }
}
