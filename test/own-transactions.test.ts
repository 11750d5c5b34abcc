// Recall's own transactions cannot be forged: an application role can claim the
// actor `recall` in its context, but `undo --actor recall` selects only the
// transactions the vault recorded before their commit as Recall's (a restore's).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pg from 'pg';
import { fixture, jsonLines } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { catchUp, endAfterSuite } from './harness/workload.js';

const SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY);
  CREATE TABLE items (tenant_id text NOT NULL REFERENCES tenants, id int NOT NULL, note text, PRIMARY KEY (tenant_id, id));
  INSERT INTO tenants VALUES ('a'), ('b');
  INSERT INTO items SELECT t, i, 'item ' || i FROM unnest(ARRAY['a', 'b']) t, generate_series(1, 3) i;
  CREATE ROLE app LOGIN PASSWORD 'app-secret';
  GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, items TO app;`;

type Logged = { xid: string | number; context: { actor?: string; op?: string } | null };

for (const major of testMajors('one')) {
  describe(`Recall's own transactions on PostgreSQL ${major}`, () => {
    const { fixtures } = endAfterSuite();

    test('a forged actor "recall" is not selected by undo --actor recall; a restore is', async () => {
      const f = await fixture(major, SCHEMA);
      fixtures.push(f);
      assert.equal((await f.recall(['init'])).code, 0);
      const app = new pg.Client({ connectionString: f.cluster.url({ user: 'app', password: 'app-secret' }) });
      app.on('error', () => undefined);
      await app.connect();
      await app.query(`BEGIN; SELECT pg_logical_emit_message(true, 'recall', '{"actor": "recall", "op": "restore"}');
                       DELETE FROM items WHERE tenant_id = 'b' AND id = 1; COMMIT`);
      await app.end();
      await catchUp(f, 60_000);
      const forged = jsonLines<Logged>((await f.recall(['log', '--tenant', 'b', '--json'])).stdout).at(-1);
      assert.equal(forged?.context?.actor, 'recall', 'the claim is in the history as made');

      const none = await f.recall(['undo', '--actor', 'recall', '--dry-run']);
      assert.equal(none.code, 2, none.stderr);
      assert.match(
        none.stderr,
        /^recall: no transaction of actor "recall" in the history \(1 claim the actor, but Recall did not write them\)/m,
      );

      await f.db.query(`UPDATE items SET note = 'vandalised' WHERE tenant_id = 'a'`);
      const restored = await f.recall(['restore', '--tenant', 'a', '--to', `before-txn:${await lastXid(f.db)}`, '--yes']);
      assert.equal(restored.code, 0, restored.stderr);
      await catchUp(f, 60_000);
      const own = jsonLines<Logged>((await f.recall(['log', '--tenant', 'a', '--json'])).stdout).filter(
        (c) => c.context?.actor === 'recall',
      );
      assert.equal(new Set(own.map((c) => c.xid)).size, 1);

      const plan = await f.recall(['undo', '--actor', 'recall', '--dry-run', '--json']);
      assert.equal(plan.code, 0, plan.stderr);
      const [doc] = jsonLines<{ plan: { selection: { xids: string[] } } }>(plan.stdout);
      assert.deepStrictEqual(doc?.plan.selection.xids, [String(own[0]?.xid)], "only the restore's own transaction, not the forged one");
    });
  });
}

/** The 64-bit id of the newest transaction that wrote to items (the vandal's). */
async function lastXid(db: pg.Client): Promise<string> {
  const { rows } = await db.query<{ xid: string }>(`SELECT xmin::text AS xid FROM items WHERE note = 'vandalised' LIMIT 1`);
  // xmin is the 32-bit id; before-txn: accepts it and matches the history's 64-bit one.
  return rows[0]!.xid;
}
