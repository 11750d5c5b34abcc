// A vault on S3 as a user runs one: init, capture, show --at, a restore and an undo
// through the CLI against a real PostgreSQL and a real S3-speaking server on loopback
// (s3rver); kill -9 of capture under load; a second capture on the same vault, which
// waits for the slot and writes nothing; and the S3 mistakes a user makes (no bucket, a
// missing bucket, wrong credentials, an unreachable endpoint), each one line with its
// fix and the documented exit code, changing nothing.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openStorage } from '../src/index.js';
import { fixture, jsonLines, waitFor, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { startS3Server, TEST_BUCKET, type S3Server } from './harness/s3.js';
import { CaptureProcess, CRASH_SCHEMA, catchUp, checkVaultAgainstTruth, prng, seedSql, startWriter } from './harness/workload.js';

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

  let enterprise = '';
  let start = '';
  test('init, capture --until-caught-up and show --at, all on S3', async () => {
    const init = await run(['init']);
    assert.equal(init.code, 0, init.stderr);
    assert.ok(
      (await objects()).some((key) => key.startsWith('prod/recall/manifest/')),
      'the manifest is in the bucket',
    );

    start = (await f.db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn ?? '';
    await f.db.query(`UPDATE tenants SET plan = 'pro' WHERE id = 'a'`);
    const between = (await f.db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn;
    await f.db.query('BEGIN');
    await f.db.query(`UPDATE tenants SET plan = 'enterprise' WHERE id = 'a'`);
    enterprise = (await f.db.query<{ xid: string }>('SELECT txid_current()::text AS xid')).rows[0]?.xid ?? '';
    await f.db.query('COMMIT');
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

  test('a cache bound smaller than the layers one command reads: the command still reads them all', async () => {
    // Every copy is over the bound: each admission evicts the ones before it, which the same query is about to open.
    const tiny = { RECALL_CACHE_DIR: `${server.env.RECALL_CACHE_DIR}-tiny`, RECALL_CACHE_SIZE: '1B' };
    for (const at of ['now', 'now']) {
      const show = await run(['show', '--tenant', 'a', '--at', at, '--json'], tiny);
      assert.equal(show.code, 0, show.stderr);
      assert.deepEqual(
        jsonLines<{ row: { plan: string } }>(show.stdout).map((line) => line.row.plan),
        ['enterprise'],
      );
    }
  });

  const plan = async (): Promise<string | undefined> =>
    (await f.db.query<{ plan: string }>(`SELECT plan FROM tenants WHERE id = 'a'`)).rows[0]?.plan;

  test('an undo and a restore from S3', async () => {
    const undo = await run(['undo', '--txn', enterprise, '--yes']);
    assert.equal(undo.code, 0, undo.stderr);
    assert.equal(await plan(), 'pro', 'the undo put back what the transaction changed');
    const restore = await run(['restore', '--tenant', 'a', '--to', `lsn:${start}`, '--yes']);
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal(await plan(), 'free', 'the tenant as it was at the start');
    assert.equal((await f.db.query(`SELECT 1 FROM tenants WHERE id = 'b' AND plan = 'free'`)).rowCount, 1, 'tenant b untouched');
  });
});

const TENANTS = ['t1', 't2', 't3', 't4'];

describe(`capture on S3 under kill -9 and beside a second capture, on PostgreSQL ${MAJOR}`, () => {
  let server: S3Server;
  let f: Fixture;
  before(async () => {
    server = await startS3Server();
    const local = await fixture(MAJOR, `${CRASH_SCHEMA}; ${seedSql(TENANTS)}`);
    const env = { ...server.env, RECALL_VAULT: `s3://${TEST_BUCKET}/crash/recall` };
    // The harness's helpers run recall through the fixture: here, every run uses the S3 vault.
    f = {
      ...local,
      recall: (args, extra) => local.recall(args, { ...env, ...extra }),
      spawnRecall: (args, extra) => local.spawnRecall(args, { ...env, ...extra }),
    };
  });
  after(async () => {
    await f?.close();
    await server?.close();
  });

  test('kill -9 of capture at random moments under a writer: every change exactly once', async (t) => {
    const init = await f.recall(['init']);
    assert.equal(init.code, 0, init.stderr);
    const seed = Number(process.env.RECALL_TEST_SEED) || Math.floor(Math.random() * 2 ** 31);
    const random = prng(seed);
    const writer = startWriter(f.cluster.url(), TENANTS, { seed, pauseMs: 2 });
    let flushed = 0;
    try {
      for (let cycle = 0; cycle < 4; cycle++) {
        const capture = CaptureProcess.spawn(f, ['--flush-interval', '100ms']);
        try {
          await capture.waitForLines(/capture: streaming slot/, 1, 60_000);
          // Half the kills are timed from a first durable write, so some land between flushes, some inside one.
          if (cycle % 2 === 1) await capture.waitForLines(/^capture: \d+ changes through/, 1, 60_000);
          await sleep(100 + Math.floor(random() * 900));
          flushed += capture.count(/^capture: \d+ changes through/);
        } finally {
          await capture.kill9();
        }
      }
    } finally {
      const stats = await writer.stop();
      assert.deepEqual(stats.unexpected, []);
    }
    t.diagnostic(`seed ${seed}: ${flushed} flushes before the kills`);
    assert.ok(flushed > 0, `seed ${seed}: no capture flushed before it was killed`);
    await catchUp(f, 120_000);
    await checkVaultAgainstTruth(f, TENANTS);
    const verify = await f.recall(['verify', '--vault']);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });

  test('a second capture on the same S3 vault waits for the slot and writes nothing while the first runs', async () => {
    const first = CaptureProcess.spawn(f, ['--flush-interval', '100ms']);
    const second = CaptureProcess.spawn(f, ['--flush-interval', '100ms']);
    try {
      // Either may win the slot.
      const streaming = /capture: streaming slot/;
      await waitFor('one capture to stream', () => first.count(streaming) + second.count(streaming) > 0, 60_000);
      const [winner, waiting] = first.count(streaming) > 0 ? [first, second] : [second, first];
      await waiting.waitForLines(/still held by process/, 1, 60_000);
      const writer = startWriter(f.cluster.url(), TENANTS, { seed: 3, pauseMs: 2 });
      try {
        await writer.progress(100, 60_000);
        await winner.waitForLines(/^capture: \d+ changes through/, 1, 60_000);
      } finally {
        const stats = await writer.stop();
        assert.deepEqual(stats.unexpected, []);
      }
      assert.equal(waiting.count(/^capture: \d+ changes through/), 0, `the waiting capture wrote: ${waiting.describe()}`);
      assert.equal(waiting.count(/^compact: /), 0, `the waiting capture compacted: ${waiting.describe()}`);
      assert.ok(waiting.running, waiting.describe());
      waiting.child.kill('SIGINT');
      assert.deepEqual(await waiting.waitForExit(60_000), { code: 0, signal: null }, waiting.describe());
      winner.child.kill('SIGINT');
      assert.deepEqual(await winner.waitForExit(60_000), { code: 0, signal: null }, winner.describe());
    } finally {
      await first.kill9();
      await second.kill9();
    }
    await catchUp(f, 120_000);
    await checkVaultAgainstTruth(f, TENANTS);
  });
});
