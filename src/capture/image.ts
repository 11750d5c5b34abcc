// Images: every row of some tables as one snapshot saw them, stored as image rows at
// the snapshot's LSN. `recall init` images every table at its slot's consistent point;
// capture images a table again after a rewrite changed its rows without sending a
// change (a type change, a volatile default), at the point of a temporary slot.

import type { DuckDBConnection } from '@duckdb/node-api';
import type pg from 'pg';
import { UsageError } from '../errors.js';
import { connectSource, readCatalog, type SourceConfig, type SourceTable, type TenancyConfig } from '../source/index.js';
import { formatLsn, parseLsn } from '../timeline/index.js';
import type { LayerEntry, SchemaVersion, VaultStorage } from '../vault/index.js';
import { imageTables, type ImageTarget } from './image-pipeline.js';
import { sameLayout } from './relations.js';

/** A consistent point and the snapshot exported there: commits before it are visible, later ones stream. */
export interface ExportedSnapshot {
  readonly lsn: bigint;
  readonly name: string;
}

/** The first major whose slots can be failover slots, synchronised to a standby (PostgreSQL 17). */
const FAILOVER_SLOTS_SINCE = 170000;

/**
 * CREATE_REPLICATION_SLOT with an exported snapshot, on a replication connection that
 * must stay idle while the snapshot is used. Creating a slot waits for the transactions
 * already running; past `timeoutMs` it gives up and names them. A temporary slot goes
 * when its connection ends, crash or not. A lasting slot is a failover slot where the
 * server (`serverVersion`, server_version_num) has them, so a standby that synchronises
 * slots (`sync_replication_slots`) can take it over after a failover and capture
 * continues there without a gap.
 */
export async function createSlot(
  replication: pg.Client,
  client: pg.Client,
  slot: string,
  options: { timeoutMs: number; temporary?: boolean; serverVersion?: number },
): Promise<ExportedSnapshot> {
  const failover = options.temporary !== true && (options.serverVersion ?? 0) >= FAILOVER_SLOTS_SINCE;
  const creating = replication.query<{ consistent_point: string; snapshot_name: string }>(
    `CREATE_REPLICATION_SLOT ${replication.escapeIdentifier(slot)} ${options.temporary ? 'TEMPORARY ' : ''}LOGICAL pgoutput ` +
      (failover ? `(SNAPSHOT 'export', FAILOVER true)` : 'EXPORT_SNAPSHOT'),
  );
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), options.timeoutMs)));
  // Cleared however the race ends: a pending timer would keep a failed command's process alive for the whole wait.
  const outcome = await Promise.race([creating, timeout]).finally(() => clearTimeout(timer));
  if (outcome === 'timeout') {
    const blockers = await client.query<{ pid: string; state: string; since: string }>(
      `SELECT pid::text, state, (now() - xact_start)::text AS since FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL OR state LIKE 'idle in transaction%' ORDER BY xact_start`,
    );
    await client.query(
      'SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE backend_type = $1 AND pid <> pg_backend_pid() AND query LIKE $2',
      ['walsender', `CREATE_REPLICATION_SLOT ${replication.escapeIdentifier(slot)}%`],
    );
    creating.catch(() => undefined);
    const list = blockers.rows.map((b) => `pid ${b.pid} (${b.state}, open ${b.since})`).join(', ');
    throw new UsageError(
      `creating a replication slot waited ${options.timeoutMs / 1000} s for running transactions to end${list ? `: ${list}` : ''}`,
      'end or commit those sessions (an idle-in-transaction session blocks it), then try again',
    );
  }
  const row = outcome.rows[0];
  const lsn = row === undefined ? undefined : parseLsn(row.consistent_point);
  if (row === undefined || lsn === undefined) throw new Error('CREATE_REPLICATION_SLOT returned no consistent point');
  return { lsn, name: row.snapshot_name };
}

