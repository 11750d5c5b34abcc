// Rounds of small random changes to the crash schema's items, and the states they leave:
// as the source has them (liveState) and as the vault shows them at an LSN (stateAt).

import { capture, DEFAULT_TENANCY, openVault, parsePoint, resolveSource, show } from '../../src/index.js';
import type { Fixture } from './recall.js';

/** Every tenant's rows at an LSN, read through `show` (the library's, to keep the test quick). */
export async function stateAt(f: Fixture, tenants: readonly string[], lsn: string): Promise<string> {
  const vault = await openVault(f.vault);
  const states: Record<string, unknown> = {};
  for (const tenant of tenants) {
    states[tenant] = await show({ vault, tenant, at: parsePoint(`lsn:${lsn}`) }).catch((error: Error) => `error: ${error.message}`);
  }
  return JSON.stringify(states);
}

/** The live rows of every tenant, as the source has them now, in show's shape. */
export async function liveState(f: Fixture, tenants: readonly string[]): Promise<string> {
  const states: Record<string, unknown> = {};
  for (const tenant of tenants) {
    const tenants = await f.db.query<{ id: string }>('SELECT id FROM tenants WHERE id = $1', [tenant]);
    const items = await f.db.query<{ tenant_id: string; id: string; v: string }>(
      'SELECT tenant_id, id::text AS id, v::text AS v FROM items WHERE tenant_id = $1 ORDER BY items.id',
      [tenant],
    );
    states[tenant] = [
      ...items.rows.map((row) => ({ table: 'public.items', row: { tenant_id: row.tenant_id, id: row.id, v: row.v } })),
      ...tenants.rows.map((row) => ({ table: 'public.tenants', row: { id: row.id } })),
    ];
  }
  return JSON.stringify(states);
}

/** A few random changes to items across tenants, in one transaction (deletes among them unless told not to); the LSN after its commit. */
export async function writeRound(
  f: Fixture,
  tenants: readonly string[],
  random: () => number,
  round: number,
  deletes = true,
): Promise<string> {
  await f.db.query('BEGIN');
  for (let i = 0; i < 3; i++) {
    const tenant = tenants[Math.floor(random() * tenants.length)] ?? 'acme';
    const id = Math.floor(random() * 12);
    const roll = random();
    if (roll < 0.5) {
      await f.db.query('INSERT INTO items VALUES ($1, $2, $3) ON CONFLICT (tenant_id, id) DO UPDATE SET v = excluded.v', [
        tenant,
        id,
        round * 10 + i,
      ]);
    } else if (roll < 0.8) await f.db.query('UPDATE items SET v = v + 1 WHERE tenant_id = $1 AND id = $2', [tenant, id]);
    else if (deletes) await f.db.query('DELETE FROM items WHERE tenant_id = $1 AND id = $2', [tenant, id]);
  }
  await f.db.query('COMMIT');
  return (await f.db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn ?? '0/0';
}

/** Catches the vault up in this process: one flush, so one level-0 layer per round that changed rows. */
export async function catchUpHere(f: Fixture): Promise<void> {
  const vault = await openVault(f.vault);
  await capture({ source: resolveSource(f.cluster.url()), vault, tenancy: DEFAULT_TENANCY, untilCaughtUp: true });
}
