// The initial image benchmark (issue 11): `recall init` of a TPC-C-shaped database of
// at least 1 GB, run as a user runs it (the built CLI, a fresh vault each time),
// against the limit: one connection reading `COPY … TO STDOUT` of every table in one
// REPEATABLE READ snapshot and discarding it. Measured alternately, reported as medians
// with their spread (the machine has 2 cores and other work may run). Run with
// `npm run bench:init`; BENCH_WAREHOUSES sets the size, BENCH_REPEATS the repetitions,
// BENCH_SOURCE reuses a database already filled, BENCH_KEEP=1 leaves the cluster running.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { startCluster, type Cluster } from '../src/sandbox/index.js';
import { median, runBench } from './common.js';

const BIN = resolve(import.meta.dirname, '../bin/recall.js');
const WAREHOUSES = Number(process.env.BENCH_WAREHOUSES ?? 10);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);

/** The nine TPC-C tables; composite keys lead with the warehouse id, the tenant. */
const SCHEMA = `
  CREATE TABLE warehouse (w_id int PRIMARY KEY, w_name varchar(10), w_street_1 varchar(20), w_street_2 varchar(20),
    w_city varchar(20), w_state char(2), w_zip char(9), w_tax numeric(4,4), w_ytd numeric(12,2));
  CREATE TABLE district (d_w_id int NOT NULL, d_id int NOT NULL, d_name varchar(10), d_street_1 varchar(20), d_street_2 varchar(20),
    d_city varchar(20), d_state char(2), d_zip char(9), d_tax numeric(4,4), d_ytd numeric(12,2), d_next_o_id int);
  CREATE TABLE customer (c_w_id int NOT NULL, c_d_id int NOT NULL, c_id int NOT NULL, c_first varchar(16), c_middle char(2),
    c_last varchar(16), c_street_1 varchar(20), c_street_2 varchar(20), c_city varchar(20), c_state char(2), c_zip char(9),
    c_phone char(16), c_since timestamp, c_credit char(2), c_credit_lim numeric(12,2), c_discount numeric(4,4),
    c_balance numeric(12,2), c_ytd_payment numeric(12,2), c_payment_cnt int, c_delivery_cnt int, c_data varchar(500));
  CREATE TABLE history (h_c_id int, h_c_d_id int, h_c_w_id int, h_d_id int, h_w_id int NOT NULL, h_date timestamp,
    h_amount numeric(6,2), h_data varchar(24));
  CREATE TABLE orders (o_w_id int NOT NULL, o_d_id int NOT NULL, o_id int NOT NULL, o_c_id int, o_entry_d timestamp,
    o_carrier_id int, o_ol_cnt int, o_all_local int);
  CREATE TABLE new_order (no_w_id int NOT NULL, no_d_id int NOT NULL, no_o_id int NOT NULL);
  CREATE TABLE order_line (ol_w_id int NOT NULL, ol_d_id int NOT NULL, ol_o_id int NOT NULL, ol_number int NOT NULL,
    ol_i_id int, ol_supply_w_id int, ol_delivery_d timestamp, ol_quantity int, ol_amount numeric(6,2), ol_dist_info char(24));
  CREATE TABLE item (i_id int PRIMARY KEY, i_im_id int, i_name varchar(24), i_price numeric(5,2), i_data varchar(50));
  CREATE TABLE stock (s_w_id int NOT NULL, s_i_id int NOT NULL, s_quantity int,
    ${Array.from({ length: 10 }, (_, i) => `s_dist_${String(i + 1).padStart(2, '0')} char(24)`).join(', ')},
    s_ytd numeric(8,0), s_order_cnt int, s_remote_cnt int, s_data varchar(50));`;

