// Restore where one tenant's rows reference another tenant's, on the oldest and
// newest supported majors: TPC-C's remote order lines (a composite key, tenant
// first, to a stock row of another warehouse) and a catalogue row another tenant
// owns (a single-column key). Such a reference is no conflict while the row it
// points at stays; it is one when that row is gone.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type pg from 'pg';
import type { Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { capturedFixture, endAfterSuite } from './harness/workload.js';

// Tenant t's third order line is supplied by tenant t % 3 + 1, from items 9-12 that
// only those remote lines use; the orders 1 and 2 of tenant 1 use tenant 2's catalogue.
const SCHEMA = `
  CREATE TABLE public.tenants (id int PRIMARY KEY, name text NOT NULL);
  CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL);
  CREATE TABLE public.catalogues (id int PRIMARY KEY, tenant_id int NOT NULL REFERENCES public.tenants, title text NOT NULL);
  CREATE INDEX ON public.catalogues (tenant_id);
  CREATE TABLE public.stock (tenant_id int NOT NULL REFERENCES public.tenants, item_id int NOT NULL REFERENCES public.items,
                             quantity int NOT NULL, PRIMARY KEY (tenant_id, item_id));
  CREATE TABLE public.orders (tenant_id int NOT NULL REFERENCES public.tenants, id int NOT NULL,
                              catalogue_id int NOT NULL REFERENCES public.catalogues, customer text NOT NULL, PRIMARY KEY (tenant_id, id));
  CREATE TABLE public.order_lines (tenant_id int NOT NULL, order_id int NOT NULL, number int NOT NULL,
                                   supply_tenant_id int NOT NULL, item_id int NOT NULL, quantity int NOT NULL,
                                   PRIMARY KEY (tenant_id, order_id, number),
                                   FOREIGN KEY (tenant_id, order_id) REFERENCES public.orders,
                                   FOREIGN KEY (supply_tenant_id, item_id) REFERENCES public.stock (tenant_id, item_id));
  INSERT INTO public.tenants SELECT t, 'Warehouse ' || t FROM generate_series(1, 3) t;
  INSERT INTO public.items SELECT i, 'item ' || i FROM generate_series(1, 12) i;
  INSERT INTO public.catalogues SELECT t, t, 'catalogue of ' || t FROM generate_series(1, 3) t;
  INSERT INTO public.stock SELECT t, i, 100 FROM generate_series(1, 3) t, generate_series(1, 12) i;
  INSERT INTO public.orders SELECT t, o, CASE WHEN t = 1 AND o <= 2 THEN 2 ELSE t END, 'customer ' || t || '/' || o
    FROM generate_series(1, 3) t, generate_series(1, 4) o;
  INSERT INTO public.order_lines
    SELECT t, o, n, CASE WHEN n = 3 THEN t % 3 + 1 ELSE t END, CASE WHEN n = 3 THEN 8 + o ELSE n + 2 * (o - 1) END, n * o
      FROM generate_series(1, 3) t, generate_series(1, 4) o, generate_series(1, 3) n;
`;

const TABLES: [string, string][] = [
  ['public.catalogues', 'tenant_id'],
  ['public.stock', 'tenant_id'],
  ['public.orders', 'tenant_id'],
  ['public.order_lines', 'tenant_id'],
];

/** The rows of the given tenants in every tenant-scoped table, as JSON text in order. */
async function state(db: pg.Client, tenants: number[]): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const [table, column] of TABLES) {
    const { rows } = await db.query<{ r: string }>(
      `SELECT row_to_json(t)::text AS r FROM ${table} t WHERE ${column} = ANY($1) ORDER BY 1`,
      [tenants],
    );
    out[table] = rows.map((row) => row.r);
  }
  return out;
}

/**
 * A point after everything so far has committed, before anything that follows. The
 * waits on both sides matter: a point has milliseconds, a commit time microseconds.
 */
async function pointNow(): Promise<string> {
  await new Promise((resolve) => setTimeout(resolve, 5));
  const point = new Date().toISOString();
  await new Promise((resolve) => setTimeout(resolve, 50));
  return point;
}

interface JsonPlan {
  readonly totals: { insert: number; update: number; delete: number; conflicts: number };
  readonly unresolved: number;
  readonly groups: { conflicts: { kind: string; table: string; tenant: string; key: string[]; detail: string }[] }[];
}

const planOf = (stdout: string): JsonPlan => (JSON.parse(stdout.split('\n')[0] ?? '') as { plan: JsonPlan }).plan;

