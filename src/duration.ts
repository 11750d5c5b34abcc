// Durations as users write them in flags and recall.yml ("30s", "1h", "35d"), read once
// into milliseconds; a malformed one is a usage error naming the flag or key.

import { UsageError } from './errors.js';

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Milliseconds of a duration such as 500ms, 90s, 15m, 1h, 35d or 2w; `what` names where it was given. */
export function parseDuration(text: string, what: string): number {
  const match = /^\s*(\d{1,9})\s*(ms|[smhdw])\s*$/i.exec(text);
  if (match === null) {
    throw new UsageError(`${what} "${text}" is not a duration`, 'write a whole number and a unit: 500ms, 90s, 15m, 1h, 35d or 2w');
  }
  return Number(match[1]) * (UNIT_MS[(match[2] ?? 's').toLowerCase()] ?? 1_000);
}

/** A duration in the largest unit that divides it, for messages (3600000 → "1h"). */
export function formatDuration(ms: number): string {
  for (const unit of ['w', 'd', 'h', 'm', 's', 'ms']) {
    const size = UNIT_MS[unit] ?? 1_000;
    if (ms % size === 0 && ms >= size) return `${ms / size}${unit}`;
  }
  return '0s';
}
