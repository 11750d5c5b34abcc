// `recall verify`: the live database against the history, at consistent points. Each
// batch of tenants is read in a snapshot whose LSN is known exactly (a temporary
// slot's exported snapshot), and the vault is reconstructed at that LSN. Digests per
// tenant and table come first; only where one differs are that tenant's rows compared
// key by key, and the rows under the keys that differ are read on both sides.

import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { NoFreeSlotError } from '../errors.js';
import { createSlot, enterSnapshot } from '../capture/index.js';
import { catchUp } from '../restore/index.js';
import { connectSource, readCatalog, type SourceConfig, type TenancyConfig } from '../source/index.js';
import { formatLsn, layoutAt } from '../timeline/index.js';
import { IMAGE_BUCKETS, openDuckDB, queryRows, tenantBucket, type Vault } from '../vault/index.js';
import type { ComparedTable } from './fingerprint.js';
import { copyLiveKeys, liveRowsOf, readTable } from './live-side.js';
import { SourcePacing } from './pacing.js';
import { VaultState, type BatchScope, type Digest } from './vault-side.js';

/** How a live row and the history disagree. */
export type DifferenceKind = 'missing-live' | 'extra-live' | 'differs';

/** One key where the live database and the history disagree. */
export interface Difference {
  readonly kind: DifferenceKind;
  readonly table: string;
  /** The tenant's text form; null for a global table. */
  readonly tenant: string | null;
  /** The key's text forms, in key order. */
  readonly key: readonly (string | null)[];
  /** For `differs`: the columns whose text forms differ. */
  readonly columns?: readonly string[];
  /** The live row (absent for `missing-live`) and the history's (absent for `extra-live`), column to text form. */
  readonly live?: Readonly<Record<string, string | null>>;
  readonly vault?: Readonly<Record<string, string | null>>;
}

/** One snapshot's worth of the comparison. */
export interface VerifiedBatch {
  readonly lsn: string;
  readonly tenants: number;
  readonly rows: number;
}

export interface VerifyResult {
  readonly batches: readonly VerifiedBatch[];
  readonly tables: number;
  readonly tenants: number;
  readonly rows: number;
  readonly differences: readonly Difference[];
  /** Differences past the listing limit, counted but not listed. */
  readonly unlisted: number;
  /** Tables left out, and why. */
  readonly skipped: readonly { readonly table: string; readonly reason: string }[];
}

export interface VerifyOptions {
  readonly source: SourceConfig;
  readonly vault: Vault;
  readonly tenancy: TenancyConfig;
  readonly log: (line: string) => void;
  /** Only these tenants (and no global table); all of them, and the global tables, when absent. */
  readonly tenants?: readonly string[];
  /** Only this table (its formatted name). */
  readonly table?: string;
  /** Rows read a second at most, on average. */
  readonly maxRowsPerSecond?: number;
  /** How long to wait for a running capture to reach each snapshot. */
  readonly catchUpWaitMs: number;
  /** Live rows one snapshot covers at most, estimated (DEFAULT_SNAPSHOT_ROWS unless told). */
  readonly snapshotRows?: number;
  readonly signal?: AbortSignal;
  /** The schedule this run is one of (capture's --verify-every), for the record. */
  readonly everyMs?: number;
}

/**
 * Rows one snapshot covers at most, estimated: a snapshot held longer holds back vacuum
 * on the whole source, and more snapshots read each table more times (once per batch).
 */
export const DEFAULT_SNAPSHOT_ROWS = 2_000_000;
/** How long creating the snapshot's temporary slot may wait for running transactions. */
const SLOT_WAIT_MS = 60_000;
/** Verify never queues behind a lock (an ALTER TABLE), which would block the application behind it. */
const LOCK_WAIT_MS = 2_000;
/** Differences listed with their rows; more are counted. */
const LISTED = 1_000;

