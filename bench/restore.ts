// Restore benchmarks, each figure a ratio against an anchor measured in the same
// run (DESIGN.md, "Benchmarks"): one tenant of 100,000 rows across 5 tables
// restored to a point, against a raw COPY of the same rows into empty tables (the
// limit); the same restore when the database holds 10× more rows of other tenants;
// and the undo of a script that deleted 400 tenants of 1,000 (about 1M rows). The
// restores and their anchor are each measured several times, alternating, and
// reported as medians: this 2-core machine's noise is larger than the differences.
// Run with `npm run bench:restore`; paste the printed table into BENCHMARKS.md.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import {
  DEFAULT_TENANCY,
  openVault,
  capture,
  init,
  parsePoint,
  planRestore,
  planUndo,
  resolveSource,
  type PreparedPlan,
} from '../src/index.js';
import { recallContextSql } from '../src/capture/index.js';
import { startCluster } from '../src/sandbox/index.js';
import { median, runBench, timed } from './common.js';

const TABLES = ['accounts', 'contacts', 'deals', 'notes', 'events'] as const;
const ROWS_PER_TABLE = Number(process.env.BENCH_ROWS_PER_TABLE ?? 20_000);
const UNDO_TENANTS = Number(process.env.BENCH_UNDO_TENANTS ?? 1000);
const UNDO_ROWS_PER_TENANT = Number(process.env.BENCH_UNDO_ROWS_PER_TENANT ?? 2500);
/** Each restore and its anchor are measured this many times, alternating; the figures are medians. */
const REPEATS = Number(process.env.BENCH_REPEATS ?? 5);

/** The spread of a set of timings, for the report. */
function spread(values: readonly number[]): string {
  return `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)} s`;
}
/** Prints each figure as soon as it is measured, so a later failure keeps the earlier ones. */
function report(r: { name: string; value: string; anchor: string; ratio: string; target: string }): void {
  console.log(`| ${r.name} | ${r.value} | ${r.anchor} | ${r.ratio} | ${r.target} |`);
}

const SCHEMA = `
  CREATE TABLE tenants (id int PRIMARY KEY, name text NOT NULL);
  ${TABLES.map(
    (table) => `CREATE TABLE ${table} (id bigint PRIMARY KEY, tenant_id int NOT NULL REFERENCES tenants ON DELETE CASCADE,
                  name text NOT NULL, amount numeric(12,2), tags text[], data jsonb, at timestamptz NOT NULL);
                CREATE INDEX ON ${table} (tenant_id);`,
  ).join('\n')}`;

/** Fills `rows` rows per table for each tenant in [first, first + count), ids from `base`. */
async function fill(db: pg.Client, first: number, count: number, rows: number, base: number): Promise<void> {
  await db.query(`INSERT INTO tenants SELECT t, 'Tenant ' || t FROM generate_series($1::int, $2::int) t ON CONFLICT DO NOTHING`, [
    first,
    first + count - 1,
  ]);
  for (const [i, table] of TABLES.entries()) {
    await db.query(
      `INSERT INTO ${table} SELECT $3::bigint + (t - 1) * $4::bigint + g, t, 'row ' || g || ' of ' || t, (g % 1000) * 1.25,
              ARRAY['a' || (g % 7), 'b'], jsonb_build_object('n', g, 'table', ${i}), '2026-01-01'::timestamptz + g * interval '1 second'
         FROM generate_series($1::int, $2::int) t, generate_series(1, $4::int) g`,
      [first, first + count - 1, base + i * 1e9, rows],
    );
  }
}

/** Plans and applies, as `--yes` does; returns the rows written. */
async function applied(prepared: PreparedPlan): Promise<number> {
  try {
    if (prepared.plan.unresolved > 0) throw new Error(`unexpected conflicts: ${JSON.stringify(prepared.plan.groups[0]?.conflicts[0])}`);
    return (await prepared.apply()).written;
  } finally {
    await prepared.close();
  }
}

/** The limit: COPY of the tenant's rows (taken as text beforehand) into empty copies of the tables. */
async function copyLimit(db: pg.Client, tenant: number): Promise<number> {
  const dumps: { table: string; text: Buffer }[] = [];
  for (const table of ['tenants', ...TABLES]) {
    const chunks: Buffer[] = [];
    const column = table === 'tenants' ? 'id' : 'tenant_id';
    await pipeline(db.query(copyTo(`COPY (SELECT * FROM ${table} WHERE ${column} = ${tenant}) TO STDOUT`)), async function* (source) {
      for await (const chunk of source) chunks.push(chunk as Buffer);
    });
    dumps.push({ table, text: Buffer.concat(chunks) });
    await db.query(`DROP TABLE IF EXISTS limit_${table}; CREATE TABLE limit_${table} (LIKE ${table} INCLUDING ALL)`);
  }
  const [, seconds] = await timed(async () => {
    for (const dump of dumps) {
      const stream = db.query(copyFrom(`COPY limit_${dump.table} FROM STDIN`));
      await pipeline(async function* () {
        yield dump.text;
      }, stream);
    }
  });
  for (const table of ['tenants', ...TABLES]) await db.query(`DROP TABLE limit_${table}`);
  return seconds;
}

