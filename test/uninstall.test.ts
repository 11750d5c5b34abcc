// `recall uninstall` lists what Recall put into the source, changes nothing with
// --dry-run, and then removes it all, the slot first: the publication, a guard left
// behind, the DDL hook and the recall schema. The application keeps writing, the
// vault keeps its history, and what another vault of the database uses stays.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixture, jsonLines } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { endAfterSuite } from './harness/workload.js';

const SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY);
  CREATE TABLE items (tenant_id text NOT NULL REFERENCES tenants, id int NOT NULL, note text, PRIMARY KEY (tenant_id, id));
  INSERT INTO tenants VALUES ('a'), ('b');
  INSERT INTO items VALUES ('a', 1, 'first'), ('b', 1, 'other');`;

for (const major of testMajors('one')) {
  describe(`uninstall on PostgreSQL ${major}`, () => {
    const { fixtures } = endAfterSuite();

    test('lists, then removes everything Recall put into the source, slot first; the vault stays', async () => {
      const f = await fixture(major, SCHEMA);
      fixtures.push(f);
      const state = async (): Promise<Record<string, number>> =>
        (
          await f.db.query<Record<string, number>>(`SELECT
             (SELECT count(*)::int FROM pg_replication_slots) AS slots, (SELECT count(*)::int FROM pg_publication) AS publications,
             (SELECT count(*)::int FROM pg_trigger WHERE tgname = 'recall_guard') AS guards,
             (SELECT count(*)::int FROM pg_event_trigger WHERE evtname = 'recall_announce_layout') AS hooks,
             (SELECT count(*)::int FROM pg_namespace WHERE nspname = 'recall') AS schemas`)
        ).rows[0]!;
      assert.equal((await f.recall(['init'])).code, 0);
      // A restore puts the guard function in place; a guard a crashed restore left is simulated beside it.
      assert.equal((await f.recall(['restore', '--tenant', 'a', '--to', 'now', '--yes'])).code, 0);
      await f.db.query(
        `CREATE TRIGGER recall_guard BEFORE INSERT OR UPDATE OR DELETE ON items FOR EACH ROW EXECUTE FUNCTION recall.guard('0')`,
      );

      // A second vault of the same database shares the hook and the schema.
      const other = { RECALL_VAULT: join(mkdtempSync(join(tmpdir(), 'recall-vault-')), 'vault') };
      assert.equal((await f.recall(['init'], other)).code, 0);
      const before = await state();
      assert.deepStrictEqual(before, { slots: 2, publications: 2, guards: 1, hooks: 1, schemas: 1 });

      const listed = await f.recall(['uninstall', '--dry-run']);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(
        listed.stdout,
        /^would remove:\n {2}replication slot recall_postgres_[0-9a-f]{8} \(holds \d+ bytes of WAL on the source\)\n {2}publication recall_postgres_/m,
      );
      assert.match(listed.stdout, /guard trigger recall_guard on public\.items/);
      assert.deepStrictEqual(await state(), before, '--dry-run removes nothing');
      assert.equal((await f.recall(['uninstall'])).code, 2, 'no terminal and no --yes: exit 2');
      assert.deepStrictEqual(await state(), before);

      const vaultFiles = readdirSync(join(f.vault, 'manifest'), { recursive: true, encoding: 'utf8' });
      const first = await f.recall(['uninstall', '--yes']);
      assert.equal(first.code, 0, first.stderr);
      assert.match(
        first.stdout,
        /^kept: the DDL hook and the recall schema, which the slots recall_postgres_[0-9a-f]{8} of other vaults use$/m,
      );
      assert.deepStrictEqual(await state(), { slots: 1, publications: 1, guards: 0, hooks: 1, schemas: 1 });
      assert.deepStrictEqual(
        readdirSync(join(f.vault, 'manifest'), { recursive: true, encoding: 'utf8' }),
        vaultFiles,
        'the vault is untouched',
      );
      const shown = await f.recall(['show', '--tenant', 'a', '--at', 'now', '--table', 'items', '--json']);
      assert.equal(jsonLines(shown.stdout).length, 1, 'its history is still readable');

      const last = await f.recall(['uninstall', '--yes', '--json'], other);
      assert.equal(last.code, 0, last.stderr);
      assert.deepStrictEqual(await state(), { slots: 0, publications: 0, guards: 0, hooks: 0, schemas: 0 });
      const [result] = jsonLines<{ removed: string[]; kept: string[] }>(last.stdout);
      assert.deepStrictEqual(result?.kept, []);
      // The application writes on, with nothing of Recall left in its way.
      await f.db.query(`INSERT INTO items VALUES ('a', 2, 'after uninstall'); ALTER TABLE items ADD COLUMN extra text`);
      assert.equal((await f.recall(['uninstall', '--yes'], other)).stdout, 'nothing of Recall is in the source\n');
    });
  });
}
