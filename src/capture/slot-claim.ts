// Which replication slot and publication a new vault uses, and whether a slot that
// already has that name is this vault's own. Slots are per cluster, so the default
// name holds the database and the vault's own id: two databases, or two vaults of
// one, never meet by default; and a slot is dropped only when the vault proves it
// created it and nothing has consumed it since.

import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { SlotTakenError, UsageError } from '../errors.js';
import type { SourceFacts } from '../source/index.js';
import { type SlotClaim, type Vault } from '../vault/index.js';

/** PostgreSQL's longest identifier (NAMEDATALEN - 1). */
const MAX_NAME = 63;

/** `recall_<database>_<8 hex>`, within 63 characters of [a-z0-9_]. */
export function defaultSlotName(database: string, id: string): string {
  const suffix = `_${id}`;
  const room = MAX_NAME - 'recall_'.length - suffix.length;
  const sanitised = database
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .slice(0, room);
  return `recall_${sanitised}${suffix}`;
}

/** Refuses a slot name PostgreSQL would refuse, before anything is created. */
export function assertSlotName(name: string): void {
  if (!/^[a-z0-9_]{1,63}$/.test(name)) {
    throw new UsageError(
      `--slot ${JSON.stringify(name)} is not a replication slot name`,
      'use 1 to 63 characters of lower-case letters, digits and underscores',
    );
  }
}

/** What an init of a new vault may do with the names it will use. */
export interface SlotPlan {
  readonly slot: string;
  readonly publication: string;
  /** A slot of that name this vault created earlier, unused (an init that died before its image): to drop first. */
  readonly dropLeftover: boolean;
}

/**
 * Picks the slot and publication for a new vault: the names asked for, else the ones an
 * earlier init of this vault recorded, else fresh defaults. A slot that already exists
 * is this vault's leftover only if the vault's claim names it, in this database, at the
 * consistent point it was created with, and no session holds it; any other is refused.
 */
export async function planSlot(
  client: pg.Client,
  vault: Vault,
  identity: SourceFacts,
  asked: { slot?: string | undefined; publication?: string | undefined },
): Promise<SlotPlan> {
  const claim = await vault.slotClaim();
  const ours = claim !== null && claim.systemId === identity.systemId && claim.database === identity.database ? claim : null;
  const slot = asked.slot ?? ours?.slot ?? defaultSlotName(identity.database, randomBytes(4).toString('hex'));
  const publication = asked.publication ?? (ours !== null && ours.slot === slot ? ours.publication : slot);
  const found = await existingSlot(client, slot);
  if (found === undefined) return { slot, publication, dropLeftover: false };
  if (isLeftover(ours, slot, identity.database, found)) return { slot, publication, dropLeftover: true };
  throw new SlotTakenError(
    `the replication slot "${slot}" already exists${found.database === null ? '' : ` (database "${found.database}")`} and is not this vault's`,
    `pass another --slot NAME (or leave --slot out for a name of this vault's own); drop it only if nothing uses it: SELECT pg_drop_replication_slot('${slot.replaceAll("'", "''")}')`,
  );
}

/**
 * Picks the slot for `init --resume`: the name asked for; else the vault's slot name,
 * or the one its claim names, if free or this vault's own leftover (a resume that died
 * before its commit); else a fresh name. A slot re-created under the old name by
 * someone else is never taken over or dropped.
 */
export async function planResumeSlot(client: pg.Client, vault: Vault, identity: SourceFacts, asked: string | undefined): Promise<SlotPlan> {
  const publication = vault.manifest.source.publication;
  if (asked !== undefined) return planSlot(client, vault, identity, { slot: asked, publication });
  const claim = await vault.slotClaim();
  // The claim first: a resume that died after creating its slot left it there, holding WAL.
  for (const slot of new Set([...(claim === null ? [] : [claim.slot]), vault.manifest.source.slot])) {
    const found = await existingSlot(client, slot);
    if (found === undefined) return { slot, publication, dropLeftover: false };
    if (isLeftover(claim, slot, identity.database, found)) return { slot, publication, dropLeftover: true };
  }
  return planSlot(client, vault, identity, { slot: defaultSlotName(identity.database, randomBytes(4).toString('hex')), publication });
}

/** A slot of that name, as planning needs it (text, as every value on Recall's connections). */
async function existingSlot(
  client: pg.Client,
  slot: string,
): Promise<{ database: string | null; confirmed: string | null; active: string } | undefined> {
  const { rows } = await client.query<{ database: string | null; confirmed: string | null; active: string }>(
    `SELECT database, confirmed_flush_lsn::text AS confirmed, active::text AS active FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  return rows[0];
}

function isLeftover(
  claim: SlotClaim | null,
  slot: string,
  database: string,
  found: { database: string | null; confirmed: string | null; active: string },
): boolean {
  return (
    claim !== null &&
    claim.slot === slot &&
    claim.consistentPoint !== null &&
    found.database === database &&
    found.confirmed === claim.consistentPoint &&
    found.active === 'false'
  );
}
