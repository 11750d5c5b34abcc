// Human output cannot drive the terminal: rows whose values hold ESC sequences, an
// OSC title, CR/LF, tabs, DEL and C1 characters, of a tenant whose id holds a
// newline, captured by an actor whose name holds an OSC sequence, are shown by
// `show`, `log`, a restore and an undo plan and `status` with every control
// character escaped and one line per line; `--json` keeps every value exact.

import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixture, jsonLines, type Fixture, type RunResult } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

const [MAJOR] = testMajors('one');
if (MAJOR === undefined) throw new Error('no PostgreSQL major to test');

const TENANT = 'evil\ntenant';
const ACTOR = '\x1b]0;owned\x07cleanup';
/** Each hostile value, and how human output shows it. */
const HOSTILE: readonly [string, string][] = [
  ['\x1b[2J\x1b[Hcleared', '\\x1b[2J\\x1b[Hcleared'],
  ['\x1b]0;pwned\x07title', '\\x1b]0;pwned\\x07title'],
  ['line1\r\nline2', 'line1\\r\\nline2'],
  ['a\tb', 'a\\tb'],
  ['x\x7fy', 'x\\x7fy'],
  ['\u009b31mred\u0085next', '\\u009b31mred\\u0085next'],
];
const UPDATED = '\u009d0;retitled\u009c';

const SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY, name text NOT NULL);
  CREATE TABLE notes (id int PRIMARY KEY, tenant_id text NOT NULL REFERENCES tenants, body text);
  INSERT INTO tenants VALUES ('plain', 'plain'), (${literal(TENANT)}, ${literal(HOSTILE[0]?.[0] ?? '')});`;

/** A SQL literal that holds any character (E'' with \\x and \\u escapes). */
function literal(text: string): string {
  return `E'${[...text].map((c) => (/[\w ]/.test(c) ? c : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)).join('')}'`;
}

/** Nothing on stdout a terminal would act on: no control character but the line ends. */
function assertPrintable(result: RunResult, what: string): void {
  const raw = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.exec(result.stdout);
  assert.equal(raw, null, `${what}: a raw control character ${JSON.stringify(raw?.[0])} on stdout:\n${JSON.stringify(result.stdout)}`);
  assert.doesNotMatch(result.stderr, /[\u001b\u009b\u009d]/, `${what}: an escape sequence on stderr`);
}

describe(`control characters in human output on PostgreSQL ${MAJOR}`, () => {
  let f: Fixture;
  let beforeDelete: string;
  let inserts: bigint;

  before(async () => {
    f = await fixture(MAJOR, SCHEMA);
    const init = await f.recall(['init']);
    assert.equal(init.code, 0, init.stderr);
    await f.db.query('BEGIN');
    await f.db.query(`SELECT pg_logical_emit_message(true, 'recall', $1)`, [JSON.stringify({ actor: ACTOR })]);
    for (const [i, [value]] of HOSTILE.entries()) {
      await f.db.query('INSERT INTO notes VALUES ($1, $2, $3)', [i + 1, TENANT, value]);
    }
    inserts = BigInt((await f.db.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid')).rows[0]?.xid ?? '0');
    await f.db.query('COMMIT');
    beforeDelete = (await f.db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn ?? '';
    await f.db.query('DELETE FROM notes WHERE id <= 3');
    await f.db.query('UPDATE notes SET body = $1 WHERE id = 4', [UPDATED]);
    const capture = await f.recall(['capture', '--until-caught-up']);
    assert.equal(capture.code, 0, capture.stderr);
  });

  after(async () => {
    await f?.close();
  });

  test('show: every value escaped, one line per row; --json exact', async () => {
    const text = await f.recall(['show', '--tenant', TENANT, '--at', `lsn:${beforeDelete}`]);
    assert.equal(text.code, 0, text.stderr);
    assertPrintable(text, 'show');
    for (const [, shown] of HOSTILE) assert.ok(text.stdout.includes(shown), `show has ${shown}\n${text.stdout}`);
    // The notes block: its heading, the column names, the rule, then one line per row.
    const lines = text.stdout.split('\n');
    const heading = lines.indexOf('public.notes (6 rows)');
    assert.ok(heading >= 0, text.stdout);
    assert.deepEqual(
      lines.slice(heading + 3, heading + 9).map((line) => line.split(' | ')[0]?.trim()),
      ['1', '2', '3', '4', '5', '6'],
      text.stdout,
    );
    assert.equal(lines[heading + 9], '', text.stdout);

    const json = await f.recall(['show', '--tenant', TENANT, '--at', `lsn:${beforeDelete}`, '--json']);
    const rows = jsonLines<{ table: string; row: Record<string, string | null> }>(json.stdout);
    assert.deepEqual(
      rows.filter((r) => r.table === 'public.notes').map((r) => r.row.body),
      HOSTILE.map(([value]) => value),
    );
    assert.deepEqual(
      rows.filter((r) => r.table === 'public.tenants').map((r) => r.row),
      [{ id: TENANT, name: HOSTILE[0]?.[0] }],
    );
  });

  test('log: the actor and keys escaped, one line per change; --json exact', async () => {
    const text = await f.recall(['log', '--tenant', TENANT]);
    assert.equal(text.code, 0, text.stderr);
    assertPrintable(text, 'log');
    const lines = text.stdout.trimEnd().split('\n');
    assert.equal(lines.length, HOSTILE.length + 4, text.stdout);
    assert.ok(
      lines.slice(0, HOSTILE.length).every((line) => line.endsWith('by \\x1b]0;owned\\x07cleanup')),
      text.stdout,
    );

    const json = jsonLines<{ op: string; xid: string; row: Record<string, string | null>; context: { actor?: string } | null }>(
      (await f.recall(['log', '--tenant', TENANT, '--json'])).stdout,
    );
    assert.deepEqual(
      json.filter((c) => c.op === 'insert').map((c) => [c.row.body, c.context?.actor, c.row.tenant_id]),
      HOSTILE.map(([value]) => [value, ACTOR, TENANT]),
    );
    assert.equal(json.find((c) => c.op === 'update')?.row.body, UPDATED);
  });

  test('a restore plan: the tenant id on its own line, escaped; --json exact', async () => {
    const args = ['restore', '--tenant', TENANT, '--to', `lsn:${beforeDelete}`, '--dry-run'];
    const text = await f.recall(args);
    assert.equal(text.code, 0, text.stderr);
    assertPrintable(text, 'restore --dry-run');
    const lines = text.stdout.trimEnd().split('\n');
    assert.ok(
      lines.every((line) => /^(plan |  )/.test(line)),
      `every line is the plan's own\n${text.stdout}`,
    );
    assert.ok(lines[0]?.includes('tenant evil\\ntenant to '), text.stdout);
    assert.ok(
      lines.some((line) => line.includes('1 tenant: evil\\ntenant (4 rows)')),
      text.stdout,
    );

    const json = await f.recall([...args, '--json']);
    const [{ plan }] = jsonLines<{ plan: { selection: { tenants: string[] }; groups: { tenant: string }[] } }>(json.stdout) as [
      { plan: { selection: { tenants: string[] }; groups: { tenant: string }[] } },
    ];
    assert.deepEqual(plan.selection.tenants, [TENANT]);
    assert.deepEqual(
      plan.groups.map((g) => g.tenant),
      [TENANT],
    );
  });

  test('an undo plan: conflicting values and the actor escaped; --json exact', async () => {
    const args = ['undo', '--txn', String(inserts), '--dry-run'];
    const text = await f.recall(args);
    // The update of note 4 after the inserts is a conflict: exit 3, the plan printed first.
    assert.equal(text.code, 3, text.stderr);
    assertPrintable(text, 'undo --dry-run');
    assert.ok(text.stdout.includes('\\u009d0;retitled\\u009c'), text.stdout);
    assert.ok(
      text.stdout
        .trimEnd()
        .split('\n')
        .every((line) => /^(plan |  )/.test(line)),
      text.stdout,
    );

    const json = await f.recall([...args, '--json']);
    const [first] = jsonLines<{ plan: { groups: { conflicts: { theirs: Record<string, string> | null }[] }[] } }>(json.stdout);
    const theirs = first?.plan.groups.flatMap((g) => g.conflicts.map((c) => c.theirs?.body)) ?? [];
    assert.ok(theirs.includes(UPDATED), JSON.stringify(theirs));
  });

  test('status: a vault path with control characters is shown escaped; --json exact', async () => {
    const hostile = join(dirname(f.vault), 'copy\x1b]0;x\x07\nvault');
    cpSync(f.vault, hostile, { recursive: true });
    const text = await f.recall(['status', '--vault', hostile]);
    assert.equal(text.code, 0, text.stderr);
    assertPrintable(text, 'status');
    assert.match(text.stdout, /^vault {6}.*copy\\x1b\]0;x\\x07\\nvault$/m);
    const [report] = jsonLines<{ vault: { location: string } }>((await f.recall(['status', '--vault', hostile, '--json'])).stdout);
    assert.ok(report?.vault.location.endsWith('copy\x1b]0;x\x07\nvault'), report?.vault.location);
  });
});
