// Invariant 7, corruption is loud: a layer whose checksum fails, a manifest version
// missing from the chain, or a lost slot is reported with what it affects and
// never silently used.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixture, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

for (const major of testMajors('one')) {
  describe(`corruption is loud on PostgreSQL ${major}`, () => {
    let f: Fixture;
    before(async () => {
      f = await fixture(major, `CREATE TABLE tenants (id text PRIMARY KEY, n int); INSERT INTO tenants VALUES ('a', 1), ('b', 2);`);
      assert.equal((await f.recall(['init'])).code, 0);
      await f.db.query(`UPDATE tenants SET n = n + 1`);
      assert.equal((await f.recall(['capture', '--until-caught-up'])).code, 0);
      assert.equal((await f.recall(['show', '--tenant', 'a', '--at', 'now'])).code, 0);
    });
    after(async () => f?.close());

    test('a layer that fails its checksum is refused, named with its LSN range', async () => {
      const dir = join(f.vault, 'layers', 'delta');
      const [name] = readdirSync(dir);
      const path = join(dir, name!);
      const original = readFileSync(path);
      const damaged = Buffer.from(original);
      damaged[Math.floor(damaged.length / 2)]! ^= 0xff; // one flipped byte, same size: what a storage bug leaves
      writeFileSync(path, damaged);
      try {
        const shown = await f.recall(['show', '--tenant', 'a', '--at', 'now']);
        assert.equal(shown.code, 1, shown.stderr);
        assert.match(
          shown.stderr,
          new RegExp(
            `^recall: layer layers/delta/${name} fails its checksum \\(lsn:[0-9A-F]+/[0-9A-F]+–lsn:[0-9A-F]+/[0-9A-F]+, \\d+ rows\\)`,
            'm',
          ),
        );
        assert.equal(shown.stdout, '', 'nothing from the damaged vault is shown');
      } finally {
        writeFileSync(path, original);
      }
      assert.equal((await f.recall(['show', '--tenant', 'a', '--at', 'now'])).code, 0, 'the restored file is accepted again');
    });

    test('a manifest version missing from the chain is refused', async () => {
      const dir = join(f.vault, 'manifest');
      const versions = readdirSync(dir).sort();
      assert.ok(versions.length >= 2);
      const previous = join(dir, versions.at(-2)!);
      renameSync(previous, `${previous}.away`);
      try {
        const shown = await f.recall(['show', '--tenant', 'a', '--at', 'now']);
        assert.equal(shown.code, 1, shown.stderr);
        assert.match(shown.stderr, /manifest version \d+ is missing/);
      } finally {
        renameSync(`${previous}.away`, previous);
      }
    });

    test('a lost slot stops capture: the history has a gap and it says so', async () => {
      await f.db.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots`);
      const captured = await f.recall(['capture', '--until-caught-up']);
      assert.equal(captured.code, 1, captured.stderr);
      assert.match(captured.stderr, /replication slot "recall_postgres_[0-9a-f]{8}" is gone: changes since .+ cannot be captured/);
      assert.match(captured.stderr, /^hint: the history has a gap/m);
      const status = await f.recall(['status', '--json']);
      assert.equal(JSON.parse(status.stdout).slot.state, 'missing');
    });
  });
}
