// One connection's share of a plan: the freeze of its tenants (session locks), the
// target rows of those tenants staged in its temporary tables, their conflicts and
// counts, and later their writes. A plan runs several sessions side by side, each
// with its own tenants, so many tenants are staged and written in parallel.

import type pg from 'pg';
import { InternalError } from '../errors.js';
import { connectSource, type Constraints, type SourceConfig, type SourceTable } from '../source/index.js';
import { VaultReader, type Lsn } from '../timeline/index.js';
import type { Vault } from '../vault/index.js';
import { applyGroup, type GroupResult } from './apply.js';
import { countWrites, listConflicts, resolveConflicts, settleLaterChanges, type StagedPlan, type TableCount } from './diff.js';
import { freeze } from './freeze.js';
import { cancellingOnAbort } from './interrupt.js';
import { writesOf, type Conflict, type ConflictResolution, type GroupPlan, type TableSteps } from './plan.js';
import { copyTargets, createStaging, finishStaging, StagedTable } from './staging.js';
import { changedAfter, type TargetHooks, type TargetTable } from './target.js';
import type { Throttle } from './throttle.js';
import { parentsFirst } from './write-order.js';

/** Buffers for a session's staging tables: allocated on the server only as they fill. */
const TEMP_BUFFERS = '512MB';

/** A transaction of apply gathers tenants up to this many rows, or this many tenants. */
const BATCH_ROWS = 20_000;
const BATCH_GROUPS = 10;

/** What one session handles. */
export interface SessionShare {
  /** The tenants whose rows it stages and writes ('all': every tenant, for a whole-database restore). */
  readonly tenants: readonly string[] | 'all';
  /** Whether it also handles rows of global tables (and freezes those tables whole). */
  readonly global: boolean;
}

/** What every session of a plan shares. */
export interface SessionContext {
  readonly source: SourceConfig;
  readonly vault: Vault;
  readonly constraints: Constraints;
  /** The plan's tables. */
  readonly tables: readonly SourceTable[];
  /** The LSN whose table layouts the targets are written in (undefined: the newest). */
  readonly layoutLsn: Lsn | undefined;
  /** The target rows of a share, ordered by table. */
  readonly targets: (
    reader: VaultReader,
    staged: readonly StagedTable[],
    share: SessionShare,
    hooks: TargetHooks,
  ) => AsyncGenerator<TargetTable>;
  /** For a restore, the live rows the share replaces are staged too; an undo touches only the targets. */
  readonly restore: boolean;
  readonly onConflict: ConflictResolution | undefined;
  /** Called as target rows are staged, with how many this batch added. */
  readonly onStaged: (rows: number) => void;
  /** Called once per session, with about how many target rows it will stage. */
  readonly onEstimate: (rows: number) => void;
}

/** The part of the plan a session computed. */
export interface SessionPlan {
  readonly groups: readonly GroupPlan[];
  readonly unresolved: number;
  readonly staged: number;
}

export class PlanSession {
  private staged: StagedTable[] = [];
  /** Stops the share's target computation when another session of the plan fails. */
  private readonly stopping = new AbortController();

  private constructor(
    private readonly client: pg.Client,
    private readonly context: SessionContext,
    readonly share: SessionShare,
  ) {}

