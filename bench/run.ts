// Recall's benchmarks, every figure a ratio against an anchor measured side by side
// in the same run on the same machine (DESIGN.md, "Benchmarks"). Needs Debian's
// PostgreSQL client tools (pg_recvlogical, pgbench) and taskset; run with
// `npm run bench` and paste the printed table into BENCHMARKS.md.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openVault, parsePoint, show } from '../src/index.js';
import { startCluster, type Cluster } from '../src/sandbox/index.js';
import { type BenchResult, peakRss, receiverArgs, runBench, timed } from './common.js';
import { finished, ITEMS_SCHEMA, recall, TENANTS, walBytes, walLsn, workload } from './items-workload.js';

const results: BenchResult[] = [];

function need(tool: string): void {
  if (spawnSync('which', [tool]).status !== 0) {
    throw new Error(`${tool} is missing: apt-get install postgresql-client postgresql-contrib util-linux`);
  }
}

async function main(): Promise<readonly BenchResult[]> {
  for (const tool of ['pg_recvlogical', 'pgbench', 'taskset']) need(tool);
  const cluster: Cluster = await startCluster({
    major: 18,
    settings: { max_wal_size: '4GB', shared_buffers: '256MB', wal_sender_timeout: '0' },
  });
  const directory = mkdtempSync(join(tmpdir(), 'recall-bench-'));
  try {
    const env = { ...process.env, RECALL_SOURCE: cluster.url(), RECALL_VAULT: join(directory, 'vault'), PGPASSWORD: cluster.password };
    const db = new pg.Client({ connectionString: cluster.url() });
    db.on('error', () => undefined); // the cluster is destroyed under it if a step fails
    await db.connect();
    await db.query(ITEMS_SCHEMA);
    await finished(recall(['init', '--slot', 'recall'], env));

    // 1. History of 100k changes; show latency there (the 1/10 point).
    await workload(db, 100_000, 0);
    await finished(recall(['capture', '--until-caught-up'], env));
    const showAt = async (): Promise<number> => {
      const vault = await openVault(env.RECALL_VAULT);
      const samples: number[] = [];
      for (let i = 0; i < 5; i++)
        samples.push((await timed(() => show({ vault, tenant: `t${((i * 97) % TENANTS) + 1}`, at: parsePoint('now') })))[1]);
      return samples.sort((a, b) => a - b)[2]!;
    };
    const show100k = await showAt();

    // 2. 900k more changes, read by pg_recvlogical and by recall from the same point.
    await db.query(`SELECT pg_create_logical_replication_slot('bench_recv', 'pgoutput')`);
    const from = await walLsn(db);
    const layersBefore = (await openVault(env.RECALL_VAULT)).layerBytes;
    await workload(db, 900_000, 10_000_000);
    const end = await walLsn(db);
    const wal = await walBytes(db, from);
    const [, recvSeconds] = await timed(
      async () =>
        void execFileSync('pg_recvlogical', [...receiverArgs(cluster.url({ password: null }), 'bench_recv'), '-E', end, '--no-loop'], {
          env,
        }),
    );
    const [, recallSeconds] = await timed(() => finished(recall(['capture', '--until-caught-up'], env)));
    results.push({
      name: 'capture throughput (900k changes)',
      value: `${Math.round(900_000 / recallSeconds)} changes/s`,
      anchor: `pg_recvlogical: ${Math.round(900_000 / recvSeconds)} changes/s`,
      ratio: (recvSeconds / recallSeconds).toFixed(2),
      target: '≥ 0.5',
    });
    const vaultBytes = (await openVault(env.RECALL_VAULT)).layerBytes - layersBefore;
    results.push({
      name: 'vault bytes per change vs WAL bytes',
      value: `${(vaultBytes / 900_000).toFixed(1)} B/change`,
      anchor: `WAL: ${(wal / 900_000).toFixed(1)} B/change`,
      ratio: (vaultBytes / wal).toFixed(3),
      target: '≤ 1.0',
    });

    const show1m = await showAt();
    results.push({
      name: 'show --at, one tenant of 1,000, 1M changes',
      value: `${(show1m * 1000).toFixed(0)} ms`,
      anchor: `same at 100k changes: ${(show100k * 1000).toFixed(0)} ms`,
      ratio: (show1m / show100k).toFixed(2),
      target: '< 1 s; growth for 10× history',
    });

    // 3. Peak RSS of capture while it streams one transaction of 2 million row changes.
    await db.query(`INSERT INTO items SELECT 't' || (g % ${TENANTS} + 1), g, 1, 'x', now() FROM generate_series(50000000, 51999999) g`);
    const child = recall(['capture', '--until-caught-up'], env);
    const rss = peakRss(child.pid);
    const [, bigSeconds] = await timed(() => finished(child));
    const peakKb = rss.stop() / 1024;
    results.push({
      name: 'peak RSS of capture, one 2M-row transaction',
      value: `${(peakKb / 1024).toFixed(0)} MB`,
      anchor: `limit 300 MB (took ${bigSeconds.toFixed(0)} s)`,
      ratio: (peakKb / 1024 / 300).toFixed(2),
      target: '≤ 1.0',
    });
    await db.query(`SELECT pg_drop_replication_slot('bench_recv')`);

    // 4. Source overhead: pgbench TPS with capture running vs not, capture on core 1, PostgreSQL + pgbench on core 0.
    await db.query('CREATE DATABASE pgb');
    const pgbUrl = cluster.url({ database: 'pgb', password: null });
    execFileSync('pgbench', ['-i', '-s', '10', '-q', pgbUrl], { env, stdio: 'ignore' });
    const pgb = new pg.Client({ connectionString: cluster.url({ database: 'pgb' }) });
    pgb.on('error', () => undefined);
    await pgb.connect();
    await pgb.query('ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY');
    const pgbEnv = { ...env, RECALL_SOURCE: cluster.url({ database: 'pgb' }), RECALL_VAULT: join(directory, 'vault-pgb') };
    await finished(recall(['init', '--slot', 'recall_pgb', '--publication', 'recall'], pgbEnv));
    const postmaster = readFileSync(join(cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]!;
    execFileSync('taskset', ['-a', '-p', '-c', '0', postmaster], { stdio: 'ignore' });
    const tps = (): number => {
      const out = execFileSync('taskset', ['-c', '0', 'pgbench', '-c', '4', '-j', '1', '-T', '20', '-n', pgbUrl], { env }).toString();
      return Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? 0);
    };
    await pgb.query(`SELECT pg_create_logical_replication_slot('bench_pgb_recv', 'pgoutput')`);
    const off: number[] = [];
    const on: number[] = [];
    const recv: number[] = [];
    for (let round = 0; round < 2; round++) {
      off.push(tps());
      const capture = recall(['capture'], pgbEnv, '1');
      on.push(tps());
      capture.kill('SIGINT');
      await finished(capture);
      // The anchor: the same slot type streamed by pg_recvlogical into /dev/null, on the same core.
      const receiver = spawn('taskset', ['-c', '1', 'pg_recvlogical', ...receiverArgs(pgbUrl, 'bench_pgb_recv')], { env, stdio: 'ignore' });
      recv.push(tps());
      receiver.kill('SIGINT');
      await new Promise((resolvePromise) => receiver.on('close', resolvePromise));
    }
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    results.push({
      name: 'pgbench TPS with capture running',
      value: `${mean(on).toFixed(0)} tps`,
      anchor: `without capture: ${mean(off).toFixed(0)} tps`,
      ratio: (mean(on) / mean(off)).toFixed(2),
      target: '≥ 0.9',
    });
    results.push({
      name: 'pgbench TPS with pg_recvlogical running (the floor any logical decoding pays)',
      value: `${mean(recv).toFixed(0)} tps`,
      anchor: `without: ${mean(off).toFixed(0)} tps`,
      ratio: (mean(recv) / mean(off)).toFixed(2),
      target: 'reference',
    });
    await pgb.query(`SELECT pg_drop_replication_slot('bench_pgb_recv')`);
    await pgb.end();
    await db.end();
  } finally {
    await cluster.destroy();
    rmSync(directory, { recursive: true, force: true });
  }
  return results;
}

await runBench(main);
