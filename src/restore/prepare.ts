// Planning a restore or an undo, end to end: catch the vault up, resolve what is
// selected, freeze the affected tenants (unless it is a dry run), stage the target
// state next to the live rows, find and resolve conflicts, and summarise the plan.
// The result holds the staged state in its sessions, so apply writes exactly what
// was planned and shown, under the same freeze.

import { createHash } from 'node:crypto';
import type pg from 'pg';
import { UnknownTableError, UnresolvedConflictsError, UsageError } from '../errors.js';
import {
  connectSource,
  currentWalLsn,
  readCatalog,
  assertTenancyFits,
  readConstraints,
  readSourceIdentity,
  type SourceConfig,
  type SourceTable,
  type TenancyConfig,
} from '../source/index.js';
import { formatLsn, VaultReader, type Lsn, type Point } from '../timeline/index.js';
import { openGap, queryRows, withPlanningShare, type Vault } from '../vault/index.js';
import type { GroupResult } from './apply.js';
import { catchUp, DEFAULT_CATCH_UP_WAIT_MS } from './catch-up.js';
import { DEFAULT_FREEZE_WAIT_MS, guardsInPlace, installGuards, removeGuards } from './freeze.js';
import { cancellingOnAbort, interruptedDuringApply, interruptedWhilePlanning } from './interrupt.js';
import { digestOf, totalsOf, writesOf, type ConflictResolution, type Plan, type Selection } from './plan.js';
import { PlanSession, type SessionContext, type SessionPlan, type SessionShare } from './plan-session.js';
import { restoreTargets, selectTransactions, undoTargets } from './target.js';
import { Throttle } from './throttle.js';

/** What every restore and undo needs. */
export interface PlanCommon {
  readonly source: SourceConfig;
  readonly vault: Vault;
  readonly tenancy: TenancyConfig;
  readonly onConflict?: ConflictResolution;
  /** Plan only: no freeze, and apply is refused. */
  readonly dryRun?: boolean;
  /** Sessions that stage and write tenants side by side (default 2). */
  readonly jobs?: number;
  /** Caps the write rate of apply, in rows per second. */
  readonly maxRowsPerSecond?: number;
  /** How long the freeze waits for writers already at work (default 30 s). */
  readonly freezeWaitMs?: number;
  /** How long to wait for a running capture to catch up (default 60 s). */
  readonly catchUpWaitMs?: number;
  /** Notes (stderr in the CLI). */
  readonly log?: (line: string) => void;
  /** Where staging and writing stand, as they go (a terminal's progress bar in the CLI). */
  readonly progress?: (progress: Progress) => void;
  /**
   * Stops the command at its next safe point (SIGINT or SIGTERM in the CLI): while
   * planning, the plan fails with nothing written; during apply, no transaction
   * begins and the ones under way roll back before their next write, and apply
   * fails naming the tenants committed and those left untouched (InterruptedError).
   */
  readonly signal?: AbortSignal;
}

/** Rows staged or written so far, of about `total` (staging's total is an estimate from the vault). */
export interface Progress {
  readonly step: 'staging' | 'writing';
  readonly done: number;
  readonly total: number;
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
  /** Tenants (and the global tables, if any) written. */
  readonly groups: number;
  /** Transactions they were written in: each holds whole tenants. */
  readonly transactions: number;
  readonly written: number;
}

