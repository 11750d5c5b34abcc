// How hard verify reads the source: in chunks of a table's pages, each one after a
// probe of how quickly the source answers. A source that answers a trivial query much
// later than it did at its quickest is busy (its CPUs queue), and verify then waits
// in proportion to the work it just did, longer while the source stays busy; the
// application's transactions get the source back. `--max-rate` caps rows a second on
// top. A verify of an idle source runs at full speed.

import type pg from 'pg';
import { sleep } from '../source/index.js';
import { Throttle } from '../restore/index.js';

/** A probe this much slower than the quickest one, and past SLACK_MS, says the source is busy. */
const BUSY_FACTOR = 3;
const SLACK_MS = 1;
/** While busy, each chunk's work is followed by this many times its duration asleep, doubling up to MAX_BACKOFF. */
const FIRST_BACKOFF = 1;
const MAX_BACKOFF = 8;

/** Paces one verify's reads of the live database. */
export class SourcePacing {
  private readonly throttle: Throttle;
  private quickest = Number.POSITIVE_INFINITY;
  private backoff = 0;
  /** Chunks verify waited after, for its log. */
  waited = 0;

  constructor(
    maxRowsPerSecond: number | undefined,
    private readonly signal?: AbortSignal,
  ) {
    this.throttle = new Throttle(maxRowsPerSecond);
  }

  /** Before a chunk: the rate cap's wait. */
  async before(): Promise<void> {
    await this.throttle.pace(this.signal);
  }

  /** After a chunk of `rows` that took `ms`: probes the source and waits while it is busy. */
  async after(reader: pg.Client, rows: number, ms: number): Promise<void> {
    this.throttle.wrote(rows);
    const started = performance.now();
    await reader.query('SELECT 1');
    const probe = performance.now() - started;
    this.quickest = Math.min(this.quickest, probe);
    if (probe <= this.quickest * BUSY_FACTOR + SLACK_MS) {
      this.backoff = 0;
      return;
    }
    this.backoff = this.backoff === 0 ? FIRST_BACKOFF : Math.min(MAX_BACKOFF, this.backoff * 2);
    this.waited++;
    await sleep(ms * this.backoff, this.signal);
  }
}
