// The vault-lasts benchmark (issue 13), every figure a ratio against an anchor of the
// same run. Two vaults are initialised on one source at the same point; the capture
// benchmark's workload is then read by both: by `capture --until-caught-up` (no
// compaction) and by `capture` as a service (compacting in the background). Measured:
// capture throughput with compaction against without; `compact --until-done` alone
// against capture; vault bytes after compaction and gc against the WAL; `show --at` of
// one tenant at each history size, in process and as a whole CLI run against node
// loading DuckDB and running SELECT 1; and, under a steady load with compaction on,
// the p99 delay from commit to durable and the compaction backlog over time.
//
//   npm run bench:vault-lasts    BENCH_CHANGES=1000000,10000000  BENCH_STEADY_S=600

import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { openVault, parsePoint, show } from '../src/index.js';
import { startCluster } from '../src/sandbox/index.js';
import { compactionBacklog } from '../src/vault/index.js';
import { fsStorage } from '../src/vault/fs-storage.js';
import { openManifest } from '../src/vault/manifest-log.js';
import { countingStorage } from '../test/harness/synthetic-commits.js';
import { type BenchResult, median, runBench, timed } from './common.js';
import { BIN, finished, ITEMS_SCHEMA, recall, TENANTS, walBytes, walLsn, workload } from './items-workload.js';

const SIZES = (process.env.BENCH_CHANGES ?? '1000000,10000000').split(',').map(Number);
const STEADY_S = Number(process.env.BENCH_STEADY_S ?? 600);
/** The steady load: transactions of 1,000 rows at this rate (the capture benchmark's transactions, at about a third of its throughput). */
const STEADY_TX_PER_S = 15;
const results: BenchResult[] = [];
/** Each figure as soon as it is measured (on stderr), and the table at the end. */
function record(result: BenchResult): void {
  results.push(result);
  console.error(`vault-lasts: ${result.name}: ${result.value} | ${result.anchor} | ${result.ratio} (target ${result.target})`);
}
const ROOT = resolve(import.meta.dirname, '..');

