// One layer file from a query whose rows are already in layer order: written by DuckDB
// as zstd Parquet into a local directory (the vault's scratch, or one inside it), with
// the statistics the manifest keeps. The caller moves it into the vault (putFile).

import { randomBytes } from 'node:crypto';
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { LAYER_COLUMN_NAMES } from './change.js';
import { queryRows, sqlLiteral } from './duckdb.js';
import { hashFile } from './layer-buffer.js';
import type { LayerEntry } from './manifest.js';

/**
 * Rows per Parquet row group: small enough that per-tenant reads skip most of a file,
 * and that a reader's memory stays small. DuckDB writes a column's values of a row
 * group as one page and reads that page whole, a buffer per thread: at 16,384 rows of
 * 1.7 KB a page of row text took 32 MB, most of a 128 MiB budget's DuckDB share, so
 * restores of wide rows ran out of memory with a single thread.
 */
const ROW_GROUP_SIZE = 2048;

/**
 * zstd's level for every layer. Below DuckDB's default (3): on Recall's rows (JSON text
 * of 100 B to 3 KB in pages of 2,048 rows) level 1 wrote 10–30% faster and its files
 * came out 3–20% smaller, not larger (narrow and wide rows alike, and the image's pieces).
 */
const COMPRESSION_LEVEL = 1;

/** A layer file in scratch and its manifest entry. */
export interface LayerFile {
  readonly local: string;
  readonly entry: LayerEntry;
}

/**
 * Writes the rows of `ordered` (LAYER_COLUMN_NAMES, sorted by LAYER_ORDER: the caller
 * sorts, so that it can sort narrower rows than it writes) as one layer file; undefined
 * if there are none.
 */
export async function writeLayerFile(
  duck: DuckDBConnection,
  directory: string,
  kind: LayerEntry['kind'],
  ordered: string,
): Promise<LayerFile | undefined> {
  const written = join(directory, `part-${randomBytes(6).toString('hex')}.parquet`);
  await duck.run(
    `COPY (SELECT ${LAYER_COLUMN_NAMES} FROM (${ordered}))
       TO ${sqlLiteral(written)} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL ${COMPRESSION_LEVEL}, ROW_GROUP_SIZE ${ROW_GROUP_SIZE})`,
  );
  const [stats] = await queryRows(
    duck,
    `SELECT count(*) AS rows, min(commit_lsn) AS min_lsn, max(commit_lsn) AS max_lsn,
            epoch_us(min(commit_time)) AS min_time, epoch_us(max(commit_time)) AS max_time,
            min(tenant) AS min_tenant, max(tenant) AS max_tenant
       FROM read_parquet(${sqlLiteral(written)})`,
  );
  if (stats === undefined || Number(stats.rows) === 0) {
    await rm(written, { force: true });
    return undefined;
  }
  const minLsn = stats.min_lsn as bigint;
  const maxLsn = stats.max_lsn as bigint;
  const name = `${hex16(minLsn)}-${hex16(maxLsn)}-${randomBytes(4).toString('hex')}.parquet`;
  const local = join(directory, name);
  await rename(written, local);
  return {
    local,
    entry: {
      path: `layers/${kind}/${name}`,
      kind,
      minLsn,
      maxLsn,
      minTime: stats.min_time as bigint,
      maxTime: stats.max_time as bigint,
      rows: Number(stats.rows),
      bytes: (await stat(local)).size,
      sha256: await hashFile(local),
      minTenant: (stats.min_tenant as string | null) ?? null,
      maxTenant: (stats.max_tenant as string | null) ?? null,
    },
  };
}

function hex16(value: bigint): string {
  return value.toString(16).toUpperCase().padStart(16, '0');
}
