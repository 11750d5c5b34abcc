// Compaction and gc on a real vault: merges change which files hold the history,
// never what it says. Every point reads the same before a merge, after it and after
// gc; the replaced files stay until gc, past the grace period; `recall compact` and
// `recall gc` beside a running capture lose nothing; and kill -9 of capture at random
// moments of its background merges loses and doubles nothing.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openVault } from '../src/index.js';
import { compact, compactionBacklog, FAN_IN, imagesDue, mayHoldTenant, openDuckDB } from '../src/vault/index.js';
import { fixture, jsonLines } from './harness/recall.js';
import { catchUpHere, liveState, stateAt as statesAt, writeRound as writeRoundOf } from './harness/rounds.js';
import { testMajors } from './harness/majors.js';
import {
  CaptureProcess,
  CRASH_SCHEMA,
  catchUp,
  checkVaultAgainstTruth,
  endAfterSuite,
  prng,
  seedSql,
  startWriter,
} from './harness/workload.js';

const TENANTS = ['acme', 'globex', 'initech', 'umbrella', 'hooli', 'stark'];
const stateAt = (f: Parameters<typeof statesAt>[0], lsn: string): Promise<string> => statesAt(f, TENANTS, lsn);
const writeRound = (f: Parameters<typeof writeRoundOf>[0], random: () => number, round: number): Promise<string> =>
  writeRoundOf(f, TENANTS, random, round);

