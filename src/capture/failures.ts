// Which failures capture waits out and which stop it: the source restarting or out
// of reach, the network, and the slot still held by another connection are waited
// out with backoff; anything else (a bug, a broken vault, a lost slot) stops capture.

import { RecallError, SlotBusyError, SourceUnreachableError } from '../errors.js';

/** The slot is held by another connection: after a crash of capture, the dead one holds it for a moment. */
export function slotBusy(slot: string, pid: string, cause?: unknown): SlotBusyError {
  return new SlotBusyError(`the slot "${slot}" is still held by process ${pid}`, 'is another `recall capture` running?', { cause });
}

/**
 * START_REPLICATION's refusal. Two captures may both find the slot free and both ask for it;
 * the server gives it to one and tells the other the holder's PID (55006, object in use).
 */
export function slotRefusal(error: unknown, slot: string): unknown {
  if ((error as { code?: unknown }).code !== '55006') return error;
  const pid = /PID (\d+)/.exec((error as Error).message)?.[1] ?? 'unknown';
  return slotBusy(slot, pid, error);
}

/** Errors of the network, never of the vault's disk (ENOSPC, EIO, EACCES stop capture). */
const NETWORK_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
]);

/**
 * Failures worth waiting out: the source restarting or unreachable, the network,
 * the slot still held by a capture that just died. Anything else (a bug, a broken
 * vault, a lost slot) stops capture loudly instead of looping.
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof SlotBusyError || error instanceof SourceUnreachableError) return true;
  if (error instanceof RecallError) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (/^08/.test(code) || /^57P0[1-3]$/.test(code) || code === '55006' || NETWORK_ERRNOS.has(code)))
    return true;
  return /Connection terminated|ECONNRESET|ECONNREFUSED|socket hang up|server closed the connection|encountered a connection error/i.test(
    (error as Error)?.message ?? '',
  );
}
