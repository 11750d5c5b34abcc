// The manifest's state: the live layers, the schema history and how far the vault
// is complete, and its JSON form (bigints by field, never by a value's look). How
// versions of it are committed and chained is manifest-log.ts's job.

import { createHash } from 'node:crypto';
import { GAP_BIGINTS, type GapRecord } from './gaps.js';

/** Which database a vault belongs to. */
export interface SourceIdentity {
  /** pg_control_system().system_identifier, as text. */
  readonly systemId: string;
  readonly database: string;
  readonly slot: string;
  readonly publication: string;
  readonly serverVersion: number;
}

/** One immutable Parquet file of the vault. */
export interface LayerEntry {
  readonly path: string;
  readonly kind: 'image' | 'delta';
  readonly minLsn: bigint;
  readonly maxLsn: bigint;
  /** Microseconds since the Unix epoch. */
  readonly minTime: bigint;
  readonly maxTime: bigint;
  readonly rows: number;
  readonly bytes: number;
  readonly sha256: string;
  readonly minTenant: string | null;
  readonly maxTenant: string | null;
  /** 0 (absent) for layers as capture and init write them; each compaction of a level writes the next. */
  readonly level?: number;
  /** Which tenants' rows it may hold, by hash (tenant-bucket.ts); absent: any tenant's. */
  readonly bucket?: LayerBucket;
}

/** Bucket `index` of `of`: the tenants whose hash is `index` modulo `of`. */
export interface LayerBucket {
  readonly index: number;
  readonly of: number;
}

/** A layer that a commit replaced: its file stays for readers of older versions until gc, after the grace period. */
export interface RetiredLayer {
  readonly path: string;
  readonly bytes: number;
  /** ISO time of the commit that replaced it. */
  readonly at: string;
}

/** A column of a table as one schema version has it. */
export interface SchemaColumn {
  readonly name: string;
  readonly type: string;
  readonly typeOid?: number | undefined;
  /** attnum in the source, to follow a column across renames; undefined if unknown. */
  readonly attnum?: number | undefined;
  /** For a column added with a default: the value rows written before it hold (attmissingval). */
  readonly missing?: string | null | undefined;
}

/** One layout of one table, valid from an LSN on. */
export interface SchemaVersion {
  readonly id: number;
  readonly table: string;
  readonly sinceLsn: bigint;
  readonly columns: readonly SchemaColumn[];
  readonly key: readonly string[];
  readonly tenantColumn: string | null;
}

/** One committed manifest version. */
export interface Manifest {
  readonly format: 1;
  readonly version: number;
  /** SHA-256 of the previous version's file; null for the first. */
  readonly previous: string | null;
  readonly createdAt: string;
  readonly source: SourceIdentity;
  /** LSN of the initial image: the history starts here. */
  readonly startLsn: bigint;
  readonly startTime: bigint;
  /** Every transaction with a commit LSN ≤ this is in the vault, exactly once. */
  readonly throughLsn: bigint;
  readonly throughTime: bigint;
  /**
   * The furthest position capture may acknowledge to the slot with this version (its
   * last commit's end), recorded before it is sent; absent in vaults of an earlier release.
   */
  readonly acknowledgedLsn?: bigint;
  readonly layers: readonly LayerEntry[];
  readonly schemas: readonly SchemaVersion[];
  /**
   * Tables rewritten (rows changed with no change records) whose fresh image is still
   * to be taken; kept here so a capture that stops first takes it on restart.
   */
  readonly pendingImages?: readonly string[];
  /** Layers replaced (by compaction) whose files gc has not deleted yet. */
  readonly retired?: readonly RetiredLayer[];
  /** Set once retention folded history away: the start is then its horizon, not the initial image. */
  readonly retention?: RetentionRecord;
  /** Manifest versions below this were deleted by gc (retention): the chain starts at this version's checkpoint. */
  readonly prunedBefore?: number;
  /** Tenants whose history `recall forget` erased, each by a keyed hash of its id: never the id itself. */
  readonly erasures?: readonly ErasureRecord[];
  /** Stretches of the source's history the vault never saw (gaps.ts), oldest first. */
  readonly gaps?: readonly GapRecord[];
}

/** One erasure: whose (a keyed hash), when, by whom. */
export interface ErasureRecord {
  /** HMAC-SHA256 of the tenant's text under the vault's erasure key (state/erasure-key), hex. */
  readonly tenant: string;
  /** ISO time of the commit. */
  readonly at: string;
  /** The operating-system user who ran it. */
  readonly by: string;
}