/** Polls the vault until it holds a commit at or past `lsn`. */
async function durableThrough(location: string, wanted: bigint, child: ChildProcess): Promise<void> {
  const vault = await openVault(location);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`capture exited (${child.exitCode}) before it caught up`);
    if ((await vault.refresh()).throughLsn >= wanted) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function lsnValue(lsn: string): bigint {
  const [high = '0', low = '0'] = lsn.split('/');
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

/** Seconds of a whole CLI run, the median of `runs`. */
function cliSeconds(argv: readonly string[], env: NodeJS.ProcessEnv, runs = 5): number {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    execFileSync(process.execPath, argv, { env, cwd: ROOT, stdio: 'ignore' });
    samples.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  return median(samples);
}

const DUCKDB_SELECT_1 = [
  '--input-type=module',
  '-e',
  "const { DuckDBInstance } = await import('@duckdb/node-api'); const c = await (await DuckDBInstance.create(':memory:')).connect(); await c.run('SELECT 1');",
];

async function main(): Promise<readonly BenchResult[]> {
  const cluster = await startCluster({ major: 18, settings: { max_wal_size: '8GB', shared_buffers: '256MB', wal_sender_timeout: '0' } });
  const directory = mkdtempSync(join(tmpdir(), 'recall-bench-lasts-'));
  try {
    const plain = { ...process.env, RECALL_SOURCE: cluster.url(), RECALL_VAULT: join(directory, 'plain') };
    const compacting = { ...plain, RECALL_VAULT: join(directory, 'compacting') };
    const db = new pg.Client({ connectionString: cluster.url() });
    db.on('error', () => undefined);
    await db.connect();
    await db.query(ITEMS_SCHEMA);
    await finished(recall(['init', '--slot', 'recall_plain'], plain));
    await finished(recall(['init', '--slot', 'recall_compacting'], compacting));

    let made = 0;
    let wal = 0;
    const shows: { size: number; inProcess: number; cli: number; anchor: number }[] = [];
    for (const size of SIZES) {
      const from = await walLsn(db);
      await workload(db, size - made, 1_000_000_000 + made);
      wal += await walBytes(db, from);
      const changes = size - made;
      made = size;
      console.error(`vault-lasts: ${size} changes made`);
      const stamp = (what: string, seconds: number): void => console.error(`vault-lasts: ${what} in ${seconds.toFixed(1)} s`);

      const [, plainSeconds] = await timed(() => finished(recall(['capture', '--until-caught-up'], plain)));
      stamp(`capture --until-caught-up of ${changes} changes`, plainSeconds);
      // The workload's last commit, as the vault caught up without compaction holds it: the other one receives the same.
      const last = (await openVault(plain.RECALL_VAULT)).manifest.throughLsn;
      const service = recall(['capture'], compacting);
      const exited = finished(service);
      const [, compactingSeconds] = await timed(() => durableThrough(compacting.RECALL_VAULT, last, service));
      service.kill('SIGINT');
      await exited;
      record({
        name: `capture throughput with compaction running, ${changes} changes`,
        value: `${Math.round(changes / compactingSeconds)} changes/s`,
        anchor: `without (--until-caught-up): ${Math.round(changes / plainSeconds)} changes/s`,
        ratio: (plainSeconds / compactingSeconds).toFixed(2),
        target: '≥ 0.9',
      });

      const [, compactSeconds] = await timed(() => finished(recall(['compact', '--until-done'], plain)));
      record({
        name: `compaction alone (compact --until-done), ${size} changes of history`,
        value: `${Math.round(size / compactSeconds)} changes/s`,
        anchor: `capture of ${changes}: ${Math.round(changes / plainSeconds)} changes/s`,
        ratio: (size / compactSeconds / (changes / plainSeconds)).toFixed(2),
        target: '≥ 2',
      });
      await finished(recall(['gc', '--gc-grace', '0s'], plain));
      const vault = await openVault(plain.RECALL_VAULT);
      record({
        name: `vault bytes after compaction and gc, ${size} changes`,
        value: `${vault.layerBytes} bytes in ${vault.manifest.layers.length} layers`,
        anchor: `WAL of the workload: ${wal} bytes`,
        ratio: (vault.layerBytes / wal).toFixed(3),
        target: '≤ 0.15',
      });

      // What opening reads: the newest checkpoint and the records after it.
      const { storage, counts } = countingStorage(fsStorage(plain.RECALL_VAULT));
      await openManifest(storage);
      record({
        name: `the newest checkpoint and the records after it, ${size} changes`,
        value: `${counts.bytesRead} bytes in ${counts.reads} files`,
        anchor: `the vault's layers: ${vault.layerBytes} bytes`,
        ratio: (counts.bytesRead / vault.layerBytes).toFixed(4),
        target: '≤ 0.01',
      });

      const tenants = [1, 98, 195, 292, 389].map((n) => `t${n}`);
      const inProcess: number[] = [];
      for (const tenant of tenants) inProcess.push((await timed(() => show({ vault, tenant, at: parsePoint('now') })))[1]);
      const cli = median(tenants.map((tenant) => cliSeconds([BIN, 'show', '--tenant', tenant, '--at', 'now', '--json'], plain, 1)));
      shows.push({ size, inProcess: median(inProcess), cli, anchor: cliSeconds(DUCKDB_SELECT_1, plain) });
    }
    const [first] = shows;
    for (const figure of shows) {
      record({
        name: `show --at, one tenant of ${TENANTS}, ${figure.size} changes (in process)`,
        value: `${(figure.inProcess * 1000).toFixed(0)} ms`,
        anchor: `at ${first!.size} changes: ${(first!.inProcess * 1000).toFixed(0)} ms`,
        ratio: (figure.inProcess / first!.inProcess).toFixed(2),
        target: '≤ 1.3',
      });
      record({
        name: `recall show --at as a CLI run, ${figure.size} changes`,
        value: `${(figure.cli * 1000).toFixed(0)} ms`,
        anchor: `node loading DuckDB, SELECT 1: ${(figure.anchor * 1000).toFixed(0)} ms`,
        ratio: `+${((figure.cli - figure.anchor) * 1000).toFixed(0)} ms`,
        target: '≤ +300 ms',
      });
    }

    // A steady load with compaction on: the delay from each commit to the vault holding it, and the backlog.
    const service = recall(['capture'], compacting);
    const exited = finished(service);
    await durableThrough(compacting.RECALL_VAULT, (await openVault(plain.RECALL_VAULT)).manifest.throughLsn, service);
    const watched = await openVault(compacting.RECALL_VAULT);
    const pending: { lsn: bigint; at: number }[] = [];
    const delays: number[] = [];
    const backlog: number[] = [];
    let writing = true;
    const watcher = (async () => {
      let lastBacklog = 0;
      while (writing || pending.length > 0) {
        const through = (await watched.refresh()).throughLsn;
        const now = performance.now();
        // The writer is the only one: a commit past the position taken before a transaction is that transaction's or later.
        while (pending.length > 0 && pending[0]!.lsn < through) delays.push(now - pending.shift()!.at);
        if (now - lastBacklog >= 30_000) {
          backlog.push(compactionBacklog(watched.manifest).bytes);
          lastBacklog = now;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const started = performance.now();
    let offset = 2_000_000_000;
    for (let n = 0; performance.now() - started < STEADY_S * 1000; n++) {
      const due = started + (n * 1000) / STEADY_TX_PER_S;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const before = lsnValue(await walLsn(db));
      await db.query(
        `INSERT INTO items SELECT 't' || ((g * 7919) % ${TENANTS} + 1), g, g % 100, md5(g::text), now() FROM generate_series($1::bigint, $1::bigint + 999) g`,
        [offset],
      );
      offset += 1000;
      // From the moment the commit returned: the delay until the vault holds it.
      pending.push({ lsn: before, at: performance.now() });
    }
    writing = false;
    await watcher;
    service.kill('SIGINT');
    await exited;
    delays.sort((a, b) => a - b);
    const p99 = delays[Math.floor(delays.length * 0.99)] ?? Number.NaN;
    record({
      name: `commit to durable, p99, ${STEADY_TX_PER_S} tx/s of 1,000 rows for ${STEADY_S} s, compaction on`,
      value: `${(p99 / 1000).toFixed(2)} s (median ${((delays[Math.floor(delays.length / 2)] ?? 0) / 1000).toFixed(2)} s, ${delays.length} commits)`,
      anchor: 'the 2 s target',
      ratio: (p99 / 2000).toFixed(2),
      target: '≤ 1.0',
    });
    record({
      name: `compaction backlog every 30 s under that load (bytes)`,
      value: backlog.join(', '),
      anchor: `first sample: ${backlog[0] ?? 0}`,
      ratio: `last/first ${((backlog.at(-1) ?? 0) / Math.max(1, backlog[0] ?? 1)).toFixed(2)}, max ${Math.max(0, ...backlog)}`,
      target: 'flat',
    });
    await db.end();
  } finally {
    await cluster.destroy();
    rmSync(directory, { recursive: true, force: true });
  }
  return results;
}

await runBench(main);
