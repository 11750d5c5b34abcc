// Stopping a restore or undo on request (SIGINT, SIGTERM in the CLI): a wait on the
// source is cancelled rather than sat out, and what the stop left behind is said as
// an InterruptedError, tenant by tenant.

import type pg from 'pg';
import { InterruptedError } from '../errors.js';
import { connectSource, type SourceConfig } from '../source/index.js';

/**
 * Runs `work` on `client`; if `signal` aborts meanwhile, cancels the statement under
 * way (a lock wait, say) from a connection of its own. Settles only once that cancel
 * was delivered, so it never reaches a later statement of the client (a guard's removal).
 */
export async function cancellingOnAbort<T>(
  client: pg.Client,
  source: SourceConfig,
  signal: AbortSignal | undefined,
  work: () => Promise<T>,
): Promise<T> {
  if (signal === undefined) return work();
  signal.throwIfAborted();
  let cancelling: Promise<void> | undefined;
  const cancel = (): void => {
    // node-postgres keeps the backend's pid (from BackendKeyData) but does not declare it.
    cancelling = cancelBackend(source, (client as unknown as { processID: number }).processID);
  };
  signal.addEventListener('abort', cancel, { once: true });
  try {
    return await work();
  } finally {
    signal.removeEventListener('abort', cancel);
    await cancelling;
  }
}

/** pg_cancel_backend on a connection of its own; a failure leaves the wait to its own timeout. */
async function cancelBackend(source: SourceConfig, pid: number): Promise<void> {
  try {
    const canceller = await connectSource(source);
    try {
      await canceller.query('SELECT pg_cancel_backend($1)', [pid]);
    } finally {
      await canceller.end().catch(() => undefined);
    }
  } catch {
    // The wait ends at --freeze-timeout (or --catch-up-timeout) instead.
  }
}

/** The stop came while planning: nothing was written. */
export function interruptedWhilePlanning(): InterruptedError {
  return new InterruptedError(
    'interrupted while planning; nothing was written, every tenant is untouched',
    'run the same command again when you are ready',
  );
}

/** Names shown in a message before the rest are counted (--json lists them all). */
const SHOWN_NAMES = 20;

/** The stop came during apply, before every tenant was written. */
export function interruptedDuringApply(committed: readonly (string | null)[], untouched: readonly (string | null)[]): InterruptedError {
  const total = committed.length + untouched.length;
  const written =
    committed.length === 0
      ? `none of the ${total} tenants was committed`
      : `${committed.length} of ${total} committed (${names(committed)})`;
  return new InterruptedError(
    `interrupted during apply: ${written}; not written and untouched: ${names(untouched)}`,
    'run the same command again to write the rest: the plan keeps its id, and what this run committed is not written again',
    committed,
    untouched,
  );
}

function names(tenants: readonly (string | null)[]): string {
  const shown = tenants.slice(0, SHOWN_NAMES).map((tenant) => tenant ?? '(global tables)');
  return tenants.length > SHOWN_NAMES ? `${shown.join(', ')} and ${tenants.length - SHOWN_NAMES} more` : shown.join(', ');
}
