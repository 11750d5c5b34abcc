// What `recall verify` costs the application (issue 14): small transactions at a fixed
// rate of half the source's measured maximum (pgbench -R, with the latency counted
// from each transaction's scheduled start, so a stall is not hidden by the clients
// waiting), p99 latency while `recall verify` runs back to back at its default rate,
// against the same without it. A capture runs throughout, as in production. Windows
// alternate in one run. Run with `npm run bench:verify-load`; BENCH_TENANTS sets the
// size, BENCH_WINDOW_S each window, BENCH_REPEATS the pairs, BENCH_LOOP the command.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { startCluster } from '../src/sandbox/index.js';
import { median, runBench, type BenchResult } from './common.js';
import { ACCOUNTS, ROWS_PER_TENANT, tenantsSchema } from './saas-tenants.js';

const BIN = resolve(import.meta.dirname, '../bin/recall.js');
const TENANTS = Number(process.env.BENCH_TENANTS ?? 300);
const WINDOW_S = Number(process.env.BENCH_WINDOW_S ?? 20);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 2);
/** The command run back to back (`verify --max-rate 20000`, `verify --tenant 7`, `status`), to tell its parts apart; `verify` measures the defaults. */
const LOOP_ARGS = (process.env.BENCH_LOOP ?? 'verify').split(' ').filter(Boolean);
const CLIENTS = 4;

/** One application transaction: a balance update of a random account. */
async function transaction(client: pg.Client): Promise<void> {
  const tenant = 1 + Math.floor(Math.random() * TENANTS);
  const account = 1 + Math.floor(Math.random() * ACCOUNTS);
  await client.query('UPDATE accounts SET balance = balance + 1 WHERE tenant_id = $1 AND id = $2', [tenant, account]);
}

/** Transactions a second with every client busy: the source's maximum here. */
async function maximumRate(clients: readonly pg.Client[], seconds: number): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    clients.map(async (client) => {
      while (performance.now() < end) {
        await transaction(client);
        done++;
      }
    }),
  );
  return done / seconds;
}

/** Latencies (ms) at a fixed rate, each from its scheduled start, as pgbench -R counts them. */
async function fixedRate(clients: readonly pg.Client[], rate: number, seconds: number): Promise<number[]> {
  const start = performance.now();
  const total = Math.floor(rate * seconds);
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(
    clients.map(async (client) => {
      for (let i = next++; i < total; i = next++) {
        const scheduled = start + (i * 1000) / rate;
        const wait = scheduled - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        await transaction(client);
        latencies.push(performance.now() - scheduled);
      }
    }),
  );
  return latencies;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function recall(args: readonly string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'ignore', 'inherit'] });
}

/** `recall verify` back to back until stopped; resolves with the passes it completed. */
function verifyLoop(env: NodeJS.ProcessEnv): { stop(): Promise<number> } {
  let running: ChildProcess | undefined;
  let stopped = false;
  let passes = 0;
  const loop = (async () => {
    while (!stopped) {
      const child = recall(LOOP_ARGS, env);
      running = child;
      const code = await new Promise<number | null>((done) => child.on('close', done));
      if (code === 0) passes++;
      else if (!stopped) throw new Error(`recall ${LOOP_ARGS.join(' ')} exited ${code}`);
    }
  })();
  return {
    async stop() {
      stopped = true;
      running?.kill('SIGINT');
      await loop;
      return passes;
    },
  };
}

async function main(): Promise<readonly BenchResult[]> {
  const cluster = await startCluster({ major: 18, settings: { shared_buffers: '256MB' } });
  const directory = mkdtempSync(join(tmpdir(), 'recall-bench-verify-load-'));
  const env = { ...process.env, RECALL_SOURCE: cluster.url(), RECALL_VAULT: join(directory, 'vault'), NO_COLOR: '1' };
  let capture: ChildProcess | undefined;
  const clients: pg.Client[] = [];
  try {
    const admin = new pg.Client({ connectionString: cluster.url() });
    await admin.connect();
    await admin.query(tenantsSchema(TENANTS));
    await admin.end();
    const init = recall(['init'], env);
    if ((await new Promise((done) => init.on('close', done))) !== 0) throw new Error('recall init failed');
    capture = recall(['capture'], env);
    for (let i = 0; i < CLIENTS; i++) {
      const client = new pg.Client({ connectionString: cluster.url() });
      await client.connect();
      clients.push(client);
    }
    const max = await maximumRate(clients, 10);
    const rate = max / 2;
    const quiet: number[] = [];
    const busy: number[] = [];
    let passes = 0;
    for (let round = 0; round < REPEATS; round++) {
      quiet.push(percentile(await fixedRate(clients, rate, WINDOW_S), 99));
      const verifying = verifyLoop(env);
      busy.push(percentile(await fixedRate(clients, rate, WINDOW_S), 99));
      passes += await verifying.stop();
    }
    const spread = (values: number[]): string =>
      `${median(values).toFixed(1)} ms (${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)})`;
    return [
      {
        name: `p99 latency at ${rate.toFixed(0)} tx/s (half the maximum, ${max.toFixed(0)} tx/s), ${CLIENTS} clients, with \`recall ${LOOP_ARGS.join(' ')}\` back to back (${passes} runs; ${TENANTS * ROWS_PER_TENANT} rows)`,
        value: spread(busy),
        anchor: `the same load without verify, capture running in both: ${spread(quiet)}`,
        ratio: (median(busy) / median(quiet)).toFixed(2),
        target: '≤ 1.2',
      },
    ];
  } finally {
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
    capture?.kill('SIGINT');
    await cluster.destroy();
    rmSync(directory, { recursive: true, force: true });
  }
}

await runBench(main);
