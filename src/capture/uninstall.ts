// `recall uninstall`: what Recall put into the source, found and then removed. The
// slot goes first, since it holds WAL; then the publication, guard triggers a crashed
// restore left, and, unless another vault of the database still uses them, the DDL
// hook and the `recall` schema. The vault is never touched: its history stays readable.

import type pg from 'pg';
import { MissingPrivilegeError, SlotBusyError } from '../errors.js';
import { readCatalog, type TenancyConfig } from '../source/index.js';
import { removeGuards } from '../restore/freeze.js';
import type { Vault } from '../vault/index.js';

/** What Recall put into the source for this vault, and what it shares with other vaults. */
export interface Installed {
  /** The vault's slot, with the WAL it holds on the source. */
  readonly slot: { readonly name: string; readonly walHeldBytes: number | null } | null;
  readonly publication: string | null;
  /** Tables with a guard trigger left by a restore that died. */
  readonly guards: readonly string[];
  readonly ddlHook: boolean;
  readonly schema: boolean;
  /** Other Recall slots of this database: the DDL hook and the schema stay while they exist. */
  readonly otherSlots: readonly string[];
}

/** What removal left in place, and why. */
export interface Uninstalled {
  readonly removed: readonly string[];
  readonly kept: readonly string[];
}

/** Finds what Recall put into the source for this vault (its manifest, or an unfinished init's record, names the slot). */
export async function findInstalled(client: pg.Client, vault: Vault): Promise<Installed> {
  const claim = await vault.slotClaim();
  const own = vault.initialized ? vault.manifest.source : claim;
  const slots = await client.query<{ name: string; held: string | null }>(
    `SELECT slot_name AS name, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text AS held
       FROM pg_replication_slots WHERE database = current_database() AND plugin = 'pgoutput' AND slot_name LIKE 'recall%'`,
  );
  const slot = slots.rows.find((row) => row.name === own?.slot);
  const publication =
    own === null ? null : (await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [own.publication])).rowCount === 1;
  const hook = await client.query(`SELECT 1 FROM pg_event_trigger WHERE evtname = 'recall_announce_layout'`);
  const schema = await client.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'recall'`);
  return {
    slot: slot === undefined ? null : { name: slot.name, walHeldBytes: slot.held === null ? null : Number(slot.held) },
    publication: publication === true && own !== null ? own.publication : null,
    guards: await guardedTables(client),
    ddlHook: hook.rowCount === 1,
    schema: schema.rowCount === 1,
    otherSlots: slots.rows.filter((row) => row.name !== own?.slot).map((row) => row.name),
  };
}

/** Removes what findInstalled found, slot first; refuses while capture holds the slot. */
export async function removeInstalled(client: pg.Client, installed: Installed, tenancy: TenancyConfig): Promise<Uninstalled> {
  const removed: string[] = [];
  const kept: string[] = [];
  /** Runs the statements that remove `what`; a missing privilege names who may. */
  const remove = async (what: string, statements: readonly string[]): Promise<void> => {
    try {
      for (const sql of statements) await client.query(sql);
      removed.push(what);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === '55006')
        throw new SlotBusyError(`${what} is in use`, 'stop `recall capture` first, then run uninstall again', { cause: error });
      if (code === '42501') {
        throw new MissingPrivilegeError(`removing ${what} needs its owner or a superuser`, 'run `recall uninstall` as a superuser', {
          cause: error,
        });
      }
      if (code === '2BP01') kept.push(`${what}: it holds objects Recall did not put there`);
      else throw error;
    }
  };
  if (installed.slot !== null) {
    await remove(`the replication slot ${installed.slot.name}`, [`SELECT pg_drop_replication_slot(${quoteLiteral(installed.slot.name)})`]);
  }
  if (installed.publication !== null) {
    await remove(`the publication ${installed.publication}`, [
      `DROP PUBLICATION IF EXISTS ${client.escapeIdentifier(installed.publication)}`,
    ]);
  }
  if (installed.guards.length > 0) {
    const tables = (await readCatalog(client, tenancy)).filter((table) => installed.guards.includes(table.qualified));
    const left = await removeGuards(client, tables, GUARD_WAIT_MS);
    const still = new Set((await guardedTables(client)).filter((table) => installed.guards.includes(table)));
    for (const table of installed.guards) {
      if (!still.has(table)) removed.push(`the guard trigger on ${table}`);
      else
        kept.push(
          `the guard trigger on ${table} (${left.find((l) => l.table === table)?.why ?? 'a restore or undo is running'}); run uninstall again once it ends`,
        );
    }
  }
  // Shared by every vault of the database: kept while another one's slot exists, or a guard stays.
  if (installed.otherSlots.length > 0 && (installed.ddlHook || installed.schema)) {
    kept.push(`the DDL hook and the recall schema, which the slots ${installed.otherSlots.join(', ')} of other vaults use`);
    return { removed, kept };
  }
  if (installed.ddlHook) await remove('the DDL hook', ['DROP EVENT TRIGGER IF EXISTS recall_announce_layout']);
  if (installed.schema && !kept.some((what) => what.startsWith('the guard trigger'))) {
    await remove('the recall schema and its functions', [
      'DROP FUNCTION IF EXISTS recall.announce_layout(), recall.guard()',
      'DROP SCHEMA IF EXISTS recall',
    ]);
  }
  return { removed, kept };
}

/** How long removing a guard waits for Recall's freezes to end. */
const GUARD_WAIT_MS = 5_000;

/** Tables that have a guard trigger (schema-qualified, quoted as needed). */
async function guardedTables(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ table: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS table FROM pg_trigger t
       JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE t.tgname = 'recall_guard' ORDER BY 1`,
  );
  return rows.map((row) => row.table);
}

function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}
