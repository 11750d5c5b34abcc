// `recall verify` (issue 14) against its limit, in one run: a 1,000-tenant database of
// about 1 M rows, verified whole, against reading the same tables with `COPY … TO
// STDOUT` in one snapshot and discarding them (reading every row once); and one
// tenant verified in that database against the same tenant in one a tenth its size.
// Run with `npm run bench:verify`; BENCH_TENANTS sets the size, BENCH_REPEATS the runs.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { startCluster } from '../src/sandbox/index.js';
import { median, runBench, timed, type BenchResult } from './common.js';
import { ROWS_PER_TENANT, tenantsSchema } from './saas-tenants.js';

const BIN = resolve(import.meta.dirname, '../bin/recall.js');
const TENANTS = Number(process.env.BENCH_TENANTS ?? 1000);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const TABLES = ['public.tenants', 'public.accounts', 'public.events'];

function recall(args: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`recall ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`))));
  });
}

/** The limit: every table by COPY … TO STDOUT in one snapshot, read and discarded. */
async function copyAnchor(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    for (const table of TABLES) {
      const sink = new Writable({ write: (_chunk, _encoding, next) => next() });
      await pipeline(client.query(copyTo(`COPY ${table} TO STDOUT`)), sink);
    }
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

async function main(): Promise<readonly BenchResult[]> {
  const cluster = await startCluster({ major: 18, settings: { shared_buffers: '512MB' } });
  const directory = mkdtempSync(join(tmpdir(), 'recall-bench-verify-'));
  try {
    const admin = new pg.Client({ connectionString: cluster.url() });
    await admin.connect();
    const databases = { large: TENANTS, small: Math.max(1, Math.round(TENANTS / 10)) };
    const envs: Record<string, NodeJS.ProcessEnv> = {};
    for (const [name, tenants] of Object.entries(databases)) {
      await admin.query(`CREATE DATABASE ${name}`);
      const db = new pg.Client({ connectionString: cluster.url({ database: name }) });
      await db.connect();
      await db.query(tenantsSchema(tenants));
      await db.end();
      envs[name] = {
        ...process.env,
        RECALL_SOURCE: cluster.url({ database: name }),
        RECALL_VAULT: join(directory, name),
        NO_COLOR: '1',
      };
      await recall(['init', '--slot', `recall_${name}`], envs[name]!);
    }
    await admin.end();

    const whole: number[] = [];
    const anchor: number[] = [];
    const oneLarge: number[] = [];
    const oneSmall: number[] = [];
    for (let round = 0; round < REPEATS; round++) {
      anchor.push((await timed(() => copyAnchor(cluster.url({ database: 'large' }))))[1]);
      whole.push((await timed(() => recall(['verify'], envs.large!)))[1]);
      oneLarge.push((await timed(() => recall(['verify', '--tenant', '7'], envs.large!)))[1]);
      oneSmall.push((await timed(() => recall(['verify', '--tenant', '7'], envs.small!)))[1]);
    }
    const spread = (values: number[]): string =>
      `${median(values).toFixed(2)} s (${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)})`;
    const rows = TENANTS * ROWS_PER_TENANT;
    return [
      {
        name: `\`recall verify\` of ${TENANTS} tenants, ${rows} rows (median of ${REPEATS})`,
        value: spread(whole),
        anchor: `COPY … TO STDOUT of the same tables in one snapshot, discarded: ${spread(anchor)}`,
        ratio: (median(whole) / median(anchor)).toFixed(2),
        target: '≤ 2',
      },
      {
        name: `\`recall verify --tenant 7\` in that database`,
        value: spread(oneLarge),
        anchor: `the same tenant in a database of ${databases.small} tenants: ${spread(oneSmall)}`,
        ratio: (median(oneLarge) / median(oneSmall)).toFixed(2),
        target: '≤ 1.3',
      },
    ];
  } finally {
    await cluster.destroy();
    rmSync(directory, { recursive: true, force: true });
  }
}

await runBench(main);
