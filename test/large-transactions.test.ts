// Large transactions through capture's bounded memory (the default budget):
// one transaction that deletes 100,000 wide rows across five tables by cascade,
// tagged with a context. Every delete must be completed from the history (row and
// tenant) and carry the context: this is the shape of a mistaken purge that an undo
// must later reverse.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { recallContextSql } from '../src/capture/index.js';
import { fixture, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

const TABLES = ['accounts', 'contacts', 'deals', 'notes', 'events'];
const SCHEMA = `
  CREATE TABLE tenants (id int PRIMARY KEY);
  ${TABLES.map(
    (t, i) => `CREATE TABLE ${t} (id bigint PRIMARY KEY, tenant_id int NOT NULL REFERENCES tenants ON DELETE CASCADE, name text,
                                  amount numeric(12,2), tags text[], data jsonb, at timestamptz);
               INSERT INTO ${t} SELECT ${i} * 1000000 + g, 1 + g % 2, 'row ' || g, g * 1.25, ARRAY['a', 'b'], jsonb_build_object('n', g, 'pad', repeat('x', 60)), now()
                 FROM generate_series(1, 40000) g;`,
  ).join('\n')}`;

for (const major of testMajors('one')) {
  describe(`large transactions on PostgreSQL ${major}`, () => {
    let f: Fixture | undefined;
    after(async () => f?.close());

    test('a cascaded delete of 100,000 rows is captured complete, with its context, in bounded memory', async () => {
      f = await fixture(
        major,
        `${SCHEMA.replace('CREATE TABLE tenants (id int PRIMARY KEY);', 'CREATE TABLE tenants (id int PRIMARY KEY); INSERT INTO tenants VALUES (1), (2);')}`,
      );
      assert.equal((await f.recall(['init'])).code, 0);
      await f.db.query('BEGIN');
      await f.db.query(...recallContextSql({ actor: 'purge' }));
      await f.db.query('DELETE FROM tenants WHERE id = 1');
      await f.db.query('COMMIT');
      const capture = await f.recall(['capture', '--until-caught-up']);
      assert.equal(capture.code, 0, capture.stderr);

      const duck = await (await DuckDBInstance.create(':memory:')).connect();
      const reader = await duck.runAndReadAll(
        `SELECT count(*) AS n, count(*) FILTER (WHERE "row" IS NOT NULL AND tenant = '1') AS complete,
                count(*) FILTER (WHERE json_extract_string(context, '$.actor') = 'purge') AS tagged
           FROM read_parquet('${f.vault}/layers/delta/*.parquet') WHERE op = 'delete'`,
      );
      assert.deepStrictEqual(reader.getRowObjectsJson()[0], { n: '100001', complete: '100001', tagged: '100001' });
    });
  });
}
