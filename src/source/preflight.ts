// `recall init`'s check of the source: everything that would stop capture or hurt
// the application, all reported at once with its fix, before anything is created.
// Tables without a primary key or replica identity must be found before a
// publication exists: publishing them makes the application's UPDATE/DELETE fail.

import type pg from 'pg';
import type { SourceProblem } from '../errors.js';
import type { SourceTable } from './catalog.js';
import type { TenancyConfig } from './tenancy.js';
import { quoteIdentifier } from './table-name.js';
import { tenancyProblems } from './tenancy-check.js';

/** The source's role and server settings that matter for capture. */
export interface SourceSettings {
  readonly walLevel: string;
  readonly maxReplicationSlots: number;
  readonly usedReplicationSlots: number;
  readonly maxWalSenders: number;
  readonly superuser: boolean;
  readonly replication: boolean;
  readonly canCreate: boolean;
  readonly role: string;
  readonly database: string;
}

/** Reads the settings preflight checks. */
export async function readSourceSettings(client: pg.Client): Promise<SourceSettings> {
  const { rows } = await client.query<Record<string, string>>(`
    SELECT current_setting('wal_level') AS wal_level,
           current_setting('max_replication_slots') AS max_slots,
           (SELECT count(*) FROM pg_replication_slots)::text AS used_slots,
           current_setting('max_wal_senders') AS max_senders,
           r.rolsuper::text AS superuser, r.rolreplication::text AS replication,
           has_database_privilege(current_database(), 'CREATE')::text AS can_create,
           current_user AS role, current_database() AS database
      FROM pg_roles r WHERE r.rolname = current_user`);
  const row = rows[0] ?? {};
  return {
    walLevel: row.wal_level ?? '',
    maxReplicationSlots: Number(row.max_slots),
    usedReplicationSlots: Number(row.used_slots),
    maxWalSenders: Number(row.max_senders),
    superuser: row.superuser === 'true',
    replication: row.replication === 'true',
    canCreate: row.can_create === 'true',
    role: row.role ?? '',
    database: row.database ?? '',
  };
}

/** What init found of its own objects on the source. */
export interface ExistingObjects {
  /** Our slot is already there, so it needs no free slot. */
  readonly slotExists: boolean;
  /**
   * Our publication: creating it takes CREATE on the database; adding tables to a
   * per-table one takes their ownership; one FOR ALL TABLES (a superuser made it) takes neither.
   */
  readonly publication: 'missing' | 'per-table' | 'all-tables';
}

/** Every problem that stops `recall init`, each with its fix. */
export function checkSource(
  settings: SourceSettings,
  tables: readonly SourceTable[],
  tenancy: TenancyConfig,
  existing: ExistingObjects,
): SourceProblem[] {
  const problems: SourceProblem[] = [];
  const role = settings.role;
  if (settings.walLevel !== 'logical') {
    problems.push({
      problem: `wal_level is "${settings.walLevel}", logical decoding needs "logical"`,
      fix: `ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (on a managed service: set the parameter group's logical replication option)`,
    });
  }
  if (!existing.slotExists && settings.usedReplicationSlots >= settings.maxReplicationSlots) {
    problems.push({
      problem: `all ${settings.maxReplicationSlots} replication slots are in use (max_replication_slots)`,
      fix: 'raise max_replication_slots and restart PostgreSQL, or drop an unused slot with pg_drop_replication_slot()',
    });
  }
  if (settings.maxWalSenders < 1) {
    problems.push({ problem: 'max_wal_senders is 0', fix: 'ALTER SYSTEM SET max_wal_senders = 10; then restart PostgreSQL' });
  }
  if (!settings.superuser && !settings.replication) {
    problems.push({
      problem: `role "${role}" may not stream changes (no REPLICATION attribute)`,
      fix: `ALTER ROLE "${role}" WITH REPLICATION;`,
    });
  }
  if (!settings.superuser && !settings.canCreate && existing.publication === 'missing') {
    problems.push({
      problem: `role "${role}" may not create the publication (no CREATE on database "${settings.database}")`,
      fix: `GRANT CREATE ON DATABASE "${settings.database}" TO "${role}";`,
    });
  }
  // Ownership is needed for a per-table publication only; membership in the owner also lets Recall read the table.
  const needsOwnership = !settings.superuser && existing.publication !== 'all-tables';
  for (const table of tables) {
    if (!table.selectable && !(needsOwnership && !table.owned)) {
      problems.push({ problem: `role "${role}" may not read ${table.qualified}`, fix: `GRANT SELECT ON ${table.qualified} TO "${role}";` });
    }
    // What PostgreSQL itself requires before it lets a published table be updated.
    const hasIdentity =
      table.replicaIdentity === 'f' ||
      (table.replicaIdentity === 'd' && table.primaryKey.length > 0) ||
      (table.replicaIdentity === 'i' && table.identityIndex);
    if (!hasIdentity) {
      problems.push({
        problem: `${table.qualified} has no primary key or replica identity: publishing it would make the application's UPDATE and DELETE on it fail`,
        fix: `ALTER TABLE ${table.qualified} ADD PRIMARY KEY (…); or ALTER TABLE ${table.qualified} REPLICA IDENTITY FULL;`,
      });
    }
  }
  if (needsOwnership) problems.push(...ownershipProblems(role, tables));
  problems.push(...tenancyProblems(tables, tenancy));
  return problems;
}

/**
 * A per-table publication takes ownership of its tables. Membership in the owning
 * role counts as ownership and leaves the tables to the application; transferring
 * them (ALTER TABLE … OWNER TO) would fail its next write and migration. One
 * problem per owning role, since one GRANT fixes all of its tables.
 */
function ownershipProblems(role: string, tables: readonly SourceTable[]): SourceProblem[] {
  const byOwner = new Map<string, SourceTable[]>();
  for (const table of tables.filter((t) => !t.owned)) byOwner.set(table.owner, [...(byOwner.get(table.owner) ?? []), table]);
  return [...byOwner].map(([owner, owned]) => ({
    problem: `role "${role}" is not a member of "${owner}", which owns ${owned.map((table) => table.qualified).join(', ')}, so it cannot add ${owned.length === 1 ? 'it' : 'them'} to a publication`,
    fix: `GRANT ${quoteIdentifier(owner)} TO ${quoteIdentifier(role)}; (as a superuser: membership counts as ownership, and the tables stay ${quoteIdentifier(owner)}'s), or run \`recall init\` once as a superuser`,
  }));
}
