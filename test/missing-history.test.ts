// A copy of a vault taken before the last capture is missing history: its slot was
// acknowledged past anything the copy records. Every command that talks to the
// source says so; capture records the gap in the copy, and restore, undo and capture
// refuse (exit 1) instead of planning over it or calling the copy complete; reads
// stop at the gap's start. The vault capture writes to is unaffected.

import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fixture, jsonLines } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { endAfterSuite } from './harness/workload.js';

const SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY);
  CREATE TABLE items (tenant_id text NOT NULL REFERENCES tenants, id int NOT NULL, note text, PRIMARY KEY (tenant_id, id));
  INSERT INTO tenants VALUES ('t1');
  INSERT INTO items VALUES ('t1', 1, 'first');`;

for (const major of testMajors('one')) {
  describe(`a stale copy of a vault on PostgreSQL ${major}`, () => {
    const { fixtures } = endAfterSuite();

    test('is refused by restore, undo and capture, and named by status and show', async () => {
      const f = await fixture(major, SCHEMA);
      fixtures.push(f);
      assert.equal((await f.recall(['init'])).code, 0);
      assert.equal((await f.recall(['capture', '--until-caught-up'])).code, 0);
      const copy = `${f.vault}-copy`;
      cpSync(f.vault, copy, { recursive: true });
      await f.db.query(`INSERT INTO items VALUES ('t1', 2, 'committed after the copy')`);
      assert.equal((await f.recall(['capture', '--until-caught-up'])).code, 0);
      const stale = { RECALL_VAULT: copy };

      const status = await f.recall(['status', '--json'], stale);
      assert.equal(status.code, 0, status.stderr);
      const state = JSON.parse(status.stdout) as { missingHistory: { message: string } | null; slot: { lagBytes: number } };
      assert.match(
        state.missingHistory?.message ?? '',
        /^the vault is missing history: its slot "recall_postgres_[0-9a-f]{8}" was acknowledged up to lsn:/,
      );
      assert.ok(state.slot.lagBytes > 0, 'the copy is behind, not caught up');
      assert.match((await f.recall(['status'], stale)).stdout, /^history {4}MISSING: the vault is missing history/m);

      const capture = await f.recall(['capture', '--until-caught-up'], stale);
      assert.equal(capture.code, 1, capture.stderr);
      assert.match(capture.stderr, /^recall: the vault is missing history/m);
      assert.doesNotMatch(capture.stderr, /vault complete/);

      const init = await f.recall(['init'], stale);
      assert.equal(init.code, 1, init.stderr);
      assert.match(init.stderr, /^recall: the vault is missing history/m);

      const restore = await f.recall(['restore', '--tenant', 't1', '--to', 'now', '--dry-run'], stale);
      assert.equal(restore.code, 1, restore.stderr);
      assert.match(restore.stderr, /^recall: the vault is missing history/m);
      assert.doesNotMatch(restore.stdout, /delete/i, 'no plan over the gap');
      const undo = await f.recall(['undo', '--actor', 'anyone', '--dry-run'], stale);
      assert.equal(undo.code, 1, undo.stderr);
      assert.match(undo.stderr, /^recall: the vault is missing history/m);

      // Capture recorded the gap: the copy answers up to where it was complete, and no later.
      const gap = (
        JSON.parse((await f.recall(['status', '--json'], stale)).stdout) as { vault: { gaps: { cause: string; from: { lsn: string } }[] } }
      ).vault.gaps;
      assert.deepStrictEqual(
        gap.map((g) => g.cause),
        ['slot-ahead'],
      );
      const now = await f.recall(['show', '--tenant', 't1', '--at', 'now', '--table', 'items', '--json'], stale);
      assert.equal(now.code, 2, now.stderr);
      assert.match(now.stderr, /^recall: now is after the history stopped at a gap: the vault is missing history/m);
      const show = await f.recall(['show', '--tenant', 't1', '--at', `lsn:${gap[0]!.from.lsn}`, '--table', 'items', '--json'], stale);
      assert.equal(show.code, 0, show.stderr);
      assert.match(show.stderr, /^warning: the vault is missing history/m);
      assert.equal(jsonLines(show.stdout).length, 1, 'the copy answers with what it holds');

      // The vault capture writes to has no gap, and plans as before.
      const live = JSON.parse((await f.recall(['status', '--json'])).stdout) as { missingHistory: unknown };
      assert.equal(live.missingHistory, null);
      const liveRestore = await f.recall(['restore', '--tenant', 't1', '--to', 'now', '--dry-run']);
      assert.equal(liveRestore.code, 0, liveRestore.stderr);
      const liveShow = await f.recall(['show', '--tenant', 't1', '--at', 'now', '--table', 'items', '--json']);
      assert.doesNotMatch(liveShow.stderr, /missing history/);
      assert.equal(jsonLines(liveShow.stdout).length, 2);
    });
  });
}
