// Which layers may hold a tenant's rows: a layer's tenant range, and for compacted
// layers its bucket, a hash of the tenant's text that DuckDB (splitting a merge) and
// Node (choosing the files of a read) compute alike: the first 32 bits of its MD5.

import { createHash } from 'node:crypto';
import type { LayerEntry } from './manifest.js';

/** The bucket of `of` that a tenant's rows go to. */
export function tenantBucket(tenant: string, of: number): number {
  return Number.parseInt(createHash('md5').update(tenant).digest('hex').slice(0, 8), 16) % of;
}

/** The same as SQL over a tenant column; rows of global tables (no tenant) go to bucket 0. */
export function tenantBucketSql(column: string, of: number): string {
  return `(CASE WHEN ${column} IS NULL THEN 0 ELSE ('0x' || left(md5(${column}), 8))::UBIGINT % ${of} END)`;
}

/**
 * Whether a layer may hold rows of a tenant: its tenant range, as DuckDB computed it
 * (VARCHAR order, which is the order of the UTF-8 bytes), covers the tenant, and the
 * tenant hashes to its bucket, if it has one.
 */
export function mayHoldTenant(layer: LayerEntry, tenant: string): boolean {
  if (layer.minTenant === null || layer.maxTenant === null) return false;
  if (layer.bucket !== undefined && tenantBucket(tenant, layer.bucket.of) !== layer.bucket.index) return false;
  const id = Buffer.from(tenant);
  return Buffer.compare(Buffer.from(layer.minTenant), id) <= 0 && Buffer.compare(id, Buffer.from(layer.maxTenant)) <= 0;
}