/** A read-only transaction on `reader` that sees exactly the exported snapshot; returns its time (µs since the epoch). */
export async function enterSnapshot(reader: pg.Client, snapshot: ExportedSnapshot): Promise<bigint> {
  await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  await reader.query(`SET TRANSACTION SNAPSHOT '${snapshot.name.replaceAll("'", "''")}'`);
  const { rows } = await reader.query<{ micros: string }>(`SELECT (extract(epoch FROM now()) * 1000000)::bigint::text AS micros`);
  return BigInt(rows[0]?.micros ?? '0');
}

/** The schema version an image of `table` is written under (generated columns are recomputed, never stored). */
export function imageSchema(table: SourceTable, id: number, lsn: bigint): SchemaVersion {
  return {
    id,
    table: table.qualified,
    sinceLsn: lsn,
    columns: table.columns
      .filter((c) => !c.generated)
      .map((c) => ({ name: c.name, type: c.type, typeOid: c.typeOid, attnum: c.attnum, missing: null })),
    key: table.key,
    tenantColumn: table.tenantColumn ?? null,
  };
}

/** What re-imaging needs from a running capture. */
export interface ReimageContext {
  readonly source: SourceConfig;
  readonly tenancy: TenancyConfig;
  readonly storage: VaultStorage;
  /** Capture's connection to the process's DuckDB: one of the two that turn the image's pieces into layers. */
  readonly duck: DuckDBConnection;
  /** An idle connection to the source, to name what blocks the slot. */
  readonly catalog: pg.Client;
  readonly log: (line: string) => void;
}

/** How long creating the temporary slot may wait for running transactions before the image is left for later. */
const REIMAGE_SLOT_TIMEOUT_MS = 10_000;

/**
 * Images rewritten tables again, every tenant's rows, at the consistent point of a
 * temporary slot: from there on reads take these rows instead of versions the rewrite
 * changed silently. A table whose layout at that point is not `expected(table)` (a
 * later DDL the stream has not shown yet) is left for later, as are all of them if
 * the slot cannot be created now. Returns the image layers and the tables left.
 */
export async function reimageTables(
  context: ReimageContext,
  tables: readonly string[],
  expected: (table: string) => SchemaVersion | undefined,
): Promise<{ layers: LayerEntry[]; left: string[] }> {
  const connections: pg.Client[] = [];
  const endAll = (): Promise<unknown> => Promise.all(connections.map((client) => client.end().catch(() => undefined)));
  let snapshot: ExportedSnapshot;
  try {
    // Any failure here (no free slot or walsender, a long transaction) leaves the image for later, never stops capture.
    const replication = await connectSource(context.source, { replication: true });
    connections.push(replication);
    connections.push(await connectSource(context.source));
    snapshot = await createSlot(replication, context.catalog, `recall_image_${process.pid}`, {
      timeoutMs: REIMAGE_SLOT_TIMEOUT_MS,
      temporary: true,
    });
  } catch (error) {
    await endAll();
    context.log(`capture: cannot image ${tables.join(', ')} again yet (${(error as Error).message}); will retry`);
    return { layers: [], left: [...tables] };
  }
  const reader = connections[1] as pg.Client;
  try {
    const micros = await enterSnapshot(reader, snapshot);
    const catalog = await readCatalog(reader, context.tenancy);
    const left: string[] = [];
    const targets: ImageTarget[] = [];
    for (const name of tables) {
      const table = catalog.find((t) => t.qualified === name);
      if (table === undefined) continue; // dropped since: there is nothing left to image
      const schema = expected(name);
      const now = imageSchema(table, schema?.id ?? -1, snapshot.lsn);
      if (schema === undefined || !sameLayout(schema, now.columns, now.key, now.tenantColumn)) left.push(name);
      else targets.push({ table, schema });
    }
    const image = await imageTables(reader, context.duck, context.storage, targets, { lsn: snapshot.lsn, micros }, {});
    for (const { table } of targets) {
      context.log(
        `capture: ${table.qualified} was rewritten; imaged again (${image.rows.get(table.qualified) ?? 0} rows) at lsn:${formatLsn(snapshot.lsn)}`,
      );
    }
    return { layers: image.layers, left };
  } finally {
    await endAll();
  }
}
