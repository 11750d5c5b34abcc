// Invariant 1 under faults: capture killed with SIGKILL again and again, PostgreSQL
// crashed and restarted under capture, and a clean stop on SIGINT. A writer keeps
// committing throughout, recording every change in a shadow table in the same
// transaction; at the end the vault must hold each of those changes exactly once
// and reconstruct each tenant's live rows exactly.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { openVault } from '../src/index.js';
import { fixture, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import {
  CaptureProcess,
  CRASH_SCHEMA,
  catchUp,
  checkVaultAgainstTruth,
  prng,
  randomBetween,
  seedSql,
  startWriter,
  type Writer,
} from './harness/workload.js';

const TENANTS = ['acme', 'globex', 'initech', 'umbrella'];
const KILL_CYCLES = 24;
const STREAMING = /^capture: streaming slot/;
const FLUSHED = /^capture: \d+ changes through/;
const CATCH_UP_DEADLINE_MS = 60_000;

/** A seed per run, printed, so a failing workload can be replayed with RECALL_TEST_SEED. */
function seed(): number {
  const given = Number(process.env.RECALL_TEST_SEED);
  return Number.isInteger(given) && given > 0 ? given : Math.floor(Math.random() * 2 ** 31);
}

/** The manifest's records, one per commit, read as files. */
function manifestRecords(f: Fixture): { addLayers: { path: string }[] }[] {
  const log = join(f.vault, 'manifest', 'log');
  return readdirSync(log).flatMap((directory) =>
    readdirSync(join(log, directory))
      .filter((name) => /^\d{12}\.json$/.test(name))
      .map((name) => JSON.parse(readFileSync(join(log, directory, name), 'utf8')) as { addLayers: { path: string }[] }),
  );
}

function manifestVersions(f: Fixture): number {
  return manifestRecords(f).length;
}

/** The vault's `throughLsn` as a command opening it finds it. */
async function vaultThroughLsn(f: Fixture): Promise<bigint> {
  const vault = await openVault(f.vault);
  assert.ok(vault.initialized, 'the vault has no manifest');
  return vault.manifest.throughLsn;
}

function parseLsn(text: string): bigint {
  const [high = '0', low = '0'] = text.split('/');
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

/** The slot's confirmed position as the server has it now. */
async function slotConfirmedLsn(f: Fixture): Promise<bigint> {
  const db = new pg.Client({ connectionString: f.cluster.url() });
  db.on('error', () => undefined);
  await db.connect();
  try {
    const { rows } = await db.query<{ lsn: string }>(`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots`);
    return parseLsn(rows[0]?.lsn ?? '0/0');
  } finally {
    await db.end().catch(() => undefined);
  }
}

/** Layer files that no manifest version lists: left by a capture killed between writing a layer and committing it. */
function orphanLayers(f: Fixture): number {
  const listed = new Set(manifestRecords(f).flatMap((record) => record.addLayers.map((layer) => layer.path)));
  const deltas = readdirSync(join(f.vault, 'layers', 'delta')).map((name) => `layers/delta/${name}`);
  return deltas.filter((path) => !listed.has(path)).length;
}

async function crashFixture(major: number): Promise<Fixture> {
  const f = await fixture(major, `${CRASH_SCHEMA}${seedSql(TENANTS)}`);
  try {
    // The fixture's own client dies with the server in the restart test; never let that crash the runner.
    f.db.on('error', () => undefined);
    const init = await f.recall(['init']);
    assert.equal(init.code, 0, `recall init failed:\n${init.stderr}`);
    return f;
  } catch (error) {
    await f.close();
    throw error;
  }
}

for (const major of testMajors('all')) {
  describe(`crash safety on PostgreSQL ${major}`, { timeout: 900_000 }, () => {
    test('kill -9 of capture, again and again: every change exactly once', { timeout: 400_000 }, async (t) => {
      const started = Date.now();
      const runSeed = seed();
      t.diagnostic(`seed ${runSeed}`);
      const random = prng(runSeed ^ 0x5eed);
      const f = await crashFixture(major);
      let writer: Writer | undefined;
      let capture: CaptureProcess | undefined;
      let holder: CaptureProcess | undefined;
      try {
        writer = startWriter(f.cluster.url(), TENANTS, { seed: runSeed });
        await writer.progress(20);

        // The slot still held by a capture that is about to die: freeze one capture (SIGSTOP),
        // so its connection keeps the slot, start another, then kill -9 the frozen one. The
        // second must wait for the slot by itself and then carry on.
        holder = CaptureProcess.spawn(f);
        await holder.waitForLines(STREAMING, 1, 30_000);
        holder.child.kill('SIGSTOP');
        capture = CaptureProcess.spawn(f);
        await capture.waitForLines(/still held by process/, 1, 30_000);
        await holder.kill9();
        await capture.waitForLines(STREAMING, 1, 30_000);
        await capture.waitForLines(FLUSHED, 1, 30_000);
        await capture.kill9();

        const phases = { startup: 0, streaming: 0, afterFlush: 0 };
        let slotBusyWaits = 0;
        const versionsBefore = manifestVersions(f);
        for (let cycle = 0; cycle < KILL_CYCLES; cycle++) {
          capture = CaptureProcess.spawn(f);
          if (cycle % 2 === 1) {
            // Half the runs are timed from a first durable write, so kills land in
            // staging, in the middle of a flush, and between manifest commit and ack.
            await capture.waitForLines(FLUSHED, 1, 30_000);
          }
          // The deliberate random run time before the kill.
          await new Promise((resolve) => setTimeout(resolve, randomBetween(random, 150, 1200)));
          assert.ok(capture.running, `capture exited by itself in cycle ${cycle}: ${capture.describe()}`);
          if (capture.count(FLUSHED) > 0) phases.afterFlush++;
          else if (capture.count(STREAMING) > 0) phases.streaming++;
          else phases.startup++;
          await capture.kill9();
          slotBusyWaits += capture.count(/still held by process/);
        }
        const versionsDuringKills = manifestVersions(f) - versionsBefore;
        assert.ok(
          versionsDuringKills >= KILL_CYCLES / 2,
          `only ${versionsDuringKills} manifest versions were committed during the kill cycles`,
        );

        const stats = await writer.stop();
        writer = undefined;
        assert.deepEqual(stats.unexpected, [], 'the writer hit errors other than lost connections');
        const caughtUp = await catchUp(f, CATCH_UP_DEADLINE_MS);
        const checked = await checkVaultAgainstTruth(f, TENANTS);
        assert.ok(checked.changes > 500, `the workload made only ${checked.changes} changes`);
        t.diagnostic(
          `PostgreSQL ${major}: ${KILL_CYCLES} kills (${phases.startup} during startup, ${phases.streaming} while streaming, ` +
            `${phases.afterFlush} after a durable write); ${versionsDuringKills} manifest versions and ${orphanLayers(f)} orphaned layers ` +
            `(killed mid-flush) from the kills; ${slotBusyWaits} waits in the loop for a slot still held by a killed capture; ` +
            `${stats.committed} transactions, ${checked.changes} changes checked; catch-up ${caughtUp.elapsedMs} ms; ` +
            `total ${Date.now() - started} ms`,
        );
      } finally {
        await holder?.kill9().catch(() => undefined);
        await capture?.kill9().catch(() => undefined);
        await writer?.stop().catch(() => undefined);
        await f.close();
      }
    });

    test('PostgreSQL crashed and restarted under capture: capture reconnects, nothing lost or doubled', { timeout: 300_000 }, async (t) => {
      const started = Date.now();
      const runSeed = seed();
      t.diagnostic(`seed ${runSeed}`);
      const f = await crashFixture(major);
      let writer: Writer | undefined;
      let capture: CaptureProcess | undefined;
      try {
        writer = startWriter(f.cluster.url(), TENANTS, { seed: runSeed });
        capture = CaptureProcess.spawn(f);
        await capture.waitForLines(FLUSHED, 1, 30_000);

        // Crash: SIGKILL of the postmaster, while capture streams and the writer commits.
        await capture.waitForLines(FLUSHED, capture.count(FLUSHED) + 1, 30_000);
        await f.cluster.kill9();
        const streamsBeforeCrash = capture.count(STREAMING);
        const flushesBeforeCrash = capture.count(FLUSHED);
        const vaultAtCrash = await vaultThroughLsn(f);
        await f.cluster.start();
        // The slot's position is saved lazily: after a crash it can be behind what was acknowledged,
        // and the server sends those transactions again (the vault must skip them).
        const slotAfterCrash = await slotConfirmedLsn(f);
        const resent =
          slotAfterCrash < vaultAtCrash
            ? `the slot restarted ${vaultAtCrash - slotAfterCrash} bytes of WAL behind the vault`
            : 'the slot restarted at or after the vault';
        await writer.progress(20);
        // Capture must come back by itself (backoff) and write again.
        await capture.waitForLines(STREAMING, streamsBeforeCrash + 1, 60_000);
        await capture.waitForLines(FLUSHED, flushesBeforeCrash + 1, 30_000);

        // A clean restart (fast shutdown) as well.
        const streamsBeforeRestart = capture.count(STREAMING);
        const flushesBeforeRestart = capture.count(FLUSHED);
        await f.cluster.restart();
        await writer.progress(20);
        await capture.waitForLines(STREAMING, streamsBeforeRestart + 1, 60_000);
        await capture.waitForLines(FLUSHED, flushesBeforeRestart + 1, 30_000);

        const stats = await writer.stop();
        writer = undefined;
        assert.deepEqual(stats.unexpected, [], 'the writer hit errors other than lost connections');
        assert.ok(stats.reconnects >= 2, `the writer reconnected ${stats.reconnects} times; the server restarts did not reach it`);

        capture.child.kill('SIGINT');
        const exit = await capture.waitForExit(10_000);
        assert.deepEqual(exit, { code: 0, signal: null }, `capture did not stop cleanly: ${capture.describe()}`);
        const caughtUp = await catchUp(f, CATCH_UP_DEADLINE_MS);
        const checked = await checkVaultAgainstTruth(f, TENANTS);
        t.diagnostic(
          `PostgreSQL ${major}: ${stats.committed} transactions (${stats.interrupted} interrupted by the restarts), ` +
            `${checked.changes} changes checked; capture reconnected ${capture.count(STREAMING) - 1} times; ` +
            `${resent}; catch-up ${caughtUp.elapsedMs} ms; total ${Date.now() - started} ms`,
        );
      } finally {
        await capture?.kill9().catch(() => undefined);
        await writer?.stop().catch(() => undefined);
        await f.close();
      }
    });

    test('SIGINT stops capture cleanly and promptly; a following catch-up loses nothing', { timeout: 300_000 }, async (t) => {
      const started = Date.now();
      const runSeed = seed();
      t.diagnostic(`seed ${runSeed}`);
      const random = prng(runSeed ^ 0x1417);
      const f = await crashFixture(major);
      let writer: Writer | undefined;
      let capture: CaptureProcess | undefined;
      try {
        writer = startWriter(f.cluster.url(), TENANTS, { seed: runSeed });
        await writer.progress(20);
        const stops: string[] = [];
        const outcomes = { beforeHandler: 0, beforeStreaming: 0, whileStreaming: 0 };
        // How long a capture takes from spawn to streaming, measured on this machine and run.
        const toStreaming: number[] = [];
        // Moments: while streaming before any write, after a durable write with changes
        // staged, and while starting up: connecting, checking and opening the slot,
        // aimed at the last ~250 ms before streaming begins.
        const phases = ['streaming', 'flushed', 'startup', 'streaming', 'startup', 'flushed', 'startup', 'startup'] as const;
        for (const phase of phases) {
          capture = CaptureProcess.spawn(f);
          if (phase === 'startup') {
            const typical = toStreaming.length === 0 ? 600 : toStreaming.reduce((a, b) => a + b, 0) / toStreaming.length;
            await new Promise((resolve) => setTimeout(resolve, Math.max(50, typical - randomBetween(random, 0, 250))));
          } else {
            await capture.waitForLines(phase === 'streaming' ? STREAMING : FLUSHED, 1, 30_000);
            await new Promise((resolve) => setTimeout(resolve, randomBetween(random, 150, 1200)));
          }
          assert.ok(capture.running, `capture exited by itself: ${capture.describe()}`);
          const streamingBefore = capture.count(STREAMING) > 0;
          const signalledAt = Date.now();
          capture.child.kill('SIGINT');
          const exit = await capture.waitForExit(10_000);
          const tookMs = Date.now() - signalledAt;
          const since = capture.firstAfter(STREAMING);
          if (since !== undefined && since < signalledAt - capture.startedAt) toStreaming.push(since);
          if (phase === 'startup' && exit.signal === 'SIGINT' && capture.lines.length === 0) {
            // Before the CLI installed its handler, SIGINT ends Node the default way (nothing was written yet).
            outcomes.beforeHandler++;
            stops.push(`${phase}: ended by the signal before the handler`);
            continue;
          }
          assert.deepEqual(exit, { code: 0, signal: null }, `SIGINT during ${phase}: ${capture.describe()}`);
          assert.ok(
            capture.lines.some((line) => /^capture: stopped;/.test(line)),
            `no summary line: ${capture.describe()}`,
          );
          if (streamingBefore) outcomes.whileStreaming++;
          else outcomes.beforeStreaming++;
          stops.push(`${phase}: exit 0 in ${tookMs} ms`);
        }
        const stats = await writer.stop();
        writer = undefined;
        assert.deepEqual(stats.unexpected, [], 'the writer hit errors other than lost connections');
        const caughtUp = await catchUp(f, CATCH_UP_DEADLINE_MS);
        const checked = await checkVaultAgainstTruth(f, TENANTS);
        t.diagnostic(
          `PostgreSQL ${major}: ${outcomes.beforeHandler} SIGINT before the handler, ${outcomes.beforeStreaming} after it but before streaming, ${outcomes.whileStreaming} while streaming; ` +
            `stops: ${stops.join('; ')}; ${checked.changes} changes checked; ` +
            `catch-up ${caughtUp.elapsedMs} ms; total ${Date.now() - started} ms`,
        );
      } finally {
        await capture?.kill9().catch(() => undefined);
        await writer?.stop().catch(() => undefined);
        await f.close();
      }
    });
  });
}
