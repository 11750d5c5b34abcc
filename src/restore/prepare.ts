// Planning a restore or an undo, end to end: catch the vault up, resolve what is
// selected, freeze the affected tenants (unless it is a dry run), stage the target
// state next to the live rows, find and resolve conflicts, and summarise the plan.
// The result holds the staged state on its connection, so apply writes exactly
// what was planned and shown, under the same freeze.

import { createHash } from 'node:crypto';
import type pg from 'pg';
import { UnknownTableError, UnresolvedConflictsError, UsageError } from '../errors.js';
import {
  connectSource,
  readCatalog,
  readConstraints,
  type Constraints,
  type SourceConfig,
  type SourceTable,
  type TenancyConfig,
} from '../source/index.js';
import { formatLsn, VaultReader, type Lsn, type Point } from '../timeline/index.js';
import { queryRows, type Vault } from '../vault/index.js';
import { applyGroup, type GroupResult } from './apply.js';
import { catchUp } from './catch-up.js';
import { countWrites, listConflicts, resolveConflicts, type StagedPlan } from './diff.js';
import { Freeze } from './freeze.js';
import { totalsOf, type Conflict, type ConflictResolution, type GroupPlan, type Plan, type Selection, type TableSteps } from './plan.js';
import { copyTargets, createStaging, finishStaging, stageLiveRows, StagedTable } from './staging.js';
import { restoreTargets, selectTransactions, undoTargets, type TargetRow } from './target.js';
import { parentsFirst } from './write-order.js';

/** What every restore and undo needs. */
export interface PlanCommon {
  readonly source: SourceConfig;
  readonly vault: Vault;
  readonly tenancy: TenancyConfig;
  readonly onConflict?: ConflictResolution;
  /** Plan only: no freeze, and apply is refused. */
  readonly dryRun?: boolean;
  /** Progress and notes (stderr in the CLI). */
  readonly log?: (line: string) => void;
}

/** A restore: tenants (or all) back to a point. */
export interface RestoreOptions extends PlanCommon {
  readonly tenants: readonly string[] | 'all';
  readonly to: Point;
  /** The point as the user wrote it, for the plan. */
  readonly pointText?: string;
}

/** An undo: the transactions given by id, or by actor within a time range. */
export interface UndoOptions extends PlanCommon {
  readonly txns?: readonly bigint[];
  readonly actor?: string;
  readonly since?: Point;
  readonly until?: Point;
}

/** The outcome of apply. */
export interface ApplyResult {
  readonly planId: string;
  readonly groups: readonly GroupResult[];
  readonly written: number;
}

/** Plans a restore; call apply() to write it, and close() in every case. */
export async function planRestore(options: RestoreOptions): Promise<PreparedPlan> {
  return prepare(options, async (client, reader) => {
    const lsn = await reader.resolve(options.to);
    if (options.tenants !== 'all') for (const tenant of options.tenants) await reader.assertTenant(tenant);
    const catalog = await readCatalog(client, options.tenancy);
    const known = new Set(reader.manifest.schemas.map((schema) => schema.table));
    const tables = catalog.filter((table) => known.has(table.qualified) && (options.tenants === 'all' || table.tenantColumn !== undefined));
    const selection: Selection = {
      kind: 'restore',
      tenants: options.tenants,
      point: options.pointText ?? formatLsn(lsn),
      lsn: formatLsn(lsn),
    };
    return {
      selection,
      id: planIdOf(`restore ${JSON.stringify(options.tenants)} ${lsn}`),
      tables,
      tenants: options.tenants,
      layoutLsn: lsn,
      targets: (fresh) => restoreTargets(fresh, options.tenants, lsn),
      liveScope: options.tenants,
    };
  });
}

