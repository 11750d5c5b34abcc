// `recall report`: the impact of a window of the history, per tenant: for each table
// the rows inserted, updated and deleted and the columns the updates changed, and the
// actors and transactions that did it. It answers "which tenants did the 09:47 script
// touch, and what did it take" from the vault alone, without a restore.

import type { DuckDBConnection } from '@duckdb/node-api';
import { PointError } from '../errors.js';
import { formatLsn, layersSql, VaultReader, type FutureBound, type Point } from '../timeline/index.js';
import {
  aboveFloorSql,
  bucketReadSets,
  mayHoldTenant,
  queryRows,
  sqlLiteral,
  type LayerEntry,
  type Manifest,
  type Vault,
} from '../vault/index.js';

/** What one tenant's rows of one table went through in the window. */
export interface TableImpact {
  readonly table: string;
  /** Rows (keys) inserted, updated and deleted: a row updated five times counts once. */
  readonly inserted: number;
  readonly updated: number;
  /** Deleted rows, those a TRUNCATE removed included. */
  readonly deleted: number;
  /** Columns some update changed, by name. */
  readonly columns: readonly string[];
}

/** An actor's share of a tenant's changes (actor null: transactions that named none). */
export interface ActorImpact {
  readonly actor: string | null;
  readonly transactions: number;
  readonly rows: number;
}

export interface TenantImpact {
  /** The tenant's text form; null for the global tables. */
  readonly tenant: string | null;
  readonly tables: readonly TableImpact[];
  readonly actors: readonly ActorImpact[];
  /** The transactions that changed the tenant's rows, by 64-bit id. */
  readonly transactions: readonly string[];
}

export interface ImpactReport {
  /** The window: commits after `since` up to `until`, as LSNs. */
  readonly since: string;
  readonly until: string;
  readonly tenants: readonly TenantImpact[];
}

export interface ReportOptions {
  readonly vault: Vault;
  /** The start of the window (exclusive); the history's start when absent. */
  readonly since?: Point;
  /** The end of the window (inclusive); the vault's newest commit when absent. */
  readonly until?: Point;
  /** Only this tenant. */
  readonly tenant?: string;
  readonly future?: FutureBound | undefined;
}

/** The impact of the commits in (since, until], per tenant. */
export async function report(options: ReportOptions): Promise<ImpactReport> {
  const reader = await VaultReader.open(options.vault, {
    future: options.future,
    ...(options.tenant === undefined ? {} : { tenant: options.tenant }),
  });
  try {
    const manifest = reader.manifest;
    const since = options.since === undefined ? manifest.startLsn : await reader.resolve(options.since);
    const until = options.until === undefined ? manifest.throughLsn : await reader.resolve(options.until);
    if (until < since) {
      throw new PointError(
        `the window ends (lsn:${formatLsn(until)}) before it starts (lsn:${formatLsn(since)})`,
        'give an --until later than --since',
      );
    }
    if (options.tenant !== undefined) await reader.assertTenant(options.tenant);
    const versions = await windowVersions(options.vault, manifest, since, until, options.tenant);
    const changes = `report_changes_${process.pid}`;
    // Each change with the version before it, so an update names the columns it changed (those the
    // version before held too: a column added or renamed since is not a change of the row). A bucket
    // image sits at the LSN of a commit and holds its outcome: it comes after all of that commit's changes.
    await reader.duck.run(`
      CREATE OR REPLACE TEMP TABLE ${changes} AS
      SELECT tenant, "table", "key", op, xid, json_extract_string(context, '$.actor') AS actor,
             CASE WHEN op = 'update' AND before IS NOT NULL
                  THEN list_filter(json_keys("row"), k -> json_exists(before, ${pointerOf('k')})
                                                           AND json_extract_string("row", ${pointerOf('k')}) IS DISTINCT FROM json_extract_string(before, ${pointerOf('k')}))
             END AS changed
        FROM (SELECT *, lag("row") OVER (PARTITION BY "table", "key" ORDER BY commit_lsn, (op = 'image'), seq) AS before FROM ${versions})
       WHERE op <> 'image' AND commit_lsn > ${since}`);
    try {
      return { since: formatLsn(since), until: formatLsn(until), tenants: await impacts(reader.duck, changes) };
    } finally {
      await reader.duck.run(`DROP TABLE IF EXISTS ${changes}`);
    }
  } finally {
    reader.close();
  }
}

