// Capture that cannot ingest a transaction stops loudly instead of looping: here a
// file-size limit (ulimit -f, so the process gets a real EFBIG) stops the layer
// write. The exit names the transaction; status shows it until capture gets past
// it; nothing was acknowledged, so a capture without the limit takes it all. A
// memory budget below the minimum is bad input, refused before anything is read.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { fixture, runRecallWithFileLimit, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

for (const major of testMajors('one')) {
  describe(`capture that cannot proceed, on PostgreSQL ${major}`, () => {
    let f: Fixture | undefined;
    after(async () => f?.close());

    test('a file-size limit stops capture naming the transaction; status says so; nothing is lost', async () => {
      f = await fixture(major, `CREATE TABLE notes (id bigint PRIMARY KEY, body text)`);
      assert.equal((await f.recall(['init'])).code, 0);
      await f.db.query('BEGIN');
      await f.db.query(`INSERT INTO notes SELECT g, repeat(md5(g::text), 64) FROM generate_series(1, 20000) g`);
      const xid = (await f.db.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid')).rows[0]!.xid;
      await f.db.query('COMMIT');

      const stopped = await runRecallWithFileLimit(['capture', '--until-caught-up'], f.env, 256);
      assert.equal(stopped.code, 1, stopped.stderr);
      assert.match(stopped.stderr, new RegExp(`capture cannot ingest transaction ${xid} \\(commit lsn:[0-9A-F]+/[0-9A-F]+, \\d+ changes`));
      assert.match(stopped.stderr, /lift the file-size limit/);

      const status = await f.recall(['status']);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`capture +STOPPED at .*transaction ${xid}`));
      assert.match(status.stdout, /wal held +\d+ bytes/);
      const json = JSON.parse((await f.recall(['status', '--json'])).stdout) as { captureFailure: { lsn: string } | null };
      assert.notEqual(json.captureFailure, null);

      const resumed = await f.recall(['capture', '--until-caught-up']);
      assert.equal(resumed.code, 0, resumed.stderr);
      const after = await f.recall(['status']);
      assert.doesNotMatch(after.stdout, /STOPPED/);
      const duck = await (await DuckDBInstance.create(':memory:')).connect();
      const captured = await duck.runAndReadAll(
        `SELECT count(*) AS n FROM read_parquet('${f.vault}/layers/delta/*.parquet') WHERE op = 'insert'`,
      );
      assert.deepStrictEqual(captured.getRowObjectsJson()[0], { n: '20000' });
      duck.closeSync();
      assert.equal(JSON.parse((await f.recall(['status', '--json'])).stdout).captureFailure, null);
    });

    test('a memory budget below the minimum, or not a size, is bad input before anything is read', async () => {
      for (const [args, env, expected] of [
        [['capture', '--memory-limit', '64MB'], {}, /--memory-limit 64MB is below the minimum of 128 MiB/],
        [['status'], { RECALL_MEMORY_LIMIT: 'lots' }, /RECALL_MEMORY_LIMIT "lots" is not a size/],
      ] as const) {
        const run = await f!.recall(args, env);
        assert.equal(run.code, 2, run.stderr);
        assert.match(run.stderr, expected);
        assert.match(run.stderr, /hint: /);
      }
    });
  });
}
