// `recall init`: check the source, create the publication and the slot, and write
// the initial image from the slot's exported snapshot, so the image and the stream
// meet exactly at the slot's consistent point. Idempotent: on an initialised vault
// it only checks that the slot is still there.

import type pg from 'pg';
import { InternalError, SourceNotReadyError, UsageError, VaultConflictError } from '../errors.js';
import { installDdlHook } from './ddl-hook.js';
import { createSlot, enterSnapshot, imageSchema, type ExportedSnapshot } from './image.js';
import { assertNoGap, findGap, recordGap, vaultEnd } from './history-gaps.js';
import { planResumeSlot, planSlot, type SlotPlan } from './slot-claim.js';
import { imageTables, type ImageProgress } from './image-pipeline.js';
import {
  backoffDelay,
  sleep,
  readCatalog,
  type SourceTable,
  connectSource,
  type SourceConfig,
  readSourceIdentity,
  checkSource,
  readSourceSettings,
  formatTableName,
  quoteIdentifier,
  tablesWithoutTenantIndex,
  type TenancyConfig,
  type SourceFacts,
  currentWalLsn,
} from '../source/index.js';
import { formatLsn } from '../timeline/index.js';
import { openDuckDB, openGap, type GapCause, type GapRecord, type SourceIdentity, type Vault } from '../vault/index.js';

/** How `init` runs. */
export interface InitOptions {
  readonly source: SourceConfig;
  readonly vault: Vault;
  readonly tenancy: TenancyConfig;
  readonly slot?: string;
  readonly publication?: string;
  /** How long slot creation may wait for running transactions. */
  readonly slotTimeoutMs?: number;
  readonly log?: (line: string) => void;
  /** Hears how far the initial image is, for a progress display. */
  readonly onProgress?: (progress: ImageProgress) => void;
  /** Close the vault's open gap (history-gaps.ts) with a fresh image through a new slot, and go on after it. */
  readonly resume?: boolean;
}

/** What `init` did. */
export interface InitResult {
  readonly created: boolean;
  readonly slot: string;
  readonly publication: string;
  readonly startLsn: string;
  readonly tables: number;
  readonly imageRows: number;
  /** Whether the DDL hook is installed (it needs a superuser): layouts then start at their ALTER TABLE. */
  readonly ddlHook: boolean;
  /** Tenant-scoped tables with no index led by their tenant column: restoring a tenant reads them whole. */
  readonly unindexedTenantTables: readonly string[];
  /** With --resume: the gap the fresh image closed. */
  readonly resumed?: { readonly cause: GapCause; readonly fromLsn: string; readonly toLsn: string };
}

