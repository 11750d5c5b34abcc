// Transaction ids: pgoutput's BEGIN carries the 32-bit xid, the vault keeps the
// 64-bit one (FullTransactionId), which never wraps around. The epoch is inferred
// from the newest xid seen, which moves forward only.

/** Widens 32-bit xids from a stream to 64 bits, each to the value nearest the newest seen. */
export class XidWidener {
  /** `reference`: a recent 64-bit xid of the source (its next xid when the stream starts). */
  constructor(private reference: bigint) {}

  widen(xid32: number): bigint {
    const reference = this.reference;
    let full = (reference & ~0xffffffffn) | BigInt(xid32 >>> 0);
    // Never below epoch 0: there are no negative xids.
    if (full > reference + 0x80000000n && full >= 0x100000000n) full -= 0x100000000n;
    else if (full < reference - 0x80000000n) full += 0x100000000n;
    if (full > reference) this.reference = full;
    return full;
  }
}
