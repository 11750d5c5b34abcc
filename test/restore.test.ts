// Restore against real PostgreSQL: a tenant vandalised (updates, deletes, spam
// inserts) while others work is put back to a point and equals it exactly; nobody
// else changes; writers to the tenant are blocked with a clear error while the
// restore holds its freeze; and the restore itself can be undone.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pg from 'pg';
import { DEFAULT_TENANCY, openVault, parsePoint, planRestore, resolveSource } from '../src/index.js';
import { recallContextSql } from '../src/capture/index.js';
import { SAAS_SCHEMA, keepWorking, signUp, tenantNames } from '../src/demo/saas.js';
import { fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { othersState, tenantState } from './harness/saas.js';
import { endAfterSuite, initAndCapture } from './harness/workload.js';

for (const major of testMajors('one')) {
  describe(`restore on PostgreSQL ${major}`, () => {
    const { fixtures, captures } = endAfterSuite();

    test('a vandalised tenant goes back to a point exactly; others are untouched; the restore can be undone', async () => {
      const tenants = tenantNames(10);
      const [victim, ...others] = tenants as [string, ...string[]];
      const f = await fixture(major, SAAS_SCHEMA);
      fixtures.push(f);
      const db = f.db;
      await signUp(db, tenants);
      captures.push(await initAndCapture(f));

      const worker = new pg.Client({ connectionString: f.cluster.url() });
      await worker.connect();
      const working = keepWorking(worker, others, 11);
      await db.query(`UPDATE public.issues SET status = 'doing' WHERE tenant_id = $1 AND id % 3 = 0`, [victim]);
      const atPoint = await tenantState(db, [victim]);
      const point = new Date().toISOString();
      await new Promise((resolve) => setTimeout(resolve, 50));

      await db.query('BEGIN');
      await db.query(...recallContextSql({ actor: 'vandal' }));
      await db.query(`UPDATE public.issues SET title = 'pwned', labels = '{spam}' WHERE tenant_id = $1`, [victim]);
      await db.query(`DELETE FROM public.projects WHERE id = (SELECT min(id) FROM public.projects WHERE tenant_id = $1)`, [victim]);
      await db.query(`UPDATE public.users SET email = 'x' || id || '@spam.example' WHERE tenant_id = $1`, [victim]);
      await db.query(
        `INSERT INTO public.issues (tenant_id, project_id, title)
         SELECT $1, id, 'buy now ' || n FROM public.projects, generate_series(1, 25) n WHERE tenant_id = $1`,
        [victim],
      );
      await db.query('COMMIT');
      await working.stop();
      await worker.end();
      const vandalised = await tenantState(db, [victim]);
      assert.notDeepStrictEqual(vandalised, atPoint);
      const othersBefore = await othersState(db, [victim]);

      const dry = await f.recall(['restore', '--tenant', victim, '--to', point, '--dry-run']);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, new RegExp(`restore tenant ${victim} to ${point.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      assert.match(dry.stdout, /public\.issues\s+\d+\s+\d+\s+\d+/);
      assert.deepStrictEqual(await tenantState(db, [victim]), vandalised, '--dry-run wrote nothing');

      const restore = await f.recall(['restore', '--tenant', victim, '--to', point, '--yes']);
      assert.equal(restore.code, 0, restore.stderr);
      assert.deepStrictEqual(await tenantState(db, [victim]), atPoint, 'the tenant equals its state at the point');
      assert.deepStrictEqual(await othersState(db, [victim]), othersBefore, 'no other row changed');
      const { rows } = await db.query(`SELECT tgname FROM pg_trigger WHERE tgname = 'recall_guard'`);
      assert.deepStrictEqual(rows, [], 'the freeze is lifted and its guard removed');

      // The restore is history too: undoing it returns the tenant to the vandalised state.
      const undo = await f.recall(['undo', '--actor', 'recall', '--since', point, '--yes']);
      assert.equal(undo.code, 0, undo.stderr);
      assert.deepStrictEqual(await tenantState(db, [victim]), vandalised, 'undoing the restore brings back the state before it');
      assert.deepStrictEqual(await othersState(db, [victim]), othersBefore);
    });

    test("while a restore holds its freeze, the tenant's writers get a clear error and other tenants write on", async () => {
      const f = fixtures[0];
      assert.ok(f !== undefined, 'runs after the test above');
      const vault = await openVault(f.vault);
      const prepared = await planRestore({
        source: resolveSource(f.cluster.url()),
        vault,
        tenancy: DEFAULT_TENANCY,
        tenants: ['t002'],
        to: parsePoint('now'),
      });
      const writer = new pg.Client({ connectionString: f.cluster.url() });
      await writer.connect();
      try {
        await assert.rejects(
          writer.query(`UPDATE public.issues SET title = 'blocked?' WHERE tenant_id = 't002'`),
          (error: Error & { code?: string }) => {
            assert.equal(error.code, '55P03');
            assert.match(error.message, /tenant t002 is being restored by Recall; retry in a moment/);
            return true;
          },
        );
        const other = await writer.query(`UPDATE public.issues SET title = title WHERE tenant_id = 't003'`);
        assert.ok((other.rowCount ?? 0) > 0, 'another tenant writes on');
      } finally {
        await prepared.close();
      }
      const after = await writer.query(`UPDATE public.issues SET title = title WHERE tenant_id = 't002'`);
      assert.ok((after.rowCount ?? 0) > 0, 'the block is lifted when the restore ends');
      await writer.end();
    });
  });
}