/** Checks the source and starts its history in the vault. */
export async function init(options: InitOptions): Promise<InitResult> {
  const log = options.log ?? (() => undefined);
  const client = await connectSource(options.source);
  try {
    const identity = await readSourceIdentity(client);
    const vault = options.vault;
    if (options.resume === true && !vault.initialized)
      throw new UsageError(`--resume needs an initialised vault; ${vault.storage.location} has none`, 'run `recall init` without --resume');
    // A resume may follow the source to another server (the gap records it); the database is the same.
    if (options.resume !== true || identity.database !== vault.manifest.source.database) vault.assertSource(identity);
    const settings = await readSourceSettings(client);
    const tables = await readCatalog(client, options.tenancy);
    if (vault.initialized && options.resume !== true) {
      // A slot gone or invalidated, another server: recorded as a gap, and init says how to go on.
      await assertNoGap(client, vault, identity);
    }
    // An initialised vault names its own slot; --slot only matters for a new one (or a resume).
    const plan =
      options.resume === true
        ? await planResume(client, vault, identity, options.slot, log)
        : vault.initialized
          ? undefined
          : await planSlot(client, vault, identity, { slot: options.slot, publication: options.publication });
    const slotExists = plan === undefined || plan.dropLeftover;
    const ourPublication = plan?.publication ?? options.vault.manifest.source.publication;
    const { rows: published } = await client.query<{ all: boolean }>('SELECT puballtables AS all FROM pg_publication WHERE pubname = $1', [
      ourPublication,
    ]);
    const publicationKind = published[0] === undefined ? 'missing' : published[0].all ? 'all-tables' : 'per-table';
    const problems = checkSource(settings, tables, options.tenancy, { slotExists, publication: publicationKind });
    if (problems.length > 0) throw new SourceNotReadyError(problems);
    const unindexed = (await tablesWithoutTenantIndex(client, tables)).map((table) => {
      log(
        `init: note: ${table.qualified} has no index led by its tenant column ${table.tenantColumn}: restoring one tenant will read the whole table (CREATE INDEX ON ${table.qualified} (${quoteIdentifier(table.tenantColumn as string)}))`,
      );
      return table.qualified;
    });

    if (plan === undefined) {
      const manifest = options.vault.manifest;
      await ensurePublication(client, manifest.source.publication, tables, settings.superuser);
      const ddlHook = await announceLayouts(client, settings.superuser, log);
      log(`init: already initialised; history starts at ${formatLsn(manifest.startLsn)}`);
      return {
        created: false,
        slot: manifest.source.slot,
        publication: manifest.source.publication,
        startLsn: formatLsn(manifest.startLsn),
        tables: tables.length,
        imageRows: 0,
        ddlHook,
        unindexedTenantTables: unindexed,
      };
    }

    const { slot, publication } = plan;
    const claim = { slot, publication, systemId: identity.systemId, database: identity.database };
    // Recorded before anything is created, so that a rerun after a crash uses the same names.
    await options.vault.recordSlotClaim({ ...claim, consistentPoint: null });
    const createdPublication = await ensurePublication(client, publication, tables, settings.superuser);
    // Before the slot, so that no ALTER TABLE after the image goes unannounced.
    const ddlHook = await announceLayouts(client, settings.superuser, log);
    if (plan.dropLeftover) {
      // This vault's own, left by an init that died before its image was committed: useless without one.
      log(`init: dropping the slot "${slot}" an earlier init of this vault left unused`);
      await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
    }
    const replication = await connectSource(options.source, { replication: true });
    try {
      log(`init: creating replication slot "${slot}" (waits for transactions already running)`);
      const created = await createSlot(replication, client, slot, {
        timeoutMs: options.slotTimeoutMs ?? 60_000,
        serverVersion: identity.serverVersion,
      }).catch(async (error: unknown) => {
        if (createdPublication) await dropPublication(client, publication);
        throw error;
      });
      try {
        // The proof that the slot is this vault's: a later init may drop it only while it still stands here.
        await options.vault.recordSlotClaim({ ...claim, consistentPoint: formatLsn(created.lsn) });
        if (options.resume === true) {
          const closed = await resumeAfterGap(client, options, created, { ...identity, slot, publication }, log);
          return {
            created: true,
            slot,
            publication,
            startLsn: formatLsn(vault.manifest.startLsn),
            tables: closed.tables,
            imageRows: closed.rows,
            ddlHook,
            unindexedTenantTables: unindexed,
            resumed: { cause: closed.gap.cause, fromLsn: formatLsn(closed.gap.fromLsn), toLsn: formatLsn(created.lsn) },
          };
        }
        const image = await writeImage(options, created, log, 0);
        await options.vault.commit({
          source: { ...identity, slot, publication },
          startLsn: created.lsn,
          startTime: image.time,
          throughLsn: created.lsn,
          throughTime: image.time,
          acknowledgedLsn: created.lsn,
          layers: image.layers,
          schemas: image.schemas,
        });
        log(`init: image of ${image.tables} tables (${image.rows} rows) at ${formatLsn(created.lsn)} in ${options.vault.storage.location}`);
        return {
          created: true,
          slot,
          publication,
          startLsn: formatLsn(created.lsn),
          tables: image.tables,
          imageRows: image.rows,
          ddlHook,
          unindexedTenantTables: unindexed,
        };
      } catch (error) {
        await replication.end().catch(() => undefined);
        await dropSlotWhenReleased(client, slot);
        if (createdPublication) await dropPublication(client, publication);
        throw error;
      }
    } finally {
      await replication.end().catch(() => undefined);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * What `init --resume` starts from: the vault's open gap (one found now is recorded
 * first), a source whose WAL has passed the vault's end (a history's positions only
 * grow), and a slot to create. The vault's own slot, if invalidated, holds nothing any
 * more and is dropped; one re-created under its name by someone else is left alone.
 */
async function planResume(
  client: pg.Client,
  vault: Vault,
  identity: SourceFacts,
  asked: string | undefined,
  log: (line: string) => void,
): Promise<SlotPlan> {
  const finding = await findGap(client, vault, identity);
  if (finding !== undefined && openGap(vault.manifest) === undefined) await recordGap(vault, finding);
  const gap = openGap(vault.manifest);
  if (gap === undefined) {
    throw new UsageError(
      `the history in ${vault.storage.location} has no gap to resume after`,
      'run `recall capture`; --resume is for a vault whose capture stopped at a gap (`recall status` shows it)',
    );
  }
  const end = vaultEnd(vault.manifest, await vault.acknowledgedLsn());
  const position = await currentWalLsn(client);
  if (position <= end) {
    throw new UsageError(
      `the source's WAL (lsn:${formatLsn(position)}) has not passed this vault's end (lsn:${formatLsn(end)}): a history's positions only grow, so this vault cannot go on from this server`,
      'start a new vault with `recall init --vault NEW_PATH`; this one stays readable up to its gap',
    );
  }
  const own = vault.manifest.source.slot;
  const { rows } = await client.query<{ lost: string }>(
    `SELECT (wal_status = 'lost' AND NOT active)::text AS lost FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`,
    [own],
  );
  if (rows[0]?.lost === 'true' && gap.cause === 'slot-invalidated') {
    log(`init: dropping the invalidated slot "${own}" (it holds no WAL any more)`);
    await client.query('SELECT pg_drop_replication_slot($1)', [own]);
  }
  return planResumeSlot(client, vault, identity, asked);
}

/** Commits a resume's image: the gap closed at its consistent point, new layouts from there, the new slot. */
async function resumeAfterGap(
  client: pg.Client,
  options: InitOptions,
  created: ExportedSnapshot,
  source: SourceIdentity,
  log: (line: string) => void,
) {
  const vault = options.vault;
  const previous = vault.manifest.source.slot;
  const firstId = vault.manifest.schemas.reduce((high, version) => Math.max(high, version.id + 1), 0);
  const planned = vault.manifest.throughLsn;
  const image = await writeImage(options, created, log, firstId);
  let closed: GapRecord | undefined;
  await vault.update((current) => {
    const gap = current === undefined ? undefined : openGap(current);
    if (current === undefined || gap === undefined || current.throughLsn !== planned) {
      throw new VaultConflictError(
        `the vault ${vault.storage.location} changed while the resume took its image (another resume, or a capture?)`,
        'run `recall status`, then `recall init --resume` again if the gap is still open',
      );
    }
    closed = { ...gap, resumedLsn: created.lsn, resumedTime: image.time, resumedAt: new Date().toISOString() };
    return {
      ...current,
      source,
      throughLsn: created.lsn,
      throughTime: image.time,
      acknowledgedLsn: created.lsn,
      layers: [...current.layers, ...image.layers],
      schemas: [...current.schemas, ...image.schemas],
      pendingImages: undefined,
      gaps: (current.gaps ?? []).map((record) => (record === gap ? (closed as GapRecord) : record)),
    };
  });
  if (closed === undefined) throw new InternalError('a resume committed no gap');
  // Committed: a failure from here on must not reach init's clean-up, which would drop the slot the vault now uses.
  if (previous !== source.slot && (await slotExists(client, previous).catch(() => false))) {
    log(
      `init: note: the slot "${previous}" still exists and holds WAL on the source, but nothing proves it is this vault's: drop it if nothing uses it (SELECT pg_drop_replication_slot('${previous.replaceAll("'", "''")}'))`,
    );
  }
  log(
    `init: resumed after the gap from lsn:${formatLsn(closed.fromLsn)}: image of ${image.tables} tables (${image.rows} rows) at ${formatLsn(created.lsn)}`,
  );
  return { gap: closed, tables: image.tables, rows: image.rows };
}

async function slotExists(client: pg.Client, slot: string): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount === 1;
}

