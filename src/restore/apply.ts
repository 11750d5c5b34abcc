// Apply: writes a batch of groups (tenants, or the global tables) of a staged plan in
// one transaction, so each tenant is either untouched or fully restored: deletes children first, then updates and inserts parents first, moves
// sequences past restored values, checks the result against the target, and commits
// only if it matches. The transaction carries Recall's own context, so the restore
// is captured like any other change and can itself be undone. Under a rate cap each
// write is cut into slices of the staged rows, paced by the throttle; a stop request
// rolls the transaction back before its next write.

import type pg from 'pg';
import { MissingPrivilegeError, VerifyMismatchError } from '../errors.js';
import { RECALL_ACTOR, recallContextSql } from '../capture/index.js';
import { parseTableName, quoteIdentifier, sqlIdentifier, sqlTableName, type Constraints } from '../source/index.js';
import type { TableSteps } from './plan.js';
import type { Throttle } from './throttle.js';
import { findingLiveRows, GROUP, groupParams, ofGroups, PRESENT, probingKeys, SKIP, type StagedTable } from './staging.js';

/** What one apply transaction needs to know. */
export interface GroupWrite {
  readonly planId: string;
  readonly op: 'restore' | 'undo';
  /** The groups written together: tenants, and null for the global tables. */
  readonly tenants: readonly (string | null)[];
  /** What the plan counted for these groups, table by table (several entries per table add up). */
  readonly steps: readonly TableSteps[];
  /** Staged tables, parents first. */
  readonly tables: readonly StagedTable[];
  readonly constraints: Constraints;
  /** Called after each statement that writes, with the rows it wrote (for progress). */
  readonly onWritten?: (rows: number) => void;
  /** Records the transaction's 64-bit id as Recall's own, durably, before it commits. */
  readonly recordOwn: (xid: string) => Promise<void>;
  /** Paces the writes (shared by every session of the apply). */
  readonly throttle: Throttle;
  /** Once aborted, the transaction rolls back before its next write, throwing the signal's reason. */
  readonly signal: AbortSignal;
}

/** Advisory lock namespace ("RCL" + 4) serialising sequence moves across sessions. */
const SEQUENCE_LOCKS = 0x52434c04;

/** Rows written by one batch of groups. */
export interface GroupResult {
  readonly tenants: readonly (string | null)[];
  readonly written: number;
}

/** The staged rows (alias n) of the batch's groups that are written. */
const inGroup = (n: string): string => `${ofGroups(n)} AND NOT ${n}.${SKIP}`;

/** Writes and verifies one group atomically; throws (after rolling back) if the result differs from the target. */
export async function applyGroup(client: pg.Client, group: GroupWrite): Promise<GroupResult> {
  // Paced before BEGIN too, so a throttled batch does not wait inside an idle transaction.
  await group.throttle.pace(group.signal);
  group.signal.throwIfAborted();
  await client.query('BEGIN');
  try {
    await becomeReplica(client);
    await client.query(...recallContextSql({ actor: RECALL_ACTOR, op: group.op, plan: group.planId }));
    let written = 0;
    // A kind of write the plan counted none of is not attempted: under the freeze the
    // tenants' rows cannot change, and verify below checks every row of the target anyway.
    const planned = plannedSteps(group.steps);
    for (const staged of [...group.tables].reverse()) {
      if (planned(staged.name).delete === 0) continue;
      written += await inSlices(client, staged, group, false, async (slice) => {
        const result = await client.query(
          `DELETE FROM ${staged.table.sql} AS l USING pg_temp.${staged.staging} AS n
            WHERE ${inGroup('n')} AND NOT n.${PRESENT} AND ${slice.sql} AND ${staged.sameKey('l', 'n')} AND ${sameTenant(staged)}`,
          [...groupParams(group.tenants), ...slice.params],
        );
        group.onWritten?.(result.rowCount ?? 0);
        return result.rowCount ?? 0;
      });
    }
    for (const staged of group.tables) {
      const steps = planned(staged.name);
      if (steps.insert + steps.update > 0) {
        written += await inSlices(client, staged, group, true, (slice) =>
          upsert(client, staged, group.tenants, steps, slice, group.onWritten),
        );
      }
    }
    await moveSequences(client, group);
    const mismatched = [...(await verify(client, group)), ...(await danglingReferences(client, group))];
    if (mismatched.length > 0) {
      throw new VerifyMismatchError(
        `after writing, ${mismatched.join('; ')}: the result does not match the plan (tenants ${group.tenants.map((t) => t ?? '(global)').join(', ')}); rolled back`,
        'nothing was written for these tenants; run the command with --dry-run to see the plan again, and report this if it persists',
      );
    }
    // Recorded before the commit, so no transaction of Recall's is in the history unrecorded
    // (a record whose transaction then rolls back names nothing in it).
    const { rows } = await client.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid');
    await group.recordOwn(rows[0]?.xid ?? '');
    await client.query('COMMIT');
    return { tenants: group.tenants, written };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    if ((error as { code?: string }).code === '42501' && !(error instanceof MissingPrivilegeError)) {
      throw new MissingPrivilegeError(
        `writing tenants ${group.tenants.map((t) => t ?? '(global)').join(', ')}: ${(error as Error).message}; rolled back`,
        privilegeHint(client, group.tables),
        { cause: error },
      );
    }
    if ((error as { code?: string }).code === '23505') {
      // Another tenant's row took a key (or unique value) after the plan looked: the freeze holds only ours.
      throw new VerifyMismatchError(
        `while writing tenants ${group.tenants.map((t) => t ?? '(global)').join(', ')}, ${(error as Error).message}; rolled back`,
        'nothing was written for these tenants; run the command again to see the new conflict in the plan',
        { cause: error },
      );
    }
    throw error;
  }
}

