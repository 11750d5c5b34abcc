// The manifest: the list of live layers, the schema history and how far the vault
// is complete. Each version is a new file that names the SHA-256 of the previous
// one, so the history is tamper-evident; a version is committed by creating its
// file exclusively, which makes the switch atomic and refuses a second writer.

import { createHash } from 'node:crypto';
import { VaultConflictError, VaultCorruptError } from '../errors.js';
import type { VaultStorage } from './storage.js';

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
}

/** A manifest's content before it is numbered and chained. */
export type ManifestDraft = Omit<Manifest, 'format' | 'version' | 'previous' | 'createdAt'>;

const MANIFEST_DIR = 'manifest';
const manifestPath = (version: number): string => `${MANIFEST_DIR}/${String(version).padStart(12, '0')}.json`;

/**
 * Serialises a bigint as its decimal digits followed by `n` (a string). Only the
 * fields that hold bigints are read back as such (`decode`), never a value by its
 * look: a tenant id or a column default of `42n` is text and stays text.
 */
function encode(manifest: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, (_key, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value), 2)}\n`);
}

/** The manifest's bigint fields, by where they are: the manifest, each layer, each schema version. */
const MANIFEST_BIGINTS = ['startLsn', 'startTime', 'throughLsn', 'throughTime'] as const;
const LAYER_BIGINTS = ['minLsn', 'maxLsn', 'minTime', 'maxTime'] as const;
const SCHEMA_BIGINTS = ['sinceLsn'] as const;

/** Bigint fields that versions of an earlier release lack. */
const OPTIONAL_MANIFEST_BIGINTS = ['acknowledgedLsn'] as const;

function decode(data: Buffer): Manifest {
  const raw = JSON.parse(data.toString('utf8')) as Record<string, unknown> & { layers?: unknown[]; schemas?: unknown[] };
  const withBigints = (
    record: Record<string, unknown>,
    fields: readonly string[],
    optional: readonly string[] = [],
  ): Record<string, unknown> => {
    const out = { ...record };
    for (const field of fields) out[field] = bigintField(record[field], field);
    for (const field of optional) if (record[field] !== undefined) out[field] = bigintField(record[field], field);
    return out;
  };
  return {
    ...withBigints(raw, MANIFEST_BIGINTS, OPTIONAL_MANIFEST_BIGINTS),
    layers: (raw.layers ?? []).map((layer) => withBigints(layer as Record<string, unknown>, LAYER_BIGINTS)),
    schemas: (raw.schemas ?? []).map((schema) => withBigints(schema as Record<string, unknown>, SCHEMA_BIGINTS)),
  } as unknown as Manifest;
}

/** A bigint field as `encode` wrote it (`123n`); anything else is a corrupt manifest. */
function bigintField(value: unknown, field: string): bigint {
  if (typeof value === 'string' && /^-?\d+n$/.test(value)) return BigInt(value.slice(0, -1));
  throw new SyntaxError(`field ${field} is not a bigint (${JSON.stringify(value)})`);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The newest manifest version and the hash of its file, or undefined for an empty vault. */
export async function loadManifest(storage: VaultStorage): Promise<{ manifest: Manifest; hash: string } | undefined> {
  const versions = (await storage.list(MANIFEST_DIR)).filter((path) => /\/\d{12}\.json$/.test(path));
  const newest = versions.at(-1);
  if (newest === undefined) return undefined;
  const data = await storage.read(newest);
  if (data === undefined) throw new VaultCorruptError(`manifest ${newest} vanished while reading`, 'is another process pruning the vault?');
  let manifest: Manifest;
  try {
    manifest = decode(data);
  } catch (error) {
    throw new VaultCorruptError(
      `manifest ${newest} in ${storage.location} cannot be read: ${(error as Error).message}`,
      'restore the file from a copy of the vault',
      { cause: error },
    );
  }
  if (manifest.version > 1) {
    // Check the newest link of the chain on every open; `recall verify` walks all of it.
    const previous = await storage.read(manifestPath(manifest.version - 1));
    if (previous === undefined) {
      throw new VaultCorruptError(
        `manifest version ${manifest.version - 1} is missing from ${storage.location}`,
        'restore it from a copy of the vault; the chain cannot be checked without it',
      );
    }
    if (sha256(previous) !== manifest.previous) {
      throw new VaultCorruptError(
        `manifest version ${manifest.version} does not chain to version ${manifest.version - 1}`,
        'the vault was modified outside Recall; restore it from a copy',
      );
    }
  }
  return { manifest, hash: sha256(data) };
}

/** Commits the next manifest version after `current`; fails if another writer got there first. */
export async function commitManifest(
  storage: VaultStorage,
  current: { manifest: Manifest; hash: string } | undefined,
  draft: ManifestDraft,
): Promise<{ manifest: Manifest; hash: string }> {
  const version = (current?.manifest.version ?? 0) + 1;
  const manifest: Manifest = {
    format: 1,
    version,
    previous: current?.hash ?? null,
    createdAt: new Date().toISOString(),
    ...draft,
  };
  const data = encode(manifest);
  if (!(await storage.createExclusive(manifestPath(version), data))) {
    throw new VaultConflictError(
      `another process committed manifest version ${version} of ${storage.location} first`,
      'run only one `recall capture` per vault',
    );
  }
  return { manifest, hash: sha256(data) };
}
