// Completing key-only DELETEs (the default replica identity) from the history, where
// positions within one commit decide: a transaction that deletes a row and inserts it
// again must take the removed row from the vault, not from its own later insert.
// Positions are about LSN × 2^33; compared as DOUBLE, two of one commit are equal.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { fixture, jsonLines, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

const SCHEMA = `
  CREATE TABLE notes (tenant_id text NOT NULL, id int PRIMARY KEY, body text);
  INSERT INTO notes VALUES ('acme', 1, 'the old note'), ('acme', 2, 'another');`;

for (const major of testMajors('one')) {
  describe(`completing deletes on PostgreSQL ${major}`, () => {
    let f: Fixture | undefined;
    after(async () => f?.close());

    test('a row deleted and inserted again in one transaction: the delete carries the row from the vault', async () => {
      f = await fixture(major, SCHEMA);
      assert.equal((await f.recall(['init'])).code, 0);
      await f.db.query(`BEGIN; DELETE FROM notes WHERE id = 1; INSERT INTO notes VALUES ('acme', 1, 'the new note'); COMMIT`);
      const capture = await f.recall(['capture', '--until-caught-up']);
      assert.equal(capture.code, 0, capture.stderr);
      assert.doesNotMatch(capture.stderr, /no earlier version/);
      const log = await f.recall(['log', '--tenant', 'acme', '--json']);
      assert.equal(log.code, 0, log.stderr);
      const changes = jsonLines<{ op: string; key: string[]; row: Record<string, string> | null }>(log.stdout);
      assert.deepEqual(
        changes.map((change) => [change.op, change.key, change.row?.body]),
        [
          ['delete', ['1'], 'the old note'],
          ['insert', ['1'], 'the new note'],
        ],
      );
    });
  });
}
