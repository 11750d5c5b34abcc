// Capture on a wide-row workload (rows of about 600 B), every figure a ratio against
// an anchor measured in the same run: throughput against pg_recvlogical reading the
// same WAL (transactions of 1, 100 and 30,000 rows), peak RSS against the memory
// budget, and the source's TPS under pgbench with `recall capture` attached against
// the same with pg_recvlogical attached instead (standard and wide-row scripts). Beside
// them, the floor of a Node receiver (bench/receiver-floor.ts) reads the same WAL too.
// Needs Debian's postgresql-client (pg_recvlogical, pgbench) and taskset.
// Run with `npm run bench:capture-wide`.

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { startCluster, type Cluster } from '../src/sandbox/index.js';
import { type BenchResult, median, peakRss, receiverArgs, runBench, timed } from './common.js';

const BIN = resolve(import.meta.dirname, '../bin/recall.js');
const FLOOR = resolve(import.meta.dirname, 'receiver-floor.ts');
const BUDGET = process.env.BENCH_MEMORY_LIMIT ?? '512MB';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 15);
const results: BenchResult[] = [];

for (const tool of ['pg_recvlogical', 'pgbench', 'taskset']) {
  if (spawnSync('which', [tool]).status !== 0) throw new Error(`${tool} is missing: apt-get install postgresql-client util-linux`);
}

/**
 * A child process with its peak RSS (VmHWM), sampled while it runs, and the moment
 * (performance.now()) its stderr first said `streamingMark`, if it did.
 */
function measured(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  streamingMark = 'capture: streaming slot',
): { child: ChildProcess; done: Promise<number>; streamingAt: () => number | undefined } {
  const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let streamingAt: number | undefined;
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (streamingAt === undefined && stderr.includes(streamingMark)) streamingAt = performance.now();
  });
  const rss = peakRss(child.pid);
  const done = new Promise<number>((resolveDone, reject) =>
    child.on('close', (code) => {
      const peak = rss.stop();
      if (code === 0 || code === null) resolveDone(peak);
      else reject(new Error(`${command} exited ${code}: ${stderr.slice(-2000)}`));
    }),
  );
  return { child, done, streamingAt: () => streamingAt };
}

const seconds = async (work: () => Promise<unknown>): Promise<number> => (await timed(work))[1];

/** `rows` wide rows in transactions of `perTransaction`, 70% inserts, 20% updates, 10% deletes. */
async function workload(db: pg.Client, rows: number, perTransaction: number, base: number): Promise<void> {
  const insert = `INSERT INTO items SELECT 1 + g % 50, g, md5(g::text) || repeat('.', 180), repeat(md5((g + 1)::text), 8),
                          g * 0.01, now(), jsonb_build_object('n', g, 'note', repeat('z', 60))
                    FROM generate_series($1::bigint, $2::bigint) g`;
  for (let done = 0; done < rows; done += perTransaction) {
    const from = base + done;
    const to = from + perTransaction - 1;
    const kind = Math.floor(done / perTransaction) % 10;
    if (perTransaction === 1 || kind < 7) await db.query(insert, [from, to]);
    else if (kind < 9)
      await db.query(`UPDATE items SET price = price + 1, a = upper(a) WHERE id BETWEEN $1 AND $2`, [
        from - 3 * perTransaction,
        to - 3 * perTransaction,
      ]);
    else await db.query(`DELETE FROM items WHERE id BETWEEN $1 AND $2`, [from - 5 * perTransaction, to - 5 * perTransaction]);
  }
}