/** SQL: a JSON pointer to the member named by the SQL string `name`. */
const pointerOf = (name: string): string => `'/' || replace(replace(${name}, '~', '~0'), '/', '~1')`;

/**
 * The versions a window needs, as a SQL source: the changes in it, and before them the
 * state at its start (each bucket's read set there: its image and the changes after),
 * so that each update in the window has the version it replaced.
 */
async function windowVersions(vault: Vault, manifest: Manifest, since: bigint, until: bigint, tenant: string | undefined): Promise<string> {
  const start = bucketReadSets(manifest, since);
  const layers = new Set<LayerEntry>(start.layers);
  for (const layer of manifest.layers) if (layer.maxLsn > since && layer.minLsn <= until) layers.add(layer);
  const wanted = manifest.layers.filter((layer) => layers.has(layer) && (tenant === undefined || mayHoldTenant(layer, tenant)));
  const files = await vault.layerFiles(wanted);
  return `(SELECT commit_lsn, seq, xid, "table", op, tenant, "key", "row", context FROM ${layersSql(files)}
            WHERE commit_lsn <= ${until} AND ${aboveFloorSql(start.floors, 'commit_lsn', 'tenant')}
                  ${tenant === undefined ? '' : `AND tenant = ${sqlLiteral(tenant)}`})`;
}

/** The changes' counts per tenant and table, and their actors and transactions. */
async function impacts(duck: DuckDBConnection, changes: string): Promise<TenantImpact[]> {
  const tables = await queryRows(
    duck,
    `SELECT tenant, "table", count(DISTINCT "key") FILTER (WHERE op = 'insert') AS inserted,
            count(DISTINCT "key") FILTER (WHERE op = 'update') AS updated,
            count(DISTINCT "key") FILTER (WHERE op IN ('delete', 'truncate')) AS deleted,
            list_sort(list_distinct(flatten(list(changed) FILTER (WHERE changed IS NOT NULL)))) AS columns
       FROM ${changes} GROUP BY tenant, "table" ORDER BY tenant NULLS FIRST, "table"`,
  );
  const actors = await queryRows(
    duck,
    `SELECT tenant, actor, count(DISTINCT xid) AS transactions, count(*) AS rows
       FROM ${changes} GROUP BY tenant, actor ORDER BY tenant NULLS FIRST, rows DESC, actor NULLS LAST`,
  );
  const transactions = await queryRows(
    duck,
    `SELECT tenant, list_transform(list(DISTINCT xid ORDER BY xid), x -> x::VARCHAR) AS xids FROM ${changes} GROUP BY tenant`,
  );
  const byTenant = new Map<string, { tenant: string | null; tables: TableImpact[]; actors: ActorImpact[]; transactions: string[] }>();
  const entry = (tenant: string | null) => {
    const id = JSON.stringify(tenant);
    let found = byTenant.get(id);
    if (found === undefined) byTenant.set(id, (found = { tenant, tables: [], actors: [], transactions: [] }));
    return found;
  };
  for (const row of tables) {
    entry((row.tenant as string | null) ?? null).tables.push({
      table: row.table as string,
      inserted: Number(row.inserted),
      updated: Number(row.updated),
      deleted: Number(row.deleted),
      columns: listOf(row.columns),
    });
  }
  for (const row of actors) {
    entry((row.tenant as string | null) ?? null).actors.push({
      actor: (row.actor as string | null) ?? null,
      transactions: Number(row.transactions),
      rows: Number(row.rows),
    });
  }
  for (const row of transactions) entry((row.tenant as string | null) ?? null).transactions.push(...listOf(row.xids));
  return [...byTenant.values()];
}

/** A DuckDB list of strings as an array. */
function listOf(value: unknown): string[] {
  const items = (value as { items?: unknown[] } | null)?.items ?? [];
  return items.filter((item): item is string => typeof item === 'string');
}