/** The fix of a write refused for want of a privilege: membership in the owners of the tables this role does not own. */
function privilegeHint(client: pg.Client, tables: readonly StagedTable[]): string {
  const owners = new Set(tables.filter((staged) => !staged.table.owned).map((staged) => staged.table.owner));
  const role = quoteIdentifier(client.user ?? 'recall');
  const grants = [...owners].map((owner) => `GRANT ${quoteIdentifier(owner)} TO ${role};`).join(' ');
  if (grants === '') return "grant the role what README's Privileges section lists for restore, then run the command again";
  return `${grants} (as a superuser: membership in the tables' owner lets Recall read, write and guard them), then run the command again`;
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
      const role = quoteIdentifier(client.user ?? 'recall');
      throw new MissingPrivilegeError(
        `role ${role} may not set session_replication_role, which keeps application triggers off restored rows`,
        `GRANT SET ON PARAMETER session_replication_role TO ${role}; (as a superuser, PostgreSQL 15+; on 14 run restore and undo as a superuser)`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** The live row (l) belongs to the staged row's (n) tenant: a key another tenant took since is never touched. */
function sameTenant(staged: StagedTable): string {
  return staged.table.tenantColumn === undefined ? 'true' : `${staged.tenantOf('l')} IS NOT DISTINCT FROM n.${GROUP}`;
}

/** The plan's counts of one table for a batch, summed over its groups. */
function plannedSteps(steps: readonly TableSteps[]): (table: string) => TableSteps {
  return (table) =>
    steps
      .filter((step) => step.table === table)
      .reduce(
        (sum, step) => ({
          table,
          insert: sum.insert + step.insert,
          update: sum.update + step.update,
          delete: sum.delete + step.delete,
          unchanged: sum.unchanged + step.unchanged,
        }),
        { table, insert: 0, update: 0, delete: 0, unchanged: 0 },
      );
}

/** A slice of the staged rows (alias n) a write statement takes: SQL on $3 (and $4), and those parameters. */
interface Slice {
  readonly sql: string;
  readonly params: readonly string[];
}

/** Every staged row: statements are not cut without a rate cap. */
const WHOLE: Slice = { sql: 'true', params: [] };

/**
 * Runs one kind of write of a table (on the batch's staged rows that are present, or
 * absent) slice by slice, pacing each slice and rolling back on a stop request before
 * it; returns the rows written. Under a rate cap the staged rows are cut, in their
 * physical order, into ranges of the throttle's slice: a range of ctids is a TID
 * range scan, and a staging table's rows never move during apply.
 */
async function inSlices(
  client: pg.Client,
  staged: StagedTable,
  group: GroupWrite,
  present: boolean,
  write: (slice: Slice) => Promise<number>,
): Promise<number> {
  return probingKeys(client, staged, async () => {
    let written = 0;
    for (const slice of await slicesOf(client, staged, group, present)) {
      await group.throttle.pace(group.signal);
      group.signal.throwIfAborted();
      const rows = await write(slice);
      group.throttle.wrote(rows);
      written += rows;
    }
    return written;
  });
}

/** The slices of a batch's staged rows, present or absent, under the throttle's slice size. */
async function slicesOf(client: pg.Client, staged: StagedTable, group: GroupWrite, present: boolean): Promise<Slice[]> {
  const size = group.throttle.slice;
  if (size === undefined) return [WHOLE];
  const { rows } = await client.query<{ at: string }>(
    `SELECT b.ctid::text AS at FROM (
       SELECT n.ctid, row_number() OVER (ORDER BY n.ctid) AS i FROM pg_temp.${staged.staging} AS n
        WHERE ${inGroup('n')} AND ${present ? '' : 'NOT '}n.${PRESENT}) AS b
      WHERE (b.i - 1) % $3 = 0 ORDER BY b.ctid`,
    [...groupParams(group.tenants), size],
  );
  return rows.map(({ at }, i) => {
    const next = rows[i + 1]?.at;
    return next === undefined
      ? { sql: 'n.ctid >= $3::tid', params: [at] }
      : { sql: 'n.ctid >= $3::tid AND n.ctid < $4::tid', params: [at, next] };
  });
}

/**
 * Updates rows that differ from the target, then inserts the missing ones (identity
 * values included). When the plan found no live row under any staged key, every
 * staged row is inserted without looking for one.
 */
async function upsert(
  client: pg.Client,
  staged: StagedTable,
  tenants: readonly (string | null)[],
  steps: TableSteps,
  slice: Slice,
  onWritten: GroupWrite['onWritten'],
): Promise<number> {
  const table = staged.table.sql;
  let written = 0;
  // A GENERATED ALWAYS identity column cannot be updated; its value never changes in place anyway.
  const settable = staged.valueColumns.filter((name) => staged.table.columns.find((c) => c.name === name)?.identity !== 'a');
  if (settable.length > 0 && steps.update > 0) {
    const columns = settable.map(sqlIdentifier);
    const updated = await client.query(
      `UPDATE ${table} AS l SET (${columns.join(', ')}) = ROW(${columns.map((c) => `n.${c}`).join(', ')})
         FROM pg_temp.${staged.staging} AS n
        WHERE ${inGroup('n')} AND n.${PRESENT} AND ${slice.sql} AND ${staged.sameKey('l', 'n')} AND ${sameTenant(staged)} AND (${staged.differs('l', 'n')})`,
      [...groupParams(tenants), ...slice.params],
    );
    written += updated.rowCount ?? 0;
    onWritten?.(updated.rowCount ?? 0);
  }
  if (steps.insert === 0) return written;
  const columns = staged.columns.map(sqlIdentifier).join(', ');
  const identity = staged.table.columns.some((column) => column.identity !== '') ? 'OVERRIDING SYSTEM VALUE' : '';
  const inserted = await client.query(
    `INSERT INTO ${table} (${columns}) ${identity}
     SELECT ${staged.columns.map((c) => `n.${sqlIdentifier(c)}`).join(', ')} FROM pg_temp.${staged.staging} AS n
      WHERE ${inGroup('n')} AND n.${PRESENT} AND ${slice.sql}
        ${steps.update + steps.unchanged === 0 ? '' : `AND NOT EXISTS (SELECT 1 FROM ${table} AS l WHERE ${staged.sameKey('l', 'n')})`}`,
    [...groupParams(tenants), ...slice.params],
  );
  onWritten?.(inserted.rowCount ?? 0);
  return written + (inserted.rowCount ?? 0);
}

/**
 * Moves each serial or identity sequence past the largest value this batch wrote, so
 * new rows never collide. Sessions serialise on the sequence (setval is not
 * transactional), and the sequence never moves back.
 */
async function moveSequences(client: pg.Client, group: GroupWrite): Promise<void> {
  for (const staged of group.tables) {
    for (const owned of group.constraints.sequences.filter((s) => s.table === staged.name && staged.columns.includes(s.column))) {
      await client.query(`SELECT pg_advisory_xact_lock(${SEQUENCE_LOCKS}, hashtext($1))`, [owned.sequence]);
      await client.query(
        `SELECT setval($3::regclass, m.top) FROM (SELECT max(n.${sqlIdentifier(owned.column)}) AS top
            FROM pg_temp.${staged.staging} AS n WHERE ${inGroup('n')} AND n.${PRESENT}) AS m
          WHERE m.top >= (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM ${owned.sequence})`,
        [...groupParams(group.tenants), owned.sequence],
      );
    }
  }
}

/** The tables whose rows do not equal the target after the writes (empty when all do). */
async function verify(client: pg.Client, group: GroupWrite): Promise<string[]> {
  const mismatched: string[] = [];
  for (const staged of group.tables) {
    const wrong =
      group.op === 'restore' && !staged.fullIdentity
        ? await restoredRowsDiffer(client, staged, group.tenants)
        : await stagedRowsDiffer(client, staged, group.tenants);
    if (wrong > 0) mismatched.push(`${wrong} row(s) of ${staged.name} differ from the target`);
  }
  return mismatched;
}

/**
 * Staged rows that the live row of their key does not match: present ones must be
 * there and equal, absent ones gone. The live rows under the staged keys are found once (liveRowJoin).
 */
async function stagedRowsDiffer(client: pg.Client, staged: StagedTable, tenants: readonly (string | null)[]): Promise<number> {
  const { rows } = await findingLiveRows(client, staged, () =>
    client.query<{ wrong: string }>(
      `SELECT count(*) FILTER (WHERE CASE WHEN n.${PRESENT} THEN l.ctid IS NULL OR ${staged.differs('l', 'n')} ELSE l.ctid IS NOT NULL END) AS wrong
         FROM pg_temp.${staged.staging} AS n ${staged.liveRowJoin('n', 'l', inGroup)} WHERE ${inGroup('n')}`,
      groupParams(tenants),
    ),
  );
  return Number(rows[0]?.wrong ?? 0);
}

/**
 * For a restore, whose target is each tenant's whole share of the table: every live
 * row of the batch's tenants against the staged rows, in one hash join of the two
 * (both follow the tenant, and hashing them costs less than a probe per row). Each
 * staged row must be there and equal, or gone as planned, rows the plan left out
 * keep what they hold, and no live row of these tenants may be one the plan never saw.
 */
async function restoredRowsDiffer(client: pg.Client, staged: StagedTable, tenants: readonly (string | null)[]): Promise<number> {
  const { rows } = await client.query<{ wrong: string }>(
    `SELECT count(*) AS wrong
       FROM (SELECT * FROM pg_temp.${staged.staging} AS n WHERE ${ofGroups('n')}) AS n
       FULL JOIN (SELECT l.ctid, l.* FROM ${staged.table.sql} AS l WHERE ${staged.ofTenants('l', '$1::text[]', '$2::boolean')}) AS l
         ON ${staged.sameKey('l', 'n')}
      WHERE CASE WHEN n.${PRESENT} IS NULL THEN true WHEN n.${SKIP} THEN false
                 WHEN n.${PRESENT} THEN l.ctid IS NULL OR ${staged.differs('l', 'n')} ELSE l.ctid IS NOT NULL END`,
    groupParams(tenants),
  );
  return Number(rows[0]?.wrong ?? 0);
}

/**
 * References the writes left dangling, checked inside the transaction because
 * foreign-key triggers are off: written rows whose parent is missing now, and rows
 * still referencing a parent this batch deleted. The plan checked both already;
 * this catches what changed since outside the freeze (a global parent, a table
 * the undo did not touch).
 */
async function danglingReferences(client: pg.Client, group: GroupWrite): Promise<string[]> {
  const found: string[] = [];
  const byName = new Map(group.tables.map((staged) => [staged.name, staged]));
  for (const key of group.constraints.foreignKeys) {
    const match = (child: string, parent: string): string =>
      key.childColumns
        .map((c, i) => `${parent}.${sqlIdentifier(key.parentColumns[i] as string)} = ${child}.${sqlIdentifier(c)}`)
        .join(' AND ');
    const child = byName.get(key.child);
    if (child !== undefined && key.childColumns.every((c) => child.columns.includes(c))) {
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_temp.${child.staging} AS n
          WHERE ${inGroup('n')} AND n.${PRESENT} AND ${key.childColumns.map((c) => `n.${sqlIdentifier(c)} IS NOT NULL`).join(' AND ')}
            AND NOT EXISTS (SELECT 1 FROM ${sqlTableName(parseTableName(key.parent))} AS p WHERE ${match('n', 'p')})`,
        groupParams(group.tenants),
      );
      if (Number(rows[0]?.n ?? 0) > 0) found.push(`${rows[0]?.n} row(s) of ${key.child} whose ${key.parent} row is missing (${key.name})`);
    }
    const parent = byName.get(key.parent);
    if (parent !== undefined && key.parentColumns.every((c) => parent.table.key.includes(c))) {
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_temp.${parent.staging} AS n
          WHERE ${inGroup('n')} AND NOT n.${PRESENT}
            AND EXISTS (SELECT 1 FROM ${sqlTableName(parseTableName(key.child))} AS c WHERE ${match('c', 'n')})`,
        groupParams(group.tenants),
      );
      if (Number(rows[0]?.n ?? 0) > 0)
        found.push(`${rows[0]?.n} deleted row(s) of ${key.parent} still referenced from ${key.child} (${key.name})`);
    }
  }
  return found;
}
