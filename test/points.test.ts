// Points on the timeline as users write them: parsePoint turns text into a time
// (microseconds since the epoch, UTC), an LSN or a transaction id, and refuses
// anything else with a PointError; formatMicros is its inverse for times.
// No database: only the parser and the formatter.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitCode, PointError } from '../src/errors.js';
import { formatMicros, parsePoint, type Point } from '../src/timeline/point.js';

/** Microseconds since the epoch of a UTC wall-clock time. */
function utc(year: number, month: number, day: number, hour = 0, minute = 0, second = 0, micros = 0n): bigint {
  return BigInt(Date.UTC(year, month - 1, day, hour, minute, second)) * 1000n + micros;
}

function timeOf(point: Point): bigint {
  assert.equal(point.kind, 'time', `expected a time point, got ${point.kind}`);
  return (point as Extract<Point, { kind: 'time' }>).micros;
}

// 2026-11-20T09:46:00Z, the example the CLI's help uses.
const EXAMPLE = utc(2026, 11, 20, 9, 46, 0);
// A fixed clock for the relative forms, with a sub-second part to show it is kept.
const NOW = utc(2026, 11, 20, 12, 0, 0, 250_000n);

describe('parsePoint: ISO-8601 times', () => {
  test('with Z', () => {
    assert.equal(timeOf(parsePoint('2026-11-20T09:46:00Z')), EXAMPLE);
    assert.equal(timeOf(parsePoint('2026-11-20t09:46:00z')), EXAMPLE, 'case-insensitive T and Z');
  });

  test('with an offset, in every written form', () => {
    assert.equal(timeOf(parsePoint('2026-11-20T10:46:00+01:00')), EXAMPLE);
    assert.equal(timeOf(parsePoint('2026-11-20T10:46:00+0100')), EXAMPLE);
    assert.equal(timeOf(parsePoint('2026-11-20T10:46:00+01')), EXAMPLE);
    assert.equal(timeOf(parsePoint('2026-11-20T04:16:00-05:30')), EXAMPLE);
    assert.equal(timeOf(parsePoint('2026-11-20T09:46:00+00:00')), EXAMPLE);
    // An offset that crosses midnight moves the date too.
    assert.equal(timeOf(parsePoint('2026-11-21T01:46:00+16:00')), EXAMPLE);
  });

  test('without a zone is UTC', () => {
    assert.equal(timeOf(parsePoint('2026-11-20T09:46:00')), EXAMPLE);
    assert.equal(timeOf(parsePoint('2026-11-20 09:46:00')), EXAMPLE, 'a space instead of T');
    assert.equal(timeOf(parsePoint('2026-11-20T09:46')), EXAMPLE, 'without seconds');
    assert.equal(timeOf(parsePoint('2026-11-20')), utc(2026, 11, 20), 'a date alone is its midnight UTC');
    assert.equal(timeOf(parsePoint('  2026-11-20T09:46:00Z \n')), EXAMPLE, 'surrounding blanks are ignored');
  });

  test('with microseconds, and shorter fractions scaled to them', () => {
    assert.equal(timeOf(parsePoint('2026-11-20T09:46:00.123456Z')), EXAMPLE + 123_456n);
    assert.equal(timeOf(parsePoint('2026-11-20T09:46:00.000001Z')), EXAMPLE + 1n);
    assert.equal(timeOf(parsePoint('2026-11-20T09:46:00.5Z')), EXAMPLE + 500_000n);
    assert.equal(timeOf(parsePoint('2026-11-20T09:46:00,25Z')), EXAMPLE + 250_000n, 'a comma as decimal sign');
    assert.equal(timeOf(parsePoint('2026-11-20T10:46:00.999999+01:00')), EXAMPLE + 999_999n);
  });

  test('leap days exist only in leap years', () => {
    assert.equal(timeOf(parsePoint('2024-02-29T00:00:00Z')), utc(2024, 2, 29));
    assert.throws(() => parsePoint('2026-02-29T00:00:00Z'), PointError);
  });

  test('keeps the text as written (trimmed) for messages', () => {
    assert.equal(parsePoint(' 2026-11-20T09:46:00Z ').text, '2026-11-20T09:46:00Z');
  });
});

