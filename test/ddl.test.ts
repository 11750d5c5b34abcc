// DDL is not decoded, yet the history must follow it exactly. A layout change starts
// at its ALTER TABLE, not at the table's next change (the DDL hook announces it in the
// ALTER's transaction): rows untouched since an ADD COLUMN … DEFAULT hold the default
// from that point on. A table rewrite changes rows without sending a change: ALTER
// COLUMN … TYPE converts every value (numeric(10,2) → numeric(10,3) turns '1.50' into
// '1.500'), and ADD COLUMN with a volatile default computes one value per row; capture
// notices the new layout, images the table again, and from then on shows the rows as
// they are, while points before still show the rows as they were.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pg from 'pg';
import { Vault, openVault, parsePoint, show } from '../src/index.js';
import { fixture, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { catchUp, endAfterSuite } from './harness/workload.js';

const SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY);
  CREATE TABLE items (id int PRIMARY KEY, tenant_id text NOT NULL REFERENCES tenants, price numeric(10,2), note text);
  INSERT INTO tenants VALUES ('a'), ('b');
  INSERT INTO items SELECT i, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, i + 0.5, 'item ' || i FROM generate_series(1, 40) i;`;

type Rows = Record<string, string | null>[];

/** The live items of a tenant, values as the server prints them, in key order. */
async function liveItems(f: Fixture, tenant: string): Promise<Rows> {
  const { rows } = await f.db.query<Record<string, string | null>>({
    text: 'SELECT * FROM items WHERE tenant_id = $1 ORDER BY id',
    values: [tenant],
    types: { getTypeParser: () => (value: string) => value },
  });
  return rows;
}

async function shownItems(vault: Vault, tenant: string, at: string): Promise<Rows> {
  const rows = await show({ vault, tenant, at: parsePoint(at), table: 'items' });
  return rows.map((shown) => ({ ...shown.row }));
}

/** The current WAL position, as a point: every commit before it is part of the state there. */
async function here(f: Fixture): Promise<string> {
  const { rows } = await f.db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return `lsn:${rows[0]?.lsn}`;
}

for (const major of testMajors('one')) {
  describe(`DDL on PostgreSQL ${major}`, () => {
    const { fixtures } = endAfterSuite();

    test('ADD COLUMN … DEFAULT and DROP COLUMN take effect at their ALTER TABLE, with no later change to the table', async () => {
      const f = await fixture(major, SCHEMA);
      fixtures.push(f);
      const init = await f.recall(['init', '--json']);
      assert.equal(init.code, 0, init.stderr);
      assert.match(init.stdout, /"ddlHook":true/);
      await catchUp(f, 60_000);
      const before = await here(f);
      const beforeRows = await liveItems(f, 'a');

      // Run by the application's own role, not a superuser: the hook still announces the layout.
      await f.db.query(`CREATE ROLE app LOGIN PASSWORD 'app-secret'; ALTER TABLE items OWNER TO app`);
      const app = new pg.Client({ connectionString: f.cluster.url({ user: 'app', password: 'app-secret' }) });
      await app.connect();
      await app.query(`ALTER TABLE items ADD COLUMN status text NOT NULL DEFAULT 'open'`);
      await app.end();
      await catchUp(f, 60_000);
      const added = await here(f);
      const addedRows = await liveItems(f, 'a');
      assert.ok(addedRows.every((row) => row.status === 'open'));

      await f.db.query('ALTER TABLE items DROP COLUMN note');
      await catchUp(f, 60_000);
      const dropped = await here(f);
      const droppedRows = await liveItems(f, 'a');

      const vault = await openVault(f.vault);
      assert.deepStrictEqual(await shownItems(vault, 'a', before), beforeRows, 'before the ALTERs');
      assert.deepStrictEqual(await shownItems(vault, 'a', added), addedRows, 'after ADD COLUMN: every row holds the default');
      assert.deepStrictEqual(await shownItems(vault, 'a', dropped), droppedRows, 'after DROP COLUMN: the column is gone');
    });

    test('a type change and a volatile default are imaged again; earlier points keep the old rows', async () => {
      const f = await fixture(major, SCHEMA);
      fixtures.push(f);
      assert.equal((await f.recall(['init'])).code, 0);
      await f.db.query(`UPDATE items SET note = 'before' WHERE id = 1`);
      await catchUp(f, 60_000);
      const before = await here(f);
      const beforeRows = { a: await liveItems(f, 'a'), b: await liveItems(f, 'b') };

      await f.db.query('ALTER TABLE items ALTER COLUMN price TYPE numeric(10,3)');
      await f.db.query('ALTER TABLE items ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid()');
      // pgoutput sends the new layout only with the table's next change.
      await f.db.query(`UPDATE items SET note = 'after' WHERE id = 2`);
      const caught = await catchUp(f, 60_000);
      assert.ok(
        caught.lines.some((line) => /public\.items was rewritten; imaged again \(40 rows\)/.test(line)),
        `capture should image items again:\n${caught.lines.join('\n')}`,
      );
      await f.db.query(`UPDATE items SET price = 99.125 WHERE id = 4`);
      await catchUp(f, 60_000);

      const vault = await openVault(f.vault);
      for (const tenant of ['a', 'b'] as const) {
        const live = await liveItems(f, tenant);
        assert.ok(live.every((row) => /^\d+\.\d{3}$/.test(row.price ?? '') && row.token !== null));
        assert.deepStrictEqual(await shownItems(vault, tenant, await here(f)), live, `tenant ${tenant} now`);
        assert.deepStrictEqual(await shownItems(vault, tenant, before), beforeRows[tenant], `tenant ${tenant} before the rewrite`);
      }
      const log = await f.recall(['log', '--tenant', 'a', '--table', 'items', '--json']);
      assert.equal(log.code, 0, log.stderr);
      assert.ok(!log.stdout.includes('"op":"image"'), 'an image is not a change: log leaves it out');
    });
  });
}