/** Keys and foreign keys, added after the load (as a bulk load does); history has none, so it is REPLICA IDENTITY FULL. */
const CONSTRAINTS = `
  ALTER TABLE district ADD PRIMARY KEY (d_w_id, d_id), ADD FOREIGN KEY (d_w_id) REFERENCES warehouse;
  ALTER TABLE customer ADD PRIMARY KEY (c_w_id, c_d_id, c_id), ADD FOREIGN KEY (c_w_id, c_d_id) REFERENCES district;
  ALTER TABLE history ADD FOREIGN KEY (h_c_w_id, h_c_d_id, h_c_id) REFERENCES customer,
    ADD FOREIGN KEY (h_w_id, h_d_id) REFERENCES district, REPLICA IDENTITY FULL;
  ALTER TABLE orders ADD PRIMARY KEY (o_w_id, o_d_id, o_id), ADD FOREIGN KEY (o_w_id, o_d_id, o_c_id) REFERENCES customer;
  ALTER TABLE new_order ADD PRIMARY KEY (no_w_id, no_d_id, no_o_id), ADD FOREIGN KEY (no_w_id, no_d_id, no_o_id) REFERENCES orders;
  ALTER TABLE stock ADD PRIMARY KEY (s_w_id, s_i_id), ADD FOREIGN KEY (s_w_id) REFERENCES warehouse, ADD FOREIGN KEY (s_i_id) REFERENCES item;
  ALTER TABLE order_line ADD PRIMARY KEY (ol_w_id, ol_d_id, ol_o_id, ol_number), ADD FOREIGN KEY (ol_w_id, ol_d_id, ol_o_id) REFERENCES orders,
    ADD FOREIGN KEY (ol_supply_w_id, ol_i_id) REFERENCES stock;`;

/** Warehouse is the tenant: each table names its warehouse column; item is shared. */
const TENANCY = `tenancy:
  root: public.warehouse
  tables:
    public.district: d_w_id
    public.customer: c_w_id
    public.history: h_w_id
    public.orders: o_w_id
    public.new_order: no_w_id
    public.order_line: ol_w_id
    public.stock: s_w_id
    public.item: global
`;

const TABLES = ['warehouse', 'district', 'customer', 'history', 'orders', 'new_order', 'order_line', 'item', 'stock'] as const;

/**
 * `length` (at most `longest`) characters of hex text seeded by the SQL values `seed`,
 * not repeating within the value, so it compresses about as real text would (2:1).
 */
function text(seed: string, length: number | string, longest = Number(length)): string {
  const parts = Array.from({ length: Math.ceil(longest / 32) }, (_, k) => `md5(concat_ws('/', ${seed}, ${k}))`).join(' || ');
  return `left(${parts}, ${length})`;
}

/** TPC-C's initial population for `warehouses` warehouses, generated in SQL. */
function population(warehouses: number): string[] {
  const w = `generate_series(1, ${warehouses}) w`;
  return [
    `INSERT INTO warehouse SELECT w, 'wh ' || w, ${text("w, 'a'", 20)}, ${text("w, 'b'", 20)}, ${text("w, 'c'", 20)}, 'CA',
       '123451111', 0.1000, 300000.00 FROM ${w}`,
    `INSERT INTO district SELECT w, d, 'd ' || d, ${text("w, d, 'a'", 20)}, ${text("w, d, 'b'", 20)},
       ${text("w, d, 'c'", 20)}, 'NY', '543211111', 0.0500, 30000.00, 3001 FROM ${w}, generate_series(1, 10) d`,
    `INSERT INTO customer SELECT w, d, c, ${text("c, 'f'", 16)}, 'OE', 'BAR' || (c % 1000), ${text("c, 's1'", 20)},
       ${text("w, c, 's2'", 20)}, ${text("d, c, 'c'", 20)}, 'TX', '987651111', ${text("w, d, c, 'p'", 16)},
       '2026-01-01 00:00:00'::timestamp + c * interval '1.000001 second', CASE WHEN c % 10 = 0 THEN 'BC' ELSE 'GC' END, 50000.00,
       (c % 5000) / 10000.0, -10.00, 10.00, 1, 0, ${text("w, '-', d, '-', c", '300 + (c * 7919) % 201', 500)}
       FROM ${w}, generate_series(1, 10) d, generate_series(1, 3000) c`,
    `INSERT INTO history SELECT c, d, w, d, w, '2026-01-01 00:00:00'::timestamp + c * interval '1 second', 10.00,
       ${text("c, 'h'", '12 + c % 13', 24)} FROM ${w}, generate_series(1, 10) d, generate_series(1, 3000) c`,
    `INSERT INTO orders SELECT w, d, o, (o * 7) % 3000 + 1, '2026-01-02 00:00:00'::timestamp + o * interval '1 second',
       CASE WHEN o < 2101 THEN o % 10 + 1 END, 5 + o % 11, 1 FROM ${w}, generate_series(1, 10) d, generate_series(1, 3000) o`,
    `INSERT INTO new_order SELECT w, d, o FROM ${w}, generate_series(1, 10) d, generate_series(2101, 3000) o`,
    `INSERT INTO item SELECT i, i % 10000 + 1, ${text("i, 'n'", '14 + i % 11', 24)}, 1.00 + (i % 9900) / 100.0,
       ${text("i, 'd'", '26 + i % 25', 50)} FROM generate_series(1, 100000) i`,
    `INSERT INTO stock SELECT w, i, 10 + i % 91,
       ${Array.from({ length: 10 }, (_, k) => text(`w, i, '/${k}'`, 24)).join(', ')},
       0, 0, 0, ${text("w, 'x', i", '26 + i % 25', 50)} FROM ${w}, generate_series(1, 100000) i`,
    `INSERT INTO order_line SELECT w, d, o, n, (o * 31 + n * 7) % 100000 + 1, CASE WHEN (o + n) % 100 = 0 THEN w % ${warehouses} + 1 ELSE w END,
       CASE WHEN o < 2101 THEN '2026-01-02 00:00:00'::timestamp + o * interval '1 second' END, 5,
       CASE WHEN o < 2101 THEN 0.00 ELSE ((o * n) % 999999) / 100.0 END, ${text('w, d, o, n', 24)}
       FROM ${w}, generate_series(1, 10) d, generate_series(1, 3000) o, generate_series(1, 10) n`,
  ];
}

