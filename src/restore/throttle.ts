// The cap on a restore's write rate, shared by its parallel sessions: before a
// tenant is written, the throttle waits until the rows written so far fit in the
// rate since apply began. Without a rate it never waits.

import { sleep } from '../source/index.js';

/** A rows-per-second budget for the whole apply. */
export class Throttle {
  private readonly started = Date.now();
  private rows = 0;

  constructor(private readonly rowsPerSecond: number | undefined) {}

  /** Reserves `rows` and waits until writing them keeps the average rate under the cap. */
  async take(rows: number): Promise<void> {
    this.rows += rows;
    if (this.rowsPerSecond === undefined) return;
    const due = this.started + ((this.rows - rows) / this.rowsPerSecond) * 1000;
    if (due > Date.now()) await sleep(due - Date.now());
  }
}
