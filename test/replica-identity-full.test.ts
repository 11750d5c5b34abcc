// A table under REPLICA IDENTITY FULL: the stream sends the whole row a DELETE removed,
// so capture stores that row as it is and looks nothing up in the history. Proven where
// a lookup could not work: the tenant's history was erased (`recall forget`) before the
// delete, so the vault holds no earlier version. A removed row with a large TOASTed value
// arrives whole too.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { fixture, jsonLines, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

const SCHEMA = `
  CREATE TABLE docs (tenant_id text NOT NULL, id int PRIMARY KEY, title text, body text);
  ALTER TABLE docs REPLICA IDENTITY FULL;
  CREATE TABLE notes (tenant_id text NOT NULL, id int PRIMARY KEY, body text);
  INSERT INTO docs VALUES ('a', 1, 'one', 'short'), ('a', 2, 'two', NULL), ('b', 3, 'three', 'kept');
  INSERT INTO notes VALUES ('a', 1, 'note');
  -- Incompressible text of 200 kB: stored out of line (TOAST).
  INSERT INTO docs SELECT 'a', 4, 'four', string_agg(md5(g::text), '') FROM generate_series(1, 6250) g;`;

for (const major of testMajors('one')) {
  describe(`REPLICA IDENTITY FULL on PostgreSQL ${major}`, () => {
    let f: Fixture | undefined;
    after(async () => f?.close());

    test('a delete carries its whole row, so it is captured complete with no earlier version in the vault', async () => {
      f = await fixture(major, SCHEMA);
      assert.equal((await f.recall(['init'])).code, 0);
      const forget = await f.recall(['forget', '--tenant', 'a', '--yes']);
      assert.equal(forget.code, 0, forget.stderr);
      const { rows } = await f.db.query<{ id: number; row: Record<string, string | null> }>(
        `SELECT id, jsonb_build_object('tenant_id', tenant_id, 'id', id::text, 'title', title, 'body', body) AS row FROM docs WHERE tenant_id = 'a' ORDER BY id`,
      );
      await f.db.query(`UPDATE docs SET title = 'one, edited' WHERE id = 1`);
      await f.db.query(`DELETE FROM docs WHERE tenant_id = 'a'`);
      await f.db.query(`DELETE FROM notes WHERE tenant_id = 'a'`);
      const capture = await f.recall(['capture', '--until-caught-up']);
      assert.equal(capture.code, 0, capture.stderr);
      // The default identity's delete (notes) has nothing to be completed from.
      assert.match(capture.stderr, /1 deleted rows have no earlier version in the vault/);

      const log = await f.recall(['log', '--tenant', 'a', '--json']);
      assert.equal(log.code, 0, log.stderr);
      // Summarised, so a failure does not print 200 kB: each value's length and first characters.
      const summary = (row: Record<string, string | null> | null): string =>
        JSON.stringify(
          Object.entries(row ?? {})
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([column, value]) => [column, value?.length, value?.slice(0, 12)]),
        );
      const deletes = jsonLines<{ op: string; table: string; key: string[]; row: Record<string, string | null> | null }>(log.stdout)
        .filter((change) => change.op === 'delete')
        .sort((a, b) => Number(a.key[0]) - Number(b.key[0]));
      const expected = rows.map((row) => (row.id === 1 ? { ...row.row, title: 'one, edited' } : row.row));
      assert.deepEqual(
        deletes.map((change) => [change.table, summary(change.row)]),
        expected.map((row) => ['public.docs', summary(row)]),
      );
      assert.equal(deletes.at(-1)?.row?.body, expected.at(-1)?.body, 'the TOASTed value arrived whole');
      assert.equal(deletes.at(-1)?.row?.body?.length, 200_000);
    });
  });
}