/** Plans an undo; call apply() to write it, and close() in every case. */
export async function planUndo(options: UndoOptions): Promise<PreparedPlan> {
  return prepare(options, async (client, reader) => {
    const sinceLsn = options.since === undefined ? undefined : await reader.resolve(options.since);
    const untilLsn = options.until === undefined ? reader.manifest.throughLsn : await reader.resolve(options.until);
    const xids = await selectTransactions(reader, {
      ...(options.txns === undefined ? {} : { xids: options.txns }),
      ...(options.actor === undefined ? {} : { actor: options.actor }),
      ...(sinceLsn === undefined ? {} : { sinceLsn }),
      untilLsn,
    });
    const touched = await queryRows(
      reader.duck,
      `SELECT DISTINCT "table", tenant FROM ${reader.layersSql} WHERE op <> 'image' AND xid IN (${xids.join(', ')})`,
    );
    const catalog = await readCatalog(client, options.tenancy);
    const names = new Set(touched.map((row) => row.table as string));
    const tables = catalog.filter((table) => names.has(table.qualified));
    const gone = [...names].filter((name) => !tables.some((table) => table.qualified === name));
    if (gone.length > 0) {
      throw new UnknownTableError(
        `the transactions changed ${gone.join(', ')}, which the source no longer has`,
        'recreate the table, or undo transactions that touched only existing tables',
      );
    }
    const tenants = [...new Set(touched.map((row) => row.tenant as string | null).filter((t): t is string => t !== null))];
    const id = planIdOf(`undo ${xids.join(',')}`);
    return {
      selection: { kind: 'undo', xids: xids.map(String), ...(options.actor === undefined ? {} : { actor: options.actor }) },
      id,
      tables,
      tenants,
      layoutLsn: undefined,
      targets: (fresh) => undoTargets(fresh, xids, id),
      liveScope: undefined,
    };
  });
}

/** What a restore or undo selects, resolved against the vault. */
interface Scope {
  readonly selection: Selection;
  readonly id: string;
  readonly tables: readonly SourceTable[];
  /** Tenants to freeze ('all': every table as a whole). */
  readonly tenants: readonly string[] | 'all';
  /** The LSN whose layouts the target rows are in (undefined: the newest). */
  readonly layoutLsn: Lsn | undefined;
  readonly targets: (reader: VaultReader) => AsyncGenerator<TargetRow>;
  /** For a restore: the live rows to replace (tenants or all); undefined for an undo. */
  readonly liveScope: readonly string[] | 'all' | undefined;
}

async function prepare(options: PlanCommon, select: (client: pg.Client, reader: VaultReader) => Promise<Scope>): Promise<PreparedPlan> {
  const log = options.log ?? (() => undefined);
  const catchUpOptions = { source: options.source, vault: options.vault, tenancy: options.tenancy, log };
  const client = await connectSource(options.source);
  let freeze: Freeze | undefined;
  try {
    await catchUp(client, catchUpOptions);
    let reader = await VaultReader.open(options.vault);
    let scope: Scope;
    try {
      scope = await select(client, reader);
    } finally {
      reader.close();
    }
    if (!options.dryRun) {
      freeze = await Freeze.take(client, scope.tables, scope.tenants);
      // Writes that committed before the freeze took hold must be in the plan too.
      await catchUp(client, catchUpOptions);
    }
    const constraints = await readConstraints(client);
    reader = await VaultReader.open(options.vault);
    let staged: StagedTable[];
    try {
      const layoutLsn = scope.layoutLsn ?? reader.manifest.throughLsn;
      staged = parentsFirst(
        scope.tables.map((table) => table.qualified),
        constraints.foreignKeys,
      ).map((name, i) => {
        const table = scope.tables.find((t) => t.qualified === name) as SourceTable;
        return new StagedTable(
          table,
          `recall_stage_${i}`,
          reader.layoutAt(name, layoutLsn)?.columns.map((column) => column.name),
        );
      });
      for (const table of staged) await createStaging(client, table);
      const byName = new Map(staged.map((table) => [table.name, table]));
      const copied = await copyByTable(client, byName, scope.targets(reader));
      log(`staged ${copied} target rows in ${staged.length} table(s)`);
    } finally {
      reader.close();
    }
    for (const table of staged) {
      await finishStaging(client, table);
      if (scope.liveScope !== undefined) await stageLiveRows(client, table, scope.liveScope);
    }
    const stagedPlan: StagedPlan = { tables: new Map(staged.map((table) => [table.name, table])), constraints };
    await resolveConflicts(client, stagedPlan, options.onConflict);
    const plan = await summarise(client, scope, stagedPlan, options);
    return new PreparedPlan(client, plan, staged, constraints, freeze, options.dryRun ?? false);
  } catch (error) {
    await freeze?.lift().catch(() => undefined);
    await client.end().catch(() => undefined);
    throw error;
  }
}

