// What restore and undo share on the command line: print the plan, stop on
// unresolved conflicts (exit 3) or after a dry run, ask on a terminal (or take
// --yes), apply with progress on stderr, and close the plan whatever happens.

import { createInterface } from 'node:readline/promises';
import { UsageError } from '../errors.js';
import type { PlanCommon, PreparedPlan } from '../restore/index.js';
import { logLine, sourceOf, tenancyOf, toJson, vaultOf, type CommandFlags } from './common.js';
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

function positiveInteger(text: string, flag: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1)
    throw new UsageError(`${flag} must be a positive whole number, not "${text}"`, `e.g. ${flag} 4`);
  return Number(text);
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
 * Checks the flags restore and undo share (before any side effect), then gives the
 * options every plan takes: source, vault, tenancy, resolution, tuning, logs, progress.
 */
export async function planOptionsOf(flags: CommandFlags & ApplyFlags): Promise<PlanCommon> {
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
    ...(bar === undefined ? {} : { progress: (progress) => bar.update(progress) }),
  };
}

/** Shows the plan, then applies it if allowed and confirmed; always closes it. */
export async function showAndApply(prepared: PreparedPlan, flags: ApplyFlags, verb: string): Promise<number> {
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
    if (!flags.yes && !(await confirm(`${verb}: apply this plan? The affected tenants stay frozen until it ends. [y/N] `))) {
      logLine(`${verb}: not applied; nothing was written`);
      return 0;
    }
    const result = await prepared.apply();
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

/** Asks on the terminal; yes only for y or yes. */
export async function confirm(question: string): Promise<boolean> {
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await prompt.question(question)).trim());
  } finally {
    prompt.close();
  }
}
