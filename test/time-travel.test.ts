// Invariant 2 over time: a random multi-tenant workload, with the ground truth read
// from the database itself at several points, and `show --at` equal to it at every
// point, by time and by LSN, across ADD COLUMN … DEFAULT, DROP COLUMN and a tenant
// deleted outright.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openVault, parsePoint, show } from '../src/index.js';
import { fixture, jsonLines, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { prng } from '../src/demo/random.js';

const TENANTS = ['t1', 't2', 't3', 'Tenant Four', 'five'];

const SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY, name text NOT NULL);
  CREATE TABLE projects (tenant_id text NOT NULL REFERENCES tenants ON DELETE CASCADE, id int NOT NULL, name text, PRIMARY KEY (tenant_id, id));
  CREATE TABLE tasks (id bigserial PRIMARY KEY, tenant_id text NOT NULL REFERENCES tenants ON DELETE CASCADE, title text, done boolean NOT NULL DEFAULT false);
  CREATE TABLE plans (code text PRIMARY KEY, price numeric);
  INSERT INTO plans VALUES ('free', 0), ('pro', 9.99);
  INSERT INTO tenants SELECT id, 'Tenant ' || id FROM unnest(ARRAY['${TENANTS.join("','")}']) id;`;

type Rows = Record<string, Record<string, string | null>[]>;

/** Ground truth for one tenant: every tenant table, rows in key order, values as the server prints them. */
async function truthOf(f: Fixture, tenant: string): Promise<Rows> {
  const raw = { getTypeParser: () => (value: string) => value };
  const out: Rows = {};
  const queries: [string, string][] = [
    ['public.projects', 'SELECT * FROM projects WHERE tenant_id = $1 ORDER BY id'],
    ['public.tasks', 'SELECT * FROM tasks WHERE tenant_id = $1 ORDER BY id'],
    ['public.tenants', 'SELECT * FROM tenants WHERE id = $1'],
  ];
  for (const [table, sql] of queries) {
    const { rows } = await f.db.query<Record<string, string | null>>({ text: sql, values: [tenant], types: raw });
    if (rows.length > 0) out[table] = rows;
  }
  return out;
}

function group(rows: readonly { table: string; row: Record<string, string | null> }[]): Rows {
  const out: Rows = {};
  for (const { table, row } of rows) (out[table] ??= []).push(row);
  return out;
}

async function randomWork(f: Fixture, random: () => number, tenants: readonly string[], transactions: number): Promise<void> {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  for (let i = 0; i < transactions; i++) {
    await f.db.query('BEGIN');
    for (let j = 0, n = 1 + Math.floor(random() * 4); j < n; j++) {
      const tenant = pick(tenants);
      const roll = random();
      if (roll < 0.35) {
        await f.db.query(`INSERT INTO tasks (tenant_id, title) VALUES ($1, $2)`, [tenant, `task ${Math.floor(random() * 1e6)} 'quoted'`]);
      } else if (roll < 0.55) {
        await f.db.query(
          `UPDATE tasks SET done = NOT done, title = title || '+' WHERE id = (SELECT id FROM tasks WHERE tenant_id = $1 ORDER BY random() LIMIT 1)`,
          [tenant],
        );
      } else if (roll < 0.7) {
        await f.db.query(`DELETE FROM tasks WHERE id = (SELECT id FROM tasks WHERE tenant_id = $1 ORDER BY random() LIMIT 1)`, [tenant]);
      } else if (roll < 0.85) {
        await f.db.query(`INSERT INTO projects (tenant_id, id) SELECT $1, coalesce(max(id), 0) + 1 FROM projects WHERE tenant_id = $1`, [
          tenant,
        ]);
      } else {
        await f.db.query(
          `DELETE FROM projects WHERE (tenant_id, id) = (SELECT tenant_id, id FROM projects WHERE tenant_id = $1 ORDER BY random() LIMIT 1)`,
          [tenant],
        );
      }
    }
    await f.db.query('COMMIT');
  }
}

for (const major of testMajors('all')) {
  describe(`time travel on PostgreSQL ${major}`, () => {
    let f: Fixture;
    before(async () => {
      f = await fixture(major, SCHEMA);
    });
    after(async () => f?.close());

    test('show --at equals the ground truth at every recorded point', async () => {
      const random = prng(major * 7919);
      await randomWork(f, random, TENANTS, 20);
      assert.equal((await f.recall(['init'])).code, 0);
      const capture = f.spawnRecall(['capture']);
      const points: { time: string; lsn: string; truth: Map<string, Rows> }[] = [];
      const record = async (): Promise<void> => {
        const { rows } = await f.db.query<{ time: string; lsn: string }>(
          `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time, pg_current_wal_lsn()::text AS lsn`,
        );
        const truth = new Map<string, Rows>();
        for (const tenant of TENANTS) truth.set(tenant, await truthOf(f, tenant));
        points.push({ time: rows[0]!.time, lsn: rows[0]!.lsn, truth });
        await new Promise((r) => setTimeout(r, 5)); // the next commit gets a later timestamp than this point
      };
      await record(); // right after the image
      const live = [...TENANTS];
      for (let phase = 0; phase < 6; phase++) {
        if (phase === 2) await f.db.query('ALTER TABLE tasks ADD COLUMN priority int DEFAULT 3');
        if (phase === 3) await f.db.query('ALTER TABLE projects DROP COLUMN name');
        if (phase === 4) {
          await f.db.query(`DELETE FROM tenants WHERE id = 't2'`); // cascades to every row of t2
          live.splice(live.indexOf('t2'), 1);
        }
        await randomWork(f, random, live, 15);
        if (phase === 2)
          await f.db.query(`UPDATE tasks SET title = 'after add' WHERE id = (SELECT min(id) FROM tasks WHERE tenant_id = 't1')`);
        await record();
      }
      capture.kill('SIGINT');
      await new Promise((resolve) => capture.on('close', resolve));
      const caught = await f.recall(['capture', '--until-caught-up']);
      assert.equal(caught.code, 0, caught.stderr);

      const vault = await openVault(f.vault);
      for (const [index, point] of points.entries()) {
        for (const tenant of TENANTS) {
          const expected = point.truth.get(tenant) ?? {};
          const byTime = group(await show({ vault, tenant, at: parsePoint(point.time) }));
          assert.deepStrictEqual(byTime, expected, `tenant ${tenant} at point ${index} (${point.time})`);
          const byLsn = group(await show({ vault, tenant, at: parsePoint(`lsn:${point.lsn}`) }));
          assert.deepStrictEqual(byLsn, expected, `tenant ${tenant} at point ${index} (lsn:${point.lsn})`);
        }
      }
      // Through the CLI as a user would: the deleted tenant shows nothing (exit 0) after its deletion.
      const last = points.at(-1)!;
      const gone = await f.recall(['show', '--tenant', 't2', '--at', last.time, '--json']);
      assert.equal(gone.code, 0, gone.stderr);
      assert.equal(gone.stdout, '');
      const shown = await f.recall(['show', '--tenant', 't1', '--at', last.time, '--json']);
      assert.deepStrictEqual(group(jsonLines(shown.stdout)), last.truth.get('t1'));
    });
  });
}