for (const major of testMajors('all')) {
  describe(`compaction and gc on PostgreSQL ${major}`, () => {
    const { fixtures } = endAfterSuite();

    test('every point reads the same before a merge, after it, and after gc; replaced files wait for the grace period', async () => {
      const f = await fixture(major, `${CRASH_SCHEMA}; ${seedSql(TENANTS)}`);
      fixtures.push(f);
      const init = await f.recall(['init']);
      assert.equal(init.code, 0, init.stderr);
      const random = prng(7);
      // Enough rounds that the level-1 layers merge again, into buckets.
      const rounds = FAN_IN * FAN_IN + 8;
      const points: { lsn: string; live: string }[] = [];
      for (let round = 0; round < rounds; round++) {
        const lsn = await writeRound(f, random, round);
        await catchUpHere(f);
        if (round % 9 === 0 || round === rounds - 1) points.push({ lsn, live: await liveState(f, TENANTS) });
      }
      const before = await openVault(f.vault);
      const deltas = before.manifest.layers.filter((layer) => layer.kind === 'delta').length;
      assert.ok(deltas >= FAN_IN * FAN_IN, `a layer per round that changed rows: ${deltas}`);
      const read = async (): Promise<string[]> => Promise.all(points.map((point) => stateAt(f, point.lsn)));
      const beforeCompaction = await read();
      points.forEach((point, i) => {
        for (const tenant of TENANTS) {
          const shown = (JSON.parse(beforeCompaction[i] ?? '{}') as Record<string, unknown>)[tenant];
          const live = (JSON.parse(point.live) as Record<string, unknown>)[tenant];
          assert.deepEqual(shown, live, `point ${i}: tenant ${tenant} at lsn:${point.lsn} as the source had it`);
        }
      });
      const logBefore = await f.recall(['log', '--tenant', 'acme', '--json']);
      assert.equal(logBefore.code, 0, logBefore.stderr);

      // Without --until-done: the merges due now (level 0), not those their outputs make due.
      const once = await f.recall(['compact', '--json']);
      assert.equal(once.code, 0, once.stderr);
      const first = jsonLines<{ merges: number; backlog: { layers: number } }>(once.stdout)[0];
      assert.ok(first !== undefined && first.merges >= FAN_IN, once.stdout);
      assert.ok(first.backlog.layers > 0, 'the level-1 layers it wrote are due in their turn');
      const done = await f.recall(['compact', '--until-done']);
      assert.equal(done.code, 0, done.stderr);
      assert.match(done.stderr, /level 1 → 2/);

      const after = await openVault(f.vault);
      const levels = after.manifest.layers.map((layer) => layer.level ?? 0);
      assert.ok(levels.includes(2), `a level-2 layer exists: levels ${levels.join(',')}`);
      assert.ok(after.manifest.layers.length < before.manifest.layers.length / 4, `${after.manifest.layers.length} layers left`);
      assert.deepEqual(compactionBacklog(after.manifest), { layers: 0, bytes: 0 });
      const retired = new Set((after.manifest.retired ?? []).map((entry) => entry.path));
      const stillLive = new Set(after.manifest.layers.map((layer) => layer.path));
      assert.ok(
        before.manifest.layers.every((layer) => retired.has(layer.path) !== stillLive.has(layer.path)),
        `each layer is either still live or retired, not forgotten: ${retired.size} retired`,
      );
      for (const layer of after.manifest.layers.filter((entry) => entry.bucket !== undefined && entry.bucket.of > 1)) {
        // A bucketed layer holds only its bucket's tenants: a read of another tenant skips it.
        assert.ok(TENANTS.some((tenant) => mayHoldTenant(layer, tenant)));
        assert.ok(
          TENANTS.some((tenant) => !mayHoldTenant(layer, tenant)),
          `layer ${layer.path} would be read for every tenant`,
        );
      }
      assert.deepEqual(await read(), beforeCompaction, 'the same answers at every point after compaction');
      // Images of every bucket at the vault's end: reads after them start there, reads before them do not.
      const imaged = await f.recall(['compact', '--images', '--json']);
      assert.equal(imaged.code, 0, imaged.stderr);
      assert.ok((jsonLines<{ images: number }>(imaged.stdout)[0]?.images ?? 0) > 0, imaged.stdout);
      assert.deepEqual(await read(), beforeCompaction, 'the same answers at every point after images');
      const logAfter = await f.recall(['log', '--tenant', 'acme', '--json']);
      assert.equal(logAfter.stdout, logBefore.stdout, 'the same changes, in the same order');

      // gc: nothing is due within the grace period; past it, every replaced file goes and no live one.
      const dry = await f.recall(['gc', '--dry-run', '--json']);
      assert.equal(dry.code, 0, dry.stderr);
      const waiting = jsonLines<{ due: unknown[]; waiting: number }>(dry.stdout)[0];
      assert.ok(waiting !== undefined && waiting.due.length === 0 && waiting.waiting === retired.size, dry.stdout);
      const listed = await f.recall(['gc', '--dry-run', '--gc-grace', '0s']);
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(listed.stdout.trim().split('\n').length, waiting.waiting, 'one line per file it would delete');
      assert.match(listed.stdout, /^layers\/delta\/\S+\.parquet {2}\d+ bytes {2}replaced since \S+$/m);
      const gc = await f.recall(['gc', '--gc-grace', '0s']);
      assert.equal(gc.code, 0, gc.stderr);
      assert.match(gc.stderr, new RegExp(`deleted ${waiting.waiting} files`));
      assert.equal((await openVault(f.vault)).manifest.retired, undefined, 'the manifest no longer lists them');
      const verify = await f.recall(['verify', '--vault']);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      assert.deepEqual(await read(), beforeCompaction, 'the same answers after gc');
      const status = await f.recall(['status', '--json']);
      assert.equal(status.code, 0, status.stderr);
      const { vault: shown } = jsonLines<{
        vault: {
          levels: { level: number }[];
          compactionBacklog: { layers: number };
          retired: { files: number };
          lastGc: { deleted: number } | null;
        };
      }>(status.stdout)[0]!;
      assert.ok(
        shown.levels.some((level) => level.level === 2),
        status.stdout,
      );
      assert.equal(shown.compactionBacklog.layers, 0);
      assert.equal(shown.retired.files, 0);
      assert.equal(shown.lastGc?.deleted, waiting.waiting);
      const again = await f.recall(['gc', '--gc-grace', '0s', '--json']);
      assert.equal(jsonLines<{ due: unknown[] }>(again.stdout)[0]?.due.length, 0, 'nothing left for a second gc');

      // Capture goes on into the compacted vault.
      const lsn = await writeRound(f, random, rounds);
      await catchUp(f, 60_000);
      assert.equal(await stateAt(f, lsn), await liveState(f, TENANTS));
    });
  });
}

