// Every failure Recall expects, one class per kind. Each carries a stable code,
// the exit code the CLI uses for it, and a hint that tells the user what to do.

/** Exit codes of the command line (DESIGN.md): stable, documented in README. */
export const ExitCode = {
  ok: 0,
  operational: 1,
  badInput: 2,
  mismatch: 3,
  /** SIGINT or SIGTERM stopped the command before all of its work was done (128 + SIGINT's number, as shells report it). */
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The root of every error Recall raises on purpose. */
export abstract class RecallError extends Error {
  abstract readonly code: string;
  abstract readonly exitCode: ExitCode;
  readonly hint: string | undefined;

  constructor(message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.hint = hint;
  }
}

/** The base class of one kind of error: its stable code and its exit code, declared once. */
function errorKind<Code extends string>(code: Code, exitCode: ExitCode) {
  return class extends RecallError {
    readonly code: Code = code;
    readonly exitCode: ExitCode = exitCode;
  };
}

/** A flag, argument or setting is malformed or missing. */
export class UsageError extends errorKind('bad-usage', ExitCode.badInput) {}

/** One problem found before any work, with its fix; errors that find several list them all at once. */
export interface Problem {
  readonly problem: string;
  readonly fix: string;
}

/** Problems as the lines of one message: each, then its fix. */
function problemLines(problems: readonly Problem[]): string {
  return problems.map((p) => `  - ${p.problem}\n    fix: ${p.fix}`).join('\n');
}

/** One problem in recall.yml; its text names the key and its line. */
export type ConfigProblem = Problem;

/** recall.yml is malformed, or names tables and columns the source does not have; every problem is listed at once. */
export class ConfigError extends errorKind('bad-config', ExitCode.badInput) {
  readonly problems: readonly ConfigProblem[];

  constructor(file: string, problems: readonly ConfigProblem[]) {
    const [only] = problems;
    if (problems.length === 1 && only !== undefined) super(only.problem, only.fix);
    else super(`${file} has ${problems.length} problems:\n${problemLines(problems)}`, `fix ${file}, then run the command again`);
    this.problems = problems;
  }
}

/** A point on the timeline is malformed, before the history or in the future. */
export class PointError extends errorKind('bad-point', ExitCode.badInput) {}

/** A point lies before the history starts: the vault cannot know that state. */
export class PointBeforeHistoryError extends PointError {}

/** A point inside a gap in the history: the state there was never seen. */
export class PointInGapError extends PointError {}

/** The source's own files are damaged: an index and its table disagree, or a page is unreadable. */
export class SourceDamagedError extends errorKind('source-damaged', ExitCode.operational) {}

/** Capture found a gap in the history (a lost or re-created slot, another or rewound source) and recorded it. */
export class HistoryGapError extends errorKind('history-gap', ExitCode.operational) {}

/** The tenant never appears in the history. */
export class UnknownTenantError extends errorKind('unknown-tenant', ExitCode.badInput) {}

/** The table is not part of the captured source. */
export class UnknownTableError extends errorKind('unknown-table', ExitCode.badInput) {}

/** The source cannot be reached (host down, wrong port, network). Retried where it makes sense. */
export class SourceUnreachableError extends errorKind('source-unreachable', ExitCode.operational) {}

/** The source refused our credentials or our database name. */
export class SourceAuthError extends errorKind('source-auth', ExitCode.badInput) {}

/** One problem `recall init` found on the source, with its fix. */
export type SourceProblem = Problem;

/** The source is not ready for capture; every problem is listed at once. */
export class SourceNotReadyError extends errorKind('source-not-ready', ExitCode.badInput) {
  readonly problems: readonly SourceProblem[];

  constructor(problems: readonly SourceProblem[]) {
    super(
      `the source is not ready for capture (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problemLines(problems)}`,
      'fix the problems above, then run `recall init` again',
    );
    this.problems = problems;
  }
}

/** The vault does not exist yet, or is not a Recall vault. */
export class VaultMissingError extends errorKind('vault-missing', ExitCode.badInput) {}

/** The vault's path cannot hold a vault: a file, not writable, on a read-only file system, or under a missing directory. */
export class VaultPathError extends errorKind('bad-vault-path', ExitCode.badInput) {}

/** The object store refused the credentials Recall found (wrong key, expired token, no permission on the bucket). */
export class VaultAuthError extends errorKind('vault-auth', ExitCode.badInput) {}

/** The object store cannot be reached (endpoint down, wrong port, network); retried with backoff before this. */
export class VaultUnreachableError extends errorKind('vault-unreachable', ExitCode.operational) {}

/** The vault belongs to another database than the source given. */
export class VaultMismatchError extends errorKind('vault-of-another-source', ExitCode.badInput) {}

/** A vault file failed its checksum, the manifest chain is broken, or LSNs have a gap. */
export class VaultCorruptError extends errorKind('vault-corrupt', ExitCode.operational) {}

/** `recall verify --vault` found damaged, missing or altered files; each is listed. */
export class VaultFaultsError extends errorKind('vault-faults', ExitCode.mismatch) {}

/** Another writer committed a manifest version first: two captures on one vault. */
export class VaultConflictError extends errorKind('vault-conflict', ExitCode.operational) {}

/** Another process committed the manifest version this one tried to: the commit may be recomputed on the newer state and tried again. */
export class CommitRaceLostError extends VaultConflictError {}

/** The replication slot is gone or unusable; the history has a hole from here. */
export class SlotLostError extends errorKind('slot-lost', ExitCode.operational) {}

/** The slot name a new vault would use already names a slot that is not provably this vault's. */
export class SlotTakenError extends errorKind('slot-taken', ExitCode.badInput) {}

/** The slot is in use by another connection (often a capture that just died); capture waits for it. */
export class SlotBusyError extends errorKind('slot-busy', ExitCode.operational) {}

/** Capture cannot ingest a transaction (memory, disk, a file-size limit): it stops, naming the transaction, instead of looping. */
export class CaptureStuckError extends errorKind('capture-stuck', ExitCode.operational) {}

/** The vault does not hold everything committed on the source yet, and could not catch up in time. */
export class VaultBehindError extends errorKind('vault-behind', ExitCode.operational) {}

/** The source lacks a privilege a restore needs (the message names it). */
export class MissingPrivilegeError extends errorKind('missing-privilege', ExitCode.badInput) {}

/** A restore could not freeze the affected rows: a writer kept them busy too long. */
export class FreezeError extends errorKind('freeze-timeout', ExitCode.operational) {}

/** A plan has conflicts that --on-conflict did not resolve; nothing was written. */
export class UnresolvedConflictsError extends errorKind('unresolved-conflicts', ExitCode.mismatch) {}

/** The table, as it is now, refuses target rows (a constraint or type changed since the point); nothing was written. */
export class TargetRejectedError extends errorKind('target-rejected', ExitCode.mismatch) {}

/** DuckDB's share of the memory budget did not hold what the plan's target rows needed; nothing was written. */
export class TargetMemoryError extends errorKind('target-out-of-memory', ExitCode.operational) {}

/** After apply, the rows did not equal the target; that tenant's transaction was rolled back. */
export class VerifyMismatchError extends errorKind('verify-mismatch', ExitCode.mismatch) {}

/** The source has no replication slot or walsender free for a temporary slot (verify's snapshot). */
export class NoFreeSlotError extends errorKind('no-free-slot', ExitCode.operational) {}

/** `recall verify` found the live database and the history apart. */
export class LiveDiffersError extends errorKind('live-differs', ExitCode.mismatch) {}

/**
 * A signal (SIGINT, SIGTERM) stopped a restore or undo at a safe point before every
 * tenant was written: each tenant was either committed whole or left untouched, and
 * the error lists which (the global tables are null).
 */
export class InterruptedError extends errorKind('interrupted', ExitCode.interrupted) {
  constructor(
    message: string,
    hint: string,
    readonly committed: readonly (string | null)[] = [],
    readonly untouched: readonly (string | null)[] = [],
  ) {
    super(message, hint);
  }
}

/** Something went wrong that Recall did not expect: a bug. */
export class InternalError extends errorKind('internal', ExitCode.operational) {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'this is a bug in Recall: please report it with the command you ran', options);
  }
}