/** Deletes tenants in transactions tagged with an actor, as a mistaken script would. */
async function deleteTenants(db: pg.Client, tenants: number[], perTransaction: number): Promise<void> {
  for (let i = 0; i < tenants.length; i += perTransaction) {
    await db.query('BEGIN');
    await db.query(...recallContextSql({ actor: 'purge-script' }));
    await db.query('DELETE FROM tenants WHERE id = ANY($1)', [tenants.slice(i, i + perTransaction)]);
    await db.query('COMMIT');
  }
}

async function main(): Promise<void> {
  console.log('| benchmark | Recall | anchor (same run) | ratio | target |');
  console.log('|---|---|---|---|---|');
  const cluster = await startCluster({ major: 18, settings: { max_wal_size: '4GB', shared_buffers: '256MB' } });
  const directory = mkdtempSync(join(tmpdir(), 'recall-bench-restore-'));
  const db = new pg.Client({ connectionString: cluster.url() });
  db.on('error', () => undefined);
  try {
    await db.connect();
    const source = resolveSource(cluster.url());
    const common = { source, tenancy: DEFAULT_TENANCY, log: () => undefined };

    // 1. One tenant of 100,000 rows (5 tables × 20,000), deleted after the point, restored to it.
    await db.query(SCHEMA);
    await fill(db, 1, 1, ROWS_PER_TABLE, 0);
    await fill(db, 2, 1, 10, 1e8); // a neighbour, so the tenant is not the whole database
    const vault = await openVault(join(directory, 'vault'));
    await init({ ...common, vault });
    const point = parsePoint(new Date().toISOString());
    await new Promise((resolve) => setTimeout(resolve, 20));
    const restoreTenant = async (): Promise<[number, number]> => {
      // Each repetition meets the dead rows of one deletion, its own, as the first does.
      for (const table of ['tenants', ...TABLES]) await db.query(`VACUUM ${table}`);
      await deleteTenants(db, [1], 1);
      await capture({ ...common, vault, untilCaughtUp: true });
      return timed(async () => applied(await planRestore({ ...common, vault, tenants: ['1'], to: point })));
    };
    // Alternating, so that whatever else the machine does falls on both sides alike.
    const smalls: number[] = [];
    const limits: number[] = [];
    let rows = 0;
    for (let i = 0; i < REPEATS; i++) {
      const [written, seconds] = await restoreTenant();
      rows = written;
      smalls.push(seconds);
      limits.push(await copyLimit(db, 1));
    }
    const [small, limit] = [median(smalls), median(limits)];
    report({
      name: `restore one tenant of ${rows.toLocaleString('en')} rows (5 tables) to a point, median of ${REPEATS}`,
      value: `${small.toFixed(2)} s (${Math.round(rows / small).toLocaleString('en')} rows/s; ${spread(smalls)})`,
      anchor: `raw COPY of the same rows into empty tables: ${limit.toFixed(2)} s (${spread(limits)})`,
      ratio: (small / limit).toFixed(2),
      target: '≤ 3',
    });

    // 2. The same restore with 10× more rows of other tenants in the database and the vault.
    await fill(db, 3, 10, ROWS_PER_TABLE, 2e8);
    await capture({ ...common, vault, untilCaughtUp: true });
    const bigs: number[] = [];
    for (let i = 0; i < REPEATS; i++) bigs.push((await restoreTenant())[1]);
    const big = median(bigs);
    report({
      name: `the same restore, 10× more rows of other tenants, median of ${REPEATS}`,
      value: `${big.toFixed(2)} s (${spread(bigs)})`,
      anchor: `with no others: ${small.toFixed(2)} s`,
      ratio: (big / small).toFixed(2),
      target: '≤ 1.3',
    });

    // 3. Undo of a script that deleted 400 tenants of 1,000 (BENCH_UNDO_TENANTS=0 leaves it out).
    if (UNDO_TENANTS === 0) return;
    await db.query(`DROP TABLE ${TABLES.join(', ')}, tenants`);
    await db.query(SCHEMA);
    for (let first = 1; first <= UNDO_TENANTS; first += 100) await fill(db, first, 100, UNDO_ROWS_PER_TENANT / 5, 3e8);
    const undoVault = await openVault(join(directory, 'vault-undo'));
    await db.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'recall%'`);
    await db.query('DROP PUBLICATION recall');
    await init({ ...common, vault: undoVault });
    const doomed = Array.from({ length: (UNDO_TENANTS * 2) / 5 }, (_, i) => i * 2 + 1);
    await deleteTenants(db, doomed, 50);
    await capture({ ...common, vault: undoVault, untilCaughtUp: true });
    const [undone, undoSeconds] = await timed(async () => applied(await planUndo({ ...common, vault: undoVault, actor: 'purge-script' })));
    report({
      name: `undo of a script that deleted ${doomed.length} tenants of ${UNDO_TENANTS}`,
      value: `${undoSeconds.toFixed(1)} s, ${undone.toLocaleString('en')} rows (${Math.round(undone / undoSeconds).toLocaleString('en')} rows/s)`,
      anchor: `raw COPY, from step 1: ${Math.round(rows / limit).toLocaleString('en')} rows/s`,
      ratio: (undone / undoSeconds / (rows / limit)).toFixed(2),
      target: 'report (rows/s vs the COPY limit)',
    });
  } finally {
    await db.end().catch(() => undefined);
    await cluster.destroy();
    rmSync(directory, { recursive: true, force: true });
  }
}

await runBench(main);