export async function verify(options: VerifyOptions): Promise<VerifyResult> {
  const startedAt = new Date().toISOString();
  const pacing = new SourcePacing(options.maxRowsPerSecond, options.signal);
  const duck = await openDuckDB(await options.vault.storage.scratchDirectory());
  const result = { batches: [] as VerifiedBatch[], tables: new Set<string>(), tenants: new Set<string>(), rows: 0 };
  const differences: Difference[] = [];
  const skipped = new Map<string, string>();
  let unlisted = 0;
  try {
    for (const scope of await batchesOf(options)) {
      options.signal?.throwIfAborted();
      await inSnapshot(options, async (reader, lsn) => {
        const tables = await comparedTables(reader, options, lsn, scope, skipped);
        if (tables.length === 0) return; // nothing of this batch to compare (--table names a table of another batch)
        // The two sides at once: PostgreSQL reads the live rows while DuckDB reconstructs the history.
        const read = new Set<string>();
        const readLive = async (): Promise<Digest[]> => {
          const digests: Digest[] = [];
          for (const table of tables) {
            const found = await readTable(reader, table, scope, pacing);
            if ('skipped' in found) {
              skipped.set(table.name, found.skipped);
              continue;
            }
            read.add(table.name);
            digests.push(...found);
          }
          return digests;
        };
        const building = VaultState.build(duck, options.vault, tables, scope, lsn);
        const [live, state] = await Promise.all([readLive(), building]).catch(async (error: unknown) => {
          // Whichever side failed, the other's working table must not outlive the command.
          await building.then((built) => built.drop()).catch(() => undefined);
          throw error;
        });
        try {
          const mismatched = mismatches(
            live,
            (await state.digests()).filter((digest) => read.has(digest.table)),
          );
          let batchRows = 0;
          const batchTenants = new Set<string>();
          for (const digest of live) {
            batchRows += digest.rows;
            if (digest.tenant !== null) batchTenants.add(digest.tenant);
          }
          for (const { table, tenant } of mismatched) {
            const compared = tables.find((t) => t.name === table);
            if (compared === undefined) continue;
            const found = await rowDifferences(reader, duck, state, compared, tenant, LISTED - differences.length);
            differences.push(...found.listed);
            unlisted += found.unlisted;
          }
          for (const table of read) result.tables.add(table);
          for (const tenant of batchTenants) result.tenants.add(tenant);
          result.rows += batchRows;
          result.batches.push({ lsn: formatLsn(lsn), tenants: batchTenants.size, rows: batchRows });
          options.log(
            `verify: lsn:${formatLsn(lsn)}: ${batchRows} rows of ${batchTenants.size} tenants in ${read.size} tables, ${mismatched.length} with differing digests`,
          );
        } finally {
          await state.drop();
        }
      });
    }
  } finally {
    duck.closeSync();
  }
  if (pacing.waited > 0)
    options.log(`verify: the source was busy: waited after ${pacing.waited} of its reads to let the application through`);
  const found = differences.length + unlisted;
  // The record is for status; a vault this process may not write to must not hide what verify found.
  await options.vault
    .recordVerify({
      at: new Date().toISOString(),
      full: options.tenants === undefined && options.table === undefined,
      points: result.batches.map((batch) => batch.lsn),
      tenants: result.tenants.size,
      rows: result.rows,
      differences: found,
      affected: [...new Set(differences.map((difference) => difference.tenant))].slice(0, 20),
      skipped: skipped.size,
      startedAt,
      ...(options.everyMs === undefined ? {} : { everyMs: options.everyMs }),
    })
    .catch((error: unknown) => options.log(`verify: could not record the result in the vault (${(error as Error).message})`));
  return {
    batches: result.batches,
    tables: result.tables.size,
    tenants: result.tenants.size,
    rows: result.rows,
    differences,
    unlisted,
    skipped: [...skipped].map(([table, reason]) => ({ table, reason })),
  };
}

/**
 * The batches of tenants, each read in its own snapshot: the tenants named, or the
 * image buckets split into as many batches as the source's size asks for (a power of
 * two, so that a batch is whole buckets); the global tables go with bucket 0.
 */
async function batchesOf(options: VerifyOptions): Promise<BatchScope[]> {
  if (options.tenants !== undefined) {
    const buckets = [...new Set(options.tenants.map((tenant) => tenantBucket(tenant, IMAGE_BUCKETS)))];
    return [{ buckets, tenants: options.tenants, global: false }];
  }
  const client = await connectSource(options.source);
  let rows = 0;
  try {
    const tables = capturedTables(options.vault);
    const { rows: sizes } = await client.query<{ n: string | null }>(
      `SELECT sum(greatest(c.reltuples, 0))::bigint::text AS n FROM pg_catalog.pg_class AS c
         JOIN pg_catalog.pg_namespace AS s ON s.oid = c.relnamespace
        WHERE format('%I.%I', s.nspname, c.relname) = ANY($1::text[]) OR format('%s.%s', s.nspname, c.relname) = ANY($1::text[])`,
      [tables],
    );
    rows = Number(sizes[0]?.n ?? 0);
  } finally {
    await client.end().catch(() => undefined);
  }
  let count = 1;
  const most = options.snapshotRows ?? DEFAULT_SNAPSHOT_ROWS;
  while (count < IMAGE_BUCKETS && rows / count > most) count *= 2;
  return Array.from({ length: count }, (_, batch) => ({
    buckets: Array.from({ length: IMAGE_BUCKETS }, (_, bucket) => bucket).filter((bucket) => bucket % count === batch),
    global: batch === 0,
  }));
}