/** Installs the DDL hook when the role may (see ddl-hook.ts); says what is missing when it may not. */
async function announceLayouts(client: pg.Client, superuser: boolean, log: (line: string) => void): Promise<boolean> {
  if (!superuser) {
    log(
      'init: note: not a superuser, so the DDL hook is not installed: a column added with a default shows from the table’s next change, not from its ALTER TABLE (run init once as a superuser to install it)',
    );
    return false;
  }
  await installDdlHook(client);
  return true;
}

/**
 * Drops a slot whose image failed. The walsender releases it a moment after its
 * connection ends, so "active for PID" is retried with backoff; a slot left behind
 * would hold WAL until the next `recall init`.
 */
async function dropSlotWhenReleased(client: pg.Client, slot: string): Promise<void> {
  for (let attempt = 0; attempt < 8; attempt++) {
    try {
      await client.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== '55006') return; // gone already, or unreachable: init reports the first error
      await sleep(backoffDelay(attempt));
    }
  }
}

/** Drops a publication this init created, after a failure (best effort: init reports the first error). */
async function dropPublication(client: pg.Client, name: string): Promise<void> {
  await client.query(`DROP PUBLICATION IF EXISTS ${client.escapeIdentifier(name)}`).catch(() => undefined);
}

/** Creates the publication (true), or adds tables it lacks (a per-table one misses new tables). */
async function ensurePublication(client: pg.Client, name: string, tables: readonly SourceTable[], superuser: boolean): Promise<boolean> {
  const existing = await client.query<{ puballtables: string }>('SELECT puballtables::text FROM pg_publication WHERE pubname = $1', [name]);
  const quoted = client.escapeIdentifier(name);
  const row = existing.rows[0];
  if (row === undefined) {
    // FOR ALL TABLES also captures tables created later, but needs a superuser.
    const target = superuser || tables.length === 0 ? 'FOR ALL TABLES' : `FOR TABLE ${tables.map((table) => table.sql).join(', ')}`;
    if (!superuser && tables.length === 0)
      throw new UsageError('the source has no tables to capture', 'create the tables first, or run init as a superuser');
    await client.query(`CREATE PUBLICATION ${quoted} ${target} WITH (publish_via_partition_root = true)`);
    return true;
  }
  if (row.puballtables === 'true') return false;
  const published = await client.query<{ schema: string; name: string }>(
    `SELECT schemaname AS schema, tablename AS name FROM pg_publication_tables WHERE pubname = $1`,
    [name],
  );
  const have = new Set(published.rows.map((r) => formatTableName(r)));
  const missing = tables.filter((table) => !have.has(table.qualified));
  if (missing.length > 0) await client.query(`ALTER PUBLICATION ${quoted} ADD TABLE ${missing.map((t) => t.sql).join(', ')}`);
  return false;
}

/** Reads every table in the slot's snapshot into image layers. */
async function writeImage(options: InitOptions, snapshot: ExportedSnapshot, log: (line: string) => void, firstSchemaId: number) {
  const reader = await connectSource(options.source);
  const duck = await openDuckDB(await options.vault.storage.scratchDirectory());
  try {
    const micros = await enterSnapshot(reader, snapshot);
    const tables = await readCatalog(reader, options.tenancy);
    const targets = tables.map((table, i) => ({ table, schema: imageSchema(table, firstSchemaId + i, snapshot.lsn) }));
    const image = await imageTables(
      reader,
      duck,
      options.vault.storage,
      targets,
      { lsn: snapshot.lsn, micros },
      {
        onProgress: (progress) => {
          options.onProgress?.(progress);
          if (progress.done) log(`init: imaged ${progress.table}`);
        },
      },
    );
    const rows = image.layers.reduce((sum, layer) => sum + layer.rows, 0);
    return { layers: image.layers, schemas: targets.map((target) => target.schema), rows, time: micros, tables: tables.length };
  } finally {
    duck.closeSync();
    await reader.end().catch(() => undefined);
  }
}
