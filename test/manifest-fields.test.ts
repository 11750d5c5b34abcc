// The manifest reads bigints back by field, never by the look of a value: a tenant
// id of `42n` (a layer's min and max tenant) and a column added with the default
// `'7n'` (the schema's missing value) are text, and come back as text. Messages
// about the vault's contents say what is true (a global table has no tenant's rows),
// and a tenant id with a comma can be named.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openVault, parsePoint, show } from '../src/index.js';
import { fixture, jsonLines } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { catchUp, endAfterSuite } from './harness/workload.js';

const SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY);
  CREATE TABLE items (tenant_id text NOT NULL REFERENCES tenants, id int NOT NULL, note text, PRIMARY KEY (tenant_id, id));
  INSERT INTO tenants VALUES ('42n'), ('a,b');
  INSERT INTO items VALUES ('a,b', 1, 'a tenant id with a comma');
  INSERT INTO items SELECT '42n', i, 'item ' || i FROM generate_series(1, 5) i;
  CREATE TABLE plans (id int PRIMARY KEY, name text);
  INSERT INTO plans VALUES (1, 'free');`;

for (const major of testMajors('one')) {
  describe(`manifest fields on PostgreSQL ${major}`, () => {
    const { fixtures } = endAfterSuite();

    test('a tenant named 42n and a default of 7n survive the manifest', async () => {
      const f = await fixture(major, SCHEMA);
      fixtures.push(f);
      const init = await f.recall(['init']);
      assert.equal(init.code, 0, init.stderr);
      await f.db.query(`ALTER TABLE items ADD COLUMN code text NOT NULL DEFAULT '7n'`);
      await f.db.query(`INSERT INTO items VALUES ('42n', 6, 'item 6')`);
      await catchUp(f, 60_000);

      const vault = await openVault(f.vault);
      const layers = vault.manifest.layers.filter((layer) => layer.minTenant !== null);
      assert.ok(layers.length > 0);
      for (const layer of layers)
        assert.ok(typeof layer.minTenant === 'string' && typeof layer.maxTenant === 'string', 'tenants stay text');
      assert.ok(layers.some((layer) => layer.minTenant === '42n'));
      const code = vault.manifest.schemas.flatMap((schema) => schema.columns).find((column) => column.name === 'code');
      assert.equal(code?.missing, '7n');

      const rows = await show({ vault, tenant: '42n', at: parsePoint('now'), table: 'items' });
      assert.deepStrictEqual(
        rows.map((shown) => shown.row),
        [1, 2, 3, 4, 5, 6].map((i) => ({ tenant_id: '42n', id: String(i), note: `item ${i}`, code: '7n' })),
      );

      // Any tenant id can be named: --tenant repeats, and \, is a comma inside an id.
      const plan = await f.recall(['restore', '--tenant', 'a\\,b', '--tenant', '42n', '--to', 'now', '--dry-run', '--json']);
      assert.equal(plan.code, 0, plan.stderr);
      const [doc] = jsonLines<{ plan: { selection: { tenants: string[] } } }>(plan.stdout);
      assert.deepStrictEqual(doc?.plan.selection.tenants, ['a,b', '42n']);

      // A global table holds no tenant's rows: saying "(no rows)" would mislead.
      const global = await f.recall(['show', '--tenant', '42n', '--at', 'now', '--table', 'plans']);
      assert.equal(global.code, 2, global.stderr);
      assert.match(global.stderr, /^recall: table public\.plans is global \(it has no tenant column\), so no tenant's rows are in it/m);
    });
  });
}