/** The last fold: the retention it kept (as configured) and when. */
export interface RetentionRecord {
  readonly keep: string;
  /** ISO time of the fold's commit. */
  readonly foldedAt: string;
}

/** A manifest's content before it is numbered and chained. */
export type ManifestDraft = Omit<Manifest, 'format' | 'version' | 'previous' | 'createdAt'>;

export type ScalarField = Exclude<keyof ManifestDraft, 'layers' | 'schemas'>;

/** The fields of a draft that a commit replaces whole: all but the layer list and the schema history (a record: every one, checked). */
const SCALARS: Record<ScalarField, true> = {
  source: true,
  startLsn: true,
  startTime: true,
  throughLsn: true,
  throughTime: true,
  acknowledgedLsn: true,
  pendingImages: true,
  retired: true,
  retention: true,
  prunedBefore: true,
  erasures: true,
  gaps: true,
};
export const SCALAR_FIELDS = Object.keys(SCALARS) as readonly ScalarField[];

/**
 * JSON text with each bigint as its decimal digits followed by `n` (a string). Only
 * the fields that hold bigints are read back as such, never a value by its look: a
 * tenant id or a column default of `42n` is text and stays text.
 */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v), indent);
}

/**
 * JSON text with object keys sorted: equal values give equal text whatever order
 * their fields were built in. What commits and verify compare by.
 */
export function canonicalText(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return `${v}n`;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

/** The manifest's bigint fields, by where they are: the manifest, each layer, each schema version. */
const MANIFEST_BIGINTS = ['startLsn', 'startTime', 'throughLsn', 'throughTime', 'acknowledgedLsn'] as const;
const LAYER_BIGINTS = ['minLsn', 'maxLsn', 'minTime', 'maxTime'] as const;
const SCHEMA_BIGINTS = ['sinceLsn'] as const;

/** A record with its bigint fields (those present: versions of an earlier release lack some) read back. */
function withBigints(record: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const out = { ...record };
  for (const field of fields) if (record[field] !== undefined) out[field] = bigintField(record[field], field);
  return out;
}

/** A bigint field as `jsonText` wrote it (`123n`); anything else is a corrupt manifest. */
function bigintField(value: unknown, field: string): bigint {
  if (typeof value === 'string' && /^-?\d+n$/.test(value)) return BigInt(value.slice(0, -1));
  throw new SyntaxError(`field ${field} is not a bigint (${JSON.stringify(value)})`);
}

/** A field that must be there. */
function required(record: Record<string, unknown>, fields: readonly string[]): void {
  for (const field of fields) if (record[field] === undefined) throw new SyntaxError(`field ${field} is missing`);
}

export function decodeLayer(raw: unknown): LayerEntry {
  const record = raw as Record<string, unknown>;
  required(record, ['path', 'sha256', ...LAYER_BIGINTS]);
  return withBigints(record, LAYER_BIGINTS) as unknown as LayerEntry;
}

export function decodeRetired(raw: unknown): RetiredLayer {
  const record = raw as Record<string, unknown>;
  required(record, ['path', 'bytes', 'at']);
  return record as unknown as RetiredLayer;
}

export function decodeSchema(raw: unknown): SchemaVersion {
  const record = raw as Record<string, unknown>;
  required(record, ['id', 'table', ...SCHEMA_BIGINTS]);
  return withBigints(record, SCHEMA_BIGINTS) as unknown as SchemaVersion;
}

/** Scalar fields as a record or a full state holds them (each one optional here). */
export function decodeScalars(raw: Record<string, unknown>): Partial<Pick<Manifest, ScalarField>> {
  const picked = Object.fromEntries(SCALAR_FIELDS.filter((field) => raw[field] !== undefined).map((field) => [field, raw[field]]));
  const scalars = withBigints(picked, MANIFEST_BIGINTS);
  if (Array.isArray(picked.gaps)) scalars.gaps = picked.gaps.map((gap: Record<string, unknown>) => withBigints(gap, GAP_BIGINTS));
  return scalars as Partial<Pick<Manifest, ScalarField>>;
}

/** A full manifest state, as a version of the previous release or a checkpoint holds it. */
export function decodeState(raw: unknown): Manifest {
  const record = raw as Record<string, unknown> & { layers?: unknown[]; schemas?: unknown[] };
  required(record, ['version', 'source', 'startLsn', 'startTime', 'throughLsn', 'throughTime']);
  return {
    ...record,
    ...decodeScalars(record),
    layers: (record.layers ?? []).map(decodeLayer),
    schemas: (record.schemas ?? []).map(decodeSchema),
  } as unknown as Manifest;
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
