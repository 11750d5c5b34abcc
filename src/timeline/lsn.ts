// Log sequence numbers: PostgreSQL's WAL positions. They are 64-bit, so they stay
// `bigint` everywhere in Recall and only become text ("16/B374D848") at the edges.

/** A WAL position. */
export type Lsn = bigint;

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Parses PostgreSQL's text form of an LSN ("16/B374D848"); undefined if malformed. */
export function parseLsn(text: string): Lsn | undefined {
  const match = LSN_TEXT.exec(text.trim());
  if (!match) return undefined;
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** Formats an LSN the way PostgreSQL prints it. */
export function formatLsn(lsn: Lsn): string {
  const high = (lsn >> 32n).toString(16).toUpperCase();
  const low = (lsn & 0xffffffffn).toString(16).toUpperCase();
  return `${high}/${low}`;
}