function spread(values: readonly number[], digits = 1): string {
  return `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`;
}

/** CPU seconds (user and system) a process of this machine has used so far, from /proc; 0 once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    // Fields 14 and 15 after the command name, in clock ticks of 1/100 s.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /, '')
      .split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** The limit: every table by `COPY … TO STDOUT` on one connection in one snapshot, read and discarded; seconds, bytes and the server's CPU seconds. */
async function copyAnchor(url: string): Promise<{ seconds: number; bytes: number; serverCpu: number }> {
  const start = process.hrtime.bigint();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let bytes = 0;
  const backend = Number((await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid);
  const cpuBefore = cpuSeconds(backend);
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    for (const table of TABLES) {
      const sink = new Writable({
        write(chunk: Buffer, _encoding, done) {
          bytes += chunk.length;
          done();
        },
      });
      await pipeline(client.query(copyTo(`COPY ${table} TO STDOUT`)), sink);
    }
    await client.query('COMMIT');
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    return { seconds, bytes, serverCpu: cpuSeconds(backend) - cpuBefore };
  } finally {
    await client.end();
  }
}

/** `recall init` as a user runs it, into a fresh vault; seconds, peak RSS and CPU seconds (from /proc, polled) and what it printed. */
async function recallInit(
  env: NodeJS.ProcessEnv,
  config: string,
): Promise<{ seconds: number; rssMB: number; cpu: number; stdout: string }> {
  const start = process.hrtime.bigint();
  const child = spawn(process.execPath, [BIN, 'init', '--config', config], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let peakKB = 0;
  let cpu = 0;
  const poll = setInterval(() => {
    cpu = Math.max(cpu, cpuSeconds(child.pid ?? 0));
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (match) peakKB = Math.max(peakKB, Number(match[1]));
    } catch {
      // the process has just exited
    }
  }, 50);
  const code = await new Promise<number | null>((done) => child.on('close', done));
  clearInterval(poll);
  if (code !== 0) throw new Error(`recall init exited ${code}: ${stderr.slice(-2000)}`);
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, rssMB: peakKB / 1024, cpu, stdout };
}

