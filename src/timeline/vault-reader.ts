// Read access to a vault's history through DuckDB: resolving points to LSN
// bounds, and the common filters of per-tenant reads. Shared by show and log.

import type { DuckDBConnection } from '@duckdb/node-api';
import { InternalError, PointBeforeHistoryError, PointError, PointInGapError, UnknownTableError, UnknownTenantError } from '../errors.js';
import { formatTableName, parseTableName } from '../source/index.js';
import {
  fileList,
  gapAtLsn,
  gapAtTime,
  historyFloor,
  lineageStart,
  mayHoldTenant,
  openDuckDB,
  queryRows,
  readSet,
  type GapRecord,
  type Manifest,
  type SchemaVersion,
  type Vault,
} from '../vault/index.js';
import { formatLsn, type Lsn } from './lsn.js';
import { describePoint, formatMicros, type Point } from './point.js';

/** The clock skew tolerated before a point counts as "in the future". */
const FUTURE_SLACK_MICROS = 5_000_000n;

/**
 * The furthest LSN known to be in the past, and whose it is: the source's WAL end when
 * the source was asked, else the vault's own end. LSN points past it are refused.
 */
export interface FutureBound {
  readonly lsn: Lsn;
  readonly of: 'source' | 'vault';
}

/** The bound from the vault alone: the furthest position it recorded. */
export function vaultEnd(manifest: Manifest): FutureBound {
  const acknowledged = manifest.acknowledgedLsn;
  return { lsn: acknowledged !== undefined && acknowledged > manifest.throughLsn ? acknowledged : manifest.throughLsn, of: 'vault' };
}

/**
 * A DuckDB session over the vault's layers that a read needs (all of them, or those
 * that may hold one tenant's rows), each verified against its SHA-256 before first use.
 */
export class VaultReader {
  private closed = false;

  private constructor(
    readonly vault: Vault,
    readonly manifest: Manifest,
    readonly duck: DuckDBConnection,
    /** Local paths of the verified layers; undefined for a reader of one point (`tenantAt`). */
    private readonly verifiedFiles: readonly string[] | undefined,
    private readonly future: FutureBound | undefined,
  ) {}

  /**
   * With `tenant`, only layers that may hold its rows are read (and verified): a damaged
   * layer of others does not stop the read. With `atPoint`, none is verified on open:
   * `tenantAt` (or the caller) reads and verifies the few a read needs.
   */
  static async open(
    vault: Vault,
    options: { future?: FutureBound | undefined; tenant?: string; atPoint?: boolean } = {},
  ): Promise<VaultReader> {
    const manifest = vault.manifest;
    const { tenant } = options;
    const files =
      options.atPoint === true
        ? undefined
        : await vault.layerFiles(tenant === undefined ? manifest.layers : manifest.layers.filter((layer) => mayHoldTenant(layer, tenant)));
    const duck = await openDuckDB(await vault.storage.scratchDirectory());
    return new VaultReader(vault, manifest, duck, files, options.future);
  }

  /** Local paths of the reader's verified layers. */
  get files(): readonly string[] {
    if (this.verifiedFiles === undefined) throw new InternalError('a reader of one point has no list of every layer');
    return this.verifiedFiles;
  }

  /** read_parquet over the reader's layers, or an empty relation if there are none. */
  get layersSql(): string {
    // Rows before the history's start (in layers straddling a retention horizon) are shadowed by the images there.
    return `(SELECT * FROM ${layersSql(this.files)} WHERE commit_lsn >= ${this.manifest.startLsn})`;
  }

  /**
   * The reader's layers for a state at `lsn`: without the rows that a fresh image after
   * a gap shadows (deletes inside a gap left no record; the image says what was left).
   */
  layersSqlAt(lsn: Lsn): string {
    return `(SELECT * FROM ${layersSql(this.files)} WHERE commit_lsn >= ${historyFloor(this.manifest, lsn)})`;
  }

  /**
   * A tenant's versions that its state at `lsn` rests on, as a SQL source: its bucket's
   * newest image at or before `lsn` and the layers after it (read-set.ts), each verified
   * before use, the rows the image shadows left out.
   */
  async tenantAt(tenant: string, lsn: Lsn): Promise<string> {
    const { floor, layers } = readSet(this.manifest, { tenant }, lsn);
    const source = layersSql(await this.vault.layerFiles(layers));
    return `(SELECT * FROM ${source} WHERE commit_lsn >= ${floor})`;
  }

