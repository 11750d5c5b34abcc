// What restore and undo share on the command line: print the plan, stop on
// unresolved conflicts (exit 3) or after a dry run, ask on a terminal (or take
// --yes), apply with progress on stderr, and close the plan whatever happens.
// SIGINT and SIGTERM stop it at the next safe point, and the guards go as usual.

import { createInterface } from 'node:readline/promises';
import { InterruptedError, UsageError } from '../errors.js';
import type { ApplyResult, PlanCommon, PreparedPlan } from '../restore/index.js';
import { logLine, positiveInteger, sourceOf, tenancyOf, toJson, vaultOf, type CommandFlags } from './common.js';
import { formatPlan } from './plan-output.js';
import { terminalProgress } from './progress-bar.js';

/** The progress bar of this command, on a terminal only. */
const bar = terminalProgress();

/** A log line on stderr, below the progress bar rather than through it. */
function note(line: string): void {
  bar?.clear();
  logLine(line);
}

/** The flags every plan-then-apply command takes. */
export interface ApplyFlags {
  readonly json?: boolean;
  readonly dryRun?: boolean;
  readonly yes?: boolean;
  readonly onConflict?: string;
  readonly jobs: string;
  readonly maxRate?: string;
  readonly freezeTimeout?: string;
  readonly catchUpTimeout?: string;
}

/** The apply tuning flags (--jobs, --max-rate, the timeouts), checked before anything happens. */
function tuningOf(flags: ApplyFlags): Pick<PlanCommon, 'jobs' | 'maxRowsPerSecond' | 'freezeWaitMs' | 'catchUpWaitMs'> {
  return {
    jobs: positiveInteger(flags.jobs, '--jobs'),
    ...(flags.maxRate === undefined ? {} : { maxRowsPerSecond: positiveInteger(flags.maxRate, '--max-rate') }),
    ...(flags.freezeTimeout === undefined ? {} : { freezeWaitMs: seconds(flags.freezeTimeout, '--freeze-timeout') * 1000 }),
    ...(flags.catchUpTimeout === undefined ? {} : { catchUpWaitMs: seconds(flags.catchUpTimeout, '--catch-up-timeout') * 1000 }),
  };
}

/** Longest wait a timeout flag takes: a day (PostgreSQL's lock_timeout ends at about 24 days). */
const MAX_WAIT_SECONDS = 86_400;

function seconds(text: string, flag: string): number {
  const value = positiveInteger(text, flag);
  if (value > MAX_WAIT_SECONDS)
    throw new UsageError(`${flag} must be at most ${MAX_WAIT_SECONDS} seconds (a day), not ${text}`, `e.g. ${flag} 60`);
  return value;
}

/** The --on-conflict value, checked before anything happens. */
function resolutionOf(flags: ApplyFlags): 'skip' | 'theirs' | 'ours' | undefined {
  const value = flags.onConflict;
  if (value === undefined) return undefined;
  if (value === 'skip' || value === 'theirs' || value === 'ours') return value;
  throw new UsageError(`--on-conflict must be skip, theirs or ours, not "${value}"`, 'see `recall restore --help` for what each one does');
}

/** Refuses, before any work, to apply without a way to confirm. */
function assertConfirmable(flags: ApplyFlags): void {
  if (!flags.dryRun && !flags.yes && !process.stdin.isTTY) {
    throw new UsageError('not asking for confirmation without a terminal', 'pass --yes to apply, or --dry-run to see the plan only');
  }
}

/**
 * Runs a restore or undo: checks the flags, plans, shows and applies. From the start,
 * SIGINT and SIGTERM stop it at the next safe point (exit 130 unless every tenant was
 * written by then); after the first, a second signal ends the process at once.
 */
