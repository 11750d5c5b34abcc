// Bad input, as a user meets it on the command line: every mistake ends with the
// documented exit code, one `recall: …` message and a `hint:` line on stderr,
// nothing on stdout, no password anywhere, and nothing created on the source or
// in the vault. Two clusters serve every case: one with logical decoding (used
// before and after a successful init) and one left at wal_level=replica.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { fixture, jsonLines, runRecall, type Fixture, type RunResult } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

const [MAJOR] = testMajors('one');
if (MAJOR === undefined) throw new Error('no PostgreSQL major to test');

const SCHEMA = `
  CREATE TABLE tenants (id bigint PRIMARY KEY, name text NOT NULL);
  CREATE TABLE issues (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants, title text);
  CREATE TABLE audit_notes (tenant_id bigint, note text);  -- no primary key, no replica identity
  CREATE TABLE flags (id int PRIMARY KEY, tenant_id bigint);
  ALTER TABLE flags REPLICA IDENTITY NOTHING;              -- a key, but no identity: UPDATE would fail once published
  INSERT INTO tenants VALUES (1, 'acme'), (2, 'globex');
  INSERT INTO issues VALUES (1, 1, 'first'), (2, 2, 'second');`;

const OTHER_SCHEMA = `
  CREATE TABLE tenants (id bigint PRIMARY KEY, name text NOT NULL);
  INSERT INTO tenants VALUES (1, 'acme');`;

// Passwords that must never be printed: the sandbox's own (inside RECALL_SOURCE) and the ones tests pass.
const UNREACHABLE_PASSWORD = 'secretpw';
const WRONG_PASSWORD = 'wrong-secret-pw';
const UNREACHABLE = `postgres://u:${UNREACHABLE_PASSWORD}@127.0.0.1:1/db`;

/** The environment without any source or vault, so each case says exactly what it gives. */
function bareEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const name of Object.keys(env)) {
    if (name.startsWith('RECALL_') || name.startsWith('PG') || name === 'DATABASE_URL') delete env[name];
  }
  return { ...env, ...extra };
}

/** What a source holds that `recall init` would create: publications of this database, slots of the cluster. */
async function sourceState(client: pg.Client): Promise<{ publications: string[]; slots: string[] }> {
  const publications = await client.query<{ pubname: string }>('SELECT pubname FROM pg_publication ORDER BY 1');
  const slots = await client.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots ORDER BY 1');
  return { publications: publications.rows.map((r) => r.pubname), slots: slots.rows.map((r) => r.slot_name) };
}

/** The manifest versions in a vault directory (none if it does not exist). */
function manifests(vault: string): string[] {
  const directory = join(vault, 'manifest');
  return existsSync(directory) ? readdirSync(directory, { recursive: true, encoding: 'utf8' }).sort() : [];
}

