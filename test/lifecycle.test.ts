// The life of a vault: init is idempotent (a second run changes nothing), capture
// resumes where the vault ends, and a server older than PostgreSQL 14 is refused
// before anything is created.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fixture, jsonLines, type Fixture } from './harness/recall.js';
import { testMajors, unsupportedMajors } from './harness/majors.js';

const SCHEMA = `CREATE TABLE tenants (id text PRIMARY KEY, plan text); INSERT INTO tenants VALUES ('a', 'free');`;

const manifests = (vault: string): string[] => {
  try {
    return readdirSync(join(vault, 'manifest'), { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.json'));
  } catch {
    return [];
  }
};

const slots = async (f: Fixture): Promise<string[]> =>
  (await f.db.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots ORDER BY 1')).rows.map((r) => r.slot_name);

for (const major of testMajors('one')) {
  describe(`vault lifecycle on PostgreSQL ${major}`, () => {
    const fixtures: Fixture[] = [];
    after(async () => Promise.all(fixtures.map((f) => f.close())));

    test('a second init changes nothing; capture resumes where the vault ends', async () => {
      const f = await fixture(major, SCHEMA);
      fixtures.push(f);
      const first = await f.recall(['init', '--json']);
      assert.equal(first.code, 0, first.stderr);
      const [created] = jsonLines<{ created: boolean; imageRows: number }>(first.stdout);
      assert.deepStrictEqual([created?.created, created?.imageRows], [true, 1]);
      const before = { manifests: manifests(f.vault), slots: await slots(f) };

      const again = await f.recall(['init', '--json']);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(jsonLines<{ created: boolean }>(again.stdout)[0]?.created, false);
      assert.deepStrictEqual({ manifests: manifests(f.vault), slots: await slots(f) }, before);

      await f.db.query(`UPDATE tenants SET plan = 'pro'`);
      assert.equal((await f.recall(['capture', '--until-caught-up'])).code, 0);
      await f.db.query(`UPDATE tenants SET plan = 'enterprise'`);
      assert.equal((await f.recall(['capture', '--until-caught-up'])).code, 0);
      const changes = jsonLines<{ row: { plan: string } }>((await f.recall(['log', '--tenant', 'a', '--json'])).stdout);
      assert.deepStrictEqual(
        changes.map((c) => c.row.plan),
        ['pro', 'enterprise'],
      );
    });
  });
}

for (const major of unsupportedMajors()) {
  describe(`PostgreSQL ${major} is refused`, () => {
    let f: Fixture | undefined;
    after(async () => f?.close());

    test('init exits 2 naming the version, and creates nothing', async () => {
      f = await fixture(major, SCHEMA);
      const result = await f.recall(['init']);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`^recall: the source runs PostgreSQL ${major}; Recall needs PostgreSQL 14 or newer`, 'm'));
      assert.match(result.stderr, /^hint: /m);
      assert.deepStrictEqual(await slots(f), []);
      assert.equal((await f.db.query('SELECT count(*)::int AS n FROM pg_publication')).rows[0].n, 0);
      assert.deepStrictEqual(manifests(f.vault), []);
    });
  });
}
