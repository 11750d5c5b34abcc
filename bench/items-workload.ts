// The capture benchmarks' source: 1,000 tenants and one items table, a mixed workload
// in transactions of 1,000 rows (60% inserts, 30% updates, 10% deletes), and running
// the CLI against it.

import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import type pg from 'pg';

export const BIN = resolve(import.meta.dirname, '../bin/recall.js');
export const TENANTS = 1000;

export const ITEMS_SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY, name text);
  CREATE TABLE items (tenant_id text NOT NULL REFERENCES tenants, id bigint PRIMARY KEY, qty int, note text, at timestamptz);
  INSERT INTO tenants SELECT 't' || g, 'Tenant ' || g FROM generate_series(1, ${TENANTS}) g;`;

/** `recall ARGS`, optionally pinned to CPUs (taskset -c PIN); stderr is kept for `finished`. */
export function recall(args: string[], env: NodeJS.ProcessEnv, pin?: string): ChildProcess {
  const command = pin ? 'taskset' : process.execPath;
  const argv = pin ? ['-c', pin, process.execPath, BIN, ...args] : [BIN, ...args];
  return spawn(command, argv, { env, stdio: ['ignore', 'ignore', 'pipe'] });
}

export async function finished(child: ChildProcess): Promise<number> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number>((resolvePromise) => child.on('close', (c) => resolvePromise(c ?? 1)));
  if (code !== 0) throw new Error(`recall exited ${code}: ${stderr.slice(-2000)}`);
  return code;
}

export async function walLsn(db: pg.Client): Promise<string> {
  return (await db.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
}

export async function walBytes(db: pg.Client, from: string): Promise<number> {
  return Number((await db.query<{ d: string }>(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::text AS d`, [from])).rows[0]!.d);
}

/** A mixed workload of `changes` row changes over all tenants, in transactions of 1,000 rows. */
export async function workload(db: pg.Client, changes: number, offset: number): Promise<void> {
  const batches = Math.floor(changes / 1000);
  for (let b = 0; b < batches; b++) {
    const base = offset + b * 1000;
    const kind = b % 10;
    if (kind < 6) {
      await db.query(
        `INSERT INTO items SELECT 't' || ((g * 7919) % ${TENANTS} + 1), g, g % 100, md5(g::text), now() FROM generate_series($1::bigint, $1::bigint + 999) g`,
        [base],
      );
    } else if (kind < 9) {
      await db.query(
        `UPDATE items SET qty = qty + 1, note = note || '.' WHERE id IN (SELECT id FROM items ORDER BY id DESC LIMIT 1000 OFFSET $1)`,
        [(b % 7) * 1000],
      );
    } else {
      await db.query(`DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY id LIMIT 1000)`);
    }
  }
}
