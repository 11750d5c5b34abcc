// The layers a read of one tenant (or one bucket) at one LSN needs: the newest bucket
// image at or before it, and the layers after that image. The state at a point is
// then the image plus a bounded run of changes, however long the history before it.
//
// Rows older than the image are left out by LSN (`floor`), not only by file: a file
// that straddles the image also holds older versions, and an older insert whose delete
// sits in a file left out would otherwise come back. Without an image the floor is the
// history's start, which retention moves: rows before it are folded into the images at
// the start, and a bucket with no rows there has no image at all.

import { historyFloor } from './gaps.js';
import type { LayerBucket, LayerEntry, Manifest } from './manifest.js';
import { mayHoldTenant, tenantBucket, tenantBucketSql } from './tenant-bucket.js';

/** Buckets of the images compaction writes: the finest split of the layers. */
export const IMAGE_BUCKETS = 16;

/** An image compaction wrote: the whole state of one bucket's tenants (global rows in bucket 0) at its LSN. */
export function isBucketImage(layer: LayerEntry): boolean {
  return layer.kind === 'image' && (layer.level ?? 0) > 0 && layer.bucket !== undefined;
}

/** Whether a layer may hold rows of some tenant of a bucket (the buckets of one split nest in those of a coarser one). */
export function mayHoldBucket(layer: LayerEntry, bucket: LayerBucket): boolean {
  const own = layer.bucket;
  if (own === undefined) return true;
  return own.of <= bucket.of ? bucket.index % own.of === own.index : own.index % bucket.of === bucket.index;
}

/** What a read needs. */
export interface ReadSet {
  /** The image's LSN, or the history's start: rows below it are shadowed. */
  readonly floor: bigint;
  readonly layers: readonly LayerEntry[];
}

/** What a read is of: one tenant, or every tenant of a bucket (an image being written). */
export type ReadScope = { readonly tenant: string } | { readonly bucket: LayerBucket };

/** The layers a read of `scope` at `lsn` needs. */
export function readSet(manifest: Manifest, scope: ReadScope, lsn: bigint): ReadSet {
  const bucket = 'bucket' in scope ? scope.bucket : { index: tenantBucket(scope.tenant, IMAGE_BUCKETS), of: IMAGE_BUCKETS };
  const holds = (layer: LayerEntry): boolean => ('tenant' in scope ? mayHoldTenant(layer, scope.tenant) : mayHoldBucket(layer, bucket));
  // An image covers its whole bucket, including tenants it holds no row of (they had none then).
  const images = manifest.layers.filter(
    (layer) => isBucketImage(layer) && layer.maxLsn <= lsn && mayHoldBucket(layer, bucket) && layer.bucket?.of === bucket.of,
  );
  // A fresh image after a gap (gaps.ts) shadows everything before it, as a bucket image does.
  const floor = images.reduce((best, layer) => (layer.maxLsn > best ? layer.maxLsn : best), historyFloor(manifest, lsn));
  const base = images.filter((layer) => layer.maxLsn === floor);
  // A layer ending at the floor may hold the commit there (the initial image does): kept, its older rows filtered.
  const after = manifest.layers.filter((layer) => !base.includes(layer) && layer.maxLsn >= floor && layer.minLsn <= lsn && holds(layer));
  return { floor, layers: [...base, ...after] };
}

/** The layers that hold the newest version of every key, and the floor of each image bucket. */
export interface NewestVersions {
  readonly layers: readonly LayerEntry[];
  /** Per bucket of IMAGE_BUCKETS: rows of its tenants below it are shadowed by its image. */
  readonly floors: readonly bigint[];
}

/**
 * Every bucket's read set at the end of the history, together: the newest version of
 * every key, whatever its tenant. Capture looks up the row a delete removed there, so
 * the lookup reads the live state and the changes since each image, not the vault's
 * whole age.
 */
export function newestVersions(manifest: Manifest): NewestVersions {
  // The end of every layer, not only of the history: a rewritten table's new image sits at
  // the consistent point of its slot, past the commit of the batch that holds it.
  const end = manifest.layers.reduce((last, layer) => (layer.maxLsn > last ? layer.maxLsn : last), manifest.throughLsn);
  return bucketReadSets(manifest, end);
}

/**
 * The read sets of some image buckets (all of them unless told) at `lsn`, together, in
 * manifest order, with every bucket's floor (for aboveFloorSql): the state of those
 * buckets' tenants at `lsn` is in these layers, above each row's floor.
 */
export function bucketReadSets(manifest: Manifest, lsn: bigint, buckets?: readonly number[]): NewestVersions {
  const layers = new Set<LayerEntry>();
  const floors: bigint[] = [];
  for (let index = 0; index < IMAGE_BUCKETS; index++) {
    const set = readSet(manifest, { bucket: { index, of: IMAGE_BUCKETS } }, lsn);
    floors.push(set.floor);
    if (buckets === undefined || buckets.includes(index)) for (const layer of set.layers) layers.add(layer);
  }
  return { layers: manifest.layers.filter((layer) => layers.has(layer)), floors };
}

/** SQL: whether a row (its commit LSN and tenant columns) is at or above its bucket's floor. */
export function aboveFloorSql(floors: readonly bigint[], lsn: string, tenant: string): string {
  const lowest = floors.reduce((low, floor) => (floor < low ? floor : low), floors[0] ?? 0n);
  const highest = floors.reduce((high, floor) => (floor > high ? floor : high), lowest);
  if (highest === lowest) return `${lsn} >= ${lowest}`;
  // The bucket's hash only for rows between the floors: most rows are past them all.
  const bucketFloor = `[${floors.map((floor) => `${floor}::UBIGINT`).join(', ')}][${tenantBucketSql(tenant, floors.length)}::BIGINT + 1]`;
  return `(${lsn} >= ${highest} OR (${lsn} >= ${lowest} AND ${lsn} >= ${bucketFloor}))`;
}