/** Plans a restore; call apply() to write it, and close() in every case. */
export async function planRestore(options: RestoreOptions): Promise<PreparedPlan> {
  const tenants = options.tenants === 'all' ? 'all' : [...new Set(options.tenants)];
  return prepare(options, async (client, reader) => {
    const lsn = await reader.resolve(options.to);
    if (tenants !== 'all') for (const tenant of tenants) await reader.assertTenant(tenant);
    const catalog = await readCatalog(client, options.tenancy);
    const known = new Set(reader.manifest.schemas.map((schema) => schema.table));
    const tables = catalog.filter((table) => known.has(table.qualified) && (tenants === 'all' || table.tenantColumn !== undefined));
    const selection: Selection = {
      kind: 'restore',
      tenants: tenants,
      point: options.pointText ?? formatLsn(lsn),
      lsn: formatLsn(lsn),
    };
    return {
      selection,
      id: planIdOf(`restore ${JSON.stringify(tenants)} ${lsn}`),
      tables,
      tenants: tenants,
      global: tenants === 'all',
      layoutLsn: lsn,
      targets: (fresh, staged, share, hooks) => restoreTargets(fresh, staged, share.tenants, lsn, hooks),
      restore: true,
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
      global: touched.some((row) => row.tenant === null),
      layoutLsn: undefined,
      targets: (fresh, staged, share, hooks) =>
        undoTargets(fresh, staged, xids, id, { tenants: share.tenants === 'all' ? [] : share.tenants, global: share.global }, hooks),
      restore: false,
    };
  });
}

/** What a restore or undo selects, resolved against the vault. */
interface Scope {
  readonly selection: Selection;
  readonly id: string;
  readonly tables: readonly SourceTable[];
  /** The tenants involved ('all': the whole database). */
  readonly tenants: readonly string[] | 'all';
  /** Whether rows of global tables are involved. */
  readonly global: boolean;
  readonly layoutLsn: Lsn | undefined;
  readonly targets: SessionContext['targets'];
  readonly restore: boolean;
}

/** Sessions a plan runs side by side unless told otherwise. */
const DEFAULT_JOBS = 2;

