// S3 against disk (issue 13), side by side in one run: two vaults initialised on one
// source at the same point, one on local disk and one on S3 (s3rver on loopback, the
// test suite's server). Measured: `capture --until-caught-up` of the capture
// benchmark's workload into each, in rounds that alternate which goes first; and the
// restore of one tenant of 100,000 rows from each, with the S3 side's layer cache
// emptied first (a restore on a new host), alternating, as medians.
//
//   npm run bench:s3    BENCH_CHANGES=300000  BENCH_REPEATS=3

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startCluster } from '../src/sandbox/index.js';
import { startS3Server, TEST_BUCKET } from '../test/harness/s3.js';
import { type BenchResult, median, runBench, timed } from './common.js';
import { finished, ITEMS_SCHEMA, recall, workload } from './items-workload.js';

const CHANGES = Number(process.env.BENCH_CHANGES ?? 300_000);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const TENANT_ROWS = 100_000;
const BIG = 'big';
const results: BenchResult[] = [];

function record(result: BenchResult): void {
  results.push(result);
  console.error(`s3-vs-disk: ${result.name}: ${result.value} | ${result.anchor} | ${result.ratio} (target ${result.target})`);
}

async function main(): Promise<readonly BenchResult[]> {
  const cluster = await startCluster({ major: 18, settings: { max_wal_size: '8GB', shared_buffers: '256MB', wal_sender_timeout: '0' } });
  const s3 = await startS3Server();
  const directory = mkdtempSync(join(tmpdir(), 'recall-bench-s3-'));
  try {
    const disk = { ...process.env, RECALL_SOURCE: cluster.url(), RECALL_VAULT: join(directory, 'disk') };
    const onS3 = { ...disk, ...s3.env, RECALL_VAULT: `s3://${TEST_BUCKET}/bench` };
    const vaults = [
      { name: 'disk', env: disk },
      { name: 's3', env: onS3 },
    ] as const;
    const db = new pg.Client({ connectionString: cluster.url() });
    db.on('error', () => undefined);
    await db.connect();
    await db.query(ITEMS_SCHEMA);
    await db.query(`INSERT INTO tenants VALUES ('${BIG}', 'The big one')`);
    const fillBig = `INSERT INTO items SELECT '${BIG}', g, g % 100, md5(g::text), now() FROM generate_series(5000000001, ${5_000_000_000 + TENANT_ROWS}) g`;
    await db.query(fillBig);
    await finished(recall(['init', '--slot', 'recall_disk'], disk));
    await finished(recall(['init', '--slot', 'recall_s3'], onS3));

    // Capture: the workload in rounds, each caught up by both vaults, the first of them alternating.
    const seconds = { disk: 0, s3: 0 };
    for (let round = 0; round < REPEATS; round++) {
      await workload(db, CHANGES / REPEATS, 1_000_000_000 + round * CHANGES);
      for (const vault of round % 2 === 0 ? vaults : [...vaults].reverse()) {
        seconds[vault.name] += (await timed(() => finished(recall(['capture', '--until-caught-up'], vault.env))))[1];
      }
      console.error(`s3-vs-disk: round ${round + 1}: disk ${seconds.disk.toFixed(1)} s, s3 ${seconds.s3.toFixed(1)} s so far`);
    }
    record({
      name: `capture --until-caught-up of ${CHANGES} changes in ${REPEATS} rounds, vault on S3 (s3rver, loopback)`,
      value: `${Math.round(CHANGES / seconds.s3)} changes/s`,
      anchor: `vault on local disk: ${Math.round(CHANGES / seconds.disk)} changes/s`,
      ratio: (seconds.disk / seconds.s3).toFixed(2),
      target: '≥ 0.8',
    });

    // Restore: the big tenant to a point where all of its rows were there, after each loses them again.
    const point = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const restores = { disk: [] as number[], s3: [] as number[] };
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      for (const vault of repeat % 2 === 0 ? vaults : [...vaults].reverse()) {
        await db.query(`DELETE FROM items WHERE tenant_id = '${BIG}'`);
        // Both vaults hold the delete before the timing starts: the restore's own catch-up is then empty.
        for (const other of vaults) await finished(recall(['capture', '--until-caught-up'], other.env));
        if (vault.name === 's3') rmSync(s3.env.RECALL_CACHE_DIR!, { recursive: true, force: true });
        restores[vault.name].push(
          (await timed(() => finished(recall(['restore', '--tenant', BIG, '--to', point, '--yes'], vault.env))))[1],
        );
        const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM items WHERE tenant_id = '${BIG}'`);
        if (Number(rows[0]?.n) !== TENANT_ROWS) throw new Error(`the restore from ${vault.name} left ${rows[0]?.n} rows`);
      }
    }
    const spread = (values: readonly number[]): string => `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)} s`;
    record({
      name: `restore of one tenant of ${TENANT_ROWS} rows, vault on S3, layer cache empty (median of ${REPEATS})`,
      value: `${median(restores.s3).toFixed(2)} s (${spread(restores.s3)})`,
      anchor: `vault on local disk: ${median(restores.disk).toFixed(2)} s (${spread(restores.disk)})`,
      ratio: (median(restores.s3) / median(restores.disk)).toFixed(2),
      target: '≤ 1.3',
    });
    await db.end();
  } finally {
    await cluster.destroy();
    await s3.close();
    rmSync(directory, { recursive: true, force: true });
  }
  return results;
}

await runBench(main);
