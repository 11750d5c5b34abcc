// Points on the timeline, as users write them: an ISO-8601 timestamp (UTC when it
// has no zone), "N minutes ago", "now", "lsn:0/16B3748" or "before-txn:XID". A point
// is resolved against the vault to an LSN bound: the state at a point is every
// commit with a commit LSN at or below it.

import { PointError } from '../errors.js';
import { formatLsn, parseLsn, type Lsn } from './lsn.js';

/** A point as written, parsed but not yet resolved. Times are microseconds since the Unix epoch. */
export type Point =
  | { readonly kind: 'time'; readonly micros: bigint; readonly text: string }
  | { readonly kind: 'lsn'; readonly lsn: Lsn; readonly text: string }
  | { readonly kind: 'before-txn'; readonly xid: bigint; readonly text: string };

const UNITS: Readonly<Record<string, bigint>> = {
  second: 1_000_000n,
  minute: 60_000_000n,
  hour: 3_600_000_000n,
  day: 86_400_000_000n,
  week: 604_800_000_000n,
};

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

const HINT = 'write a point as 2026-11-20T09:46:00Z, "10 minutes ago", lsn:0/16B3748 or before-txn:81233';

/** Parses a point; `now` is the clock in microseconds (a parameter so tests can fix it). */
export function parsePoint(text: string, now: bigint = BigInt(Date.now()) * 1000n): Point {
  const trimmed = text.trim();
  if (trimmed.toLowerCase() === 'now') return { kind: 'time', micros: now, text: trimmed };
  const relative = /^(\d+)\s*(second|minute|hour|day|week)s?\s+ago$/i.exec(trimmed);
  if (relative) {
    const unit = UNITS[(relative[2] ?? '').toLowerCase()] ?? 0n;
    return { kind: 'time', micros: now - BigInt(relative[1] ?? '0') * unit, text: trimmed };
  }
  if (/^lsn:/i.test(trimmed)) {
    const lsn = parseLsn(trimmed.slice(4));
    if (lsn === undefined) throw new PointError(`"${text}" is not a valid LSN point`, HINT);
    return { kind: 'lsn', lsn, text: trimmed };
  }
  if (/^before-txn:/i.test(trimmed)) {
    const xid = trimmed.slice('before-txn:'.length);
    if (!/^\d{1,20}$/.test(xid)) throw new PointError(`"${text}" does not name a transaction id`, HINT);
    return { kind: 'before-txn', xid: BigInt(xid), text: trimmed };
  }
  const iso = ISO.exec(trimmed);
  if (iso) return { kind: 'time', micros: isoMicros(iso, text), text: trimmed };
  throw new PointError(`cannot read "${text}" as a point in time`, HINT);
}

function isoMicros(match: RegExpExecArray, text: string): bigint {
  const [, year, month, day, hour = '0', minute = '0', second = '0', fraction = '', zone = 'Z'] = match;
  const fields = [Number(year), Number(month), Number(day), Number(hour), Number(minute), Number(second)] as const;
  // setUTCFullYear, unlike Date.UTC, does not read years below 100 as 19xx.
  const date = new Date(0);
  date.setUTCFullYear(fields[0], fields[1] - 1, fields[2]);
  date.setUTCHours(fields[3], fields[4], fields[5]);
  const millis = date.getTime();
  const check = new Date(millis);
  if (
    Number.isNaN(millis) ||
    check.getUTCMonth() !== fields[1] - 1 ||
    check.getUTCDate() !== fields[2] ||
    fields[3] > 23 ||
    fields[4] > 59 ||
    fields[5] > 59
  ) {
    throw new PointError(`"${text}" is not a valid date and time`, HINT);
  }
  let offsetMinutes = 0;
  if (zone.toUpperCase() !== 'Z') {
    const digits = zone.replace(':', '');
    if (Number(digits.slice(1, 3)) > 23 || Number(digits.slice(3, 5) || '0') > 59)
      throw new PointError(`"${text}" has no valid UTC offset`, HINT);
    offsetMinutes = (zone.startsWith('-') ? -1 : 1) * (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5) || '0'));
  }
  return (BigInt(millis) - BigInt(offsetMinutes) * 60_000n) * 1000n + BigInt(fraction.padEnd(6, '0') || '0');
}

/** Formats microseconds since the epoch as ISO-8601 UTC with microseconds. */
export function formatMicros(micros: bigint): string {
  // Floor, not truncate: before 1970, -1 µs is 23:59:59.999999 of the day before.
  const millis = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const base = new Date(Number(millis)).toISOString().slice(0, 19);
  const fraction = (((micros % 1_000_000n) + 1_000_000n) % 1_000_000n).toString().padStart(6, '0');
  return `${base}.${fraction}Z`;
}

/** Describes a point for messages. */
export function describePoint(point: Point): string {
  return point.kind === 'lsn' ? `lsn:${formatLsn(point.lsn)}` : point.text;
}