  /**
   * Connects and, unless planning only, freezes the share's tenants (and its global
   * tables); an abort of `signal` cancels the wait for the freeze.
   */
  static async open(
    context: SessionContext,
    share: SessionShare,
    options: { freeze: boolean; waitMs: number; signal?: AbortSignal },
  ): Promise<PlanSession> {
    const client = await connectSource(context.source);
    try {
      // Staging lives in temporary tables, which use the session's own buffers (8 MB by
      // default, then files): a tenant's rows must fit in memory or every step pays I/O.
      await client.query(`SET temp_buffers = '${TEMP_BUFFERS}'`);
      if (options.freeze) {
        await cancellingOnAbort(client, context.source, options.signal, () =>
          freeze(
            client,
            {
              tenants: share.tenants === 'all' ? [] : share.tenants,
              wholeTables: context.tables.filter((table) => share.tenants === 'all' || (share.global && table.tenantColumn === undefined)),
            },
            options.waitMs,
          ),
        );
      }
      return new PlanSession(client, context, share);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
  }

  /**
   * Stages the share's target rows, finds and resolves conflicts, and counts the writes
   * per tenant. Reads the vault through `given` if there is one (already open, and
   * current enough for this plan), else opens it now; closes it either way.
   */
  async plan(given?: VaultReader): Promise<SessionPlan> {
    const { client, context } = this;
    const reader = given ?? (await VaultReader.open(context.vault));
    try {
      const layoutLsn = context.layoutLsn ?? reader.manifest.throughLsn;
      this.staged = parentsFirst(
        context.tables.map((table) => table.qualified),
        context.constraints.foreignKeys,
      ).map((name, i) => {
        const table = context.tables.find((t) => t.qualified === name) as SourceTable;
        return new StagedTable(
          table,
          `recall_stage_${i}`,
          reader.layoutAt(name, layoutLsn)?.columns.map((column) => column.name),
        );
      });
      const targets = context.targets(reader, this.staged, this.share, {
        signal: this.stopping.signal,
        onEstimate: context.onEstimate,
      });
      let copied: number;
      // Asked for first, so DuckDB reads the first table while the staging tables are made.
      const first = targets.next();
      first.catch(() => undefined);
      try {
        await createStaging(client, this.staged);
        copied = await copyByTable(client, new Map(this.staged.map((table) => [table.name, table])), targets, first, context.onStaged);
      } finally {
        // After a failure too, the targets run to their end, which removes their files.
        await first.catch(() => undefined);
        await targets.return(undefined).catch(() => undefined);
      }
      for (const table of this.staged) {
        await finishStaging(client, table, this.share, { stageLive: context.restore });
        await settleLaterChanges(client, table);
      }
      const stagedPlan: StagedPlan = { tables: new Map(this.staged.map((table) => [table.name, table])), constraints: context.constraints };
      let counts = await this.count();
      const resolved = await resolveConflicts(client, stagedPlan, context.onConflict, counts);
      // The tables with conflicts to list: marked ones, and an undo's changed-after rows (known before any was skipped).
      const conflicted = new Set([...resolved.conflicted, ...[...counts].filter(([, count]) => count.later > 0).map(([name]) => name)]);
      if (resolved.skipped > 0) counts = await this.count();
      return { ...(await this.summarise(stagedPlan, counts, reader, conflicted)), staged: copied };
    } finally {
      reader.close();
    }
  }

  /** Stops planning: the target computation ends at its next step and the connection closes. */
  stop(): void {
    this.stopping.abort();
    void this.close();
  }

  /** The writes of every staged table, counted against the live rows. */
  private async count(): Promise<Map<string, TableCount>> {
    const counts = new Map<string, TableCount>();
    for (const table of this.staged) counts.set(table.name, await countWrites(this.client, table));
    return counts;
  }

  /** Counts, and conflicts with both versions, per group. */
  private async summarise(
    staged: StagedPlan,
    counts: ReadonlyMap<string, TableCount>,
    reader: VaultReader,
    conflicted: ReadonlySet<string>,
  ): Promise<Omit<SessionPlan, 'staged'>> {
    const groups = new Map<string | null, { tables: TableSteps[]; conflicts: Conflict[]; skipped: boolean }>();
    const groupOf = (tenant: string | null) => {
      let group = groups.get(tenant);
      if (group === undefined) groups.set(tenant, (group = { tables: [], conflicts: [], skipped: false }));
      return group;
    };
    let unresolved = 0;
    for (const table of staged.tables.values()) {
      // Unchanged rows are kept too: apply writes a table without looking for live rows only when it has none.
      for (const { tenant, ...steps } of counts.get(table.name)?.diffs ?? []) groupOf(tenant).tables.push(steps);
      if (!conflicted.has(table.name)) continue;
      const listed = await listConflicts(this.client, table, this.context.onConflict, (name, later) => changedAfter(reader, name, later));
      unresolved += listed.unresolved;
      for (const conflict of listed.conflicts) {
        const group = groupOf(conflict.tenant);
        group.conflicts.push(conflict);
        if (conflict.resolution === 'skip') group.skipped = true;
      }
    }
    const listed = [...groups.entries()].map(([tenant, group]) => ({ tenant, ...group }));
    // A group that writes nothing and meets no conflict is already at the target: not part of the plan.
    return { groups: listed.filter((group) => writesOf(group) > 0 || group.conflicts.length > 0), unresolved };
  }

  /**
   * Writes the given groups of this share in batches: tenants are gathered into one
   * transaction until it holds BATCH_ROWS rows or BATCH_GROUPS tenants, so many small
   * tenants do not cost a round of statements each. A large tenant gets its own.
   * Once `signal` aborts, no batch begins, and the one under way rolls back before
   * its next write (or commits, if it wrote everything): returns then, without error.
   */
  async apply(
    groups: readonly GroupPlan[],
    plan: { readonly id: string; readonly op: 'restore' | 'undo' },
    throttle: Throttle,
    signal: AbortSignal,
    report: { readonly onBatch: (result: GroupResult) => void; readonly onWritten: (rows: number) => void },
  ): Promise<void> {
    let batch: GroupPlan[] = [];
    let rows = 0;
    const write = async (): Promise<void> => {
      if (batch.length === 0) return;
      const tenants = batch.map((group) => group.tenant);
      const steps = batch.flatMap((group) => group.tables);
      batch = [];
      rows = 0;
      try {
        report.onBatch(
          await applyGroup(this.client, {
            planId: plan.id,
            op: plan.op,
            tenants,
            steps,
            tables: this.staged,
            constraints: this.context.constraints,
            onWritten: report.onWritten,
            throttle,
            signal,
            recordOwn: (xid) => this.context.vault.recordOwnTransaction({ xid, op: plan.op, plan: plan.id }),
          }),
        );
      } catch (error) {
        if (!signal.aborted || error !== signal.reason) throw error;
      }
    };
    for (const group of groups) {
      if (signal.aborted) return;
      if (batch.length > 0 && (rows + writesOf(group) > BATCH_ROWS || batch.length >= BATCH_GROUPS)) await write();
      batch.push(group);
      rows += writesOf(group);
    }
    await write();
  }

  /** Whether a group is this session's. */
  owns(tenant: string | null): boolean {
    if (tenant === null) return this.share.global;
    return this.share.tenants === 'all' || this.share.tenants.includes(tenant);
  }

  /** Ends the session: its freeze lifts and its staging tables go with it. */
  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

/** Copies each target table into its staging table, one COPY at a time, each ended before the next table is read. */
async function copyByTable(
  client: pg.Client,
  tables: ReadonlyMap<string, StagedTable>,
  targets: AsyncGenerator<TargetTable>,
  first: Promise<IteratorResult<TargetTable>>,
  onPiece: (rows: number) => void,
): Promise<number> {
  let copied = 0;
  for (let next = await first; !next.done; next = await targets.next()) {
    const staged = tables.get(next.value.table);
    if (staged === undefined) throw new InternalError(`targets came for ${next.value.table}, which has no staging table`);
    copied += await copyTargets(client, staged, next.value.pieces, onPiece);
  }
  return copied;
}