/** What init leaves on the source, removed so the next run starts fresh (the DDL hook it reinstalls itself). */
async function resetSource(db: pg.Client): Promise<void> {
  await db.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'recall%'`);
  await db.query('DROP PUBLICATION IF EXISTS recall');
}

async function main(): Promise<void> {
  let cluster: Cluster | undefined;
  let url = process.env.BENCH_SOURCE;
  if (url === undefined) {
    cluster = await startCluster({ major: 18, settings: { max_wal_size: '8GB', shared_buffers: '256MB', maintenance_work_mem: '512MB' } });
    url = cluster.url();
  }
  const directory = mkdtempSync(join(tmpdir(), 'recall-bench-init-'));
  const db = new pg.Client({ connectionString: url });
  db.on('error', () => undefined);
  try {
    await db.connect();
    const filled = (await db.query(`SELECT to_regclass('public.order_line') IS NOT NULL AS ok`)).rows[0]?.ok === true;
    if (!filled) {
      const started = Date.now();
      await db.query(SCHEMA);
      for (const statement of population(WAREHOUSES)) await db.query(statement);
      await db.query(CONSTRAINTS);
      await db.query('VACUUM (FREEZE, ANALYZE)'); // hint bits set once, not by whichever reader comes first
      await db.query('CHECKPOINT');
      console.error(`filled ${WAREHOUSES} warehouses in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
    const size = await db.query<{ bytes: string; rows: string }>(
      `SELECT sum(pg_total_relation_size(c.oid))::text AS bytes, sum(c.reltuples)::bigint::text AS rows
         FROM pg_class c WHERE c.relname = ANY($1) AND c.relkind = 'r'`,
      [TABLES],
    );
    const dbBytes = Number(size.rows[0]?.bytes);
    const config = join(directory, 'recall.yml');
    writeFileSync(config, TENANCY);
    const env: NodeJS.ProcessEnv = { ...process.env, RECALL_SOURCE: url, NO_COLOR: '1' };
    delete env.DATABASE_URL;

    const anchors: number[] = [];
    const inits: number[] = [];
    const rss: number[] = [];
    const serverCpu: number[] = [];
    const initCpu: number[] = [];
    let copyBytes = 0;
    let printed = '';
    for (let i = 0; i < REPEATS; i++) {
      const anchor = await copyAnchor(url);
      anchors.push(anchor.seconds);
      serverCpu.push(anchor.serverCpu);
      copyBytes = anchor.bytes;
      await resetSource(db);
      const vault = join(directory, `vault-${i}`);
      const run = await recallInit({ ...env, RECALL_VAULT: vault }, config);
      rmSync(vault, { recursive: true, force: true });
      inits.push(run.seconds);
      rss.push(run.rssMB);
      initCpu.push(run.cpu);
      printed = run.stdout.trim();
      console.error(
        `run ${i + 1}: COPY ${anchor.seconds.toFixed(2)} s, init ${run.seconds.toFixed(2)} s, peak RSS ${run.rssMB.toFixed(0)} MB`,
      );
    }
    await resetSource(db);
    const [anchor, initSeconds] = [median(anchors), median(inits)];
    console.log(`database: ${WAREHOUSES} warehouses, ${(dbBytes / 1e9).toFixed(2)} GB on disk (tables and indexes),
  ${Number(size.rows[0]?.rows).toLocaleString('en')} rows, ${(copyBytes / 1e6).toFixed(0)} MB of COPY text; init said: ${printed}`);
    console.log(
      `CPU: the anchor's server process ${median(serverCpu).toFixed(1)} s (${spread(serverCpu)}); recall init's process ${median(initCpu).toFixed(1)} s (${spread(initCpu)}), its server process not counted`,
    );
    console.log('| benchmark | Recall | anchor (same run) | ratio | target |');
    console.log('|---|---|---|---|---|');
    console.log(
      `| \`recall init\`, median of ${REPEATS} | ${initSeconds.toFixed(2)} s (${spread(inits, 2)} s), peak RSS ${median(rss).toFixed(0)} MB (${spread(rss, 0)}) | COPY TO STDOUT of every table, one snapshot, read and discarded: ${anchor.toFixed(2)} s (${spread(anchors, 2)} s) | **${(initSeconds / anchor).toFixed(2)}** | ≤ 1.5 |`,
    );
  } finally {
    await db.end().catch(() => undefined);
    if (cluster !== undefined) {
      if (process.env.BENCH_KEEP === '1') console.error(`cluster left running: BENCH_SOURCE=${url}\nremove with: ${cluster.removeCommand}`);
      else await cluster.destroy();
    }
    rmSync(directory, { recursive: true, force: true });
  }
}

await runBench(main);