  /** The LSN bound of a point: every commit at or below it is part of the state at the point. */
  async resolve(point: Point, now: bigint = BigInt(Date.now()) * 1000n): Promise<Lsn> {
    const m = this.manifest;
    const start =
      m.retention === undefined
        ? `the history in ${this.vault.storage.location} starts at ${formatMicros(m.startTime)} (lsn:${formatLsn(m.startLsn)})`
        : `retention (${m.retention.keep}) folded the older history of ${this.vault.storage.location} into its horizon, ${formatMicros(m.startTime)} (lsn:${formatLsn(m.startLsn)}): give a point at or after it`;
    const before = m.retention === undefined ? 'is before the history starts' : 'is before the retention horizon';
    switch (point.kind) {
      case 'lsn': {
        if (point.lsn < m.startLsn) throw new PointBeforeHistoryError(`${describePoint(point)} ${before}`, start);
        const future = this.future;
        if (future !== undefined && point.lsn > future.lsn) {
          throw new PointError(
            future.of === 'source'
              ? `${describePoint(point)} is in the future: the source's WAL ends at lsn:${formatLsn(future.lsn)}`
              : `${describePoint(point)} is beyond the vault's end (lsn:${formatLsn(future.lsn)}); without the source, Recall cannot tell whether it is in the future`,
            'give a point in the past (`recall log` shows commit LSNs); with a source configured, Recall checks the point against it',
          );
        }
        this.assertOutsideGap(point, gapAtLsn(m, point.lsn));
        return point.lsn;
      }
      case 'time': {
        if (point.micros > now + FUTURE_SLACK_MICROS)
          throw new PointError(`${formatMicros(point.micros)} is in the future`, 'give a point in the past');
        if (point.micros < m.startTime) throw new PointBeforeHistoryError(`${formatMicros(point.micros)} ${before}`, start);
        this.assertOutsideGap(point, gapAtTime(m, point.micros));
        // Past a gap's end, never a commit before it: the fresh image may hold no row to say when it was.
        let lsn = await this.lastCommitAt(point.micros);
        for (const gap of m.gaps ?? []) {
          if (gap.resumedLsn !== undefined && gap.resumedTime !== undefined && gap.resumedTime <= point.micros && gap.resumedLsn > lsn)
            lsn = gap.resumedLsn;
        }
        return lsn;
      }
      case 'before-txn': {
        // A 32-bit xid (as BEGIN and txid wraparound-era tools show it) matches the low half.
        // Any layer may hold the transaction, whichever tenants it touched.
        const [row] = await queryRows(
          this.duck,
          `SELECT min(commit_lsn) AS lsn FROM ${layersSql(await this.vault.layerFiles(m.layers))} WHERE (xid = $1 OR ($1 < 4294967296 AND xid % 4294967296 = $1)) AND commit_lsn >= ${lineageStart(m)}`,
          [point.xid],
        );
        const lsn = row?.lsn as bigint | null;
        if (lsn === null || lsn === undefined) {
          throw m.retention === undefined
            ? new PointError(
                `transaction ${point.xid} is not in the history`,
                'check the id with `recall log`; only transactions that changed captured rows are known',
              )
            : new PointBeforeHistoryError(`transaction ${point.xid} is not in the history after the retention horizon`, start);
        }
        if (lsn <= m.startLsn) throw new PointBeforeHistoryError(`${describePoint(point)} ${before}`, start);
        this.assertOutsideGap(point, gapAtLsn(m, lsn - 1n));
        return lsn - 1n;
      }
    }
  }

  /** Refuses a point inside a gap, naming the gap and the points on either side of it. */
  private assertOutsideGap(point: Point, gap: GapRecord | undefined): void {
    if (gap === undefined) return;
    const from = `${formatMicros(gap.fromTime)} (lsn:${formatLsn(gap.fromLsn)})`;
    if (gap.resumedLsn === undefined || gap.resumedTime === undefined) {
      throw new PointInGapError(
        `${describePoint(point)} is after the history stopped at a gap: ${gap.detail}; the vault is complete only up to ${from}`,
        'give a point at or before that; `recall init --resume` takes a fresh image and continues the history after the gap',
      );
    }
    throw new PointInGapError(
      `${describePoint(point)} is inside a gap in the history (${gap.detail}): nothing is known between ${from} and ${formatMicros(gap.resumedTime)} (lsn:${formatLsn(gap.resumedLsn)})`,
      'give a point at or before the gap’s start, or at or after its end',
    );
  }

