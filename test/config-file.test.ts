// recall.yml as a user gets it wrong: unknown keys, wrong types, broken YAML, and
// tables, roots and columns the source does not have. Every command that reads the
// file refuses it before any work (exit 2), naming the key, its line and the fix,
// and changes nothing on the source or in the vault. The README's example keeps working.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixture, jsonLines, runRecall, type Fixture, type RunResult } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

const [MAJOR] = testMajors('one');
if (MAJOR === undefined) throw new Error('no PostgreSQL major to test');

// The README's example, on a schema that has what it names.
const SCHEMA = `
  CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);
  CREATE TABLE issues (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES accounts, title text);
  CREATE SCHEMA "Billing";
  CREATE TABLE "Billing"."Invoices" (id bigint PRIMARY KEY, "Account" bigint NOT NULL, total numeric);
  CREATE TABLE events (id bigint PRIMARY KEY, account_id bigint NOT NULL, kind text);
  CREATE TABLE countries (code text PRIMARY KEY, tenant_id bigint);  -- global although it has the column
  INSERT INTO accounts VALUES (1, 'acme'), (2, 'globex');
  INSERT INTO issues VALUES (1, 1, 'first'), (2, 2, 'second');
  INSERT INTO "Billing"."Invoices" VALUES (1, 1, 10.50);
  INSERT INTO events VALUES (1, 1, 'signup');
  INSERT INTO countries VALUES ('fr', 1);`;

const GOOD = [
  'memory-limit: 512MB # the memory budget of each recall process',
  'tenancy:',
  '  column: tenant_id',
  '  root: public.accounts',
  '  tables:',
  `    '"Billing"."Invoices"': { column: Account }`,
  '    public.events: account_id',
  '    public.countries: global',
  '',
].join('\n');