export async function planAndApply(
  flags: CommandFlags & ApplyFlags,
  verb: string,
  plan: (common: PlanCommon) => Promise<PreparedPlan>,
): Promise<number> {
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    // Listening no more, so the next signal takes the default action: the process ends.
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    note(
      `${verb}: ${signal} received; stopping at the next safe point (a transaction under way commits or rolls back whole); a second signal ends Recall at once`,
    );
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const prepared = await plan(await planOptionsOf(flags, stop.signal));
    const code = await showAndApply(prepared, flags, verb, stop.signal);
    // Here the signal came after the last commit (or with nothing to write): nothing was left undone.
    if (stop.signal.aborted) note(`${verb}: the signal came after the work was done; nothing is left undone`);
    return code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * Checks the flags restore and undo share (before any side effect), then gives the
 * options every plan takes: source, vault, tenancy, resolution, tuning, logs, progress, the stop signal.
 */
async function planOptionsOf(flags: CommandFlags & ApplyFlags, signal: AbortSignal): Promise<PlanCommon> {
  const onConflict = resolutionOf(flags);
  const tuning = tuningOf(flags);
  assertConfirmable(flags);
  return {
    source: sourceOf(flags),
    vault: await vaultOf(flags),
    tenancy: tenancyOf(flags),
    ...(onConflict === undefined ? {} : { onConflict }),
    dryRun: flags.dryRun === true,
    ...tuning,
    log: note,
    signal,
    ...(bar === undefined ? {} : { progress: (progress) => bar.update(progress) }),
  };
}

/** Shows the plan, then applies it if allowed and confirmed; always closes it. */
async function showAndApply(prepared: PreparedPlan, flags: ApplyFlags, verb: string, signal: AbortSignal): Promise<number> {
  const started = Date.now();
  try {
    const plan = prepared.plan;
    bar?.clear();
    if (flags.json) process.stdout.write(`${toJson({ plan })}\n`);
    else process.stdout.write(formatPlan(plan));
    prepared.assertResolved();
    if (flags.dryRun) return 0;
    if (plan.totals.insert + plan.totals.update + plan.totals.delete === 0) {
      note(`${verb}: nothing to write`);
      return 0;
    }
    const confirmed =
      flags.yes === true || (await confirm(`${verb}: apply this plan? The affected tenants stay frozen until it ends. [y/N] `, signal));
    // A prompt ended by a signal goes on to apply, which begins nothing and names every tenant untouched.
    if (!confirmed && !signal.aborted) {
      logLine(`${verb}: not applied; nothing was written`);
      return 0;
    }
    const result = await applied(prepared, flags);
    bar?.clear();
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (flags.json) process.stdout.write(`${toJson({ applied: result })}\n`);
    logLine(
      `${verb}: wrote ${result.written} row(s) of ${result.groups} tenant(s) in ${result.transactions} transaction(s), each holding whole tenants and verified against the target before commit, in ${seconds} s (plan ${result.planId})`,
    );
    return 0;
  } finally {
    await prepared.close();
  }
}

/** Applies the plan; an interrupted apply is also told on stdout under --json, as {"interrupted": …}. */
async function applied(prepared: PreparedPlan, flags: ApplyFlags): Promise<ApplyResult> {
  try {
    return await prepared.apply();
  } catch (error) {
    if (flags.json && error instanceof InterruptedError) {
      const { committed, untouched } = error;
      process.stdout.write(`${toJson({ interrupted: { planId: prepared.plan.id, committed, untouched } })}\n`);
    }
    throw error;
  }
}

/** Asks on the terminal; yes only for y or yes. A signal (or Ctrl-C, which the terminal hands to the prompt) answers no. */
export async function confirm(question: string, signal?: AbortSignal): Promise<boolean> {
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  // In raw mode Ctrl-C reaches the prompt, not the process: raise the signal it stands for
  // (a restore stops at its safe point; a command that does not listen ends, as Ctrl-C would end it).
  prompt.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
  try {
    return /^y(es)?$/i.test((await prompt.question(question, signal === undefined ? {} : { signal })).trim());
  } catch (error) {
    if (signal?.aborted) return false;
    throw error;
  } finally {
    prompt.close();
  }
}