async function prepare(options: PlanCommon, select: (client: pg.Client, reader: VaultReader) => Promise<Scope>): Promise<PreparedPlan> {
  const log = options.log ?? (() => undefined);
  const catchUpOptions = {
    source: options.source,
    vault: options.vault,
    tenancy: options.tenancy,
    log,
    timeoutMs: options.catchUpWaitMs ?? DEFAULT_CATCH_UP_WAIT_MS,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
  const freezeWaitMs = options.freezeWaitMs ?? DEFAULT_FREEZE_WAIT_MS;
  const client = await connectSource(options.source);
  const sessions: PlanSession[] = [];
  let guarded: readonly SourceTable[] = [];
  // The vault as the selection read it, until a session takes it over.
  let reader: VaultReader | undefined;
  try {
    // Never write one database's history into another; another server of this database is refused too, or named as the gap capture recorded (catching up).
    const identity = await readSourceIdentity(client);
    if (identity.database !== options.vault.manifest.source.database || openGap(options.vault.manifest)?.cause !== 'source-changed')
      options.vault.assertSource(identity);
    // A typo in recall.yml stops the command before catching up or planning.
    assertTenancyFits(await readCatalog(client, options.tenancy), options.tenancy);
    await catchUp(client, catchUpOptions);
    reader = await VaultReader.open(options.vault, { future: { lsn: await currentWalLsn(client), of: 'source' } });
    const scope = await select(client, reader);
    options.signal?.throwIfAborted();
    // An undo reads the vault again after the freeze (see below); a restore's first session reads through this one.
    if (!scope.restore) {
      reader.close();
      reader = undefined;
    }
    const context: SessionContext = {
      source: options.source,
      vault: options.vault,
      constraints: await readConstraints(client),
      tables: scope.tables,
      layoutLsn: scope.layoutLsn,
      targets: scope.targets,
      restore: scope.restore,
      onConflict: options.onConflict,
      ...stagingProgress(options.progress),
    };
    const shares = shareOut(scope, options.jobs ?? DEFAULT_JOBS);
    if (!options.dryRun) {
      // Set first: guards installed before a failure are removed by the cleanup below.
      guarded = scope.tables;
      await cancellingOnAbort(client, options.source, options.signal, () => installGuards(client, scope.tables, freezeWaitMs));
    }
    // Every session that opened is kept, so the cleanup below closes it even if another failed.
    const opened = await Promise.allSettled(
      shares.map((share) =>
        PlanSession.open(context, share, {
          freeze: !options.dryRun,
          waitMs: freezeWaitMs,
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        }),
      ),
    );
    for (const result of opened) if (result.status === 'fulfilled') sessions.push(result.value);
    const failed = opened.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    if (!options.dryRun) await guardsInPlace(client);
    // An undo's changed-after conflicts come from the vault, so writes that committed
    // before the freeze took hold must be in it too. A restore's target is the state at
    // a point the vault already held, and the live rows it replaces are read under the
    // freeze: later history changes nothing in its plan.
    if (!options.dryRun && !scope.restore) await catchUp(client, { ...catchUpOptions, reason: 'writes committed before the freeze' });
    const given = reader;
    reader = undefined;
    const planned = await withPlanningShare(() => planAll(sessions, given, options.signal));
    log(
      `staged ${planned.reduce((sum, p) => sum + p.staged, 0)} target rows of ${scope.tables.length} table(s) in ${sessions.length} session(s)`,
    );
    const groups = planned.flatMap((p) => p.groups).sort((a, b) => (a.tenant ?? '').localeCompare(b.tenant ?? '', 'en', { numeric: true }));
    const content = {
      selection: scope.selection,
      vaultLsn: formatLsn(options.vault.manifest.throughLsn),
      groups,
      totals: totalsOf(groups),
      unresolved: planned.reduce((sum, p) => sum + p.unresolved, 0),
    };
    const plan: Plan = { id: scope.id, digest: digestOf(content), ...content };
    options.signal?.throwIfAborted();
    return new PreparedPlan(client, plan, sessions, guarded, options);
  } catch (error) {
    reader?.close();
    await Promise.all(sessions.map((session) => session.close()));
    if (guarded.length > 0) await removeGuards(client, guarded, freezeWaitMs).catch(() => undefined);
    await client.end().catch(() => undefined);
    // Whatever the stop made fail (a cancelled wait, a closed session) is the stop.
    throw options.signal?.aborted ? interruptedWhilePlanning() : error;
  }
}

/** Counts staged rows across sessions against the sum of their estimates. */
function stagingProgress(progress: PlanCommon['progress']): Pick<SessionContext, 'onStaged' | 'onEstimate'> {
  let staged = 0;
  let total = 0;
  return {
    onEstimate: (rows) => (total += rows),
    onStaged: (rows) => {
      staged += rows;
      progress?.({ step: 'staging', done: staged, total: Math.max(total, staged) });
    },
  };
}

/**
 * Plans every session side by side. When one fails, or `signal` aborts, the others
 * are stopped, and all have ended (no DuckDB statement of theirs still runs) before
 * the first failure is thrown.
 */
async function planAll(
  sessions: readonly PlanSession[],
  given: VaultReader | undefined,
  signal: AbortSignal | undefined,
): Promise<SessionPlan[]> {
  let failure: { error: unknown } | undefined;
  const stopAll = (): void => {
    for (const session of sessions) session.stop();
  };
  signal?.addEventListener('abort', stopAll, { once: true });
  if (signal?.aborted) stopAll();
  const settled = await Promise.allSettled(
    sessions.map((session, i) =>
      session.plan(i === 0 ? given : undefined).catch((error: unknown) => {
        if (failure === undefined) {
          failure = { error };
          for (const other of sessions) if (other !== session) other.stop();
        }
        throw error;
      }),
    ),
  );
  signal?.removeEventListener('abort', stopAll);
  if (failure !== undefined) throw failure.error;
  return settled.map((result) => (result as PromiseFulfilledResult<SessionPlan>).value);
}

/** Deals the tenants round-robin to at most `jobs` sessions; the first also takes the global rows. */
function shareOut(scope: Scope, jobs: number): SessionShare[] {
  if (scope.tenants === 'all') return [{ tenants: 'all', global: true }];
  const count = Math.max(1, Math.min(jobs, scope.tenants.length));
  const shares = Array.from({ length: count }, (_, i) => ({ tenants: [] as string[], global: i === 0 && scope.global }));
  [...scope.tenants].sort().forEach((tenant, i) => shares[i % count]?.tenants.push(tenant));
  return shares;
}

/** A short, stable id: the same selection always gets the same id. */
function planIdOf(selection: string): string {
  return createHash('sha256').update(selection).digest('hex').slice(0, 12);
}

/** A computed plan with its sessions (staged rows, and unless a dry run, the freeze). */
export class PreparedPlan {
  private closed = false;

  constructor(
    private readonly client: pg.Client,
    readonly plan: Plan,
    private readonly sessions: readonly PlanSession[],
    private readonly guarded: readonly SourceTable[],
    private readonly options: PlanCommon,
  ) {}

  /**
   * Writes every group that is not skipped, one transaction each, the sessions side
   * by side; refuses while conflicts are unresolved. When one session fails, the
   * others stop at their next safe point before the failure is thrown; when the
   * options' signal aborts, all do, and unless every group was written by then,
   * apply throws an InterruptedError naming the tenants committed and untouched.
   */
  async apply(): Promise<ApplyResult> {
    if (this.options.dryRun) throw new UsageError('a dry-run plan cannot be applied', 'plan again without dryRun to apply');
    this.assertResolved();
    const groups = this.plan.groups.filter((group) => !group.skipped && writesOf(group) > 0);
    const throttle = new Throttle(this.options.maxRowsPerSecond);
    const results: GroupResult[] = [];
    let done = 0;
    const onBatch = (result: GroupResult): void => {
      results.push(result);
      done += result.tenants.length;
    };
    const total = groups.reduce((sum, group) => sum + writesOf(group), 0);
    let written = 0;
    const onWritten = (rows: number): void => {
      written += rows;
      this.options.progress?.({ step: 'writing', done: written, total: Math.max(total, written) });
    };
    const plan = { id: this.plan.id, op: this.plan.selection.kind };
    const stop = new AbortController();
    const interrupted = this.options.signal;
    const onInterrupt = (): void => stop.abort();
    if (interrupted?.aborted) stop.abort();
    interrupted?.addEventListener('abort', onInterrupt, { once: true });
    try {
      const settled = await Promise.allSettled(
        this.sessions.map((session) =>
          session
            .apply(
              groups.filter((group) => session.owns(group.tenant)),
              plan,
              throttle,
              stop.signal,
              { onBatch, onWritten },
            )
            .catch((error: unknown) => {
              stop.abort();
              throw error;
            }),
        ),
      );
      const failed = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    } finally {
      interrupted?.removeEventListener('abort', onInterrupt);
    }
    const committed = new Set(results.flatMap((result) => result.tenants));
    if (committed.size < groups.length) {
      const tenants = groups.map((group) => group.tenant);
      throw interruptedDuringApply(
        tenants.filter((tenant) => committed.has(tenant)),
        tenants.filter((tenant) => !committed.has(tenant)),
      );
    }
    return { planId: this.plan.id, groups: done, transactions: results.length, written: results.reduce((sum, r) => sum + r.written, 0) };
  }

  /** Throws (exit 3) while the plan has conflicts --on-conflict did not resolve. */
  assertResolved(): void {
    const n = this.plan.unresolved;
    if (n === 0) return;
    throw new UnresolvedConflictsError(
      `the plan has ${n} unresolved conflict${n === 1 ? '' : 's'}; nothing was written`,
      'resolve them with --on-conflict skip (leave those tenants out), theirs (keep the live rows) or ours (overwrite later changes)',
    );
  }

  /** Ends the sessions (the freeze lifts), removes the guards, and closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await Promise.all(this.sessions.map((session) => session.close()));
      const left =
        this.guarded.length > 0 ? await removeGuards(this.client, this.guarded, this.options.freezeWaitMs ?? DEFAULT_FREEZE_WAIT_MS) : [];
      if (left.length > 0) {
        const reasons = left.map(({ table, why }) =>
          why === 'not-owner' ? `${table} (dropping a trigger takes the table's owner)` : `${table} (a transaction was using it)`,
        );
        this.options.log?.(`note: the freeze's guard trigger stays on ${reasons.join(', ')}; it blocks nothing while no restore runs`);
      }
    } finally {
      await this.client.end().catch(() => undefined);
    }
  }
}
