// Before a restore or undo plans anything, the vault must hold every change
// committed on the source so far: otherwise the plan would miss the newest writes.
// If a `recall capture` holds the slot, wait for it to acknowledge the current WAL
// position (it acknowledges only what is durable); if none runs, capture here.

import type pg from 'pg';
import { SlotLostError, VaultBehindError } from '../errors.js';
import { assertNoGap, capture } from '../capture/index.js';
import { readSourceIdentity, sleep, type SourceConfig, type TenancyConfig } from '../source/index.js';
import { formatLsn, parseLsn } from '../timeline/index.js';
import type { Vault } from '../vault/index.js';

/** What catching up needs. */
export interface CatchUpOptions {
  readonly source: SourceConfig;
  readonly vault: Vault;
  readonly tenancy: TenancyConfig;
  readonly log: (line: string) => void;
  /** How long to wait for a running capture. */
  readonly timeoutMs: number;
  /** Why this catch-up runs, when a command catches up more than once (the log line says which). */
  readonly reason?: string;
  /** Once aborted, the wait (or the capture here) stops and catchUp throws the signal's reason. */
  readonly signal?: AbortSignal;
}

/** How long a restore waits, unless told otherwise, for a running capture to catch up. */
export const DEFAULT_CATCH_UP_WAIT_MS = 60_000;

const POLL_MS = 100;

/** Returns once the vault holds everything committed on the source before the call. */
export async function catchUp(client: pg.Client, options: CatchUpOptions): Promise<void> {
  // A slot already past this vault's record would look caught up while history is missing.
  await assertNoGap(client, options.vault, await readSourceIdentity(client));
  const slot = options.vault.manifest.source.slot;
  const { rows } = await client.query<{ target: string }>('SELECT pg_current_wal_lsn()::text AS target');
  const target = parseLsn(rows[0]?.target ?? '0/0') ?? 0n;
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const { rows: slots } = await client.query<{ active: string; confirmed: string | null }>(
      'SELECT active, confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    const state = slots[0];
    if (state === undefined) {
      throw new SlotLostError(
        `the replication slot "${slot}" is gone`,
        'it went away while catching up; run `recall capture`: it records the gap, and `recall init --resume` continues after it',
      );
    }
    const confirmed = state.confirmed === null ? 0n : (parseLsn(state.confirmed) ?? 0n);
    if (confirmed >= target) break;
    if (state.active !== 't') {
      const reason = options.reason === undefined ? '' : ` (${options.reason})`;
      options.log(`catching up${reason}: the vault is ${target - confirmed} bytes behind the source; capturing them first`);
      await capture({
        source: options.source,
        vault: options.vault,
        tenancy: options.tenancy,
        untilCaughtUp: true,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      // A capture stopped by the signal returns as if caught up.
      options.signal?.throwIfAborted();
      return;
    }
    if (Date.now() > deadline) {
      throw new VaultBehindError(
        `the vault is ${target - confirmed} bytes behind the source (lsn:${formatLsn(confirmed)} of lsn:${formatLsn(target)})`,
        'the running `recall capture` has not caught up; check it with `recall status`, then run again (or wait longer with --catch-up-timeout)',
      );
    }
    await sleep(POLL_MS, options.signal);
    options.signal?.throwIfAborted();
  }
  await options.vault.refresh();
}
