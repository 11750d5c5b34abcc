// Undo of wide rows at scale, each figure a ratio against an anchor of the same run
// (DESIGN.md, "Benchmarks"): a cleanup script deletes two tenants of a TPC-C-shaped
// database (rows of 1–3 KB, ten tenants) in 20 transactions, about 1M rows; `recall
// undo --actor` plans (--dry-run) and applies it under an explicit memory budget, as
// a user runs it, and its peak RSS is sampled. The anchor is a raw COPY of the same
// rows into empty copies of the tables. The result must equal the database before
// the script, table by table. Run with `npm run bench:undo-wide`; BENCH_ACCOUNTS (per
// doomed tenant; four rows each with their orders) and BENCH_MEMORY_LIMIT size it.

import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { startCluster } from '../src/sandbox/index.js';
import { runRecallMeasured, type MeasuredRun } from '../test/harness/recall.js';
import { parseMemoryLimit } from '../src/vault/index.js';
import { WIDE_SCHEMA, WIDE_TABLES, deleteWide, fillWide, wideState } from '../test/harness/wide-rows.js';
import { runBench } from './common.js';

const ACCOUNTS = Number(process.env.BENCH_ACCOUNTS ?? 125_000);
const MEMORY_LIMIT = process.env.BENCH_MEMORY_LIMIT ?? '256MiB';
const DOOMED = [1, 2];
const OTHERS = [3, 4, 5, 6, 7, 8, 9, 10];
const MiB = 1024 * 1024;

function report(r: { name: string; value: string; anchor: string; ratio: string }): void {
  console.log(`| ${r.name} | ${r.value} | ${r.anchor} | ${r.ratio} |`);
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const start = process.hrtime.bigint();
  const value = await work();
  return [value, Number(process.hrtime.bigint() - start) / 1e9];
}

function succeeded(run: MeasuredRun, what: string): MeasuredRun {
  if (run.code !== 0) throw new Error(`${what} exited ${run.code}: ${run.stderr.slice(-3000)}`);
  return run;
}

/** The limit: COPY of the doomed tenants' rows (dumped to files first) into empty copies of the tables. */
async function copyLimit(db: pg.Client, directory: string): Promise<number> {
  for (const table of WIDE_TABLES) {
    const column = table === 'tenants' ? 'id' : 'tenant_id';
    await pipeline(
      db.query(copyTo(`COPY (SELECT * FROM ${table} WHERE ${column} = ANY('{${DOOMED.join(',')}}')) TO STDOUT`)),
      createWriteStream(join(directory, `${table}.copy`)),
    );
    await db.query(`DROP TABLE IF EXISTS limit_${table}; CREATE TABLE limit_${table} (LIKE ${table} INCLUDING ALL)`);
  }
  const [, seconds] = await timed(async () => {
    for (const table of WIDE_TABLES) {
      await pipeline(createReadStream(join(directory, `${table}.copy`)), db.query(copyFrom(`COPY limit_${table} FROM STDIN`)));
    }
  });
  for (const table of WIDE_TABLES) {
    await db.query(`DROP TABLE limit_${table}`);
    rmSync(join(directory, `${table}.copy`));
  }
  return seconds;
}

async function main(): Promise<void> {
  const cluster = await startCluster({ major: 18, settings: { max_wal_size: '8GB', shared_buffers: '256MB' } });
  const directory = mkdtempSync(join(tmpdir(), 'recall-bench-undo-wide-'));
  const env: NodeJS.ProcessEnv = { ...process.env, RECALL_SOURCE: cluster.url(), RECALL_VAULT: join(directory, 'vault'), NO_COLOR: '1' };
  delete env.DATABASE_URL;
  delete env.RECALL_MEMORY_LIMIT;
  const db = new pg.Client({ connectionString: cluster.url() });
  db.on('error', () => undefined);
  try {
    await db.connect();
    await db.query(WIDE_SCHEMA);
    const size = { accounts: ACCOUNTS, orders: 3 };
    await fillWide(db, DOOMED, size);
    await fillWide(db, OTHERS, { accounts: ACCOUNTS / 25, orders: 3 });
    succeeded(await runRecallMeasured(['init'], env), 'init');
    const before = await wideState(db);
    const { rows } = await db.query<{ n: string; bytes: string }>(
      `SELECT count(*) AS n, sum(length(t::text)) AS bytes FROM (SELECT a::text AS t FROM accounts a WHERE tenant_id = ANY($1)
                UNION ALL SELECT o::text FROM orders o WHERE tenant_id = ANY($1)) AS r`,
      [DOOMED],
    );
    const [inPlay, bytes] = [Number(rows[0]?.n) + DOOMED.length, Number(rows[0]?.bytes)];
    await deleteWide(db, DOOMED, size, 20, 'cleanup-script');
    // Captured with the default budget: the capture of wide rows is benchmarked on its own.
    succeeded(await runRecallMeasured(['capture', '--until-caught-up'], env), 'capture');

    console.log(
      `| undo of ${inPlay.toLocaleString('en')} rows (${Math.round(bytes / MiB)} MiB of row text) over 20 transactions, --memory-limit ${MEMORY_LIMIT} | Recall | anchor (same run) | ratio |`,
    );
    console.log('|---|---|---|---|');
    const undo = ['undo', '--actor', 'cleanup-script', '--memory-limit', MEMORY_LIMIT];
    const [planned, planSeconds] = await timed(async () =>
      succeeded(await runRecallMeasured([...undo, '--dry-run', '--json'], env), 'undo --dry-run'),
    );
    const [applied, applySeconds] = await timed(async () => succeeded(await runRecallMeasured([...undo, '--yes'], env), 'undo --yes'));
    const after = await wideState(db);
    if (JSON.stringify(after) !== JSON.stringify(before)) throw new Error(`the undo is not exact: ${JSON.stringify({ before, after })}`);
    const limit = await copyLimit(db, directory);
    const budget = parseMemoryLimit(MEMORY_LIMIT, 'BENCH_MEMORY_LIMIT');
    report({
      name: 'plan (`--dry-run`): catch up, select, stage, check conflicts',
      value: `${planSeconds.toFixed(1)} s, peak RSS ${Math.round(planned.peakRssBytes / MiB)} MiB`,
      anchor: `raw COPY of the same rows into empty tables: ${limit.toFixed(1)} s`,
      ratio: `${(planSeconds / limit).toFixed(2)} (RSS ${(planned.peakRssBytes / budget).toFixed(2)} of the budget)`,
    });
    report({
      name: 'plan and apply (`--yes`), the result exact in every table',
      value: `${applySeconds.toFixed(1)} s, peak RSS ${Math.round(applied.peakRssBytes / MiB)} MiB`,
      anchor: `the same COPY: ${limit.toFixed(1)} s`,
      ratio: `${(applySeconds / limit).toFixed(2)} (RSS ${(applied.peakRssBytes / budget).toFixed(2)} of the budget)`,
    });
  } finally {
    await db.end().catch(() => undefined);
    await cluster.destroy();
    rmSync(directory, { recursive: true, force: true });
  }
}

await runBench(main);