for (const major of testMajors('all')) {
  describe(`restore with references across tenants, PostgreSQL ${major}`, () => {
    const started = endAfterSuite();
    let f: Fixture;

    before(async () => ({ f } = await capturedFixture(started, major, SCHEMA)));

    test("a tenant unchanged since the point, its rows referencing another tenant's: nothing to write, exit 0", async () => {
      const { rows } = await f.db.query<{ lines: number; orders: number }>(
        `SELECT (SELECT count(*)::int FROM public.order_lines WHERE tenant_id = 1 AND supply_tenant_id = 2) AS lines,
                (SELECT count(*)::int FROM public.orders o JOIN public.catalogues c ON c.id = o.catalogue_id
                  WHERE o.tenant_id = 1 AND c.tenant_id = 2) AS orders`,
      );
      assert.deepStrictEqual(rows, [{ lines: 4, orders: 2 }], "tenant 1's remote lines and orders from tenant 2's catalogue");
      const point = await pointNow();
      await f.db.query(`UPDATE public.stock SET quantity = quantity + 1 WHERE tenant_id IN (2, 3)`);
      const all = await state(f.db, [1, 2, 3]);

      const dry = await f.recall(['restore', '--tenant', '1', '--to', point, '--dry-run', '--json']);
      assert.equal(dry.code, 0, dry.stderr);
      const plan = planOf(dry.stdout);
      assert.deepStrictEqual([plan.totals, plan.unresolved], [{ insert: 0, update: 0, delete: 0, conflicts: 0 }, 0]);

      const restore = await f.recall(['restore', '--tenant', '1', '--to', point, '--yes']);
      assert.equal(restore.code, 0, restore.stderr);
      assert.match(restore.stderr, /nothing to write/);
      assert.deepStrictEqual(await state(f.db, [1, 2, 3]), all, 'nothing changed');
    });

    test("a tenant whose rows reference another tenant's rows comes back exactly; the others are untouched", async () => {
      const atPoint = await state(f.db, [1]);
      const point = await pointNow();
      await f.db.query(`DELETE FROM public.order_lines WHERE tenant_id = 1`);
      await f.db.query(`DELETE FROM public.orders WHERE tenant_id = 1`);
      await f.db.query(`UPDATE public.stock SET quantity = 0 WHERE tenant_id = 1`);
      // Tenant 2 sells from the stock tenant 1's remote lines point at: the rows change, and stay.
      await f.db.query(`UPDATE public.stock SET quantity = quantity - 5 WHERE tenant_id = 2`);
      await f.db.query(`UPDATE public.catalogues SET title = 'renamed by 2' WHERE id = 2`);
      const others = await state(f.db, [2, 3]);

      const dry = await f.recall(['restore', '--tenant', '1', '--to', point, '--dry-run', '--json']);
      assert.equal(dry.code, 0, dry.stderr);
      const plan = planOf(dry.stdout);
      assert.deepStrictEqual([plan.groups.flatMap((group) => group.conflicts), plan.unresolved], [[], 0], 'no conflict');
      assert.deepStrictEqual(plan.totals, { insert: 16, update: 12, delete: 0, conflicts: 0 });

      const restore = await f.recall(['restore', '--tenant', '1', '--to', point, '--yes']);
      assert.equal(restore.code, 0, restore.stderr);
      assert.deepStrictEqual(await state(f.db, [1]), atPoint, 'tenant 1 equals the point');
      assert.deepStrictEqual(await state(f.db, [2, 3]), others, 'tenants 2 and 3 are untouched');
    });

    test("a reference to another tenant's row deleted since the point is a foreign-key conflict: exit 3, nothing written", async () => {
      const point = await pointNow();
      // Tenant 2's remote line goes first, so tenant 3's stock row it pointed at can go too.
      await f.db.query(`DELETE FROM public.order_lines WHERE tenant_id = 2 AND order_id = 1 AND number = 3`);
      const { rowCount } = await f.db.query(`DELETE FROM public.stock WHERE tenant_id = 3 AND item_id = 9`);
      assert.equal(rowCount, 1);
      const all = await state(f.db, [1, 2, 3]);

      for (const args of [['--dry-run', '--json'], ['--yes']]) {
        const restore = await f.recall(['restore', '--tenant', '2', '--to', point, ...args]);
        assert.equal(restore.code, 3, restore.stderr);
        assert.match(restore.stderr, /unresolved conflict/);
        assert.deepStrictEqual(await state(f.db, [1, 2, 3]), all, `${args.join(' ')} wrote nothing`);
        if (args.includes('--json')) {
          const conflicts = planOf(restore.stdout).groups.flatMap((group) => group.conflicts);
          assert.deepStrictEqual(
            conflicts.map((c) => [c.kind, c.table, c.tenant, c.key, c.detail]),
            [
              [
                'foreign-key',
                'public.order_lines',
                '2',
                ['2', '1', '3'],
                'order_lines_supply_tenant_id_item_id_fkey: public.order_lines → public.stock: the referenced row would not exist',
              ],
            ],
          );
        }
      }
    });
  });
}