describe('parsePoint: relative times', () => {
  test('"10 minutes ago" is relative to the given now', () => {
    assert.equal(timeOf(parsePoint('10 minutes ago', NOW)), NOW - 600_000_000n);
  });

  test('every unit, singular and plural, any case', () => {
    assert.equal(timeOf(parsePoint('1 second ago', NOW)), NOW - 1_000_000n);
    assert.equal(timeOf(parsePoint('30 seconds ago', NOW)), NOW - 30_000_000n);
    assert.equal(timeOf(parsePoint('1 minute ago', NOW)), NOW - 60_000_000n);
    assert.equal(timeOf(parsePoint('2 hours ago', NOW)), NOW - 7_200_000_000n);
    assert.equal(timeOf(parsePoint('3 days ago', NOW)), NOW - 3n * 86_400_000_000n);
    assert.equal(timeOf(parsePoint('1 week ago', NOW)), NOW - 604_800_000_000n);
    assert.equal(timeOf(parsePoint('10minutes ago', NOW)), NOW - 600_000_000n);
    assert.equal(timeOf(parsePoint('10 Minutes AGO', NOW)), NOW - 600_000_000n);
    assert.equal(timeOf(parsePoint('0 seconds ago', NOW)), NOW);
  });

  test('"now" is the given clock', () => {
    assert.equal(timeOf(parsePoint('now', NOW)), NOW);
    assert.equal(timeOf(parsePoint('NOW', NOW)), NOW);
  });

  test('without a given now, the real clock is used', () => {
    const before = BigInt(Date.now()) * 1000n;
    const now = timeOf(parsePoint('now'));
    const after = BigInt(Date.now()) * 1000n;
    assert.ok(now >= before && now <= after, `${now} not within [${before}, ${after}]`);
    const ago = timeOf(parsePoint('10 minutes ago'));
    const later = BigInt(Date.now()) * 1000n;
    assert.ok(ago >= before - 600_000_000n && ago <= later - 600_000_000n, `${ago} not 10 minutes before [${before}, ${later}]`);
  });
});

describe('parsePoint: LSNs and transactions', () => {
  test('lsn:16/B374D848 is a bigint LSN', () => {
    const point = parsePoint('lsn:16/B374D848');
    assert.deepEqual(point, { kind: 'lsn', lsn: 0x16_b374_d848n, text: 'lsn:16/B374D848' });
    assert.equal(typeof (point as Extract<Point, { kind: 'lsn' }>).lsn, 'bigint');
  });

  test('LSNs: lower case, the prefix in any case, the extremes', () => {
    assert.equal((parsePoint('lsn:16/b374d848') as Extract<Point, { kind: 'lsn' }>).lsn, 0x16_b374_d848n);
    assert.equal((parsePoint('LSN:0/16B3748') as Extract<Point, { kind: 'lsn' }>).lsn, 0x16b3748n);
    assert.equal((parsePoint('lsn:0/0') as Extract<Point, { kind: 'lsn' }>).lsn, 0n);
    assert.equal((parsePoint('lsn:FFFFFFFF/FFFFFFFF') as Extract<Point, { kind: 'lsn' }>).lsn, 2n ** 64n - 1n);
  });

  test('before-txn:123 names transaction 123', () => {
    assert.deepEqual(parsePoint('before-txn:123'), { kind: 'before-txn', xid: 123n, text: 'before-txn:123' });
  });

  test('before-txn keeps 64-bit transaction ids exact', () => {
    const xid = 2n ** 53n + 1n; // not representable as a JS number
    assert.equal((parsePoint(`before-txn:${xid}`) as Extract<Point, { kind: 'before-txn' }>).xid, xid);
    assert.equal((parsePoint('BEFORE-TXN:81233') as Extract<Point, { kind: 'before-txn' }>).xid, 81233n);
  });
});

