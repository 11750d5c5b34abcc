// Whether the vault is missing history: its slot was acknowledged past the furthest
// position the vault records acknowledging. Capture records a position before it
// sends it, so that can only happen to a vault that is not the one capture wrote:
// a copy taken before the last capture, or a vault put back from a backup. Such a
// vault must never plan a restore or claim to be complete over the gap.

import type pg from 'pg';
import { MissingHistoryError } from '../errors.js';
import { formatLsn, parseLsn, type Lsn } from '../timeline/index.js';
import type { Vault } from '../vault/index.js';

/** The gap, if the slot is past the vault's record: what the slot was acknowledged to, and what the vault recorded. */
export interface HistoryGap {
  readonly slot: string;
  readonly confirmedLsn: Lsn;
  readonly acknowledgedLsn: Lsn;
}

/**
 * Compares the slot's confirmed position with the vault's record. The slot is read
 * first and the vault's newest record after it: a capture running meanwhile records
 * before it sends, so a record read later is never behind what the slot showed.
 * Refreshes the vault's manifest. Undefined when nothing is missing, when the slot is
 * gone (other checks say so), or for a vault of an earlier release, which kept no record.
 */
export async function findHistoryGap(client: pg.Client, vault: Vault): Promise<HistoryGap | undefined> {
  const slot = vault.manifest.source.slot;
  const { rows } = await client.query<{ confirmed: string | null }>(
    'SELECT confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()',
    [slot],
  );
  const confirmed = rows[0]?.confirmed == null ? undefined : parseLsn(rows[0].confirmed);
  await vault.refresh();
  const acknowledged = await vault.acknowledgedLsn();
  if (confirmed === undefined || acknowledged === undefined || confirmed <= acknowledged) return undefined;
  return { slot, confirmedLsn: confirmed, acknowledgedLsn: acknowledged };
}

/** What a gap means, in one line. */
export function describeHistoryGap(gap: HistoryGap): string {
  return `the vault is missing history: its slot "${gap.slot}" was acknowledged up to lsn:${formatLsn(gap.confirmedLsn)}, but this vault records only lsn:${formatLsn(gap.acknowledgedLsn)} (is it a copy taken before the last capture, or restored from a backup?)`;
}

/** Refuses to go on over a gap: restore, undo and capture never plan or claim completeness across one. */
export async function assertNoHistoryGap(client: pg.Client, vault: Vault): Promise<void> {
  const gap = await findHistoryGap(client, vault);
  if (gap === undefined) return;
  throw new MissingHistoryError(
    describeHistoryGap(gap),
    `use the vault that \`recall capture\` writes to; the changes between these positions are gone from the slot, so this vault cannot be completed: start a new one with \`recall init --vault NEW_PATH\``,
  );
}
