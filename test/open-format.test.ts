// The vault is an open format: the DuckDB query README.md gives for one tenant's
// history ("Read the vault with other engines") runs, exactly as written there but
// for the vault's path and the tenant, against a real vault, and answers right.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { catchUp, endAfterSuite } from './harness/workload.js';

const SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY);
  CREATE TABLE items (tenant_id text NOT NULL REFERENCES tenants, id int NOT NULL, note text, PRIMARY KEY (tenant_id, id));
  INSERT INTO tenants VALUES ('acme'), ('globex');
  INSERT INTO items VALUES ('acme', 1, 'first'), ('acme', 2, 'second'), ('globex', 1, 'theirs');`;

/** The SQL block of README's section on reading the vault with other engines. */
function readmeQuery(): string {
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
  const section = readme.split('\n## Read the vault with other engines\n')[1]?.split('\n## ')[0];
  const query = section?.match(/```sql\n([\s\S]*?)```/)?.[1];
  assert.ok(query !== undefined, 'README.md has a "Read the vault with other engines" section with a sql block');
  return query;
}

for (const major of testMajors('one')) {
  describe(`the vault read with DuckDB alone on PostgreSQL ${major}`, () => {
    const { fixtures } = endAfterSuite();

    test("README's query gives one tenant's history, oldest first", async () => {
      const f = await fixture(major, SCHEMA);
      fixtures.push(f);
      const init = await f.recall(['init']);
      assert.equal(init.code, 0, init.stderr);
      await f.db.query(`INSERT INTO items VALUES ('acme', 3, 'third'), ('globex', 2, 'theirs too')`);
      await f.db.query(`UPDATE items SET note = 'first, edited' WHERE tenant_id = 'acme' AND id = 1`);
      await f.db.query(`DELETE FROM items WHERE tenant_id = 'acme' AND id = 2`);
      await catchUp(f, 60_000);

      const query = readmeQuery();
      assert.match(query, /'\/path\/to\/vault\/layers\/\*\/\*\.parquet'/);
      const sql = query.replace('/path/to/vault', f.vault);
      const instance = await DuckDBInstance.create(':memory:');
      const duck = await instance.connect();
      try {
        const rows = (await duck.runAndReadAll(sql)).getRowObjectsJS();
        const changes = rows.map((row) => ({
          op: row.op,
          table: row.table,
          key: JSON.parse(String(row.key)) as unknown,
          row: row.row === null ? null : (JSON.parse(String(row.row)) as unknown),
        }));
        assert.deepStrictEqual(changes, [
          { op: 'image', table: 'public.items', key: ['acme', '1'], row: { tenant_id: 'acme', id: '1', note: 'first' } },
          { op: 'image', table: 'public.items', key: ['acme', '2'], row: { tenant_id: 'acme', id: '2', note: 'second' } },
          { op: 'image', table: 'public.tenants', key: ['acme'], row: { id: 'acme' } },
          { op: 'insert', table: 'public.items', key: ['acme', '3'], row: { tenant_id: 'acme', id: '3', note: 'third' } },
          { op: 'update', table: 'public.items', key: ['acme', '1'], row: { tenant_id: 'acme', id: '1', note: 'first, edited' } },
          { op: 'delete', table: 'public.items', key: ['acme', '2'], row: { tenant_id: 'acme', id: '2', note: 'second' } },
        ]);
      } finally {
        duck.closeSync();
        instance.closeSync();
      }
    });
  });
}
