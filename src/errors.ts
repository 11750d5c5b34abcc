// Every failure Recall expects, one class per kind. Each carries a stable code,
// the exit code the CLI uses for it, and a hint that tells the user what to do.

/** Exit codes of the command line (DESIGN.md): stable, documented in README. */
export const ExitCode = {
  ok: 0,
  operational: 1,
  badInput: 2,
  mismatch: 3,
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

/** A flag, argument or setting is malformed or missing. */
export class UsageError extends RecallError {
  readonly code = 'bad-usage';
  readonly exitCode = ExitCode.badInput;
}

/** A point on the timeline is malformed, before the history or in the future. */
export class PointError extends RecallError {
  readonly code = 'bad-point';
  readonly exitCode = ExitCode.badInput;
}

/** A point lies before the history starts: the vault cannot know that state. */
export class PointBeforeHistoryError extends PointError {}

/** The tenant never appears in the history. */
export class UnknownTenantError extends RecallError {
  readonly code = 'unknown-tenant';
  readonly exitCode = ExitCode.badInput;
}

/** The table is not part of the captured source. */
export class UnknownTableError extends RecallError {
  readonly code = 'unknown-table';
  readonly exitCode = ExitCode.badInput;
}

/** The source cannot be reached (host down, wrong port, network). Retried where it makes sense. */
export class SourceUnreachableError extends RecallError {
  readonly code = 'source-unreachable';
  readonly exitCode = ExitCode.operational;
}

/** The source refused our credentials or our database name. */
export class SourceAuthError extends RecallError {
  readonly code = 'source-auth';
  readonly exitCode = ExitCode.badInput;
}

/** One problem `recall init` found on the source, with its fix. */
export interface SourceProblem {
  readonly problem: string;
  readonly fix: string;
}

/** The source is not ready for capture; every problem is listed at once. */
export class SourceNotReadyError extends RecallError {
  readonly code = 'source-not-ready';
  readonly exitCode = ExitCode.badInput;
  readonly problems: readonly SourceProblem[];

  constructor(problems: readonly SourceProblem[]) {
    super(
      `the source is not ready for capture (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  - ${p.problem}\n    fix: ${p.fix}`).join('\n'),
      'fix the problems above, then run `recall init` again',
    );
    this.problems = problems;
  }
}

/** The vault does not exist yet, or is not a Recall vault. */
export class VaultMissingError extends RecallError {
  readonly code = 'vault-missing';
  readonly exitCode = ExitCode.badInput;
}

/** The vault belongs to another database than the source given. */
export class VaultMismatchError extends RecallError {
  readonly code = 'vault-of-another-source';
  readonly exitCode = ExitCode.badInput;
}

/** A vault file failed its checksum, the manifest chain is broken, or LSNs have a gap. */
export class VaultCorruptError extends RecallError {
  readonly code = 'vault-corrupt';
  readonly exitCode = ExitCode.operational;
}

/** Another writer committed a manifest version first: two captures on one vault. */
export class VaultConflictError extends RecallError {
  readonly code = 'vault-conflict';
  readonly exitCode = ExitCode.operational;
}

/** The replication slot is gone or unusable; the history has a hole from here. */
export class SlotLostError extends RecallError {
  readonly code = 'slot-lost';
  readonly exitCode = ExitCode.operational;
}

/** The slot is in use by another connection (often a capture that just died); capture waits for it. */
export class SlotBusyError extends RecallError {
  readonly code = 'slot-busy';
  readonly exitCode = ExitCode.operational;
}

/** Something went wrong that Recall did not expect: a bug. */
export class InternalError extends RecallError {
  readonly code = 'internal';
  readonly exitCode = ExitCode.operational;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'this is a bug in Recall: please report it with the command you ran', options);
  }
}
