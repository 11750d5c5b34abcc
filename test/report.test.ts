// `recall report`: per tenant, what a window of the history did (rows inserted,
// updated, deleted, the columns updates changed, the actors and transactions), from
// the vault alone; and what a verify found lost, told per tenant (--from-verify).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { before, describe, test } from 'node:test';
import { testMajors } from './harness/majors.js';
import type { Fixture } from './harness/recall.js';
import { capturedFixture, endAfterSuite, pointNow, type CaptureProcess } from './harness/workload.js';

const FLUSHED = /^capture: \d+ changes through/;

const BIN = resolve(import.meta.dirname, '../bin/recall.js');

const SCHEMA = `
  CREATE TABLE public.tenants (id text PRIMARY KEY, name text NOT NULL);
  CREATE TABLE public.issues (tenant_id text NOT NULL REFERENCES public.tenants, id int NOT NULL, title text, state text, "Weird/~col" text,
                              PRIMARY KEY (tenant_id, id));
  CREATE TABLE public.comments (tenant_id text NOT NULL, id int NOT NULL, body text, PRIMARY KEY (tenant_id, id));
  INSERT INTO public.tenants VALUES ('acme', 'Acme'), ('globex', 'Globex'), ('initech', 'Initech');
  INSERT INTO public.issues SELECT t, i, 'issue ' || i, 'open', 'w' FROM unnest(ARRAY['acme', 'globex', 'initech']) t, generate_series(1, 10) i;
  INSERT INTO public.comments SELECT t, i, 'comment ' || i FROM unnest(ARRAY['acme', 'globex', 'initech']) t, generate_series(1, 5) i;
`;

interface Impact {
  since: string;
  until: string;
  tenants: {
    tenant: string;
    tables: { table: string; inserted: number; updated: number; deleted: number; columns: string[] }[];
    actors: { actor: string | null; transactions: number; rows: number }[];
    transactions: string[];
  }[];
}

const [major] = testMajors('one');

