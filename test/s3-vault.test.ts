// A vault on S3 as a user runs one: init, capture and show --at through the CLI against a
// real PostgreSQL and a real S3-speaking server on loopback (s3rver); and the S3 mistakes
// a user makes (no bucket, a missing bucket, wrong credentials, an unreachable endpoint),
// each one line with its fix and the documented exit code, changing nothing.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openStorage } from '../src/index.js';
import { fixture, jsonLines, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { startS3Server, TEST_BUCKET, type S3Server } from './harness/s3.js';

const [MAJOR] = testMajors('one');
if (MAJOR === undefined) throw new Error('no PostgreSQL major to test');

const SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY, plan text);
  INSERT INTO tenants VALUES ('a', 'free'), ('b', 'free');`;

const VAULT = `s3://${TEST_BUCKET}/prod/recall`;

describe(`an S3 vault on PostgreSQL ${MAJOR}`, () => {
  let server: S3Server;
  let f: Fixture;
  before(async () => {
    server = await startS3Server();
    f = await fixture(MAJOR, SCHEMA);
  });
  after(async () => {
    await f?.close();
    await server?.close();
  });
  const run = (args: readonly string[], extra: NodeJS.ProcessEnv = {}) => f.recall(args, { ...server.env, RECALL_VAULT: VAULT, ...extra });
  const objects = async (): Promise<string[]> => (await openStorage(`s3://${TEST_BUCKET}`, { ...process.env, ...server.env })).list('');
  const slots = async (): Promise<string[]> =>
    (await f.db.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots ORDER BY 1')).rows.map((r) => r.slot_name);

  test('bad S3 input: one line with its fix, exit 2 (1 for an unreachable store), no secret printed, nothing created', async () => {
    const before = { objects: await objects(), slots: await slots() };
    const cases = [
      { what: 'no bucket', extra: { RECALL_VAULT: 's3:///recall' }, code: 2, message: /names no valid bucket/ },
      { what: 'a missing bucket', extra: { RECALL_VAULT: 's3://no-such-bucket/recall' }, code: 2, message: /does not exist/ },
      // s3rver checks the key id (not SigV4 signatures): a wrong key id is its refusal.
      { what: 'wrong credentials', extra: { AWS_ACCESS_KEY_ID: 'WRONGKEY' }, code: 2, message: /refused the credentials/ },
      {
        what: 'an unreachable endpoint',
        extra: { AWS_ENDPOINT_URL: 'http://127.0.0.1:1', AWS_MAX_ATTEMPTS: '2' },
        code: 1,
        message: /cannot be reached/,
      },
    ];
    for (const bad of cases) {
      const result = await run(['init'], bad.extra);
      assert.equal(result.code, bad.code, `${bad.what}: ${result.stderr}`);
      const lines = result.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 2, `${bad.what}: one message and one hint\n${result.stderr}`);
      assert.match(lines[0] ?? '', /^recall: /);
      assert.match(lines[0] ?? '', bad.message, bad.what);
      assert.match(lines[1] ?? '', /^hint: /);
      assert.equal(result.stdout, '');
      assert.ok(!result.stderr.includes(server.secret), `${bad.what}: the secret key is printed`);
    }
    assert.deepEqual({ objects: await objects(), slots: await slots() }, before);
  });

  test('init, capture --until-caught-up and show --at, all on S3', async () => {
    const init = await run(['init']);
    assert.equal(init.code, 0, init.stderr);
    assert.ok(
      (await objects()).some((key) => key.startsWith('prod/recall/manifest/')),
      'the manifest is in the bucket',
    );

    await f.db.query(`UPDATE tenants SET plan = 'pro' WHERE id = 'a'`);
    const between = (await f.db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn;
    await f.db.query(`UPDATE tenants SET plan = 'enterprise' WHERE id = 'a'`);
    const capture = await run(['capture', '--until-caught-up']);
    assert.equal(capture.code, 0, capture.stderr);

    // A fresh cache: show reads its layers from the bucket, not from capture's copies.
    const plans = async (at: string): Promise<string[]> => {
      const show = await run(['show', '--tenant', 'a', '--at', at, '--json'], { RECALL_CACHE_DIR: `${server.env.RECALL_CACHE_DIR}-show` });
      assert.equal(show.code, 0, show.stderr);
      return jsonLines<{ row: { plan: string } }>(show.stdout).map((line) => line.row.plan);
    };
    assert.deepEqual(await plans(`lsn:${between}`), ['pro']);
    assert.deepEqual(await plans('now'), ['enterprise']);
  });
});
