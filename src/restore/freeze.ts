// The freeze: while a restore runs, the application's writes to the affected
// tenants fail with a clear error, with no change to the application.
//
// A guard trigger on each affected table takes a shared transaction-level advisory
// lock on the row's tenant (and on the table); the restore holds the same locks
// exclusively at session level. So taking the freeze waits for writers already at
// work, later writers fail fast (SQLSTATE 55P03) until it lifts, and it lifts by
// itself if Recall dies: session locks end with the session. Recall's own writes run
// with session_replication_role = replica, under which ordinary triggers do not fire.

import type pg from 'pg';
import { FreezeError } from '../errors.js';
import { ensureRecallFunction, type SourceTable } from '../source/index.js';

/** Advisory lock namespaces ("RCL" + 1, + 2, + 3): per tenant, per table, and the guards themselves. */
const TENANT_LOCKS = 0x52434c01;
const TABLE_LOCKS = 0x52434c02;
const GUARD_LOCK = 0x52434c03;

/** How long the freeze waits, unless told otherwise, for writers already at work (and for the table locks of its triggers). */
export const DEFAULT_FREEZE_WAIT_MS = 30_000;

/** The guard's body; recall.guard() is replaced only when it differs (another role may own it). */
const GUARD_BODY = `
DECLARE
  tenant text;
BEGIN
  -- The table is named by the root's oid (an argument): on a partition TG_RELID is the partition's.
  IF NOT pg_try_advisory_xact_lock_shared(${TABLE_LOCKS}, hashtext(TG_ARGV[0])) THEN
    RAISE EXCEPTION 'table %.% is being restored by Recall; retry in a moment', TG_TABLE_SCHEMA, TG_TABLE_NAME
      USING ERRCODE = '55P03', HINT = 'the restore lifts this block when it ends';
  END IF;
  IF TG_NARGS > 1 THEN
    FOR tenant IN SELECT DISTINCT v FROM unnest(ARRAY[to_jsonb(NEW) ->> TG_ARGV[1], to_jsonb(OLD) ->> TG_ARGV[1]]) AS v WHERE v IS NOT NULL LOOP
      IF NOT pg_try_advisory_xact_lock_shared(${TENANT_LOCKS}, hashtext(tenant)) THEN
        RAISE EXCEPTION 'tenant % is being restored by Recall; retry in a moment', tenant
          USING ERRCODE = '55P03', HINT = 'the restore lifts this block when it ends';
      END IF;
    END LOOP;
  END IF;
  RETURN coalesce(NEW, OLD);
END
`;
const GUARD_FUNCTION = `CREATE OR REPLACE FUNCTION recall.guard() RETURNS trigger LANGUAGE plpgsql AS $guard$${GUARD_BODY}$guard$`;

const TRIGGER = 'recall_guard';

/**
 * Installs the guard trigger on each table (CREATE OR REPLACE: a guard left by an
 * earlier run is reused). Runs on one connection before any lock is taken.
 */
export async function installGuards(client: pg.Client, tables: readonly SourceTable[], waitMs: number): Promise<void> {
  await withFreezeWait(client, waitMs, async () => {
    // Held until guardsInPlace(): a concurrent restore must not remove guards between
    // their installation and the freezes that rely on them.
    await client.query(`SELECT pg_advisory_lock(${GUARD_LOCK}, 0)`);
    await ensureRecallFunction(client, 'guard', GUARD_BODY, GUARD_FUNCTION);
    for (const table of tables) {
      const tenantColumn = table.tenantColumn === undefined ? '' : `, '${table.tenantColumn.replaceAll("'", "''")}'`;
      await client.query(
        `CREATE OR REPLACE TRIGGER ${TRIGGER} BEFORE INSERT OR UPDATE OR DELETE ON ${table.sql}
           FOR EACH ROW EXECUTE FUNCTION recall.guard('${table.oid}'${tenantColumn})`,
      );
    }
  });
}

/** Ends the guard installation (see installGuards): the freezes are held now. */
export async function guardsInPlace(client: pg.Client): Promise<void> {
  await client.query(`SELECT pg_advisory_unlock(${GUARD_LOCK}, 0)`);
}

