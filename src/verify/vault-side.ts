// The vault's side of a comparison: the state of a batch of tenants at the LSN of the
// live side's snapshot, reconstructed from each bucket's read set (its newest image at
// or before the LSN and the layers after it), reduced to one narrow row per live key:
// its fingerprints. Rows themselves are read only for the keys that differ.

import type { DuckDBConnection } from '@duckdb/node-api';
import { layOut } from '../timeline/index.js';
import {
  aboveFloorSql,
  bucketReadSets,
  fileList,
  IMAGE_BUCKETS,
  queryRows,
  sqlLiteral,
  tenantBucketSql,
  type Manifest,
  type Vault,
} from '../vault/index.js';
import { vaultFingerprints, type ComparedTable } from './fingerprint.js';

/** Which tenants a batch holds: those of some image buckets, or a list (and the global tables, in the batch of bucket 0). */
export interface BatchScope {
  /** The image buckets whose read sets hold the batch's tenants (all of them, for a list). */
  readonly buckets: readonly number[];
  readonly tenants?: readonly string[];
  readonly global: boolean;
}

/** The digest of one tenant's rows of one table (tenant null: a global table). */
export interface Digest {
  readonly table: string;
  readonly tenant: string | null;
  readonly rows: number;
  readonly sum: string;
}

/** A version the vault holds for a key that differs. */
export interface VaultRow {
  readonly kfp: string;
  readonly key: (string | null)[];
  readonly row: Record<string, string | null>;
}

let states = 0;

export class VaultState {
  private constructor(
    private readonly duck: DuckDBConnection,
    private readonly manifest: Manifest,
    private readonly versions: string,
    /** Working table: per live key at the LSN, its table, tenant, key and row fingerprint h. */
    private readonly keys: string,
    /** Whether no layer holds any version of the batch (then there is nothing to read). */
    private readonly empty: boolean,
  ) {}

  /** Reconstructs the scope's tenants (and global tables) at `lsn` for `tables`. */
  static async build(
    duck: DuckDBConnection,
    vault: Vault,
    tables: readonly ComparedTable[],
    scope: BatchScope,
    lsn: bigint,
  ): Promise<VaultState> {
    const manifest = vault.manifest;
    const { layers, floors } = bucketReadSets(manifest, lsn, scope.buckets);
    const files = await vault.layerFiles(layers);
    const names = tables.map((table) => sqlLiteral(table.name)).join(', ');
    const inScope =
      scope.tenants === undefined
        ? `${tenantBucketSql('tenant', IMAGE_BUCKETS)} IN (${scope.buckets.join(', ')})`
        : `(tenant IN (${scope.tenants.map(sqlLiteral).join(', ') || 'NULL'})${scope.global ? ' OR tenant IS NULL' : ''})`;
    // The snapshot sees the commits before its point, not one whose record starts there (an image at it is its state).
    const versions = `(SELECT * FROM read_parquet(${fileList(files)})
                        WHERE (commit_lsn < ${lsn} OR (op = 'image' AND commit_lsn <= ${lsn})) AND ${aboveFloorSql(floors, 'commit_lsn', 'tenant')} AND "table" IN (${names})
                          AND ${inScope} ${scope.global ? '' : 'AND tenant IS NOT NULL'})`;
    const keys = `verify_keys_${++states}`;
    if (files.length === 0) {
      await duck.run(`CREATE TEMP TABLE ${keys} ("table" VARCHAR, tenant VARCHAR, "key" VARCHAR, h BIGINT)`);
      return new VaultState(duck, manifest, versions, keys, true);
    }
    const fingerprints = tables.map((table) => ({ table, ...vaultFingerprints(table, manifest.schemas) }));
    const per = (pick: (f: { values: string; kfp: string; h: string }) => string): string =>
      `CASE v."table" ${fingerprints.map((f) => `WHEN ${sqlLiteral(f.table.name)} THEN ${pick(f)}`).join(' ')} END`;
    // Each version's fingerprint (narrow; its row's JSON parsed once), then the newest per key by a hash
    // aggregate: no sort ever carries row text. A key's own fingerprint waits until its rows are compared.
    await duck.run(`
      CREATE TEMP TABLE ${keys} AS
      SELECT "table", newest.tenant AS tenant, "key", newest.h AS h FROM (
        SELECT v."table", v."key",
               arg_max({'op': v.op, 'tenant': v.tenant, 'h': CASE WHEN v."row" IS NULL THEN NULL ELSE ${per((f) => f.h)} END},
                       {'lsn': v.commit_lsn, 'seq': v.seq, 'image': v.op = 'image'}) AS newest
          FROM (SELECT v.*, CASE WHEN v."row" IS NULL THEN NULL ELSE ${per((f) => f.values)} END AS x FROM ${versions} AS v) AS v
         GROUP BY v."table", v."key")
       WHERE newest.op NOT IN ('delete', 'truncate')`);
    return new VaultState(duck, manifest, versions, keys, false);
  }

  /** Rows and digest of every tenant's share of every table. */
  async digests(): Promise<Digest[]> {
    const rows = await queryRows(this.duck, `SELECT "table", tenant, count(*) AS n, sum(h)::VARCHAR AS s FROM ${this.keys} GROUP BY ALL`);
    return rows.map((row) => ({
      table: row.table as string,
      tenant: (row.tenant as string | null) ?? null,
      rows: Number(row.n),
      sum: (row.s as string | null) ?? '0',
    }));
  }

  /** SQL: the key and row fingerprints (kfp, h) of one tenant's live keys of a table; $1 the table, $2 the tenant. */
  fingerprintsOf(table: ComparedTable): string {
    const { kfp } = vaultFingerprints(table, this.manifest.schemas);
    return `(SELECT ${kfp} AS kfp, v.h FROM ${this.keys} AS v WHERE v."table" = $1 AND v.tenant IS NOT DISTINCT FROM $2)`;
  }

  /** The vault's versions of some keys (by fingerprint) of one tenant's table, laid out as the table was at the point. */
  async rowsOf(table: ComparedTable, tenant: string | null, kfps: readonly string[]): Promise<VaultRow[]> {
    if (kfps.length === 0 || this.empty) return [];
    const { kfp } = vaultFingerprints(table, this.manifest.schemas);
    const rows = await queryRows(
      this.duck,
      `SELECT kfp, "key", schema_id, "row" FROM (
         SELECT ${kfp} AS kfp, v."key", v.schema_id, v."row", v.op,
                row_number() OVER (PARTITION BY v."key" ORDER BY v.commit_lsn DESC, v.seq DESC, (v.op = 'image') DESC) AS newest
           FROM ${this.versions} AS v
          WHERE v."table" = $1 AND v.tenant IS NOT DISTINCT FROM $2)
        WHERE newest = 1 AND op NOT IN ('delete', 'truncate') AND kfp IN (${kfps.map(sqlLiteral).join(', ')})`,
      [table.name, tenant],
    );
    return rows.map((row) => ({
      kfp: row.kfp as string,
      key: JSON.parse(row.key as string) as (string | null)[],
      row: layOut(
        JSON.parse(row.row as string) as Record<string, string | null>,
        this.manifest.schemas[Number(row.schema_id)],
        table.layout,
      ),
    }));
  }

  /** Drops the working table. */
  async drop(): Promise<void> {
    await this.duck.run(`DROP TABLE IF EXISTS ${this.keys}`);
  }
}
