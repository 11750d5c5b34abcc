// A wide-row workload, TPC-C shaped: tenants, their accounts and orders, rows of
// 1–3 KB (several text columns of 200–2,000 bytes with multi-byte characters, a
// numeric, a timestamptz, a jsonb document), composite keys with the tenant first
// and a composite foreign key. Shared by the undo tests and bench/undo-wide.ts.

import type pg from 'pg';
import { recallContextSql } from '../../src/capture/index.js';

/** The schema, in an empty database. */
export const WIDE_SCHEMA = `
  CREATE TABLE tenants (id int PRIMARY KEY, name text NOT NULL);
  CREATE TABLE accounts (tenant_id int NOT NULL REFERENCES tenants, id int NOT NULL,
                         name text NOT NULL, address text NOT NULL, notes text,
                         balance numeric(16,4) NOT NULL, opened_at timestamptz NOT NULL, profile jsonb NOT NULL,
                         PRIMARY KEY (tenant_id, id));
  CREATE TABLE orders (tenant_id int NOT NULL, id bigint NOT NULL, account_id int NOT NULL,
                       status text NOT NULL, lines text NOT NULL, comment text,
                       total numeric(16,4) NOT NULL, placed_at timestamptz NOT NULL, doc jsonb NOT NULL,
                       PRIMARY KEY (tenant_id, id), FOREIGN KEY (tenant_id, account_id) REFERENCES accounts);
  CREATE INDEX ON orders (tenant_id, account_id);
`;

/** The tables of the workload, parents first. */
export const WIDE_TABLES = ['tenants', 'accounts', 'orders'] as const;

/**
 * Text of `length` characters for row `seed`, mixed with two- to four-byte UTF-8
 * characters, so a cut at any byte offset can fall inside a character: an md5 for
 * every 32 characters (it compresses about as little as real text), or, to be quick
 * to capture and read, one md5 pair repeated (DuckDB still holds every byte of it).
 */
const textOf = (seed: string, length: string, compressible: boolean): string =>
  compressible
    ? `left(repeat(md5(${seed}) || 'é€日本🙂ß' || md5(${seed} || 'x'), 40), ${length})`
    : `left((SELECT string_agg(md5(${seed} || g) || CASE WHEN g % 3 = 0 THEN 'é€日本🙂ß' ELSE '' END, '') FROM generate_series(1, ${length} / 32 + 1) g), ${length})`;

/** A length between 200 and 2,000 characters, fixed by the seed. */
const width = (seed: string): string => `(200 + abs(hashtext(${seed})) % 1801)`;

/** How much each tenant holds. */
export interface WideSize {
  readonly accounts: number;
  /** Orders per account. */
  readonly orders: number;
  /** Text that repeats within a value (see textOf). */
  readonly compressible?: boolean;
  /** Every text column 200–2,000 characters and none null: rows of about 3 KB rather than 1.5. */
  readonly full?: boolean;
}

/** Inserts the given tenants with their accounts and orders (tenant ids are numbers). */
export async function fillWide(db: pg.Client, tenants: readonly number[], size: WideSize): Promise<void> {
  const text = (seed: string, length: string): string => textOf(seed, length, size.compressible === true);
  // Narrower columns, and some nulls, unless every column is to be full.
  const part = (length: string, divisor: number): string => (size.full === true ? length : `${length} / ${divisor}`);
  const sometimes = (rule: string): string => (size.full === true ? 'false' : rule);
  await db.query(`INSERT INTO tenants SELECT t, 'Tenant ' || t FROM unnest($1::int[]) t`, [tenants]);
  for (const tenant of tenants) {
    await db.query(
      `INSERT INTO accounts
       SELECT t, a, ${text(`'n' || t || '/' || a`, part(width(`'n' || a`), 5))},
              ${text(`'a' || t || '/' || a`, part(width(`'a' || a`), 2))},
              CASE WHEN ${sometimes('a % 7 = 0')} THEN NULL ELSE ${text(`'o' || a`, width(`'o' || t || a`))} || E'\\ttab\\\\back' END,
              (a * 37 % 100000) / 3.0, '2026-01-01 00:00:00+00'::timestamptz + a * interval '1 minute 0.123457 second',
              jsonb_build_object('tier', a % 5, 'tags', jsonb_build_array('café', 'naïve', a), 'note', ${text(`'p' || a`, '120')})
         FROM (SELECT $1::int AS t) AS p, generate_series(1, $2::int) a`,
      [tenant, size.accounts],
    );
    await db.query(
      `INSERT INTO orders
       SELECT t, o, 1 + (o - 1) / $3::int, CASE WHEN o % 3 = 0 THEN 'shipped' ELSE 'open' END,
              ${text(`'l' || t || '/' || o`, width(`'l' || o`))},
              CASE WHEN ${sometimes('o % 4 = 0')} THEN NULL ELSE ${text(`'c' || o`, size.full === true ? width(`'c' || o`) : '300')} END,
              (o * 13 % 99999) / 7.0, '2026-02-01 00:00:00+00'::timestamptz + o * interval '7 second',
              jsonb_build_object('lines', o % 15, 'carrier', 'Ünïcode 📦', 'weight', o * 0.25)
         FROM (SELECT $1::int AS t) AS p, generate_series(1, $2::int * $3::int) o`,
      [tenant, size.accounts, size.orders],
    );
  }
}

/**
 * A script that deletes the tenants' accounts and orders (and, last, the tenants
 * themselves) in `transactions` tagged transactions of `actor`, as a mistaken
 * cleanup would; returns their 64-bit ids in commit order.
 */
export async function deleteWide(
  db: pg.Client,
  tenants: readonly number[],
  size: WideSize,
  transactions: number,
  actor: string,
): Promise<bigint[]> {
  const xids: bigint[] = [];
  const step = Math.ceil(size.accounts / transactions);
  for (let i = 0; i < transactions; i++) {
    const [from, to] = [i * step + 1, Math.min(size.accounts, (i + 1) * step)];
    await db.query('BEGIN');
    await db.query(...recallContextSql({ actor }));
    await db.query('DELETE FROM orders WHERE tenant_id = ANY($1) AND account_id BETWEEN $2 AND $3', [tenants, from, to]);
    await db.query('DELETE FROM accounts WHERE tenant_id = ANY($1) AND id BETWEEN $2 AND $3', [tenants, from, to]);
    if (i === transactions - 1) await db.query('DELETE FROM tenants WHERE id = ANY($1)', [tenants]);
    const { rows } = await db.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid');
    await db.query('COMMIT');
    xids.push(BigInt(rows[0]?.xid ?? '0'));
  }
  return xids;
}

/** A fingerprint of each table: the md5 of its rows' md5s (of their text), in key order, and the row count. */
export async function wideState(db: pg.Client): Promise<Record<string, string>> {
  const state: Record<string, string> = {};
  for (const table of WIDE_TABLES) {
    const order = table === 'tenants' ? 'id' : 'tenant_id, id';
    const { rows } = await db.query<{ n: string; md5: string }>(
      `SELECT count(*) AS n, md5(string_agg(md5(t::text), '' ORDER BY ${order})) AS md5 FROM ${table} t`,
    );
    state[table] = `${rows[0]?.n} rows, md5 ${rows[0]?.md5}`;
  }
  return state;
}
