// The source's password never reaches the output: a server whose password has a
// blank, a quote and a backslash in it is named by a URL, by libpq key=value
// settings, by mistyped URLs and by strings that parse as neither, and every error
// path (cannot reach, login refused, bad input, status as text and JSON, --json
// commands) is run with each; stdout and stderr are searched for any piece of the
// password. Key=value settings, PGPASSWORD and PGPASSFILE are shown to connect.

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { startCluster, type Cluster } from '../src/sandbox/index.js';
import { jsonLines, runRecall, type RunResult } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

const [MAJOR] = testMajors('one');
if (MAJOR === undefined) throw new Error('no PostgreSQL major to test');

// A blank, a quote and a backslash: each needs quoting in key=value settings and encoding in a URL.
const PASSWORD = "Kx9vR2 Tr0mb0ne'Qw8zLp\\Mn4tYb";
const WRONG = "Wr6ngPw Zy3xQv'Bn5mKl\\Ht2pRd";

/** Every text that would betray a password: whole, URL-encoded, and each piece between its special characters. */
const BETRAYALS = [PASSWORD, WRONG].flatMap((secret) => [secret, encodeURIComponent(secret), ...secret.split(/[\s'\\]/)]);

/** A value in libpq's single quotes. */
const quoted = (value: string): string => `'${value.replace(/[\\']/g, '\\$&')}'`;

/** The environment without any source, vault or libpq variable, plus `extra`. */
function bareEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const name of Object.keys(env)) {
    if (name.startsWith('RECALL_') || name.startsWith('PG') || name === 'DATABASE_URL') delete env[name];
  }
  return { ...env, ...extra };
}

function assertNoPassword(result: RunResult, what: string): void {
  for (const piece of BETRAYALS) {
    assert.ok(!result.stdout.includes(piece), `${what}: stdout shows ${JSON.stringify(piece)}\n${result.stdout}`);
    assert.ok(!result.stderr.includes(piece), `${what}: stderr shows ${JSON.stringify(piece)}\n${result.stderr}`);
  }
}

describe(`the source password on PostgreSQL ${MAJOR}`, () => {
  let cluster: Cluster;
  let scratch: string;
  let vault: string;
  let keywords: (password: string | null, extra?: string) => string;
  let url: (password: string) => string;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'recall-secrets-'));
    vault = join(scratch, 'vault');
    cluster = await startCluster({ major: MAJOR, password: PASSWORD });
    const db = new pg.Client({ connectionString: cluster.url() });
    await db.connect();
    await db.query(`CREATE TABLE tenants (id bigint PRIMARY KEY); INSERT INTO tenants VALUES (1)`);
    await db.end();
    keywords = (password, extra = '') =>
      `host=${cluster.host} port=${cluster.port} user=postgres dbname=postgres${password === null ? '' : ` password=${quoted(password)}`}${extra}`;
    url = (password) => cluster.url({ password });
  });

  after(async () => {
    await cluster?.destroy();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  test('key=value settings are read as libpq reads them: init, capture and status connect', async () => {
    const source = `  host =${cluster.host}   port= ${cluster.port} dbname='postgres' user=postgres password = ${quoted(PASSWORD)} `;
    const init = await runRecall(['init', '--source', source, '--vault', vault], bareEnv());
    assertNoPassword(init, 'init');
    assert.equal(init.code, 0, init.stderr);
    // The unquoted form: a backslash takes the next character (blank, quote or backslash) literally.
    const unquoted = `host=${cluster.host} port=${cluster.port} user=postgres password=${PASSWORD.replace(/[\s'\\]/g, '\\$&')}`;
    const capture = await runRecall(['capture', '--until-caught-up', '--source', unquoted, '--vault', vault], bareEnv());
    assertNoPassword(capture, 'capture');
    assert.equal(capture.code, 0, capture.stderr);
  });

  test('PGPASSWORD and PGPASSFILE fill in a password that the settings or the URL leave out', async () => {
    const passfile = join(scratch, 'pgpass');
    // .pgpass escapes ":" and "\" with a backslash.
    writeFileSync(passfile, `${cluster.host}:${cluster.port}:*:postgres:${PASSWORD.replace(/[\\:]/g, '\\$&')}\n`);
    chmodSync(passfile, 0o600);
    const cases: [string, string, NodeJS.ProcessEnv][] = [
      ['key=value with PGPASSWORD', keywords(null), { PGPASSWORD: PASSWORD }],
      ['key=value with PGPASSFILE', keywords(null), { PGPASSFILE: passfile }],
      ['a URL with PGPASSFILE', cluster.url({ password: null }), { PGPASSFILE: passfile }],
      ['PG* variables alone', '', { PGHOST: cluster.host, PGPORT: String(cluster.port), PGUSER: 'postgres', PGPASSWORD: PASSWORD }],
    ];
    for (const [what, source, env] of cases) {
      const result = await runRecall(['status', '--json', '--vault', vault], bareEnv({ ...env, RECALL_SOURCE: source }));
      assertNoPassword(result, what);
      assert.equal(result.code, 0, `${what}\n${result.stderr}`);
      const [report] = jsonLines<{ source: { reachable: boolean; error?: string } }>(result.stdout);
      assert.equal(report?.source.reachable, true, `${what}: ${report?.source.error ?? ''}`);
    }
  });

  test('no error path prints the password, whichever way the source is written', async () => {
    const port = cluster.port;
    const host = cluster.host;
    const encoded = encodeURIComponent(PASSWORD);
    /** Each source, and what init does with it: 1 cannot reach, 2 bad input or login refused. */
    const sources: [string, string, 1 | 2, RegExp][] = [
      ['a URL, wrong password', url(WRONG), 2, /refused the login/],
      ['key=value, wrong password', keywords(WRONG), 2, /refused the login/],
      ['a URL, nobody listening', `postgres://postgres:${encoded}@127.0.0.1:1/postgres`, 1, /cannot reach the source/],
      ['key=value, nobody listening', `host=127.0.0.1 port=1 password=${quoted(PASSWORD)}`, 1, /cannot reach the source/],
      ['key=value, an unquoted password with blanks', `host=${host} port=${port} password=${PASSWORD}`, 2, /need an "="/],
      ['key=value, an unknown keyword after the password', `${keywords(PASSWORD)} colour=blue`, 2, /unknown keyword: setting \d+/],
      ['key=value, a misspelt password keyword', `host=${host} pasword=${quoted(PASSWORD)}`, 2, /unknown keyword: "pasword"/],
      ['key=value, an unclosed quote', `host=${host} password='${PASSWORD.replace(/'/g, '')}`, 2, /is not closed/],
      [
        'key=value, a port run into the password',
        `host=${host} port=5432password=${PASSWORD.replace(/[\s'\\]/g, '\\$&')}`,
        2,
        /port is not a port number/,
      ],
      ['key=value, passfile', `passfile=/nowhere password=${quoted(PASSWORD)}`, 2, /"passfile" is not supported/],
      ['a URL without "://"', `postgres//postgres:${encoded}@${host}:${port}/postgres`, 2, /neither a postgres:\/\/ URL nor key=value/],
      ['a URL with one slash', `postgres:/postgres:${encoded}@${host}:${port}/postgres`, 2, /neither a postgres:\/\/ URL/],
      ['a misspelt scheme', `postgress://postgres:${encoded}@${host}:${port}/postgres`, 2, /neither a postgres:\/\/ URL/],
      [
        'a misspelt scheme with a query',
        `postgress://postgres:${encoded}@${host}:${port}/postgres?sslmode=disable`,
        2,
        /unknown keyword: setting 1/,
      ],
      ['a slash for the colon', `postgres://postgres/${encoded}@${host}:${port}/postgres`, 2, /"@" after its host/],
      ['a URL with a bad port', `postgres://postgres:${encoded}@${host}:54x2/postgres`, 2, /URL is malformed/],
      ['a URL with the password unencoded', `postgres://postgres:${PASSWORD}@${host}:1/postgres`, 1, /cannot reach the source/],
      ['the password alone', PASSWORD, 2, /neither a postgres:\/\/ URL/],
    ];
    for (const [what, source, code, message] of sources) {
      const fresh = join(scratch, `fresh-${what.replace(/\W+/g, '-')}`);
      const init = await runRecall(['init', '--source', source, '--vault', fresh], bareEnv());
      assertNoPassword(init, `${what}: init`);
      assert.equal(init.code, code, `${what}: init\n${init.stderr}`);
      assert.match(init.stderr, /^recall: .*\nhint: \S/m, `${what}: one message with a hint\n${init.stderr}`);
      assert.match(init.stderr, message, `${what}: init\n${init.stderr}`);
      assert.equal(init.stdout, '', what);
      // The same source through RECALL_SOURCE, for the commands that print reports.
      const env = bareEnv({ RECALL_SOURCE: source, RECALL_VAULT: vault });
      for (const command of [['status'], ['status', '--json'], ['undo', '--txn', '1', '--dry-run', '--json']]) {
        const result = await runRecall(command, env);
        assertNoPassword(result, `${what}: ${command.join(' ')}`);
        // A source that parses but cannot be used is a report, not an error, for status.
        if (command[0] === 'status') assert.ok(result.code === 0 || result.code === 2, `${what}: ${result.stderr}`);
        else assert.ok(result.code === code || result.code === 1, `${what}: ${command.join(' ')} exit ${result.code}\n${result.stderr}`);
      }
    }
  });

  test('a mistyped flag that commander echoes has its password blanked', async () => {
    const result = await runRecall(['status', `--sorce=${url(PASSWORD)}`, '--vault', vault], bareEnv());
    assertNoPassword(result, '--sorce');
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unknown option '--sorce=postgres:\/\/postgres:\*\*\*\*\*@/);
  });
});