describe('parsePoint: malformed input', () => {
  const malformed = [
    '',
    '   ',
    'yesterdayish',
    'yesterday',
    'tomorrow',
    '10 minutes',
    'ten minutes ago',
    '10 fortnights ago',
    '-10 minutes ago',
    '10 minutes from now',
    'lsn:zz',
    'lsn:',
    'lsn:16',
    'lsn:16/',
    'lsn:/B374D848',
    'lsn:16/B374D848/1',
    'lsn:123456789/0',
    'lsn:16:B374D848',
    '16/B374D848',
    'before-txn:',
    'before-txn:abc',
    'before-txn:-1',
    'before-txn:12.5',
    'before-txn:0x10',
    'before-txn:123456789012345678901',
    '2026-13-45T00:00:00Z',
    '2026-13-01T00:00:00Z',
    '2026-00-10T00:00:00Z',
    '2026-11-31T00:00:00Z',
    '2026-11-00T00:00:00Z',
    '2026-11-20T24:00:00Z',
    '2026-11-20T09:60:00Z',
    '2026-11-20T09:46:60Z',
    '2026-11-20T09:46:00.1234567Z',
    '2026-11-20T09:46:00+25:00',
    '2026-11-20T09:46:00+01:60',
    '2026-11-20T09:46:00 CET',
    '2026-11-20T9:46:00Z',
    '26-11-20',
    '2026/11/20',
    '20261120',
    '1763631960',
  ];
  for (const text of malformed) {
    test(`refuses ${JSON.stringify(text)}`, () => {
      assert.throws(
        () => parsePoint(text, NOW),
        (error: unknown) => {
          assert.ok(error instanceof PointError, `${String(error)} is not a PointError`);
          assert.equal(error.exitCode, ExitCode.badInput);
          assert.equal(error.code, 'bad-point');
          assert.ok(error.message.includes(`"${text}"`), `message names the input: ${error.message}`);
          assert.match(error.hint ?? '', /lsn:|before-txn:|ago/, 'the hint shows how to write a point');
          return true;
        },
      );
    });
  }
});

describe('formatMicros', () => {
  test('formats UTC with six fraction digits', () => {
    assert.equal(formatMicros(EXAMPLE), '2026-11-20T09:46:00.000000Z');
    assert.equal(formatMicros(EXAMPLE + 1n), '2026-11-20T09:46:00.000001Z');
    assert.equal(formatMicros(EXAMPLE + 123_456n), '2026-11-20T09:46:00.123456Z');
    assert.equal(formatMicros(0n), '1970-01-01T00:00:00.000000Z');
  });

  test('formats times before 1970 with the fraction counted forward', () => {
    assert.equal(formatMicros(-1n), '1969-12-31T23:59:59.999999Z');
    assert.equal(formatMicros(-1_000_001n), '1969-12-31T23:59:58.999999Z');
    assert.equal(formatMicros(-1_500_000n), '1969-12-31T23:59:58.500000Z');
  });

  test('round trips through parsePoint to the microsecond', () => {
    const samples = [
      0n,
      1n,
      999n,
      1_000n,
      999_999n,
      EXAMPLE,
      EXAMPLE + 123_456n,
      utc(2000, 1, 1),
      utc(2024, 2, 29, 23, 59, 59, 999_999n),
      utc(9999, 12, 31, 23, 59, 59, 999_999n),
      -1n,
      -999n,
      -1_000_001n,
      utc(1900, 3, 1, 12, 0, 0, 7n),
    ];
    for (const micros of samples) {
      const text = formatMicros(micros);
      assert.equal(timeOf(parsePoint(text)), micros, `${micros} → ${text}`);
    }
  });

  test('a parsed point formats back to its UTC reading', () => {
    assert.equal(formatMicros(timeOf(parsePoint('2026-11-20T10:46:00.5+01:00'))), '2026-11-20T09:46:00.500000Z');
    assert.equal(formatMicros(timeOf(parsePoint('10 minutes ago', NOW))), '2026-11-20T11:50:00.250000Z');
  });
});
