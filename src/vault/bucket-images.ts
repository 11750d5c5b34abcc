// Bucket images: the state of some of the 16 tenant buckets at one LSN, each bucket's
// from its own floor (its previous image, or the history's start). The layers are read
// once for all the buckets, into a DuckDB table that spills past the memory budget,
// and each bucket's newest versions are then taken from that table alone.

import type { DuckDBConnection } from '@duckdb/node-api';
import { LAYER_ORDER } from './change.js';
import { fileList } from './duckdb.js';
import { writeLayerFile, type LayerFile } from './layer-file.js';
import type { LayerBucket, LayerEntry } from './manifest.js';
import { IMAGE_BUCKETS } from './read-set.js';
import { tenantBucketSql } from './tenant-bucket.js';
import type { Vault } from './vault.js';

/** One bucket of an image round, and the LSN below which its rows are shadowed. */
export interface BucketFloor {
  readonly bucket: LayerBucket;
  readonly floor: bigint;
}

/** What images are written of: buckets, the layers they rest on, and the point. */
export interface BucketImageRound {
  readonly buckets: readonly BucketFloor[];
  readonly inputs: readonly LayerEntry[];
  readonly lsn: bigint;
  /** Microseconds since the epoch: the commit time at `lsn`. */
  readonly time: bigint;
}

/**
 * Writes each bucket's image into `directory`: per key, its newest version at or below
 * the round's LSN and not below the bucket's floor, unless that is a delete, with the
 * round's LSN and time. Versions are taken per tenant, as reads take them. A bucket
 * with no row at the point gets no file.
 */
export async function writeBucketImages(
  vault: Vault,
  duck: DuckDBConnection,
  directory: string,
  round: BucketImageRound,
): Promise<LayerFile[]> {
  const files = await vault.layerFiles(round.inputs);
  const floors = round.buckets.map(({ bucket, floor }) => `(${bucket.index}, ${floor}::UBIGINT)`).join(', ');
  await duck.run(
    `CREATE OR REPLACE TEMP TABLE recall_image_input AS
       SELECT v.bucket, v.commit_lsn, v.seq, v."table", v.op, v.tenant, v."key", v.schema_id, v."row"
         FROM (SELECT *, ${tenantBucketSql('tenant', IMAGE_BUCKETS)} AS bucket
                 FROM read_parquet(${fileList(files)}) WHERE commit_lsn <= ${round.lsn}) v
         JOIN (VALUES ${floors}) AS f(bucket, floor) ON v.bucket = f.bucket AND v.commit_lsn >= f.floor`,
  );
  try {
    const written: LayerFile[] = [];
    for (const { bucket } of round.buckets) {
      const ordered = `SELECT ${round.lsn}::UBIGINT AS commit_lsn, 0::UINTEGER AS seq, make_timestamp(${round.time}::BIGINT) AS commit_time,
                              NULL::UBIGINT AS xid, "table", 'image' AS op, tenant, "key", schema_id, "row", NULL::VARCHAR AS context
                         FROM (SELECT "table", op, tenant, "key", schema_id, "row",
                                      row_number() OVER (PARTITION BY tenant, "table", "key" ORDER BY commit_lsn DESC, seq DESC) AS newest
                                 FROM recall_image_input WHERE bucket = ${bucket.index})
                        WHERE newest = 1 AND op NOT IN ('delete', 'truncate')
                        ORDER BY ${LAYER_ORDER}`;
      const file = await writeLayerFile(duck, directory, 'image', ordered);
      if (file !== undefined) written.push({ local: file.local, entry: { ...file.entry, level: 1, bucket } });
    }
    return written;
  } finally {
    await duck.run('DROP TABLE IF EXISTS recall_image_input');
  }
}
