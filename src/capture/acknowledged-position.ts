// The position capture acknowledges to the slot, kept apart so that its one rule
// can be tested alone: it never passes what the vault holds durably (invariant 1),
// and the vault records it before it is sent, so a stale copy of the vault can
// tell that the slot moved past it (history-gaps.ts).

import type { Lsn } from '../timeline/index.js';

export class AcknowledgedPosition {
  /** End LSN of the newest commit durable in the vault (or already in it, sent again after a crash). */
  private committedEnd: Lsn = 0n;
  /** WAL end of the newest keepalive that arrived while nothing was staged or open. */
  private idleEnd: Lsn = 0n;
  private recordedLsn: Lsn;

  /** `recorded` is what the vault says was acknowledged last (its manifest's position if it says nothing). */
  constructor(recorded: Lsn) {
    this.recordedLsn = recorded;
  }

  /** The furthest position the vault records as acknowledged: the most any status update may send. */
  get recorded(): Lsn {
    return this.recordedLsn;
  }

  /** The newest WAL end known to hold nothing capture has yet to write. */
  get idleWalEnd(): Lsn {
    return this.idleEnd;
  }

  /** A keepalive arrived while nothing was staged and no transaction was open: WAL up to `walEnd` holds nothing to keep. */
  idle(walEnd: Lsn): void {
    if (walEnd > this.idleEnd) this.idleEnd = walEnd;
  }

  /**
   * A commit is durable: in a manifest version just committed (`recordedWithIt`: the
   * manifest records its end as acknowledged), or found already in the vault.
   */
  committed(endLsn: Lsn, recordedWithIt: boolean): void {
    if (endLsn > this.committedEnd) this.committedEnd = endLsn;
    if (recordedWithIt && endLsn > this.recordedLsn) this.recordedLsn = endLsn;
  }

  /**
   * The furthest position that is durable in the vault (`vaultThrough`, its manifest's
   * position, or a commit end since) or, only while nothing is staged (`idle`), that
   * holds nothing of ours.
   */
  durable(vaultThrough: Lsn, idle: boolean): Lsn {
    let durable = vaultThrough > this.committedEnd ? vaultThrough : this.committedEnd;
    if (idle && this.idleEnd > durable) durable = this.idleEnd;
    return durable;
  }

  /** The position to record in the vault before the next status update, if the durable one moved past the record. */
  toRecord(vaultThrough: Lsn, idle: boolean): Lsn | undefined {
    const durable = this.durable(vaultThrough, idle);
    return durable > this.recordedLsn ? durable : undefined;
  }

  /** The vault now records `lsn` as acknowledged. */
  recordedAs(lsn: Lsn): void {
    if (lsn > this.recordedLsn) this.recordedLsn = lsn;
  }
}