// Beside a running capture, and under kill -9: the newest major (the logic is the same on every one).
for (const major of testMajors('one')) {
  describe(`compaction beside capture and under kill -9 on PostgreSQL ${major}`, () => {
    const { fixtures, captures } = endAfterSuite();

    test('a delete or TRUNCATE of a row that is both a change and the bucket image written at its commit is captured once', async () => {
      const f = await fixture(major, `${CRASH_SCHEMA}; ${seedSql(TENANTS)}`);
      fixtures.push(f);
      const init = await f.recall(['init']);
      assert.equal(init.code, 0, init.stderr);
      // A one-row transaction as the vault's last commit: its change sits at (its LSN, 0), where the images go.
      const imageAfter = async (tenant: string): Promise<void> => {
        await f.db.query(`UPDATE items SET v = 999 WHERE tenant_id = $1 AND id = 3`, [tenant]);
        await catchUpHere(f);
        const imaged = await f.recall(['compact', '--images']);
        assert.equal(imaged.code, 0, imaged.stderr);
        const { manifest } = await openVault(f.vault);
        const images = manifest.layers.filter((layer) => layer.kind === 'image' && (layer.level ?? 0) > 0);
        assert.ok(
          images.some((layer) => layer.maxLsn === manifest.throughLsn),
          'bucket images at the last commit',
        );
      };
      const points: { lsn: string; live: string }[] = [];
      const mark = async (): Promise<void> => {
        const { rows } = await f.db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
        points.push({ lsn: rows[0]!.lsn, live: await liveState(f, TENANTS) });
      };
      await imageAfter('acme');
      await mark();
      await f.db.query(`DELETE FROM items WHERE tenant_id = 'acme' AND id = 3`);
      await catchUpHere(f);
      await imageAfter('globex');
      await mark();
      await f.db.query(`TRUNCATE items`);
      await catchUpHere(f);
      await mark();

      const logOf = async (tenant: string): Promise<{ op: string; key: string[]; row: Record<string, string> | null }[]> => {
        const log = await f.recall(['log', '--tenant', tenant, '--json']);
        assert.equal(log.code, 0, log.stderr);
        return jsonLines(log.stdout);
      };
      const acme = await logOf('acme');
      const ofKey3 = acme.filter((change) => change.key.at(-1) === '3').map((change) => [change.op, change.row?.v]);
      assert.deepEqual(
        ofKey3,
        [
          ['update', '999'],
          ['delete', '999'],
        ],
        JSON.stringify(acme),
      );
      assert.deepEqual(
        acme.filter((change) => change.op === 'truncate').map((change) => change.key.at(-1)),
        ['0', '1', '2', '4'],
      );
      const globex = await logOf('globex');
      assert.deepEqual(
        globex.filter((change) => change.op === 'truncate').map((change) => [change.key.at(-1), change.row?.v]),
        [
          ['0', '0'],
          ['1', '10'],
          ['2', '20'],
          ['3', '999'],
          ['4', '40'],
        ],
      );
      for (const point of points) assert.equal(await stateAt(f, point.lsn), point.live, `at lsn:${point.lsn}`);
    });

    test('two image steps of one bucket at one LSN (compact --images beside the compactor of capture): the second commits nothing', async () => {
      const f = await fixture(major, `${CRASH_SCHEMA}; ${seedSql(TENANTS)}`);
      fixtures.push(f);
      assert.equal((await f.recall(['init'])).code, 0);
      await f.db.query(`INSERT INTO items SELECT id, 100, 1 FROM tenants`);
      await catchUpHere(f);
      const vault = await openVault(f.vault);
      // Both computed from the same manifest, as two processes would.
      const step = imagesDue(vault.manifest, true);
      assert.ok(step !== undefined);
      const duck = await openDuckDB(await vault.storage.scratchDirectory());
      const first = await compact(vault, duck, step);
      const second = await compact(vault, duck, step);
      assert.deepEqual([first.committed, second.committed], [true, false]);
      const images = (await openVault(f.vault)).manifest.layers.filter((layer) => layer.kind === 'image' && (layer.level ?? 0) > 0);
      assert.ok(images.length > 0);
      assert.deepEqual(images, first.written, 'the first step’s images only, one per bucket that holds rows');
      const after = (await f.db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
      assert.equal(await stateAt(f, after), await liveState(f, TENANTS));
    });

    test('recall compact and recall gc beside a running capture and a writer lose nothing', async () => {
      const f = await fixture(major, `${CRASH_SCHEMA}; ${seedSql(TENANTS)}`);
      fixtures.push(f);
      const init = await f.recall(['init']);
      assert.equal(init.code, 0, init.stderr);
      const running = CaptureProcess.spawn(f, ['--flush-interval', '50ms']);
      captures.push(running);
      const writer = startWriter(f.cluster.url(), TENANTS, { seed: 11, pauseMs: 2 });
      try {
        for (let turn = 0; turn < 4; turn++) {
          await writer.progress(150, 60_000);
          const compacted = await f.recall(['compact', '--until-done']);
          assert.equal(compacted.code, 0, compacted.stderr);
          // A grace well beyond the moment between a layer's upload and its commit.
          const gc = await f.recall(['gc', '--gc-grace', '3s']);
          assert.equal(gc.code, 0, gc.stderr);
        }
      } finally {
        const stats = await writer.stop();
        assert.deepEqual(stats.unexpected, []);
      }
      await sleep(500);
      assert.ok(running.running, running.describe());
      running.child.kill('SIGINT');
      assert.deepEqual(await running.waitForExit(60_000), { code: 0, signal: null }, running.describe());
      await catchUp(f, 60_000);
      await checkVaultAgainstTruth(f, TENANTS);
      const verify = await f.recall(['verify', '--vault']);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    });

    test('kill -9 of capture at random moments of its background merges, under load: every change once, no live file missing', async (t) => {
      const f = await fixture(major, `${CRASH_SCHEMA}; ${seedSql(TENANTS)}`);
      fixtures.push(f);
      const init = await f.recall(['init']);
      assert.equal(init.code, 0, init.stderr);
      const seed = Number(process.env.RECALL_TEST_SEED) || Math.floor(Math.random() * 2 ** 31);
      const random = prng(seed);
      const writer = startWriter(f.cluster.url(), TENANTS, { seed, pauseMs: 2 });
      let killedDuringMerge = 0;
      let mergedBeforeKill = 0;
      try {
        for (let cycle = 0; cycle < 20; cycle++) {
          const running = CaptureProcess.spawn(f, ['--flush-interval', '20ms']);
          captures.push(running);
          await running.waitForLines(/^compact: merging/, 1, 60_000);
          await sleep(Math.floor(random() * 150));
          if (running.count(/^compact: level \d/) === 0) killedDuringMerge++;
          else mergedBeforeKill++;
          await running.kill9();
        }
      } finally {
        const stats = await writer.stop();
        assert.deepEqual(stats.unexpected, []);
      }
      t.diagnostic(`seed ${seed}: ${killedDuringMerge} kills inside a merge, ${mergedBeforeKill} after one committed`);
      assert.ok(killedDuringMerge > 0, `seed ${seed}: no kill fell inside a merge`);
      await catchUp(f, 60_000);
      await checkVaultAgainstTruth(f, TENANTS);
      const verify = await f.recall(['verify', '--vault']);
      assert.equal(verify.code, 0, `seed ${seed}: ${verify.stdout}${verify.stderr}`);
      const gc = await f.recall(['gc', '--gc-grace', '0s']);
      assert.equal(gc.code, 0, gc.stderr);
      await checkVaultAgainstTruth(f, TENANTS);
    });
  });
}