describe(`recall.yml on PostgreSQL ${MAJOR}`, () => {
  let f: Fixture;
  let scratch: string;
  let good: string;
  let versions: string[];

  /** Writes a config file and returns its path. */
  function config(name: string, lines: readonly string[]): string {
    const path = join(scratch, name);
    writeFileSync(path, `${lines.join('\n')}\n`);
    return path;
  }

  /** Runs the CLI in `cwd` (where ./recall.yml is looked for) with the fixture's source and vault. */
  function run(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return runRecall(args, { ...f.env, ...options.env }, { cwd: options.cwd ?? scratch });
  }

  /** Every command that reads recall.yml, with --config (or without, for ./recall.yml and RECALL_CONFIG). */
  function everyCommand(configArgs: readonly string[]): string[][] {
    return [
      ['init', ...configArgs],
      ['capture', '--until-caught-up', ...configArgs],
      ['status', ...configArgs],
      ['show', '--tenant', '1', '--at', 'now', ...configArgs],
      ['log', '--tenant', '1', ...configArgs],
      ['restore', '--tenant', '1', '--to', 'now', '--yes', ...configArgs],
      ['undo', '--actor', 'someone', '--yes', ...configArgs],
      ['uninstall', '--yes', ...configArgs],
    ];
  }

  /** Checks a refusal: exit 2, one message with its hint, nothing on stdout, never "a bug". */
  function refused(result: RunResult, ...mentions: (string | RegExp)[]): void {
    const shown = `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
    assert.equal(result.code, 2, shown);
    assert.match(result.stderr, /^recall: \S/, shown);
    assert.equal(result.stderr.match(/^recall: /gm)?.length, 1, `one message\n${shown}`);
    assert.match(result.stderr, /^hint: \S/m, shown);
    assert.doesNotMatch(result.stderr, /this is a bug in Recall|^\s+at /m, shown);
    assert.equal(result.stdout, '', shown);
    for (const mention of mentions) {
      if (typeof mention === 'string') assert.ok(result.stderr.includes(mention), `mentions ${JSON.stringify(mention)}\n${shown}`);
      else assert.match(result.stderr, mention, shown);
    }
  }

  /** What a refused command must not have changed: the manifest versions, the source's slots and publications, its rows. */
  async function state(): Promise<unknown> {
    const objects = await f.db.query<{ name: string }>(
      `SELECT 'slot ' || slot_name AS name FROM pg_replication_slots UNION ALL SELECT 'publication ' || pubname FROM pg_publication ORDER BY 1`,
    );
    const rows = await f.db.query<{ r: string }>('SELECT row_to_json(i)::text AS r FROM issues i ORDER BY id');
    const manifests = existsSync(join(f.vault, 'manifest'))
      ? readdirSync(join(f.vault, 'manifest'), { recursive: true, encoding: 'utf8' }).sort()
      : [];
    return { objects: objects.rows.map((row) => row.name), rows: rows.rows.map((row) => row.r), manifests };
  }

  before(async () => {
    f = await fixture(MAJOR, SCHEMA);
    scratch = mkdtempSync(join(tmpdir(), 'recall-config-'));
    good = config('good.yml', GOOD.trimEnd().split('\n'));
  });

  after(async () => {
    await f?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  describe('before init', () => {
    test('a root table, a table and a column the source does not have: init exits 2 with each line, creates nothing', async () => {
      const before = await state();
      const wrong = config('wrong-source.yml', [
        'tenancy:', //                                   line 1
        '  column: tenant_idd', //                       line 2
        '  root: public.acounts', //                     line 3
        '  tables:', //                                  line 4
        '    public.countries: globl', //                line 5
        '    public.event: account_id', //               line 6
        `    '"Billing"."Invoices"': { column: acount }`, // line 7
      ]);
      const result = await run(['init', '--config', wrong]);
      refused(
        result,
        /\(5 problems\)/,
        `${wrong} line 2: tenancy.column is "tenant_idd", but no table of the source has that column (did you mean tenant_id?)`,
        `${wrong} line 3: tenancy.root names table public.acounts, which does not exist in the source (did you mean public.accounts?)`,
        /line 5: tenancy\.tables\.public\.countries says public\.countries is tenant-scoped by column "globl", but public\.countries has no such column \(did you mean global\?\)/,
        /fix: write global for a table of no tenant, or one of its columns: code, tenant_id/,
        /line 6: tenancy\.tables\.public\.event names table public\.event, which does not exist in the source \(did you mean public\.events\?\)/,
        /line 7: tenancy\.tables\."Billing"\."Invoices" says "Billing"\."Invoices" is tenant-scoped by column "acount"/,
      );
      assert.deepEqual(await state(), before, 'no slot, publication or manifest');
    });

    test('the README example initialises, and its tenancy is what show reads', async () => {
      const init = await run(['init', '--config', good]);
      assert.equal(init.code, 0, init.stderr);
      await f.db.query(`INSERT INTO issues VALUES (3, 1, 'third'); INSERT INTO events VALUES (2, 1, 'login')`);
      const capture = await run(['capture', '--until-caught-up', '--config', good]);
      assert.equal(capture.code, 0, capture.stderr);
      const show = await run(['show', '--tenant', '1', '--at', 'now', '--json', '--config', good]);
      assert.equal(show.code, 0, show.stderr);
      const tables = jsonLines<{ table: string }>(show.stdout).map((row) => row.table);
      assert.deepEqual([...new Set(tables)].sort(), ['"Billing"."Invoices"', 'public.accounts', 'public.events', 'public.issues']);
      assert.equal(tables.filter((table) => table === 'public.events').length, 2);
      assert.ok(!tables.includes('public.countries'), 'countries is global');
      versions = readdirSync(join(f.vault, 'manifest'), { recursive: true, encoding: 'utf8' }).sort();
    });
  });

  describe('after init', () => {
    test('typos in keys: every command exits 2 naming the key, its line and the key meant', async () => {
      const before = await state();
      const typos = config('typos.yml', ['memory-limit: 512MB', 'tenency:', '  root: public.accounts']);
      for (const args of everyCommand(['--config', typos])) {
        refused(
          await run(args),
          `${typos} line 2: unknown key tenency (did you mean tenancy?)`,
          /^hint: write tenancy; the keys here are memory-limit, tenancy, vault$/m,
        );
      }
      const nested = config('nested.yml', ['tenancy:', '  colum: tenant_id', '  tables:', '    public.events: { colum: account_id }']);
      for (const args of everyCommand(['--config', nested])) {
        refused(
          await run(args),
          /has 2 problems:/,
          `${nested} line 2: unknown key tenancy.colum (did you mean column?)`,
          `${nested} line 4: unknown key tenancy.tables.public.events.colum (did you mean column?)`,
          'fix: write tenancy.column; the keys here are column, root, tables',
        );
      }
      assert.deepEqual(await state(), before);
    });

    test('wrong types, an unknown section and broken YAML: exit 2 with the line and an example', async () => {
      const cases: [string[], (string | RegExp)[]][] = [
        [
          ['tenancy:', '  root: 5'],
          ['line 2: tenancy.root cannot be the number 5', 'e.g. root: public.tenants'],
        ],
        [
          ['tenancy:', '  tables:', '    - public.events'],
          ['line 2: tenancy.tables cannot be a list', 'public.countries: global'],
        ],
        [
          ['tenancy:', '  tables:', '    public.events: { column: 7 }'],
          ['line 3: tenancy.tables.public.events.column cannot be the number 7'],
        ],
        [
          ['tenancy:', '  tables:', '    public.events: [a, b]'],
          ['line 3: tenancy.tables.public.events cannot be a list', 'write global, a column name, or { column: NAME }'],
        ],
        [['tenancy: global'], ['line 1: tenancy cannot be the text "global"', 'mapping of column, root and tables']],
        [['memory-limit: [1GB]'], ['line 1: memory-limit cannot be a list', 'e.g. memory-limit: 2GB']],
        [['memory-limit: lots'], [/line 1: memory-limit "lots" is not a size/]],
        [
          ['# alarms come in a later release', 'alarms:', '  lag: 1GB'],
          ['line 2: unknown key alarms', 'remove it; the keys here are memory-limit, tenancy, vault'],
        ],
        [
          ['vault:', '  retention: a month'],
          [/line 2: vault\.retention "a month" is not a duration/, 'write a whole number and a unit'],
        ],
        [
          ['vault:', '  retention: 0d'],
          ['line 2: vault.retention is zero', 'remove the key to keep everything'],
        ],
        [['vault:', '  retention: 35'], [/line 2: vault\.retention/]],
        [['vault: 35d'], ['line 1: vault cannot be the text "35d"', 'e.g. vault: { retention: 35d }']],
        [['vault:', '  retension: 35d'], ['line 2: unknown key vault.retension (did you mean retention?)']],
        [
          ['tenancy:', '  tables:', '    issues: global', '    public.issues: tenant_id'],
          ['line 4: tenancy.tables.public.issues names public.issues again (line 3 does already)'],
        ],
        [['tenancy:', '  tables:', '    "a.b.c": global'], [/line 3: tenancy\.tables\.a\.b\.c: malformed table name a\.b\.c/]],
        [['tenancy:', '  root: [public.accounts'], [/line \d: not valid YAML \(Flow sequence/]],
        [['tenancy:', '  root: public.accounts', '  root: public.issues'], ['line 3: not valid YAML (Map keys must be unique)']],
        [['- tenancy'], [/must be a mapping of settings, not a list/]],
      ];
      const before = await state();
      for (const [index, [lines, mentions]] of cases.entries()) {
        const path = config(`case-${index}.yml`, lines);
        // A bad memory-limit in the file is an error even when the flag would win: the file is checked whole.
        refused(await run(['show', '--tenant', '1', '--at', 'now', '--config', path, '--memory-limit', '256MB']), path, ...mentions);
      }
      // Every command, for one of them.
      for (const args of everyCommand(['--config', join(scratch, 'case-0.yml')]))
        refused(await run(args), 'tenancy.root cannot be the number 5');
      assert.deepEqual(await state(), before);
    });

    test('capture, restore and undo check the tenancy against the source too', async () => {
      const before = await state();
      const globl = config('globl.yml', ['tenancy:', '  root: public.accounts', '  tables:', '    public.countries: globl']);
      for (const args of [
        ['capture', '--until-caught-up', '--config', globl],
        ['restore', '--tenant', '1', '--to', 'now', '--yes', '--config', globl],
        ['restore', '--tenant', '1', '--to', 'now', '--dry-run', '--config', globl],
        ['undo', '--actor', 'someone', '--yes', '--config', globl],
      ]) {
        refused(
          await run(args),
          `${globl} line 4: tenancy.tables.public.countries says public.countries is tenant-scoped by column "globl"`,
          '(did you mean global?)',
        );
      }
      const root = config('root.yml', ['tenancy:', '  root: public.acounts']);
      refused(
        await run(['capture', '--until-caught-up', '--config', root]),
        `${root} line 2: tenancy.root names table public.acounts, which does not exist`,
      );
      const guards = await f.db.query(`SELECT tgname FROM pg_trigger WHERE tgname = 'recall_guard'`);
      assert.deepEqual(guards.rows, [], 'no guard trigger was left behind');
      assert.deepEqual(await state(), before);
      assert.deepEqual(readdirSync(join(f.vault, 'manifest'), { recursive: true, encoding: 'utf8' }).sort(), versions);
    });

    test('every command honours --config, RECALL_CONFIG and ./recall.yml; a named file must exist', async () => {
      const missing = join(scratch, 'missing.yml');
      for (const args of everyCommand(['--config', missing])) refused(await run(args), `config file ${missing} does not exist`);
      for (const args of everyCommand([]))
        refused(await run(args, { env: { RECALL_CONFIG: missing } }), `config file ${missing} does not exist`);
      // Named explicitly, even the default name must exist.
      const empty = mkdtempSync(join(scratch, 'empty-'));
      refused(
        await run(['show', '--tenant', '1', '--at', 'now', '--config', 'recall.yml'], { cwd: empty }),
        'config file recall.yml does not exist',
      );
      // ./recall.yml is read when nothing names a file; absent, the defaults hold.
      const here = mkdtempSync(join(scratch, 'here-'));
      writeFileSync(join(here, 'recall.yml'), 'tenancy:\n  colum: tenant_id\n');
      for (const args of everyCommand([]))
        refused(await run(args, { cwd: here }), 'recall.yml line 2: unknown key tenancy.colum (did you mean column?)');
      const shown = await run(['show', '--tenant', '1', '--at', 'now', '--json'], { cwd: empty });
      assert.equal(shown.code, 0, shown.stderr);
      // --config wins over RECALL_CONFIG.
      const viaFlag = await run(['show', '--tenant', '1', '--at', 'now', '--json', '--config', good], { env: { RECALL_CONFIG: missing } });
      assert.equal(viaFlag.code, 0, viaFlag.stderr);
      const viaEnv = await run(['capture', '--until-caught-up'], { env: { RECALL_CONFIG: good } });
      assert.equal(viaEnv.code, 0, viaEnv.stderr);
    });
  });
});
