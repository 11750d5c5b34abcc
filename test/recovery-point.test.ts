// The recovery point: a committed change becomes durable in the vault (its layer
// written and the manifest committed) by capture's flush timer, with no later write
// to push it out; each one is waited for with a deadline, since a wall-clock bound
// fails on a loaded machine (the delays are printed; the 1 s flush interval makes them
// one to two seconds on an idle one). Status reports the lag the same way.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openVault, parseLsn } from '../src/index.js';
import { fixture, jsonLines, waitFor, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

for (const major of testMajors('one')) {
  describe(`recovery point on PostgreSQL ${major}`, () => {
    let f: Fixture;
    before(async () => {
      f = await fixture(major, `CREATE TABLE tenants (id text PRIMARY KEY, n int); INSERT INTO tenants VALUES ('a', 0);`);
    });
    after(async () => f?.close());

    test('each committed change reaches the vault by itself, without a later write', async () => {
      assert.equal((await f.recall(['init'])).code, 0);
      const capture = f.spawnRecall(['capture']);
      try {
        const vault = await openVault(f.vault);
        const delays: number[] = [];
        for (let i = 1; i <= 5; i++) {
          const { rows } = await f.db.query<{ lsn: string }>(
            `WITH u AS (UPDATE tenants SET n = $1 WHERE id = 'a' RETURNING 1) SELECT pg_current_wal_lsn()::text AS lsn FROM u`,
            [i],
          );
          const committedAt = Date.now();
          const commitLsn = parseLsn(rows[0]!.lsn)!;
          // The LSN read inside the transaction is below its commit LSN.
          // Polls the vault's own record of what is durable, as a reader in another process would.
          await waitFor(`change ${i} in the vault`, async () => (await vault.refresh()).throughLsn >= commitLsn, 10_000);
          delays.push(Date.now() - committedAt);
        }
        console.log(`recovery point: delays ${delays.join(', ')} ms`);
        const status = await f.recall(['status', '--json']);
        assert.equal(status.code, 0, status.stderr);
        const [report] = jsonLines<{ slot: { state: string; lagBytes: number } }>(status.stdout);
        assert.equal(report?.slot.state, 'streaming');
      } finally {
        capture.kill('SIGTERM');
        await new Promise((resolve) => capture.on('close', resolve));
      }
      assert.equal(capture.exitCode, 0, 'SIGTERM stops capture cleanly');
      // A clean stop acknowledges what it made durable: the slot does not resend it next time.
      const vault = await openVault(f.vault);
      const { rows } = await f.db.query<{ lsn: string }>(`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots`);
      assert.ok(parseLsn(rows[0]!.lsn)! >= vault.manifest.throughLsn, `slot at ${rows[0]!.lsn}`);
    });
  });
}
