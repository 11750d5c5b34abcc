// Invariant 7, corruption is loud: a layer whose checksum fails, a manifest record
// missing from the chain, or a lost slot is reported with what it affects and
// never silently used. A read checks only the layers it uses, so a damaged layer of
// one tenant stops that tenant's reads, not another's; `recall verify --vault` finds it.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { recordPath } from '../src/vault/manifest-log.js';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixture, jsonLines, type Fixture } from './harness/recall.js';
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

    test("a damaged layer of one tenant: its reads fail naming it, another tenant's work, verify --vault finds it", async () => {
      const dir = join(f.vault, 'layers', 'delta');
      const before = new Set(readdirSync(dir));
      await f.db.query(`UPDATE tenants SET n = n + 1 WHERE id = 'a'`);
      assert.equal((await f.recall(['capture', '--until-caught-up'])).code, 0);
      const name = readdirSync(dir).find((file) => !before.has(file));
      assert.ok(name !== undefined, 'the update of tenant a is a layer of its own');
      const path = join(dir, name);
      const original = readFileSync(path);
      const damaged = Buffer.from(original);
      damaged[Math.floor(damaged.length / 2)]! ^= 0xff;
      writeFileSync(path, damaged);
      try {
        for (const read of [
          ['show', '--tenant', 'a', '--at', 'now'],
          ['log', '--tenant', 'a'],
        ]) {
          const failed = await f.recall(read);
          assert.equal(failed.code, 1, failed.stderr);
          assert.match(failed.stderr, new RegExp(`^recall: layer layers/delta/${name} fails its checksum`, 'm'));
        }
        const other = await f.recall(['show', '--tenant', 'b', '--at', 'now', '--json']);
        assert.equal(other.code, 0, other.stderr);
        assert.deepStrictEqual(
          jsonLines<{ row: unknown }>(other.stdout).map((r) => r.row),
          [{ id: 'b', n: '3' }],
        );
        assert.equal((await f.recall(['log', '--tenant', 'b'])).code, 0);
        const verified = await f.recall(['verify', '--vault', '--json']);
        assert.equal(verified.code, 3, verified.stderr);
        const check = JSON.parse(verified.stdout) as { faults: { file: string; problem: string }[] };
        assert.deepStrictEqual(
          check.faults.map((fault) => fault.file),
          [`layers/delta/${name}`],
        );
        assert.match(check.faults[0]!.problem, /^fails its checksum/);
        assert.match(verified.stderr, new RegExp(`^recall: the vault .+ has 1 fault, in layers/delta/${name}`, 'm'));
      } finally {
        writeFileSync(path, original);
      }
      const clean = await f.recall(['verify', '--vault']);
      assert.equal(clean.code, 0, clean.stderr);
      assert.match(clean.stdout, /^ok +no faults$/m);
    });

    test('a manifest record missing from the chain is refused', async () => {
      // init wrote record 1 and its checkpoint; the captures since, records 2 and 3.
      const middle = join(f.vault, recordPath(2));
      renameSync(middle, `${middle}.away`);
      try {
        const shown = await f.recall(['show', '--tenant', 'a', '--at', 'now']);
        assert.equal(shown.code, 1, shown.stderr);
        assert.match(shown.stderr, /manifest file manifest\/log\/000000000\/000000000002\.json in .+ is missing, though record \d+ exists/);
        const verified = await f.recall(['verify', '--vault']);
        assert.equal(verified.code, 3, verified.stderr);
        assert.match(verified.stdout, /^fault +manifest\/log\/000000000\/000000000002\.json: is missing/m);
      } finally {
        renameSync(`${middle}.away`, middle);
      }
    });

    test('a lost slot stops capture: the history has a gap and it says so', async () => {
      await f.db.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots`);
      const captured = await f.recall(['capture', '--until-caught-up']);
      assert.equal(captured.code, 1, captured.stderr);
      assert.match(
        captured.stderr,
        /^recall: the replication slot "recall_postgres_[0-9a-f]{8}" was dropped; the history stops at lsn:\S+ with a gap$/m,
      );
      assert.match(captured.stderr, /^hint: the changes in the gap cannot be captured any more; `recall init --resume`/m);
      const status = JSON.parse((await f.recall(['status', '--json'])).stdout) as {
        slot: { state: string };
        vault: { gaps: { cause: string; to: unknown }[] };
      };
      assert.equal(status.slot.state, 'missing');
      assert.deepStrictEqual(
        status.vault.gaps.map((gap) => [gap.cause, gap.to]),
        [['slot-dropped', null]],
        'recorded, open',
      );
    });
  });
}