  /**
   * The greatest commit LSN whose commit time is at or before `micros`, over every
   * tenant's commits. The manifest's time ranges answer for whole layers; only layers
   * that straddle the time are read, so a read at a point touches few files. A time at
   * or after the vault's newest commit reads through it, though that commit (an ALTER
   * TABLE, say) wrote no row: the layout it announced holds from then on.
   */
  private async lastCommitAt(micros: bigint): Promise<Lsn> {
    if (this.manifest.throughTime <= micros) return this.manifest.throughLsn;
    let best: Lsn | undefined;
    for (const layer of this.manifest.layers)
      if (layer.maxTime <= micros && (best === undefined || layer.maxLsn > best)) best = layer.maxLsn;
    const straddling = this.manifest.layers.filter(
      (layer) => layer.minTime <= micros && layer.maxTime > micros && (best === undefined || layer.maxLsn > best),
    );
    if (straddling.length > 0) {
      const [row] = await queryRows(
        this.duck,
        `SELECT max(commit_lsn) AS lsn FROM ${layersSql(await this.vault.layerFiles(straddling))} WHERE commit_time <= make_timestamp($1::BIGINT)`,
        [micros],
      );
      const found = row?.lsn as bigint | null | undefined;
      if (found !== null && found !== undefined && (best === undefined || found > best)) best = found;
    }
    return best ?? this.manifest.startLsn;
  }

  /**
   * Refuses a tenant that never appears in the history. `within`, a source that holds
   * its rows if it has any near the point read, is looked at first; only a tenant with
   * none there costs a look at all its layers.
   */
  async assertTenant(tenant: string, within?: string): Promise<void> {
    const appears = async (source: string): Promise<boolean> => {
      // Rows before the history's start (in layers that straddle a retention horizon) are no longer history.
      const [row] = await queryRows(
        this.duck,
        `SELECT count(*) AS n FROM (SELECT 1 FROM ${source} WHERE tenant = $1 AND commit_lsn >= ${this.manifest.startLsn} LIMIT 1)`,
        [tenant],
      );
      return Number(row?.n ?? 0) > 0;
    };
    if (within !== undefined && (await appears(within))) return;
    const everywhere = layersSql(await this.vault.layerFiles(this.manifest.layers.filter((layer) => mayHoldTenant(layer, tenant))));
    if (!(await appears(everywhere))) {
      const erased = await this.vault.erasureOf(tenant);
      throw new UnknownTenantError(
        erased === undefined
          ? `tenant "${tenant}" never appears in the history`
          : `tenant "${tenant}" was erased from the history at ${erased.at} (recall forget)`,
        'check the tenant id (its text form, e.g. the value of tenants.id)',
      );
    }
  }

  /** The formatted name of a table as a user wrote it; refuses tables the history never held. */
  capturedTable(name: string): string {
    const table = formatTableName(parseTableName(name));
    const versions = this.manifest.schemas.filter((version) => version.table === table);
    if (versions.length === 0) {
      throw new UnknownTableError(`table ${table} is not in the history`, 'name a captured table, e.g. public.issues');
    }
    // Reads here are per tenant: a global table has no tenant's rows, and "no rows" would mislead.
    if (versions.every((version) => version.tenantColumn === null)) {
      throw new UnknownTableError(
        `table ${table} is global (it has no tenant column), so no tenant's rows are in it`,
        'name a tenant-scoped table, or leave --table out',
      );
    }
    return table;
  }

  /** The layout a table had at an LSN (its newest schema version at or before it). */
  layoutAt(table: string, lsn: Lsn): SchemaVersion | undefined {
    return layoutAt(this.manifest, table, lsn);
  }

  /** Schema version by id. */
  schema(id: number): SchemaVersion | undefined {
    return this.manifest.schemas[id];
  }

  /** Ends the DuckDB session (again: nothing); the manifest stays readable. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.duck.closeSync();
  }
}

/** The layout a table had at an LSN in a manifest's schema history (its newest version at or before it). */
export function layoutAt(manifest: Manifest, table: string, lsn: Lsn): SchemaVersion | undefined {
  return manifest.schemas.filter((version) => version.table === table && version.sinceLsn <= lsn).at(-1);
}

/** read_parquet over layer files, or an empty relation of the layer columns if there are none. */
export function layersSql(files: readonly string[]): string {
  if (files.length === 0) {
    return `(SELECT NULL::UBIGINT AS commit_lsn, NULL::UINTEGER AS seq, NULL::TIMESTAMP AS commit_time, NULL::UBIGINT AS xid,
                      NULL::VARCHAR AS "table", NULL::VARCHAR AS op, NULL::VARCHAR AS tenant, NULL::VARCHAR AS "key",
                      NULL::UINTEGER AS schema_id, NULL::VARCHAR AS "row", NULL::VARCHAR AS context WHERE false)`;
  }
  return `read_parquet(${fileList(files)})`;
}
