// Apply: writes one group (a tenant, or the global tables) of a staged plan in one
// transaction: deletes children first, then updates and inserts parents first, moves
// sequences past restored values, checks the result against the target, and commits
// only if it matches. The transaction carries Recall's own context, so the restore
// is captured like any other change and can itself be undone.

import type pg from 'pg';
import { MissingPrivilegeError, VerifyMismatchError } from '../errors.js';
import { recallContextSql } from '../capture/index.js';
import { sqlIdentifier, type Constraints } from '../source/index.js';
import { GROUP, PRESENT, SKIP, type StagedTable } from './staging.js';

/** What one apply transaction needs to know. */
export interface GroupWrite {
  readonly planId: string;
  readonly op: 'restore' | 'undo';
  readonly tenant: string | null;
  /** Staged tables, parents first. */
  readonly tables: readonly StagedTable[];
  readonly constraints: Constraints;
}

/** Rows written by one group. */
export interface GroupResult {
  readonly tenant: string | null;
  readonly written: number;
}

const inGroup = (n: string): string => `${n}.${GROUP} IS NOT DISTINCT FROM $1 AND NOT ${n}.${SKIP}`;

/** Writes and verifies one group atomically; throws (after rolling back) if the result differs from the target. */
export async function applyGroup(client: pg.Client, group: GroupWrite): Promise<GroupResult> {
  await client.query('BEGIN');
  try {
    await becomeReplica(client);
    await client.query(...recallContextSql({ actor: 'recall', op: group.op, plan: group.planId }));
    let written = 0;
    for (const staged of [...group.tables].reverse()) {
      const result = await client.query(
        `DELETE FROM ${staged.table.sql} AS l USING pg_temp.${staged.staging} AS n
          WHERE ${inGroup('n')} AND NOT n.${PRESENT} AND ${staged.sameKey('l', 'n')}`,
        [group.tenant],
      );
      written += result.rowCount ?? 0;
    }
    for (const staged of group.tables) written += await upsert(client, staged, group.tenant);
    await moveSequences(client, group);
    const mismatched = await verify(client, group);
    if (mismatched.length > 0) {
      throw new VerifyMismatchError(
        `after writing, ${mismatched.join(', ')} did not equal the target${group.tenant === null ? '' : ` for tenant ${group.tenant}`}; rolled back`,
        'nothing was written for this tenant; run `recall restore … --dry-run` to see the plan again, and report this if it persists',
      );
    }
    await client.query('COMMIT');
    return { tenant: group.tenant, written };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/**
 * Turns off the application's triggers (an updated_at trigger must not rewrite
 * restored rows) and foreign-key actions for this transaction only; references are
 * checked by the plan instead. Needs superuser on PostgreSQL 14, or from 15 on
 * `GRANT SET ON PARAMETER session_replication_role`.
 */
async function becomeReplica(client: pg.Client): Promise<void> {
  try {
    await client.query('SET LOCAL session_replication_role = replica');
  } catch (error) {
    if ((error as { code?: string }).code === '42501') {
      throw new MissingPrivilegeError(
        'the source role may not set session_replication_role, which keeps application triggers off restored rows',
        'run as a superuser, or (PostgreSQL 15+) GRANT SET ON PARAMETER session_replication_role TO the Recall role',
        { cause: error },
      );
    }
    throw error;
  }
}

/** Updates rows that differ from the target, then inserts the missing ones (identity values included). */
async function upsert(client: pg.Client, staged: StagedTable, tenant: string | null): Promise<number> {
  const table = staged.table.sql;
  let written = 0;
  if (staged.valueColumns.length > 0) {
    const columns = staged.valueColumns.map(sqlIdentifier);
    const updated = await client.query(
      `UPDATE ${table} AS l SET (${columns.join(', ')}) = ROW(${columns.map((c) => `n.${c}`).join(', ')})
         FROM pg_temp.${staged.staging} AS n
        WHERE ${inGroup('n')} AND n.${PRESENT} AND ${staged.sameKey('l', 'n')} AND (${staged.differs('l', 'n')})`,
      [tenant],
    );
    written += updated.rowCount ?? 0;
  }
  const columns = staged.columns.map(sqlIdentifier).join(', ');
  const identity = staged.table.columns.some((column) => column.identity) ? 'OVERRIDING SYSTEM VALUE' : '';
  const inserted = await client.query(
    `INSERT INTO ${table} (${columns}) ${identity}
     SELECT ${staged.columns.map((c) => `n.${sqlIdentifier(c)}`).join(', ')} FROM pg_temp.${staged.staging} AS n
      WHERE ${inGroup('n')} AND n.${PRESENT} AND NOT EXISTS (SELECT 1 FROM ${table} AS l WHERE ${staged.sameKey('l', 'n')})`,
    [tenant],
  );
  return written + (inserted.rowCount ?? 0);
}

/** Moves each serial or identity sequence past the largest value this group wrote, so new rows never collide. */
async function moveSequences(client: pg.Client, group: GroupWrite): Promise<void> {
  for (const staged of group.tables) {
    for (const owned of group.constraints.sequences.filter((s) => s.table === staged.name && staged.columns.includes(s.column))) {
      await client.query(
        `SELECT setval($2::regclass, m.top) FROM (SELECT max(n.${sqlIdentifier(owned.column)}) AS top
            FROM pg_temp.${staged.staging} AS n WHERE ${inGroup('n')} AND n.${PRESENT}) AS m
          WHERE m.top > (SELECT last_value FROM ${owned.sequence})`,
        [group.tenant, owned.sequence],
      );
    }
  }
}

/** The tables whose rows do not equal the target after the writes (empty when all do). */
async function verify(client: pg.Client, group: GroupWrite): Promise<string[]> {
  const mismatched: string[] = [];
  for (const staged of group.tables) {
    const { rows } = await client.query<{ wrong: string }>(
      `SELECT count(*) AS wrong FROM pg_temp.${staged.staging} AS n
        WHERE ${inGroup('n')} AND CASE WHEN n.${PRESENT}
          THEN NOT EXISTS (SELECT 1 FROM ${staged.table.sql} AS l WHERE ${staged.sameKey('l', 'n')} AND NOT (${staged.differs('l', 'n')}))
          ELSE EXISTS (SELECT 1 FROM ${staged.table.sql} AS l WHERE ${staged.sameKey('l', 'n')}) END`,
      [group.tenant],
    );
    if (Number(rows[0]?.wrong ?? 0) > 0) mismatched.push(`${rows[0]?.wrong} row(s) of ${staged.name}`);
  }
  return mismatched;
}