async function main(): Promise<readonly BenchResult[]> {
  const cluster: Cluster = await startCluster({
    major: 18,
    settings: { max_wal_size: '4GB', shared_buffers: '256MB', wal_sender_timeout: '0' },
  });
  const directory = mkdtempSync(join(tmpdir(), 'recall-bench-wide-'));
  try {
    const env = {
      ...process.env,
      RECALL_SOURCE: cluster.url(),
      RECALL_VAULT: join(directory, 'vault'),
      PGPASSWORD: cluster.password,
      RECALL_MEMORY_LIMIT: BUDGET,
    };
    const db = new pg.Client({ connectionString: cluster.url() });
    db.on('error', () => undefined);
    await db.connect();
    await db.query(`
      CREATE TABLE tenants (id int PRIMARY KEY, name text);
      INSERT INTO tenants SELECT g, 'Tenant ' || g FROM generate_series(1, 50) g;
      CREATE TABLE items (tenant_id int NOT NULL REFERENCES tenants, id bigint NOT NULL, a text, b text, price numeric(14,2),
                          at timestamptz, doc jsonb, PRIMARY KEY (tenant_id, id));`);
    await measured(process.execPath, [BIN, 'init', '--slot', 'recall'], env).done;
    await db.query(`SELECT pg_create_logical_replication_slot('bench_recv', 'pgoutput')`);
    await db.query(`SELECT pg_create_logical_replication_slot('bench_floor', 'pgoutput')`);
    const url = cluster.url({ password: null });

    // 1. Throughput by transaction size: both readers take the same WAL from the same point.
    let base = 1;
    let peakRss = 0;
    for (const [perTransaction, rows] of [
      [1, 20_000],
      [100, 200_000],
      [30_000, 300_000],
    ] as const) {
      await workload(db, rows, perTransaction, base);
      base += rows + 1_000_000;
      const end = (await db.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
      const recv = await seconds(() => measured('pg_recvlogical', receiverArgs(url, 'bench_recv', ['-E', end, '--no-loop']), env).done);
      let floor = 0;
      await seconds(async () => {
        const run = measured(process.execPath, ['--import', 'tsx', FLOOR, url, 'bench_floor', end], env, 'floor: streaming');
        await run.done;
        floor = (performance.now() - (run.streamingAt() ?? Number.NaN)) / 1000;
      });
      let rss = 0;
      let streaming = 0;
      const recall = await seconds(async () => {
        const run = measured(process.execPath, [BIN, 'capture', '--until-caught-up'], env);
        rss = await run.done;
        streaming = (performance.now() - (run.streamingAt() ?? Number.NaN)) / 1000;
      });
      peakRss = Math.max(peakRss, rss);
      results.push({
        name: `capture throughput, transactions of ${perTransaction} wide rows (${rows} changes)`,
        value: `${Math.round(rows / recall)} changes/s (${recall.toFixed(1)} s, peak RSS ${Math.round(rss / 2 ** 20)} MiB)`,
        anchor: `pg_recvlogical: ${Math.round(rows / recv)} changes/s (${recv.toFixed(1)} s)`,
        ratio: (recv / recall).toFixed(2),
        target: '≥ 0.7',
      });
      // The same run once streaming: a capture that runs as a service starts once, so its
      // start (Node, DuckDB's library, the vault and slot checks) is left out here.
      results.push({
        name: `the same, once streaming (the process's start left out)`,
        value: `${Math.round(rows / streaming)} changes/s (${streaming.toFixed(1)} s of ${recall.toFixed(1)} s)`,
        anchor: `pg_recvlogical, whole run: ${Math.round(rows / recv)} changes/s`,
        ratio: (recv / streaming).toFixed(2),
        target: '≥ 0.7',
      });
      // What any receiver on Node's stack reaches before doing any of Recall's work.
      results.push({
        name: `the floor: a Node receiver that decodes and discards, once streaming`,
        value: `${Math.round(rows / floor)} changes/s (${floor.toFixed(1)} s); Recall once streaming is ${(floor / streaming).toFixed(2)} of it`,
        anchor: `pg_recvlogical, whole run: ${Math.round(rows / recv)} changes/s`,
        ratio: (recv / floor).toFixed(2),
        target: '(the limit)',
      });
    }
    results.push({
      name: `peak RSS of capture over those runs`,
      value: `${Math.round(peakRss / 2 ** 20)} MiB`,
      anchor: `the budget, --memory-limit ${BUDGET}`,
      ratio: (peakRss / parseBudget(BUDGET)).toFixed(2),
      target: '≤ 1.0',
    });
    await db.query(`SELECT pg_drop_replication_slot('bench_recv')`);
    await db.query(`SELECT pg_drop_replication_slot('bench_floor')`);

    // 2. The source's cost: pgbench TPS with recall attached vs pg_recvlogical attached, same pinning, alternating.
    await db.query('CREATE DATABASE pgb');
    const pgbUrl = cluster.url({ database: 'pgb', password: null });
    execFileSync('pgbench', ['-i', '-s', '10', '-q', pgbUrl], { env, stdio: 'ignore' });
    const pgb = new pg.Client({ connectionString: cluster.url({ database: 'pgb' }) });
    pgb.on('error', () => undefined);
    await pgb.connect();
    await pgb.query(`ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY;
      CREATE TABLE wide (id bigserial PRIMARY KEY, a text, b text, price numeric(14,2), at timestamptz, doc jsonb);`);
    const wideScript = join(directory, 'wide.sql');
    writeFileSync(
      wideScript,
      `\\set n random(1, 1000000)
INSERT INTO wide (a, b, price, at, doc) VALUES (md5(:n::text) || repeat('.', 180), repeat(md5((:n + 1)::text), 8), :n * 0.01, now(), jsonb_build_object('n', :n, 'note', repeat('z', 60)));
UPDATE wide SET price = price + 1 WHERE id = (SELECT max(id) FROM wide) - (:n % 100);
`,
    );
    const pgbEnv = { ...env, RECALL_SOURCE: cluster.url({ database: 'pgb' }), RECALL_VAULT: join(directory, 'vault-pgb') };
    await measured(process.execPath, [BIN, 'init', '--slot', 'recall_pgb', '--publication', 'recall'], pgbEnv).done;
    await pgb.query(`SELECT pg_create_logical_replication_slot('bench_pgb_recv', 'pgoutput')`);
    const postmaster = readFileSync(join(cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]!;
    execFileSync('taskset', ['-a', '-p', '-c', '0', postmaster], { stdio: 'ignore' });
    const tps = (script: string[]): number => {
      const out = execFileSync(
        'taskset',
        ['-c', '0', 'pgbench', '-c', '4', '-j', '1', '-T', String(PGBENCH_SECONDS), '-n', ...script, pgbUrl],
        { env },
      ).toString();
      return Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? 0);
    };
    for (const [label, script] of [
      ['TPC-B (pgbench default)', []],
      ['wide rows (~600 B insert + update)', ['-f', wideScript]],
    ] as const) {
      const withRecall: number[] = [];
      const withRecv: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const capture = spawn('taskset', ['-c', '1', process.execPath, BIN, 'capture'], { env: pgbEnv, stdio: 'ignore' });
        withRecall.push(tps([...script]));
        capture.kill('SIGINT');
        await new Promise((done) => capture.on('close', done));
        const receiver = spawn('taskset', ['-c', '1', 'pg_recvlogical', ...receiverArgs(pgbUrl, 'bench_pgb_recv')], {
          env,
          stdio: 'ignore',
        });
        withRecv.push(tps([...script]));
        receiver.kill('SIGINT');
        await new Promise((done) => receiver.on('close', done));
      }
      results.push({
        name: `pgbench TPS with recall capture attached, ${label} (median of ${ROUNDS}, alternating)`,
        value: `${median(withRecall).toFixed(0)} tps (${withRecall.map((x) => x.toFixed(0)).join(', ')})`,
        anchor: `pg_recvlogical attached instead: ${median(withRecv).toFixed(0)} tps (${withRecv.map((x) => x.toFixed(0)).join(', ')})`,
        ratio: (median(withRecall) / median(withRecv)).toFixed(3),
        target: '≥ 0.97',
      });
    }
    // The slot goes with the cluster: a drop right after pg_recvlogical exits can find its walsender still there.
    await pgb.end();
    await db.end();
  } finally {
    await cluster.destroy();
    rmSync(directory, { recursive: true, force: true });
  }
  return results;
}

function parseBudget(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(MB|GB|MiB|GiB)$/i.exec(text);
  if (!match) throw new Error(`BENCH_MEMORY_LIMIT ${text}: use e.g. 512MB`);
  const unit = { mb: 1e6, gb: 1e9, mib: 2 ** 20, gib: 2 ** 30 }[match[2]!.toLowerCase() as 'mb']!;
  return Number(match[1]) * unit;
}

await runBench(main);
