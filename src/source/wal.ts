// Where the source's WAL ends: "caught up" and "in the future" are both measured
// against it.

import type pg from 'pg';
import { parseLsn, type Lsn } from '../timeline/lsn.js';

/** The source's current WAL insert position. */
export async function currentWalLsn(client: pg.Client): Promise<Lsn> {
  const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(rows[0]?.lsn ?? '0/0') ?? 0n;
}