describe(`bad input on PostgreSQL ${MAJOR}`, () => {
  let main: Fixture;
  let replica: Fixture;
  let other: pg.Client;
  let scratch: string;
  let secrets: string[];
  let okConfig: string;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'recall-bad-input-'));
    [main, replica] = await Promise.all([fixture(MAJOR, SCHEMA), fixture(MAJOR, OTHER_SCHEMA, { wal_level: 'replica' })]);
    secrets = [main.cluster.password, replica.cluster.password, UNREACHABLE_PASSWORD, WRONG_PASSWORD];
    // A second database in the main cluster: same system, another database.
    await main.db.query('CREATE DATABASE other');
    other = new pg.Client({ connectionString: main.cluster.url({ database: 'other' }) });
    await other.connect();
    await other.query(OTHER_SCHEMA);
    // An explicit config, so a recall.yml in the working directory cannot change the outcome.
    okConfig = join(scratch, 'ok.yml');
    writeFileSync(okConfig, 'tenancy:\n  column: tenant_id\n  root: public.tenants\n');
  });

  after(async () => {
    await other?.end().catch(() => undefined);
    await Promise.all([main?.close(), replica?.close()]);
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** Checks what every run must hold: no password in any output. */
  function noSecrets(result: RunResult): void {
    for (const secret of secrets) {
      assert.ok(!result.stdout.includes(secret), `stdout shows a password:\n${result.stdout}`);
      assert.ok(!result.stderr.includes(secret), `stderr shows a password:\n${result.stderr}`);
    }
  }

  /** Checks a failed run: exit code, one clear message with a hint, stdout empty, no password. */
  function failed(result: RunResult, code: number, ...mentions: (string | RegExp)[]): void {
    const shown = `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
    assert.equal(result.code, code, shown);
    noSecrets(result);
    // A catch-up note may come first: the server writes WAL of its own (a running-transactions
    // record every 15 s), so a vault that was current can be a few bytes behind by the next command.
    assert.match(result.stderr.replace(/^catching up: .*\n/, ''), /^recall: \S/, `stderr starts with "recall: …"\n${shown}`);
    assert.match(result.stderr, /^hint: \S.*$/m, `stderr has a hint line\n${shown}`);
    assert.equal(result.stderr.match(/^recall: /gm)?.length, 1, `one message\n${shown}`);
    assert.doesNotMatch(result.stderr, /^\s+at .*\(.*:\d+:\d+\)$/m, `no stack trace\n${shown}`);
    assert.doesNotMatch(result.stderr, /this is a bug in Recall/, `a user's mistake is not reported as a bug\n${shown}`);
    assert.equal(result.stdout, '', `nothing on stdout\n${shown}`);
    for (const mention of mentions) {
      if (typeof mention === 'string') assert.ok(result.stderr.includes(mention), `stderr mentions ${JSON.stringify(mention)}\n${shown}`);
      else assert.match(result.stderr, mention, shown);
    }
  }

  /** Checks a successful run. */
  function succeeded(result: RunResult): void {
    assert.equal(result.code, 0, `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
    noSecrets(result);
  }

  describe('before anything exists', () => {
    test('an unreachable host: exit 1, names host:port, not the password', async () => {
      const vault = join(scratch, 'unreachable');
      for (const command of [['init'], ['capture', '--until-caught-up']]) {
        const result = await runRecall([...command, '--source', UNREACHABLE, '--vault', vault, '--config', okConfig], bareEnv());
        if (command[0] === 'capture') {
          // capture refuses an uninitialised vault before it connects.
          failed(result, 2, 'holds no history yet', 'recall init');
        } else {
          failed(result, 1, '127.0.0.1:1', /cannot reach the source/);
          assert.match(result.stderr, /^hint: .*host and port/m);
        }
      }
      // The same through RECALL_SOURCE instead of --source.
      const viaEnv = await runRecall(['init', '--vault', vault, '--config', okConfig], bareEnv({ RECALL_SOURCE: UNREACHABLE }));
      failed(viaEnv, 1, 'u@127.0.0.1:1/db');
      assert.ok(!existsSync(vault), 'no vault directory was created');
    });

    test('a wrong password: exit 2, says the login was refused, shows no password', async () => {
      const vault = join(scratch, 'wrong-password');
      const before = await sourceState(main.db);
      const result = await runRecall(
        ['init', '--source', main.cluster.url({ password: WRONG_PASSWORD }), '--vault', vault, '--config', okConfig],
        bareEnv(),
      );
      failed(result, 2, `postgres@127.0.0.1:${main.cluster.port}/postgres`, /refused the login/, /password authentication failed/);
      assert.match(result.stderr, /^hint: .*password/m);
      assert.deepEqual(await sourceState(main.db), before);
      assert.deepEqual(manifests(vault), []);
    });

    test('a database that does not exist: exit 2, names it', async () => {
      const vault = join(scratch, 'no-database');
      const result = await runRecall(
        ['init', '--source', main.cluster.url({ database: 'nosuchdb' }), '--vault', vault, '--config', okConfig],
        bareEnv(),
      );
      failed(result, 2, /nosuchdb/, /no such database/);
      assert.deepEqual(manifests(vault), []);
    });

    test('wal_level=replica: init exits 2 with the fix, creates no slot or publication', async () => {
      const before = await sourceState(replica.db);
      assert.deepEqual(before, { publications: [], slots: [] });
      const result = await replica.recall(['init', '--config', okConfig]);
      failed(result, 2, /wal_level is "replica"/, /needs "logical"/, 'ALTER SYSTEM SET wal_level = logical', /restart/);
      assert.match(result.stderr, /\(1 problem\)/, result.stderr);
      assert.deepEqual(await sourceState(replica.db), before);
      assert.deepEqual(manifests(replica.vault), []);
    });

    test('a table without a primary key and a wrong recall.yml: exit 2, every problem at once', async () => {
      const config = join(scratch, 'wrong.yml');
      writeFileSync(
        config,
        ['tenancy:', '  column: tenant_id', '  tables:', '    public.issues: { column: account_id }', '    public.ghosts: global', ''].join(
          '\n',
        ),
      );
      const before = await sourceState(main.db);
      assert.deepEqual(before, { publications: [], slots: [] });
      const result = await main.recall(['init', '--config', config]);
      failed(
        result,
        2,
        /\(4 problems\)/,
        /public\.audit_notes has no primary key or replica identity/,
        /public\.flags has no primary key or replica identity/,
        'ALTER TABLE public.audit_notes REPLICA IDENTITY FULL',
        /public\.issues .*"account_id".*no such column/,
        /public\.ghosts, which does not exist/,
      );
      assert.equal(result.stderr.match(/^\s+fix: /gm)?.length, 4, `a fix for each problem\n${result.stderr}`);
      assert.deepEqual(await sourceState(main.db), before, 'no publication or slot was created');
      assert.deepEqual(manifests(main.vault), [], 'no manifest was written');
    });

    test('a --config that does not exist: exit 2, names the file', async () => {
      const missing = join(scratch, 'nope.yml');
      const result = await main.recall(['init', '--config', missing]);
      failed(result, 2, missing, /does not exist/);
      assert.deepEqual(await sourceState(main.db), { publications: [], slots: [] });
    });

    test('no vault given: exit 2 with a hint naming --vault, before touching the source', async () => {
      const env = { ...main.env };
      delete env.RECALL_VAULT;
      for (const args of [['show', '--tenant', '1', '--at', 'now'], ['log', '--tenant', '1'], ['status'], ['init', '--config', okConfig]]) {
        const result = await runRecall(args, env);
        failed(result, 2, /no vault given/);
        assert.match(result.stderr, /^hint: .*--vault/m, result.stderr);
        assert.match(result.stderr, /^hint: .*RECALL_VAULT/m, result.stderr);
      }
      assert.deepEqual(await sourceState(main.db), { publications: [], slots: [] });
    });

    test('show on a vault that was never initialised: exit 2', async () => {
      const result = await main.recall(['show', '--tenant', '1', '--at', 'now', '--vault', join(scratch, 'empty')]);
      failed(result, 2, /holds no history yet/, /recall init/);
    });

    test('compact and gc on a vault that was never initialised: exit 2', async () => {
      for (const command of [['compact'], ['gc', '--dry-run']]) {
        const result = await main.recall([...command, '--vault', join(scratch, 'empty')]);
        failed(result, 2, /holds no history yet/, /recall init/);
      }
    });
  });

  describe('after a successful init and capture', () => {
    let versions: string[];

    before(async () => {
      // Fix the one problem that belongs to the source; the default tenancy fits it.
      await main.db.query('ALTER TABLE audit_notes REPLICA IDENTITY FULL');
      await main.db.query('ALTER TABLE flags REPLICA IDENTITY DEFAULT');
      // A slot named by the user, whose publication takes the same name.
      const init = await main.recall(['init', '--config', okConfig, '--slot', 'recall']);
      succeeded(init);
      assert.deepEqual(
        await sourceState(main.db),
        { publications: ['recall'], slots: ['recall'] },
        'init created its publication and slot',
      );
      await main.db.query("INSERT INTO issues VALUES (3, 1, 'third'); UPDATE issues SET title = 'first, edited' WHERE id = 1");
      succeeded(await main.recall(['capture', '--until-caught-up', '--config', okConfig]));
      versions = manifests(main.vault);
      assert.ok(versions.length >= 1, 'init wrote a manifest');
    });

    /** Nothing a failed read did changed the vault or the source. */
    async function unchanged(): Promise<void> {
      assert.deepEqual(manifests(main.vault), versions, 'no manifest was written');
      assert.deepEqual(await sourceState(main.db), { publications: ['recall'], slots: ['recall'] });
    }

    test('the history is readable (the baseline the failures below differ from)', async () => {
      const result = await main.recall(['show', '--tenant', '1', '--at', 'now', '--json']);
      succeeded(result);
      const titles = jsonLines<{ table: string; row: Record<string, string> }>(result.stdout)
        .filter((r) => r.table === 'public.issues')
        .map((r) => r.row.title);
      assert.deepEqual(titles, ['first, edited', 'third']);
    });

    test('a malformed --gc-grace, RECALL_GC_GRACE or --flush-interval: exit 2, names it, deletes nothing', async () => {
      for (const [args, env, named] of [
        [['gc', '--gc-grace', '1 hour'], {}, /--gc-grace "1 hour" is not a duration/],
        [['gc'], { RECALL_GC_GRACE: '-5m' }, /RECALL_GC_GRACE "-5m" is not a duration/],
        [['capture', '--flush-interval', 'soon'], {}, /--flush-interval "soon" is not a duration/],
      ] as const) {
        const result = await main.recall(args, env);
        failed(result, 2, named, /90s, 15m, 1h/);
      }
      await unchanged();
    });

    test('restore and undo: bad flags, unknown tenants and transactions exit 2 and change nothing', async () => {
      const rows = async (): Promise<string[]> =>
        (await main.db.query<{ r: string }>('SELECT row_to_json(i)::text AS r FROM issues i ORDER BY 1')).rows.map((row) => row.r);
      const before = await rows();
      failed(await main.recall(['restore', '--to', 'now', '--yes']), 2, /--tenant T\[,T…\] or .* --all/);
      failed(await main.recall(['restore', '--tenant', '1', '--all', '--to', 'now', '--yes']), 2, /one of the two/);
      failed(await main.recall(['restore', '--tenant', 'nope', '--to', 'now', '--yes']), 2, /tenant "nope" never appears/);
      failed(await main.recall(['restore', '--tenant', '1', '--to', 'yesterday-ish', '--yes']), 2, /yesterday-ish/);
      failed(await main.recall(['restore', '--tenant', '1', '--to', 'now', '--on-conflict', 'mine', '--yes']), 2, /skip, theirs or ours/);
      failed(
        await main.recall(['restore', '--tenant', '1', '--to', 'now', '--jobs', '0', '--yes']),
        2,
        /--jobs must be a positive whole number/,
      );
      failed(
        await main.recall(['restore', '--tenant', '1', '--to', 'now', '--freeze-timeout', '2s', '--yes']),
        2,
        /--freeze-timeout must be a positive whole number, not "2s"/,
      );
      failed(
        await main.recall(['undo', '--actor', 'a', '--catch-up-timeout', '0', '--yes']),
        2,
        /--catch-up-timeout must be a positive whole number/,
      );
      failed(
        await main.recall(['restore', '--tenant', '1', '--to', 'now', '--freeze-timeout', '9999999', '--yes']),
        2,
        /--freeze-timeout must be at most 86400 seconds/,
      );
      failed(await main.recall(['restore', '--tenant', '1', '--to', 'now']), 2, /not asking for confirmation without a terminal/, /--yes/);
      failed(await main.recall(['undo', '--yes']), 2, /--txn X\[,Y…\] or --actor A/);
      failed(await main.recall(['undo', '--txn', 'abc', '--yes']), 2, /"abc" is not a transaction id/);
      failed(await main.recall(['undo', '--txn', '99999999', '--yes']), 2, /99999999 changed no captured row/);
      failed(await main.recall(['undo', '--actor', 'nobody', '--yes']), 2, /no transaction of actor "nobody"/);
      assert.deepEqual(await rows(), before, 'no row changed');
      const guards = await main.db.query(`SELECT tgname FROM pg_trigger WHERE tgname = 'recall_guard'`);
      assert.deepEqual(guards.rows, [], 'no guard trigger was left behind');
      await unchanged();
    });

    test('an unknown tenant: exit 2, names it', async () => {
      failed(await main.recall(['show', '--tenant', 'nope', '--at', 'now']), 2, /tenant "nope" never appears/);
      failed(await main.recall(['log', '--tenant', '999']), 2, /tenant "999" never appears/);
      await unchanged();
    });

    test('malformed points: exit 2, name the point and show the forms', async () => {
      for (const at of ['yesterdayish', 'lsn:zz', '2026-13-45T00:00:00Z']) {
        const result = await main.recall(['show', '--tenant', '1', '--at', at]);
        failed(result, 2, `"${at}"`);
        assert.match(result.stderr, /^hint: .*lsn:.*before-txn:/m, result.stderr);
      }
      failed(await main.recall(['log', '--tenant', '1', '--since', 'lsn:zz']), 2, '"lsn:zz"');
      failed(await main.recall(['log', '--tenant', '1', '--until', 'yesterdayish']), 2, '"yesterdayish"');
      await unchanged();
    });

    test('a point in the future: exit 2', async () => {
      const result = await main.recall(['show', '--tenant', '1', '--at', '2999-01-01T00:00:00Z']);
      failed(result, 2, /2999-01-01T00:00:00\.000000Z is in the future/);
      const soon = new Date(Date.now() + 3_600_000).toISOString();
      failed(await main.recall(['show', '--tenant', '1', '--at', soon]), 2, /is in the future/);
      // An LSN past the source's WAL end; without a source, past the vault's end, and it says which.
      failed(
        await main.recall(['show', '--tenant', '1', '--at', 'lsn:FF/0']),
        2,
        /lsn:FF\/0 is in the future: the source's WAL ends at lsn:/,
      );
      failed(await main.recall(['log', '--tenant', '1', '--until', 'lsn:FF/0']), 2, /is in the future/);
      failed(
        await runRecall(['show', '--tenant', '1', '--at', 'lsn:FF/0', '--vault', main.vault, '--config', okConfig], bareEnv({})),
        2,
        /lsn:FF\/0 is beyond the vault's end \(lsn:[0-9A-F]+\/[0-9A-F]+\); without the source, Recall cannot tell whether it is in the future/,
      );
      failed(await main.recall(['restore', '--tenant', '1', '--to', 'lsn:FF/0', '--dry-run', '--config', okConfig]), 2, /is in the future/);
      await unchanged();
    });

    test('a point before the history starts: exit 2, says where it starts', async () => {
      const result = await main.recall(['show', '--tenant', '1', '--at', '2000-01-01T00:00:00Z']);
      failed(result, 2, /2000-01-01T00:00:00\.000000Z is before the history starts/);
      assert.match(
        result.stderr,
        /^hint: the history in .* starts at \d{4}-\d\d-\d\dT[\d:.]+Z \(lsn:[0-9A-F]+\/[0-9A-F]+\)/m,
        result.stderr,
      );
      failed(await main.recall(['show', '--tenant', '1', '--at', 'lsn:0/1']), 2, /lsn:0\/1 is before the history starts/);
      failed(
        await main.recall(['log', '--tenant', '1', '--since', '2000-01-01T00:00:00Z']),
        2,
        /before the history starts/,
        /leave out --since/,
      );
      await unchanged();
    });

    test('before-txn of a transaction not in the history: exit 2', async () => {
      const result = await main.recall(['show', '--tenant', '1', '--at', 'before-txn:999999999']);
      failed(result, 2, /transaction 999999999 is not in the history/);
      assert.match(result.stderr, /^hint: .*recall log/m);
      await unchanged();
    });

    test('an unknown --table: exit 2, names it', async () => {
      failed(
        await main.recall(['show', '--tenant', '1', '--at', 'now', '--table', 'public.nope']),
        2,
        /table public\.nope is not in the history/,
      );
      failed(await main.recall(['log', '--tenant', '1', '--table', 'nope']), 2, /table public\.nope is not in the history/);
      await unchanged();
    });

    test('a vault of another database in the same cluster: exit 2, nothing created there', async () => {
      const source = main.cluster.url({ database: 'other' });
      const before = await sourceState(other);
      const init = await main.recall(['init', '--source', source, '--config', okConfig]);
      failed(init, 2, /belongs to database "postgres"/, /not to "other"/);
      assert.match(init.stderr, /^hint: .*another --vault/m);
      const capture = await main.recall(['capture', '--until-caught-up', '--source', source, '--config', okConfig]);
      failed(capture, 2, /belongs to database "postgres"/);
      const status = await main.recall(['status', '--source', source]);
      failed(status, 2, /belongs to database "postgres"/);
      const restore = await main.recall(['restore', '--tenant', '1', '--to', 'now', '--yes', '--source', source, '--config', okConfig]);
      failed(restore, 2, /belongs to database "postgres"/);
      const undo = await main.recall(['undo', '--actor', 'anyone', '--dry-run', '--source', source, '--config', okConfig]);
      failed(undo, 2, /belongs to database "postgres"/);
      assert.deepEqual(await sourceState(other), before, 'no publication in the other database, no new slot');
      assert.deepEqual(before, { publications: [], slots: ['recall'] }, 'the only slot is the vault’s own');
      await unchanged();
    });

    test('a vault of another cluster: exit 2 before any check of that source, nothing created there', async () => {
      const init = await main.recall(['init', '--source', replica.cluster.url(), '--config', okConfig]);
      failed(init, 2, /belongs to database "postgres" of system \d+, not to "postgres" of system \d+/);
      const systems = init.stderr.match(/system (\d+)/g) ?? [];
      assert.equal(new Set(systems).size, 2, `two different system ids: ${init.stderr}`);
      assert.doesNotMatch(init.stderr, /wal_level/, 'the mismatch is reported, not the other source’s settings');
      // Status only reports: another server of the same database is what capture would stop at.
      const status = await main.recall(['status', '--source', replica.cluster.url()]);
      succeeded(status);
      assert.match(status.stdout, /^history {4}MISSING: the source is another server \(system \d+, not \d+\)/m);
      assert.deepEqual(await sourceState(replica.db), { publications: [], slots: [] });
      await unchanged();
    });

    test('show reads only the vault: another or an unreachable source changes nothing', async () => {
      // show never connects to the source, so the vault answers even when the source is another one or down.
      for (const source of [main.cluster.url({ database: 'other' }), replica.cluster.url(), UNREACHABLE]) {
        const result = await main.recall(['show', '--tenant', '1', '--at', 'now', '--json', '--source', source]);
        succeeded(result);
        assert.ok(jsonLines(result.stdout).length > 0, 'the vault’s rows are shown');
      }
      assert.deepEqual(await sourceState(other), { publications: [], slots: ['recall'] });
      assert.deepEqual(await sourceState(replica.db), { publications: [], slots: [] });
      await unchanged();
    });

    test('status with an unreachable source: exit 0, reports the vault and the source as unreachable, no password', async () => {
      const result = await main.recall(['status', '--json', '--source', UNREACHABLE]);
      succeeded(result);
      const [report] = jsonLines<{ slot: unknown; source: { reachable: boolean; error?: string } }>(result.stdout);
      assert.equal(report?.slot, null);
      assert.equal(report?.source.reachable, false);
      assert.match(report?.source.error ?? '', /127\.0\.0\.1:1/);
      await unchanged();
    });
  });
});

describe('help', () => {
  const COMMANDS = ['init', 'capture', 'status', 'log', 'show', 'compact', 'gc', 'restore', 'undo'];

  test('recall --help exits 0 and lists every command', async () => {
    const result = await runRecall(['--help'], bareEnv());
    assert.equal(result.code, 0, result.stderr);
    for (const command of COMMANDS)
      assert.match(result.stdout, new RegExp(`^\\s+${command}\\b`, 'm'), `lists ${command}:\n${result.stdout}`);
    assert.match(result.stdout, /Exit codes:/);
    assert.match(result.stdout, /RECALL_VAULT/);
  });

  for (const command of COMMANDS) {
    test(`recall ${command} --help exits 0`, async () => {
      const result = await runRecall([command, '--help'], bareEnv());
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`^Usage: recall ${command}\\b`, 'm'));
      assert.match(result.stdout, /--vault <path>/);
      assert.match(result.stdout, /--source <url>/);
    });
  }

  test('a reader that closes the pipe early (recall --help | true) ends the output, not in a crash', async () => {
    // `true` exits without reading, long before node has started, so every write meets a closed pipe.
    const bin = resolve(import.meta.dirname, '../bin/recall.js');
    const child = spawn('bash', ['-c', `set -o pipefail; "${process.execPath}" "${bin}" --help | true`], {
      env: bareEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((done) => child.on('close', done));
    assert.equal(code, 0, stderr);
    assert.doesNotMatch(stderr, /EPIPE|Unhandled/);
  });

  test('recall demo --help exits 0', async () => {
    const result = await runRecall(['demo', '--help'], bareEnv());
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /--keep/);
  });

  test('an unknown command or flag: exit 2 with usage help', async () => {
    const unknown = await runRecall(['frobnicate'], bareEnv());
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    const flag = await runRecall(['show', '--tenant', '1', '--at', 'now', '--frobnicate'], bareEnv());
    assert.equal(flag.code, 2, flag.stderr);
    assert.match(flag.stderr, /unknown option '--frobnicate'/);
    const missing = await runRecall(['show', '--tenant', '1'], bareEnv());
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /--at <point>/);
  });
});