/** Every table the history holds, by name. */
function capturedTables(vault: Vault): string[] {
  return [...new Set(vault.manifest.schemas.map((version) => version.table))];
}

/**
 * Runs `work` in a read-only transaction that sees exactly the consistent point of a
 * temporary slot, once the vault holds everything up to that point. The slot goes with
 * its connection.
 */
async function inSnapshot(options: VerifyOptions, work: (reader: pg.Client, lsn: bigint) => Promise<void>): Promise<void> {
  const connections: pg.Client[] = [];
  try {
    const replication = await connectSource(options.source, { replication: true });
    connections.push(replication);
    const control = await connectSource(options.source);
    connections.push(control);
    const reader = await connectSource(options.source);
    connections.push(reader);
    // Caught up before the snapshot too, so that the snapshot is held only for the last seconds of history.
    await catchUp(control, { ...options, timeoutMs: options.catchUpWaitMs, reason: 'before the snapshot' });
    const snapshot = await createSlot(replication, control, `recall_verify_${process.pid}_${randomBytes(4).toString('hex')}`, {
      timeoutMs: SLOT_WAIT_MS,
      temporary: true,
    }).catch((error: unknown) => {
      // 53400: every slot (max_replication_slots) or walsender (max_wal_senders) is taken.
      if ((error as { code?: string }).code !== '53400') throw error;
      throw new NoFreeSlotError(
        `verify needs a temporary replication slot for its snapshot, and the source has none free: ${(error as Error).message}`,
        'raise max_replication_slots (and max_wal_senders) by one on the source, or end a client that holds one, then run verify again',
        { cause: error },
      );
    });
    await enterSnapshot(reader, snapshot);
    await reader.query(`SET LOCAL lock_timeout = ${LOCK_WAIT_MS}`);
    // Row-level security would hide rows and read as missing ones: with it off, a policy that applies is an error instead.
    await reader.query('SET LOCAL row_security = off');
    const reason = `to lsn:${formatLsn(snapshot.lsn)}`;
    await catchUp(control, { ...options, timeoutMs: options.catchUpWaitMs, reason });
    await options.vault.refresh();
    await work(reader, snapshot.lsn);
    await reader.query('COMMIT');
  } finally {
    await Promise.all(connections.map((client) => client.end().catch(() => undefined)));
  }
}

/** The tables compared in a batch: captured, in its layout at the point, and the same columns live. */
async function comparedTables(
  reader: pg.Client,
  options: VerifyOptions,
  lsn: bigint,
  scope: BatchScope,
  skipped: Map<string, string>,
): Promise<ComparedTable[]> {
  const catalog = await readCatalog(reader, options.tenancy, { unlogged: true });
  const compared: ComparedTable[] = [];
  for (const name of capturedTables(options.vault)) {
    if (options.table !== undefined && name !== options.table) continue;
    // The layout the snapshot sees: a DDL whose commit starts at the point is not in it.
    const layout = layoutAt(options.vault.manifest, name, lsn - 1n);
    if (layout === undefined) continue;
    if (layout.tenantColumn === null && !scope.global) continue;
    const live = catalog.find((table) => table.qualified === name);
    if (live === undefined) {
      // A partition's rows are captured and compared through its root.
      if (!(await isPartition(reader, name))) skipped.set(name, 'it is not in the database at the point (dropped, or not readable)');
      continue;
    }
    if (!live.selectable) {
      skipped.set(name, 'this role may not read it: grant it SELECT (README, Privileges)');
      continue;
    }
    const columns = new Set(live.columns.filter((column) => !column.generated).map((column) => column.name));
    const missing = layout.columns.filter((column) => !columns.has(column.name)).map((column) => column.name);
    if (missing.length > 0 || (live.tenantColumn ?? null) !== layout.tenantColumn) {
      skipped.set(name, `its columns differ from the history's layout at the point (${missing.join(', ') || 'tenant column'})`);
      continue;
    }
    compared.push({ name, live, layout });
  }
  return compared;
}

/** Whether a table named in the history is a partition in the database now. */
async function isPartition(reader: pg.Client, name: string): Promise<boolean> {
  // This connection leaves every value as PostgreSQL's text.
  const { rows } = await reader.query<{ partition: string }>(
    'SELECT coalesce((SELECT c.relispartition FROM pg_catalog.pg_class AS c WHERE c.oid = to_regclass($1)), false)::text AS partition',
    [name],
  );
  return rows[0]?.partition === 'true';
}