/** Feeds target rows (ordered by table) into each table's COPY; rows of tables the source no longer has are left out. */
async function copyByTable(
  client: pg.Client,
  tables: ReadonlyMap<string, StagedTable>,
  targets: AsyncGenerator<TargetRow>,
): Promise<number> {
  let next = await targets.next();
  let copied = 0;
  while (!next.done) {
    const table = next.value.table;
    const run = async function* (): AsyncGenerator<TargetRow> {
      while (!next.done && next.value.table === table) {
        const row = next.value;
        next = await targets.next();
        yield row;
      }
    };
    const staged = tables.get(table);
    if (staged === undefined) for await (const row of run()) void row;
    else copied += await copyTargets(client, staged, run());
  }
  return copied;
}

/** Counts, samples and conflicts, per group. */
async function summarise(client: pg.Client, scope: Scope, staged: StagedPlan, options: PlanCommon): Promise<Plan> {
  const groups = new Map<string | null, { tables: TableSteps[]; conflicts: Conflict[]; skipped: boolean }>();
  const groupOf = (tenant: string | null) => {
    let group = groups.get(tenant);
    if (group === undefined) groups.set(tenant, (group = { tables: [], conflicts: [], skipped: false }));
    return group;
  };
  let unresolved = 0;
  for (const table of staged.tables.values()) {
    for (const diff of await countWrites(client, table)) {
      if (diff.insert + diff.update + diff.delete === 0) continue;
      groupOf(diff.tenant).tables.push({ table: diff.table, insert: diff.insert, update: diff.update, delete: diff.delete });
    }
    const listed = await listConflicts(client, table, options.onConflict);
    unresolved += listed.unresolved;
    for (const conflict of listed.conflicts) {
      const group = groupOf(conflict.tenant);
      group.conflicts.push(conflict);
      if (conflict.resolution === 'skip') group.skipped = true;
    }
  }
  const list: GroupPlan[] = [...groups.entries()]
    .map(([tenant, group]) => ({ tenant, ...group }))
    .sort((a, b) => (a.tenant ?? '').localeCompare(b.tenant ?? '', 'en', { numeric: true }));
  return {
    id: scope.id,
    selection: scope.selection,
    vaultLsn: formatLsn(options.vault.manifest.throughLsn),
    groups: list,
    totals: totalsOf(list),
    unresolved,
  };
}

/** A short, stable id: the same selection always gets the same id. */
function planIdOf(selection: string): string {
  return createHash('sha256').update(selection).digest('hex').slice(0, 12);
}

/** A computed plan, its staged rows and (unless a dry run) the freeze, on one connection. */
export class PreparedPlan {
  private closed = false;

  constructor(
    private readonly client: pg.Client,
    readonly plan: Plan,
    private readonly staged: readonly StagedTable[],
    private readonly constraints: Constraints,
    private readonly freeze: Freeze | undefined,
    private readonly dryRun: boolean,
  ) {}

  /** Writes every group that is not skipped, one transaction each; refuses while conflicts are unresolved. */
  async apply(options: { onGroup?: (result: GroupResult, done: number, total: number) => void } = {}): Promise<ApplyResult> {
    if (this.dryRun) throw new UsageError('a dry-run plan cannot be applied', 'plan again without dryRun to apply');
    if (this.plan.unresolved > 0) {
      throw new UnresolvedConflictsError(
        `the plan has ${this.plan.unresolved} unresolved conflict(s); nothing was written`,
        'look at the conflicts in the plan, then choose --on-conflict skip|theirs|ours',
      );
    }
    const groups = this.plan.groups.filter((group) => !group.skipped && group.tables.length > 0);
    const results: GroupResult[] = [];
    for (const group of groups) {
      const result = await applyGroup(this.client, {
        planId: this.plan.id,
        op: this.plan.selection.kind,
        tenant: group.tenant,
        tables: this.staged,
        constraints: this.constraints,
      });
      results.push(result);
      options.onGroup?.(result, results.length, groups.length);
    }
    return { planId: this.plan.id, groups: results, written: results.reduce((sum, r) => sum + r.written, 0) };
  }

  /** Lifts the freeze and ends the connection (staging tables go with it). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.freeze?.lift();
    } finally {
      await this.client.end().catch(() => undefined);
    }
  }
}
