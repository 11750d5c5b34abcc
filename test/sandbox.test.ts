// The sandbox every other test stands on: a cluster starts with logical decoding,
// survives a SIGKILL with its committed data, and checks passwords like a real server.
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startCluster } from '../src/sandbox/index.js';
import { testMajors } from './harness/majors.js';

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  // A server crash surfaces as an 'error' event; unhandled, it would crash the test runner.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

for (const major of testMajors('all')) {
  test(`sandbox cluster on PostgreSQL ${major}`, async (t) => {
    const cluster = await startCluster({ major });
    try {
      await t.test('starts with logical decoding on the requested major', async () => {
        const client = await connect(cluster.url());
        try {
          assert.equal((await client.query('SHOW wal_level')).rows[0].wal_level, 'logical');
          const version = Number((await client.query('SHOW server_version_num')).rows[0].server_version_num);
          assert.equal(Math.floor(version / 10000), major);
        } finally {
          await client.end();
        }
      });

      await t.test('accepts replication connections', async () => {
        const client = await connect(`${cluster.url()}?replication=database`);
        try {
          const { rows } = await client.query('IDENTIFY_SYSTEM');
          assert.match(String(rows[0].xlogpos), /^[0-9A-F]+\/[0-9A-F]+$/);
        } finally {
          await client.end();
        }
      });

      await t.test('keeps committed data across kill9 and start', async () => {
        const before = await connect(cluster.url());
        await before.query('CREATE TABLE survivor (id int PRIMARY KEY, note text)');
        await before.query("INSERT INTO survivor VALUES (1, 'committed before the crash')");
        // `before` stays connected through the crash: its backend must die too before start() can succeed.
        await cluster.kill9();
        await before.end().catch(() => undefined);

        await cluster.start();
        const after = await connect(cluster.url());
        try {
          const { rows } = await after.query('SELECT note FROM survivor WHERE id = 1');
          assert.deepEqual(rows, [{ note: 'committed before the crash' }]);
        } finally {
          await after.end();
        }
      });

      await t.test('refuses a wrong password with SQLSTATE 28P01', async () => {
        await assert.rejects(connect(cluster.url({ password: 'wrong' })), (error: { code?: string }) => {
          assert.equal(error.code, '28P01');
          return true;
        });
      });
    } finally {
      await cluster.destroy();
      await cluster.destroy();
    }
    assert.equal(existsSync(cluster.dataDir), false, `${cluster.dataDir} is left behind`);
  });
}