/** The (table, tenant) pairs whose row count or digest differs between the two sides. */
function mismatches(live: readonly Digest[], vault: readonly Digest[]): { table: string; tenant: string | null }[] {
  const id = (digest: Digest): string => JSON.stringify([digest.table, digest.tenant]);
  const vaultById = new Map(vault.map((digest) => [id(digest), digest]));
  const found = new Map<string, { table: string; tenant: string | null }>();
  for (const digest of live) {
    const other = vaultById.get(id(digest));
    vaultById.delete(id(digest));
    if (other === undefined || other.rows !== digest.rows || other.sum !== digest.sum) found.set(id(digest), digest);
  }
  for (const [key, digest] of vaultById) found.set(key, digest);
  return [...found.values()].map(({ table, tenant }) => ({ table, tenant }));
}

let comparisons = 0;

/** The keys of one tenant's table where the two sides differ, listed up to `room`, with both rows. */
async function rowDifferences(
  reader: pg.Client,
  duck: Awaited<ReturnType<typeof openDuckDB>>,
  state: VaultState,
  table: ComparedTable,
  tenant: string | null,
  room: number,
): Promise<{ listed: Difference[]; unlisted: number }> {
  const into = `verify_live_${++comparisons}`;
  try {
    await copyLiveKeys(reader, duck, table, tenant, into);
    const rows = await queryRows(
      duck,
      `SELECT coalesce(l.kfp, v.kfp) AS kfp,
              CASE WHEN l.kfp IS NULL THEN 'missing-live' WHEN v.kfp IS NULL THEN 'extra-live' ELSE 'differs' END AS kind
         FROM ${into} AS l
         FULL JOIN ${state.fingerprintsOf(table)} AS v ON l.kfp = v.kfp
        WHERE l.kfp IS NULL OR v.kfp IS NULL OR l.h <> v.h
        ORDER BY 1`,
      [table.name, tenant],
    );
    const listed = rows.slice(0, Math.max(0, room)).map((row) => ({ kfp: row.kfp as string, kind: row.kind as DifferenceKind }));
    const inVault = await state.rowsOf(
      table,
      tenant,
      listed.filter((d) => d.kind !== 'extra-live').map((d) => d.kfp),
    );
    const inLive = await liveRowsOf(
      reader,
      table,
      tenant,
      listed.filter((d) => d.kind !== 'missing-live').map((d) => d.kfp),
    );
    const vaultByKfp = new Map(inVault.map((row) => [row.kfp, row]));
    const liveByKfp = new Map(inLive.map((row) => [row.kfp, row]));
    const differences = listed.map(({ kfp, kind }): Difference => {
      const vault = vaultByKfp.get(kfp);
      const live = liveByKfp.get(kfp);
      return {
        kind,
        table: table.name,
        tenant,
        key: vault?.key ?? live?.key ?? [],
        ...(kind === 'differs' && vault !== undefined && live !== undefined
          ? { columns: differingColumns(table, live.row, vault.row) }
          : {}),
        ...(live === undefined ? {} : { live: live.row }),
        ...(vault === undefined ? {} : { vault: vault.row }),
      };
    });
    return { listed: reconciled(table, differences), unlisted: rows.length - listed.length };
  } finally {
    await duck.run(`DROP TABLE IF EXISTS ${into}`);
  }
}

/** The layout's columns whose text forms differ between a live row and the history's. */
function differingColumns(table: ComparedTable, live: Difference['live'], vault: Difference['vault']): string[] {
  return table.layout.columns.map((c) => c.name).filter((name) => (vault?.[name] ?? null) !== (live?.[name] ?? null));
}

/**
 * The differences that are real. Fingerprints are of JSON text, which the two engines
 * could escape apart for some value: then a row reads as differing though every column
 * is equal, or, for a key, as missing and extra at once. The rows themselves settle it.
 */
function reconciled(table: ComparedTable, differences: readonly Difference[]): Difference[] {
  const extra = new Map(differences.filter((d) => d.kind === 'extra-live').map((d) => [JSON.stringify(d.key), d]));
  const out: Difference[] = [];
  for (const difference of differences) {
    if (difference.kind === 'extra-live') continue;
    const twin = difference.kind === 'missing-live' ? extra.get(JSON.stringify(difference.key)) : undefined;
    if (twin !== undefined) {
      extra.delete(JSON.stringify(difference.key));
      const columns = differingColumns(table, twin.live, difference.vault);
      if (columns.length > 0)
        out.push({ ...difference, kind: 'differs', columns, ...(twin.live === undefined ? {} : { live: twin.live }) });
    } else if (difference.kind !== 'differs' || (difference.columns?.length ?? 1) > 0) out.push(difference);
  }
  return [...out, ...extra.values()];
}
