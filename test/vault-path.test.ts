// Vault paths that cannot hold a vault: a regular file, a path under a file, a
// missing parent directory, a directory this user may not write, and a read-only
// file system. Each is refused before any work with one line that names the path
// and the fix (exit 2), and nothing is created on the source or in the vault.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { serverUser, type ServerUser } from '../src/sandbox/index.js';
import { fixture, runRecall, type Fixture, type RunResult } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

const [MAJOR] = testMajors('one');
if (MAJOR === undefined) throw new Error('no PostgreSQL major to test');

const BIN = resolve(import.meta.dirname, '../bin/recall.js');

const SCHEMA = `
  CREATE TABLE tenants (id bigint PRIMARY KEY, name text NOT NULL);
  CREATE TABLE issues (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants, title text);
  INSERT INTO tenants VALUES (1, 'acme');
  INSERT INTO issues VALUES (1, 1, 'first');`;

/** Checks a refusal: exit 2, one `recall:` line naming the path, a hint, nothing on stdout, never "a bug". */
function refused(result: RunResult, path: string, ...mentions: RegExp[]): void {
  const shown = `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
  assert.equal(result.code, 2, shown);
  assert.match(result.stderr, /^recall: [^\n]+\nhint: [^\n]+\n$/, `one message line and one hint line\n${shown}`);
  assert.ok(result.stderr.includes(path), `names ${path}\n${shown}`);
  assert.doesNotMatch(result.stderr, /this is a bug in Recall|ENOTDIR|EACCES|EROFS/, shown);
  assert.equal(result.stdout, '', shown);
  for (const mention of mentions) assert.match(result.stderr, mention, shown);
}

describe(`vault paths that cannot hold a vault, on PostgreSQL ${MAJOR}`, () => {
  let f: Fixture;
  let scratch: string;
  let config: string;
  /** The user the CLI runs as where permission bits must bite: postgres when we are root (root writes anyway). */
  let asUser: ServerUser;
  /** Why the CLI cannot run as that user here, if it cannot. */
  let asUserProblem: string | undefined;

  before(async () => {
    f = await fixture(MAJOR, SCHEMA);
    scratch = mkdtempSync(join(tmpdir(), 'recall-vault-path-'));
    chmodSync(scratch, 0o755);
    config = join(scratch, 'recall.yml');
    writeFileSync(config, 'tenancy:\n  root: public.tenants\n');
    asUser = await serverUser();
    if (asUser !== null) {
      // A checkout under a 0700 home cannot be reached by another user: probe before relying on it.
      const probe = await run(['--version'], asUser);
      if (probe.code !== 0) asUserProblem = `the postgres OS user cannot run ${BIN} (${probe.stderr.trim().split('\n')[0]})`;
    }
  });

  after(async () => {
    await f?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** Runs the CLI against the fixture's source, optionally as another OS user. */
  function run(args: readonly string[], user: ServerUser = null): Promise<RunResult> {
    return runRecall(args, f.env, { cwd: scratch, user });
  }

  /** The commands that open a vault, each pointed at `vault`. */
  function everyCommand(vault: string): string[][] {
    const common = ['--vault', vault, '--config', config];
    return [
      ['init', ...common],
      ['capture', '--until-caught-up', ...common],
      ['status', ...common],
      ['show', '--tenant', '1', '--at', 'now', ...common],
      ['log', '--tenant', '1', ...common],
      ['restore', '--tenant', '1', '--to', 'now', '--dry-run', ...common],
      ['undo', '--actor', 'someone', '--dry-run', ...common],
      ['uninstall', '--dry-run', ...common],
    ];
  }

  /** Slots and publications on the source: none of these runs may create one. */
  async function sourceState(): Promise<string[]> {
    const { rows } = await f.db.query<{ name: string }>(
      `SELECT 'slot ' || slot_name AS name FROM pg_replication_slots UNION ALL SELECT 'publication ' || pubname FROM pg_publication ORDER BY 1`,
    );
    return rows.map((row) => row.name);
  }

  test('a regular file: every command exits 2, says it is a file, and leaves it alone', async () => {
    const file = join(scratch, 'vault-file');
    writeFileSync(file, 'not a vault\n');
    for (const args of everyCommand(file)) refused(await run(args), file, /is a file, not a directory/, /^hint: pass --vault a directory/m);
    assert.equal(readFileSync(file, 'utf8'), 'not a vault\n');
    assert.deepEqual(await sourceState(), []);
  });

  test('a path under a regular file: exit 2, says so', async () => {
    const file = join(scratch, 'plain-file');
    writeFileSync(file, '');
    const vault = join(file, 'vault');
    for (const args of everyCommand(vault).slice(0, 4)) refused(await run(args), vault, /lies under a file/);
    assert.deepEqual(await sourceState(), []);
  });

  test('a parent directory that does not exist: exit 2, names it and the mkdir, creates nothing', async () => {
    const parent = join(scratch, 'no', 'such');
    const vault = join(parent, 'vault');
    for (const args of everyCommand(vault)) {
      refused(await run(args), parent, /does not exist/, new RegExp(`^hint: create it first \\(mkdir -p ${parent}\\)`, 'm'));
    }
    assert.ok(!existsSync(join(scratch, 'no')), 'no directory was created');
    assert.deepEqual(await sourceState(), []);
  });

  test('a directory this user may not write: exit 2, names the user; a new vault in it likewise', async (t) => {
    if (asUserProblem !== undefined) return t.skip(asUserProblem);
    const locked = join(scratch, 'locked');
    mkdirSync(locked);
    if (asUser !== null) chownSync(locked, asUser.uid, asUser.gid);
    chmodSync(locked, 0o500);
    try {
      const user =
        asUser === null ? /not writable by user \S+ \(uid \d+\)/ : new RegExp(`not writable by user postgres \\(uid ${asUser.uid}\\)`);
      for (const args of everyCommand(locked)) refused(await run(args, asUser), locked, user, /^hint: run Recall as the vault's owner/m);
      // A vault to be created inside it: the parent is what is not writable.
      const inside = join(locked, 'vault');
      refused(await run(['init', '--vault', inside, '--config', config], asUser), locked, /would be created, is not writable/);
      assert.deepEqual(readdirSync(locked), [], 'nothing was written into it');
      assert.deepEqual(await sourceState(), []);
    } finally {
      chmodSync(locked, 0o700);
    }
  });

  describe('an initialised vault', () => {
    let vault: string;

    before(async () => {
      vault = join(scratch, 'ro', 'vault');
      mkdirSync(join(scratch, 'ro'));
      const init = await run(['init', '--vault', vault, '--config', config]);
      assert.equal(init.code, 0, init.stderr);
    });

    test('on a read-only file system: exit 2, says read-only and how to go on', async (t) => {
      if (process.getuid?.() !== 0) return t.skip('a read-only bind mount needs root');
      const mountPoint = join(scratch, 'ro');
      try {
        execFileSync('mount', ['--bind', mountPoint, mountPoint], { stdio: 'pipe' });
      } catch (error) {
        return t.skip(`mount --bind is not permitted here: ${(error as Error).message.split('\n')[0]}`);
      }
      try {
        execFileSync('mount', ['-o', 'remount,bind,ro', mountPoint], { stdio: 'pipe' });
        const before = readdirSync(join(vault, 'manifest'), { recursive: true, encoding: 'utf8' });
        const slots = await sourceState();
        for (const args of everyCommand(vault)) {
          refused(await run(args), vault, /is on a read-only file system/, /^hint: remount it read-write, or copy the vault/m);
        }
        assert.deepEqual(readdirSync(join(vault, 'manifest'), { recursive: true, encoding: 'utf8' }), before);
        assert.deepEqual(await sourceState(), slots, 'no slot or publication came or went');
      } finally {
        execFileSync('umount', [mountPoint], { stdio: 'pipe' });
      }
    });

    test('owned by another user: capture and show exit 2, name the user', async (t) => {
      if (asUser === null) return t.skip('needs root, to run the CLI as another user than the vault’s owner');
      if (asUserProblem !== undefined) return t.skip(asUserProblem);
      // The vault's files stay root's; the postgres user may read the directory but not write it.
      chmodSync(vault, 0o755);
      for (const args of everyCommand(vault).slice(1, 4)) refused(await run(args, asUser), vault, /not writable by user postgres/);
      // Its owner still uses it.
      const show = await run(['show', '--tenant', '1', '--at', 'now', '--json', '--vault', vault, '--config', config]);
      assert.equal(show.code, 0, show.stderr);
      assert.match(show.stdout, /"title":"first"/);
    });
  });
});
