// Undo of wide rows in a small memory budget, against real PostgreSQL: a cleanup
// script deletes 200,000 rows of about 3 KB (two tenants of five, TPC-C shaped) in 20
// tagged transactions; `recall undo --actor` plans and applies it under
// --memory-limit 128MiB, and the database must then equal what it held before the
// script, table by table. The undo's peak RSS must stay within 3x the budget (DuckDB's
// RSS runs 2-3x its limit), below the row text in play. Before this, the plan ran out
// of DuckDB memory under any budget below 3 GB (1.3 GB of RSS), and sometimes crashed.
// A restore of a tenant of 8,000 such rows, after a vandal's transaction, then takes
// the path a large tenant takes in this budget (positions first, rows by position).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fixture, jsonLines, runRecallMeasured } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { WIDE_SCHEMA, deleteWide, fillWide, wideState } from './harness/wide-rows.js';
import { endAfterSuite } from './harness/workload.js';

const MiB = 1024 * 1024;
const BUDGET = 128 * MiB;
const DOOMED = [1, 2];
const SIZE = { accounts: 50_000, orders: 1, compressible: true, full: true };

for (const major of testMajors('all')) {
  describe(`undo of wide rows in a small memory budget on PostgreSQL ${major}`, () => {
    const { fixtures } = endAfterSuite();

    test('200,000 wide rows deleted in 20 transactions come back exactly under --memory-limit 128MiB, within 3x the budget', async (t) => {
      const f = await fixture(major, WIDE_SCHEMA);
      fixtures.push(f);
      await fillWide(f.db, DOOMED, SIZE);
      await fillWide(f.db, [3], { ...SIZE, accounts: 4_000 });
      await fillWide(f.db, [4, 5], { ...SIZE, accounts: 1_000 });
      const init = await f.recall(['init']);
      assert.equal(init.code, 0, init.stderr);
      const before = await wideState(f.db);
      const { rows } = await f.db.query<{ bytes: string }>(
        `SELECT sum(length(t::text)) AS bytes FROM (SELECT a::text AS t FROM accounts a WHERE tenant_id = ANY($1)
                  UNION ALL SELECT o::text FROM orders o WHERE tenant_id = ANY($1)) AS r`,
        [DOOMED],
      );
      const inPlay = Number(rows[0]?.bytes);
      const xids = await deleteWide(f.db, DOOMED, SIZE, 20, 'cleanup-script');
      const captured = await f.recall(['capture', '--until-caught-up'], { RECALL_MEMORY_LIMIT: '256MiB' });
      assert.equal(captured.code, 0, captured.stderr);

      const undo = ['undo', '--actor', 'cleanup-script', '--memory-limit', '128MiB'];
      const plan = await runRecallMeasured([...undo, '--dry-run', '--json'], f.env);
      assert.equal(plan.code, 0, plan.stderr);
      const [shown] = jsonLines<{ plan: { selection: { xids: string[] }; totals: Record<string, number>; unresolved: number } }>(
        plan.stdout,
      );
      assert.deepStrictEqual(shown?.plan.selection.xids, xids.map(String));
      assert.deepStrictEqual(shown?.plan.totals, { insert: 200_002, update: 0, delete: 0, conflicts: 0 });
      assert.equal(shown?.plan.unresolved, 0);

      const applied = await runRecallMeasured([...undo, '--yes'], f.env);
      assert.equal(applied.code, 0, applied.stderr);
      assert.match(applied.stderr, /undo: wrote 200002 row\(s\) of 2 tenant\(s\)/);
      assert.deepStrictEqual(await wideState(f.db), before, 'every table is back as it was before the script');

      // A restore of a tenant too large to read in one statement under this budget, after a vandal's transaction.
      const point = new Date().toISOString();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await f.db.query(
        `UPDATE accounts SET notes = 'vandalised' WHERE tenant_id = 3; DELETE FROM orders WHERE tenant_id = 3 AND id % 2 = 0`,
      );
      assert.equal((await f.recall(['capture', '--until-caught-up'], { RECALL_MEMORY_LIMIT: '256MiB' })).code, 0);
      const restored = await runRecallMeasured(['restore', '--tenant', '3', '--to', point, '--yes', '--memory-limit', '128MiB'], f.env);
      assert.equal(restored.code, 0, restored.stderr);
      assert.match(restored.stderr, /restore: wrote 6000 row\(s\) of 1 tenant\(s\)/);
      assert.deepStrictEqual(await wideState(f.db), before, 'the restored tenant is back as it was, and nobody else changed');

      for (const [what, run] of [
        ['the plan', plan],
        ['the undo', applied],
        ['the restore', restored],
      ] as const) {
        const peak = `${Math.round(run.peakRssBytes / MiB)} MiB with ${Math.round(inPlay / MiB)} MiB of row text in play`;
        t.diagnostic(`${what}: peak RSS ${peak}`);
        assert.ok(run.peakRssBytes > 0, `${what}'s RSS was sampled`);
        assert.ok(run.peakRssBytes <= 3 * BUDGET, `${what} peaked at ${peak}, over 3x the budget`);
        assert.ok(run.peakRssBytes < inPlay, `${what} peaked at ${peak}`);
      }
    });
  });
}