/**
 * Freezes rows on this connection's session: every listed tenant, and the listed
 * tables as a whole. Waits (up to waitMs) for writers already at work.
 */
export async function freeze(
  client: pg.Client,
  what: { tenants: readonly string[]; wholeTables: readonly SourceTable[] },
  waitMs: number,
): Promise<void> {
  await withFreezeWait(client, waitMs, async () => {
    for (const table of what.wholeTables)
      await client.query(`SELECT pg_advisory_lock(${TABLE_LOCKS}, hashtext($1::text))`, [String(table.oid)]);
    for (const tenant of what.tenants) await client.query(`SELECT pg_advisory_lock(${TENANT_LOCKS}, hashtext($1))`, [tenant]);
  });
}

/**
 * Removes the guard triggers once no Recall freeze is held any more (a concurrent
 * restore's guard must stay), from the tables that have one. A guard left behind by
 * a crash blocks nothing: the locks it checks died with the session. Returns the
 * guards left in place, and why: this role does not own the table, or a transaction
 * was using it (dropping a trigger waits for it, and every reader of the table
 * would queue behind that wait, so it gives up after GUARD_DROP_WAIT).
 */
export async function removeGuards(client: pg.Client, tables: readonly SourceTable[], waitMs: number): Promise<GuardLeft[]> {
  const left: GuardLeft[] = [];
  await withFreezeWait(client, waitMs, async () => {
    await client.query(`SELECT pg_advisory_lock(${GUARD_LOCK}, 0)`);
    try {
      const { rows } = await client.query<{ held: string }>(
        // Only a freeze holds these exclusively; a writer passing a guard holds them shared, and its guard may go.
        `SELECT count(*) AS held FROM pg_locks
          WHERE locktype = 'advisory' AND classid::bigint IN (${TENANT_LOCKS}, ${TABLE_LOCKS}) AND mode = 'ExclusiveLock' AND granted`,
      );
      if (Number(rows[0]?.held ?? 0) > 0) return;
      const { rows: guarded } = await client.query<{ oid: number }>(
        `SELECT tgrelid::int8 AS oid FROM pg_trigger WHERE tgname = $1 AND tgrelid = ANY($2::oid[])`,
        [TRIGGER, tables.map((table) => table.oid)],
      );
      const present = new Set(guarded.map((row) => Number(row.oid)));
      await client.query(`SET lock_timeout = '${GUARD_DROP_WAIT}'`);
      for (const table of tables.filter((t) => present.has(t.oid))) {
        try {
          await client.query(`DROP TRIGGER IF EXISTS ${TRIGGER} ON ${table.sql}`);
        } catch (error) {
          // The TRIGGER privilege creates a trigger; dropping one takes the table's owner.
          const code = (error as { code?: string }).code;
          if (code !== '42501' && code !== '55P03') throw error;
          left.push({ table: table.qualified, why: code === '42501' ? 'not-owner' : 'busy' });
        }
      }
    } finally {
      await client.query(`SELECT pg_advisory_unlock(${GUARD_LOCK}, 0)`);
    }
  });
  return left;
}

/** A guard trigger removeGuards left in place, and why. */
export interface GuardLeft {
  readonly table: string;
  readonly why: 'not-owner' | 'busy';
}

/** How long dropping a guard waits for the transactions using its table. */
const GUARD_DROP_WAIT = '200ms';

/** Runs freeze work under lock_timeout, turning a timeout into a FreezeError. */
async function withFreezeWait(client: pg.Client, waitMs: number, work: () => Promise<void>): Promise<void> {
  await client.query(`SET lock_timeout = ${Math.round(waitMs)}`);
  try {
    await work();
  } catch (error) {
    if ((error as { code?: string }).code === '55P03') {
      throw new FreezeError(
        `could not freeze the affected rows within ${waitMs / 1000} s: a transaction writing to them is still running`,
        'find it in pg_stat_activity (state, xact_start) and let it finish or end it, then run again (or wait longer with --freeze-timeout)',
        { cause: error },
      );
    }
    throw error;
  } finally {
    await client.query('RESET lock_timeout').catch(() => undefined);
  }
}
