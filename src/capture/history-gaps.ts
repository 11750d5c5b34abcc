// Finding gaps in the history before anything streams over one: the slot dropped,
// invalidated or ahead of the vault's record (re-created, or this vault is an older
// copy), the source another server or gone back behind the vault. A gap found is
// recorded in the manifest (vault/gaps.ts) and stops capture loudly; `recall init
// --resume` closes it with a fresh image.
//
// The slot-ahead test rests on capture recording each position before it sends it:
// the slot can then never be acknowledged past the vault's record, unless the slot
// (or the vault) is not the one capture wrote.

import type pg from 'pg';
import { HistoryGapError } from '../errors.js';
import { formatLsn, parseLsn, type Lsn } from '../timeline/index.js';
import { openGap, type GapCause, type GapRecord, type Manifest, type Vault } from '../vault/index.js';
import type { SourceFacts } from '../source/index.js';

/** A gap found on the source, not yet recorded. */
export interface GapFinding {
  readonly cause: GapCause;
  readonly detail: string;
}

/** Where the source's WAL is now (replayed, on a standby). */
async function walPosition(client: pg.Client): Promise<Lsn> {
  const { rows } = await client.query<{ lsn: string | null }>(
    `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text AS lsn`,
  );
  return parseLsn(rows[0]?.lsn ?? '0/0') ?? 0n;
}

/**
 * What, if anything, the vault has missed. The slot is read first, the vault's newest
 * record after it, and the source's WAL position last: a capture running meanwhile
 * records before it sends, so a record read later is never behind what the slot
 * showed, and the position read last is never behind any record read before it.
 * Refreshes the manifest.
 */
export async function findGap(client: pg.Client, vault: Vault, identity: SourceFacts): Promise<GapFinding | undefined> {
  const { rows } = await client.query<{ confirmed: string | null; wal_status: string | null; database: string | null }>(
    'SELECT confirmed_flush_lsn::text AS confirmed, wal_status, database FROM pg_replication_slots WHERE slot_name = $1',
    [vault.manifest.source.slot],
  );
  await vault.refresh();
  const manifest = vault.manifest;
  const source = manifest.source;
  if (identity.systemId !== source.systemId) {
    return {
      cause: 'source-changed',
      detail: `the source is another server (system ${identity.systemId}, not ${source.systemId}): restored from a backup, or a new cluster`,
    };
  }
  // A vault of an earlier release recorded no acknowledgement: its slot may be anywhere past throughLsn.
  const acknowledged = await vault.acknowledgedLsn();
  const end = vaultEnd(manifest, acknowledged);
  const position = await walPosition(client);
  if (position < end) {
    return {
      cause: 'source-rewound',
      detail: `the source's WAL (lsn:${formatLsn(position)}) is behind the vault's end (lsn:${formatLsn(end)}): it was restored from a backup or rewound`,
    };
  }
  const slot = rows[0];
  if (slot === undefined || slot.database !== source.database) {
    return { cause: 'slot-dropped', detail: `the replication slot "${source.slot}" was dropped` };
  }
  if (slot.wal_status === 'lost') {
    return {
      cause: 'slot-invalidated',
      detail: `the replication slot "${source.slot}" was invalidated: the source removed WAL it still needed (max_slot_wal_keep_size)`,
    };
  }
  const confirmed = slot.confirmed === null ? undefined : parseLsn(slot.confirmed);
  if (confirmed !== undefined && acknowledged !== undefined && confirmed > acknowledged) {
    return {
      cause: 'slot-ahead',
      detail: `the vault is missing history: its slot "${source.slot}" was acknowledged up to lsn:${formatLsn(confirmed)}, but this vault records only lsn:${formatLsn(acknowledged)} (was the slot dropped and created again, or is this vault a copy taken before the last capture?)`,
    };
  }
  return undefined;
}

/**
 * The furthest position the vault holds anything at: its last commit, the furthest
 * acknowledgement it recorded, and the end of every layer (a rewritten table's image
 * sits at its own slot's point, past the last commit). A source's WAL behind it has
 * gone back in time; a resume must start past it.
 */
export function vaultEnd(manifest: Manifest, acknowledged: Lsn | undefined): Lsn {
  let end = acknowledged !== undefined && acknowledged > manifest.throughLsn ? acknowledged : manifest.throughLsn;
  for (const layer of manifest.layers) if (layer.maxLsn > end) end = layer.maxLsn;
  return end;
}

/** What closes a gap, as a hint. */
const RESUME_HINT =
  'the changes in the gap cannot be captured any more; `recall init --resume` takes a fresh image and continues after the gap (points on both sides stay exact)';

/** Records a finding as the vault's open gap (unless one is open already) and returns it. */
export async function recordGap(vault: Vault, finding: GapFinding): Promise<GapRecord> {
  const manifest = await vault.update((current) => {
    if (current === undefined || openGap(current) !== undefined) return undefined;
    const gap: GapRecord = {
      cause: finding.cause,
      detail: finding.detail,
      fromLsn: current.throughLsn,
      fromTime: current.throughTime,
      detectedAt: new Date().toISOString(),
    };
    return { ...current, gaps: [...(current.gaps ?? []), gap] };
  });
  const gap = openGap(manifest);
  if (gap === undefined) throw new HistoryGapError(finding.detail, RESUME_HINT);
  return gap;
}

/** The error for an open gap. */
export function gapError(gap: GapRecord): HistoryGapError {
  return new HistoryGapError(`${gap.detail}; the history stops at lsn:${formatLsn(gap.fromLsn)} with a gap`, RESUME_HINT);
}

/**
 * Refuses to go on over a gap: capture, restore and undo never stream, plan or claim
 * completeness across one. A gap found now is recorded first, so that status and every
 * later command name it; but another server is recorded as a gap only by capture
 * (`recordAnotherServer`): a restore or verify pointed at the wrong server is refused,
 * as a vault of another source is, and writes nothing. A gap recorded because the
 * source was another server is withdrawn once this vault's own server is back with its
 * slot intact: nothing was missed.
 */
export async function assertNoGap(client: pg.Client, vault: Vault, identity: SourceFacts, recordAnotherServer = false): Promise<void> {
  const finding = await findGap(client, vault, identity);
  const open = openGap(vault.manifest);
  if (finding?.cause === 'source-changed' && open === undefined && !recordAnotherServer) vault.assertSource(identity);
  if (finding !== undefined) throw gapError(open ?? (await recordGap(vault, finding)));
  if (open === undefined) return;
  if (open.cause !== 'source-changed') throw gapError(open);
  const withdrawn = await vault.update((current) => {
    const still = current === undefined ? undefined : openGap(current);
    if (current === undefined || still?.cause !== 'source-changed') return undefined;
    const gaps = (current.gaps ?? []).filter((gap) => gap.resumedLsn !== undefined);
    return { ...current, gaps: gaps.length === 0 ? undefined : gaps };
  });
  // Another gap opened meanwhile (a capture elsewhere found one): that one stands.
  const other = openGap(withdrawn);
  if (other !== undefined) throw gapError(other);
}