describe(`recall report, PostgreSQL ${major}`, () => {
  const started = endAfterSuite();
  let f: Fixture;
  let capture: CaptureProcess;

  /** Waits until the running capture has written everything committed so far (report reads the vault alone). */
  const captured = async (): Promise<void> => {
    const flushes = capture.count(FLUSHED);
    await capture.waitForLines(FLUSHED, flushes + 1, 30_000);
  };

  before(async () => ({ f, capture } = await capturedFixture(started, major!, SCHEMA)));

  test("a window's impact per tenant: tables, rows, changed columns, actors and transactions", async () => {
    const point = await pointNow();
    // The 09:47 script: two transactions, acme's issues closed and globex's comments deleted.
    await f.db.query('BEGIN');
    await f.db.query(`SELECT pg_logical_emit_message(true, 'recall', '{"actor": "cleanup-script"}')`);
    await f.db.query(`UPDATE public.issues SET state = 'closed', "Weird/~col" = 'x' WHERE tenant_id = 'acme' AND id <= 4`);
    await f.db.query('COMMIT');
    await f.db.query('BEGIN');
    await f.db.query(`SELECT pg_logical_emit_message(true, 'recall', '{"actor": "cleanup-script"}')`);
    await f.db.query(`DELETE FROM public.comments WHERE tenant_id = 'globex'`);
    await f.db.query('COMMIT');
    // Someone else, without an actor: one new issue of acme's, one title of acme's.
    await f.db.query(`INSERT INTO public.issues VALUES ('acme', 11, 'new', 'open', 'w')`);
    await f.db.query(`UPDATE public.issues SET title = 'renamed' WHERE tenant_id = 'acme' AND id = 9`);
    const until = await pointNow();
    await f.db.query(`UPDATE public.issues SET title = 'after the window' WHERE tenant_id = 'initech'`);
    await captured();

    const run = await f.recall(['report', '--since', point, '--until', until, '--json']);
    assert.equal(run.code, 0, run.stderr);
    const impact = JSON.parse(run.stdout) as Impact;
    const tenants = Object.fromEntries(impact.tenants.map((t) => [t.tenant, t]));
    assert.deepStrictEqual(Object.keys(tenants).sort(), ['acme', 'globex'], 'initech changed only after the window');
    assert.deepStrictEqual(tenants.acme!.tables, [
      { table: 'public.issues', inserted: 1, updated: 5, deleted: 0, columns: ['Weird/~col', 'state', 'title'] },
    ]);
    assert.deepStrictEqual(tenants.acme!.actors, [
      { actor: 'cleanup-script', transactions: 1, rows: 4 },
      { actor: null, transactions: 2, rows: 2 },
    ]);
    assert.equal(tenants.acme!.transactions.length, 3);
    assert.deepStrictEqual(tenants.globex!.tables, [{ table: 'public.comments', inserted: 0, updated: 0, deleted: 5, columns: [] }]);
    assert.deepStrictEqual(tenants.globex!.actors, [{ actor: 'cleanup-script', transactions: 1, rows: 5 }]);

    const one = await f.recall(['report', '--since', point, '--until', until, '--tenant', 'globex']);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /^tenant globex: 1 transaction$/m);
    assert.match(one.stdout, /^ {2}public\.comments {2}0 inserted, 0 updated, 5 deleted$/m);
    assert.match(one.stdout, /^ {2}by cleanup-script {2}1 transaction, 5 rows$/m);
    assert.doesNotMatch(one.stdout, /acme/);
  });

  test("a verify's differences, told per tenant, from a file or stdin", async () => {
    const { rows } = await f.db.query<{ name: string }>(`SELECT quote_ident(pubname) AS name FROM pg_publication`);
    await f.db.query(`ALTER PUBLICATION ${rows[0]!.name} SET (publish = 'truncate')`);
    await f.db.query(`DELETE FROM public.issues WHERE tenant_id = 'initech' AND id IN (1, 2)`);
    await f.db.query(`UPDATE public.comments SET body = 'tampered' WHERE tenant_id = 'acme' AND id = 3`);
    await f.db.query(`ALTER PUBLICATION ${rows[0]!.name} SET (publish = 'insert, update, delete, truncate')`);
    const verified = await f.recall(['verify', '--json']);
    assert.equal(verified.code, 3, verified.stderr);
    const file = join(f.vault, '..', 'verify.json');
    writeFileSync(file, verified.stdout);

    const fromFile = await f.recall(['report', '--from-verify', file]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.match(fromFile.stdout, /^tenant acme:\n {2}public\.comments {2}0 lost, 0 not in the history, 1 changed \(body\)$/m);
    assert.match(fromFile.stdout, /^tenant initech:\n {2}public\.issues {2}2 lost, 0 not in the history, 0 changed$/m);

    const fromStdin = spawnSync(process.execPath, [BIN, 'report', '--from-verify', '-', '--json'], {
      env: f.env,
      input: verified.stdout,
      encoding: 'utf8',
    });
    assert.equal(fromStdin.status, 0, fromStdin.stderr);
    const losses = JSON.parse(fromStdin.stdout) as { tenants: { tenant: string; tables: { table: string; missing: number }[] }[] };
    assert.deepStrictEqual(
      losses.tenants.map((t) => `${t.tenant} ${t.tables.map((table) => `${table.table}:${table.missing}`).join(',')}`).sort(),
      ['acme public.comments:0', 'initech public.issues:2'],
    );
  });

  test('a column added since is not a change of the rows its first update touches', async () => {
    const point = await pointNow();
    await f.db.query(`ALTER TABLE public.issues ADD COLUMN priority int DEFAULT 3`);
    await f.db.query(`UPDATE public.issues SET state = 'triaged' WHERE tenant_id = 'initech' AND id = 5`);
    await captured();
    const run = await f.recall(['report', '--since', point, '--tenant', 'initech', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const impact = JSON.parse(run.stdout) as Impact;
    assert.deepStrictEqual(impact.tenants[0]?.tables, [
      { table: 'public.issues', inserted: 0, updated: 1, deleted: 0, columns: ['state'] },
    ]);

    const backwards = await f.recall(['report', '--since', new Date().toISOString(), '--until', point]);
    assert.equal(backwards.code, 2, backwards.stderr);
    assert.match(backwards.stderr, /^recall: the window ends .+ before it starts/m);
  });

  test('bad input: exit 2, one line naming the fix', async () => {
    const notJson = join(f.vault, '..', 'not.json');
    writeFileSync(notJson, 'hello');
    for (const args of [
      ['report'],
      ['report', '--since', 'yesterday-ish'],
      ['report', '--from-verify', notJson],
      ['report', '--from-verify', join(f.vault, '..', 'missing.json')],
      ['report', '--from-verify', notJson, '--tenant', 'acme'],
      ['report', '--since', '1 hour ago', '--tenant', 'nobody'],
    ]) {
      const run = await f.recall(args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, /^recall: .+/m);
    }
  });
});
