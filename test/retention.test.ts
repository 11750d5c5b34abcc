// Retention on a real vault: with vault.retention set, history before the horizon is
// folded into images there and its files retired, and the history starts at the
// horizon. Every point after it reads exactly as before (and after gc); points before
// it are refused naming it (exit 2); a tenant deleted before it is gone; and a running
// capture folds and collects garbage by itself.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatMicros, log as tenantLog, openVault, parseLsn } from '../src/index.js';
import { fixture, jsonLines, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { catchUpHere, liveState, stateAt, writeRound } from './harness/rounds.js';
import { CaptureProcess, CRASH_SCHEMA, endAfterSuite, prng, seedSql } from './harness/workload.js';

/** Tenants the rounds write to; `gone` is deleted whole early on, before the horizon. */
const WRITTEN = ['acme', 'globex', 'initech', 'umbrella'];
const GONE = 'stark';
const RETENTION_S = 8;

/** A recall.yml with the retention, beside the vault. */
function retentionConfig(f: Fixture): NodeJS.ProcessEnv {
  const path = join(dirname(f.vault), 'recall.yml');
  writeFileSync(path, `vault:\n  retention: ${RETENTION_S}s\n`);
  return { RECALL_CONFIG: path };
}

const lsnOf = (text: string): bigint => parseLsn(text) ?? -1n;

for (const major of testMajors('all')) {
  describe(`retention on PostgreSQL ${major}`, () => {
    const { fixtures, captures } = endAfterSuite();

    test('history before the horizon is folded into images: later points exact, earlier ones refused, a tenant gone before it unknown', async () => {
      const f = await fixture(major, `${CRASH_SCHEMA}; ${seedSql([...WRITTEN, GONE])}`);
      fixtures.push(f);
      const config = retentionConfig(f);
      const init = await f.recall(['init']);
      assert.equal(init.code, 0, init.stderr);
      const random = prng(23);
      const points: { lsn: string; live: string }[] = [];
      const started = Date.now();
      // Twice the retention of rounds, so that the horizon falls in the middle of them.
      for (let round = 0; Date.now() - started < 2 * RETENTION_S * 1000; round++) {
        if (round === 1) await f.db.query(`DELETE FROM items WHERE tenant_id = '${GONE}'; DELETE FROM tenants WHERE id = '${GONE}'`);
        const lsn = await writeRound(f, WRITTEN, random, round);
        await catchUpHere(f);
        if (round === 1) {
          const shown = await f.recall(['show', '--tenant', GONE, '--at', 'now']);
          assert.equal(shown.code, 0, `before the fold ${GONE} is known, with no rows: ${shown.stderr}`);
        }
        points.push({ lsn, live: await liveState(f, WRITTEN) });
        await sleep(300);
      }
      const opened = await openVault(f.vault);
      const before = opened.manifest;
      // In process, so that the fold comes right after the rounds (the horizon moves with the clock).
      const changes = await tenantLog({ vault: opened, tenant: 'acme' });

      const compacted = await f.recall(['compact', '--json'], config);
      assert.equal(compacted.code, 0, compacted.stderr);
      const summary = jsonLines<{ folds: number; images: number }>(compacted.stdout)[0];
      assert.ok(summary !== undefined && summary.folds === 1 && summary.images > 0, compacted.stdout);
      assert.match(compacted.stderr, /folded into \d+ images/);
      const folded = (await openVault(f.vault)).manifest;
      const horizon = folded.startLsn;
      assert.ok(horizon > before.startLsn, 'the history starts later');
      assert.equal(folded.retention?.keep, `${RETENTION_S}s`);
      assert.ok(folded.startTime <= BigInt(Date.now() - RETENTION_S * 1000) * 1000n, 'no commit newer than the retention is folded');
      assert.ok(
        folded.layers.every((layer) => layer.maxLsn > horizon || layer.minLsn === horizon),
        'no live layer lies wholly before the horizon',
      );
      const after = points.filter((point) => lsnOf(point.lsn) >= horizon);
      const earlier = points.filter((point) => lsnOf(point.lsn) < horizon);
      assert.ok(after.length >= 3 && earlier.length >= 3, `points on both sides: ${earlier.length} before, ${after.length} after`);

      const exact = async (when: string): Promise<void> => {
        for (const point of after) {
          assert.equal(await stateAt(f, WRITTEN, point.lsn), point.live, `${when}: lsn:${point.lsn} as the source had it`);
        }
      };
      await exact('after the fold');
      const refused = await f.recall(['show', '--tenant', 'acme', '--at', `lsn:${earlier[0]?.lsn ?? ''}`]);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /before the retention horizon/);
      assert.match(refused.stderr, new RegExp(`retention \\(${RETENTION_S}s\\)`));
      assert.match(refused.stderr, new RegExp(formatMicros(folded.startTime).replace(/[.]/g, '\\.')));
      const byTime = await f.recall(['show', '--tenant', 'acme', '--at', new Date(started).toISOString()]);
      assert.equal(byTime.code, 2, byTime.stderr);
      const logSince = await f.recall(['log', '--tenant', 'acme', '--since', `lsn:${earlier[0]?.lsn ?? ''}`]);
      assert.equal(logSince.code, 2, logSince.stderr);
      const log = await f.recall(['log', '--tenant', 'acme', '--json']);
      assert.equal(log.code, 0, log.stderr);
      const kept = jsonLines<{ lsn: string }>(log.stdout);
      assert.ok(kept.length > 0 && kept.every((change) => lsnOf(change.lsn) > horizon), 'the log starts after the horizon');
      assert.deepEqual(
        kept.map((change) => change.lsn),
        changes.filter((change) => lsnOf(change.lsn) > horizon).map((change) => change.lsn),
        'the same changes after the horizon as before the fold',
      );
      const old = changes.find((change) => lsnOf(change.lsn) < horizon);
      assert.ok(old !== undefined, 'a change before the horizon');
      const beforeTxn = await f.recall(['show', '--tenant', 'acme', '--at', `before-txn:${old.xid}`]);
      assert.equal(beforeTxn.code, 2, beforeTxn.stderr);
      assert.match(beforeTxn.stderr, /not in the history after the retention horizon/);
      const undo = await f.recall(['undo', '--txn', String(old.xid), '--dry-run']);
      assert.equal(undo.code, 2, undo.stderr);
      assert.match(undo.stderr, /after the retention horizon/);
      const gone = await f.recall(['show', '--tenant', GONE, '--at', 'now']);
      assert.equal(gone.code, 2, `${GONE}, deleted before the horizon, is unknown: ${gone.stdout}${gone.stderr}`);
      assert.match(gone.stderr, /never appears in the history/);

      const status = await f.recall(['status', '--json'], config);
      assert.equal(status.code, 0, status.stderr);
      const vault = jsonLines<{ vault: { oldestPoint: string; retention: { keep: string; horizon: string } | null } }>(status.stdout)[0]
        ?.vault;
      assert.equal(vault?.retention?.keep, `${RETENTION_S}s`, status.stdout);
      assert.equal(vault?.oldestPoint, formatMicros(folded.startTime));
      const text = await f.recall(['status'], config);
      assert.match(text.stdout, new RegExp(`retention ${RETENTION_S}s: history before \\S+ is folded into images`));

      // A capture running as a service collects the retired files (here at once) and folds on as the horizon moves.
      const running = CaptureProcess.spawn(f, ['--flush-interval', '50ms', '--gc-grace', '0s'], config);
      captures.push(running);
      await running.waitForLines(/^compact: gc deleted \d+ files/, 1, 60_000);
      for (let round = 0; round < 6; round++) {
        await writeRound(f, WRITTEN, random, 1000 + round);
        await sleep(200);
      }
      await running.waitForLines(/^compact: history before .* folded into/, 1, 60_000);
      running.child.kill('SIGINT');
      assert.deepEqual(await running.waitForExit(60_000), { code: 0, signal: null }, running.describe());
      const refolded = (await openVault(f.vault)).manifest;
      assert.ok(refolded.startLsn > horizon, 'the running capture moved the horizon on');
      const gc = await f.recall(['gc', '--gc-grace', '0s']);
      assert.equal(gc.code, 0, gc.stderr);
      const verify = await f.recall(['verify', '--vault']);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      for (const point of after.filter((one) => lsnOf(one.lsn) >= refolded.startLsn)) {
        assert.equal(await stateAt(f, WRITTEN, point.lsn), point.live, `after gc: lsn:${point.lsn}`);
      }
      const lsn = await writeRound(f, WRITTEN, random, 2000);
      await catchUpHere(f);
      assert.equal(await stateAt(f, WRITTEN, lsn), await liveState(f, WRITTEN), 'capture goes on into the folded vault');

      // A restore to a point after the horizon rests on the images there; one before it is refused.
      const target = { lsn, live: await liveState(f, WRITTEN) };
      await f.db.query(`UPDATE items SET v = v + 100 WHERE tenant_id = 'acme'; INSERT INTO items VALUES ('acme', 999, 1)`);
      await catchUpHere(f);
      const tooOld = await f.recall(['restore', '--tenant', 'acme', '--to', `lsn:${earlier[0]?.lsn ?? ''}`, '--yes']);
      assert.equal(tooOld.code, 2, tooOld.stderr);
      assert.match(tooOld.stderr, /before the retention horizon/);
      const restored = await f.recall(['restore', '--tenant', 'acme', '--to', `lsn:${target.lsn}`, '--yes']);
      assert.equal(restored.code, 0, restored.stderr);
      const wanted = (JSON.parse(target.live) as Record<string, unknown>).acme;
      assert.deepEqual((JSON.parse(await liveState(f, WRITTEN)) as Record<string, unknown>).acme, wanted, 'acme as it was at the point');
    });
  });
}
