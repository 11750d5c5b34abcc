// The cap on a restore's write rate, shared by its parallel sessions: before each
// write statement, the throttle waits until the rows written so far fit in the rate
// since apply began, and a throttled statement writes at most a slice of rows, so
// the cap holds within one tenant's transaction too. Without a rate it never waits.

import { sleep } from '../source/index.js';

/** A throttled statement writes at most this many seconds' worth of rows. */
const SLICE_SECONDS = 0.25;

/** A rows-per-second budget for the whole apply. */
export class Throttle {
  private readonly started = Date.now();
  private rows = 0;

  constructor(private readonly rowsPerSecond: number | undefined) {}

  /** Most rows one write statement may write (undefined: no cap, statements are not cut). */
  get slice(): number | undefined {
    return this.rowsPerSecond === undefined ? undefined : Math.max(1, Math.ceil(this.rowsPerSecond * SLICE_SECONDS));
  }

  /** Counts rows a statement wrote. */
  wrote(rows: number): void {
    this.rows += rows;
  }

  /** Waits until the rows written so far keep the average rate under the cap; returns early once `signal` aborts. */
  async pace(signal?: AbortSignal): Promise<void> {
    if (this.rowsPerSecond === undefined) return;
    const due = this.started + (this.rows / this.rowsPerSecond) * 1000;
    if (due > Date.now()) await sleep(due - Date.now(), signal);
  }
}
