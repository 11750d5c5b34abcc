// Compaction: merges the small delta layers capture writes into fewer, larger ones,
// split by tenant bucket, so the files a read opens stay few however old the vault
// grows. Rows are copied unchanged, every version kept, so every point reads the same
// before and after; the replaced files are retired, and gc deletes them after a grace.
//
//   level 0   one layer per capture flush, any tenant            merged FAN_IN at a time into
//   level 1   1 bucket                                          → level 2, 4 buckets → level 3+, 16 buckets

import { rm } from 'node:fs/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import { InternalError } from '../errors.js';
import { LAYER_ORDER } from './change.js';
import { fileList } from './duckdb.js';
import { DEFAULT_COMPRESSION_LEVEL, writeLayerFile } from './layer-file.js';
import type { LayerBucket, LayerEntry, Manifest } from './manifest.js';
import { processScratchDirectory } from './process-directory.js';
import { IMAGE_BUCKETS, isBucketImage, readSet } from './read-set.js';
import { tenantBucketSql } from './tenant-bucket.js';
import type { Vault } from './vault.js';

/** Layers of one level and bucket merged at once: the layers of a level per bucket stay below it. */
export const FAN_IN = 8;

/**
 * The most bytes one merge reads. A merge sorts its input whole (spilling past the memory
 * budget), so this bounds the time a step holds its share of the CPU budget; layers too
 * large to merge FAN_IN at a time stay at their level.
 */
export const MAX_MERGE_BYTES = 256 * 1024 * 1024;

/** A bucket's image is rewritten once the rows after it pass this many times its own… */
export const IMAGE_RATIO = 2;
/** …and this many: small vaults are read whole quickly, and need no images. */
export const MIN_IMAGE_ROWS = 50_000;

/** Buckets of a level's layers: more as layers grow, so a read of one tenant opens a smaller part of each. */
export function bucketsOf(level: number): number {
  return level <= 1 ? 1 : level === 2 ? 4 : 16;
}

/** A layer's level (capture's and init's layers are level 0). */
export function levelOf(layer: LayerEntry): number {
  return layer.level ?? 0;
}

/** One merge: delta layers of one level and bucket, into the next level's buckets within it. */
export interface MergeStep {
  readonly kind: 'merge';
  readonly level: number;
  readonly bucket: LayerBucket | undefined;
  readonly inputs: readonly LayerEntry[];
}

/** One image: the state of a bucket's tenants at `lsn`, from its previous image and the layers after it. */
export interface ImageStep {
  readonly kind: 'image';
  readonly bucket: LayerBucket;
  readonly lsn: bigint;
  readonly time: bigint;
  /** The previous image's LSN, below which the inputs' rows are shadowed. */
  readonly floor: bigint | undefined;
  readonly inputs: readonly LayerEntry[];
}

export type CompactionStep = MergeStep | ImageStep;

/** Work waiting: the layers (and their bytes) that the next merges would take. */
export interface CompactionBacklog {
  readonly layers: number;
  readonly bytes: number;
}

/** Delta layers by level and bucket; images are the history's anchors and are not merged. */
function groups(manifest: Manifest): LayerEntry[][] {
  const byGroup = new Map<string, LayerEntry[]>();
  for (const layer of manifest.layers) {
    if (layer.kind !== 'delta') continue;
    const name = `${levelOf(layer)}/${layer.bucket?.index ?? '-'}/${layer.bucket?.of ?? '-'}`;
    byGroup.set(name, [...(byGroup.get(name) ?? []), layer]);
  }
  return [...byGroup.values()].map((layers) => layers.sort((a, b) => (a.minLsn < b.minLsn ? -1 : a.minLsn > b.minLsn ? 1 : 0)));
}

/** The oldest layers of a group that one merge takes: FAN_IN of them, fewer if they pass MAX_MERGE_BYTES; none if fewer than two fit. */
function mergeable(group: readonly LayerEntry[]): LayerEntry[] {
  if (group.length < FAN_IN) return [];
  const taken: LayerEntry[] = [];
  let bytes = 0;
  for (const layer of group.slice(0, FAN_IN)) {
    if (bytes + layer.bytes > MAX_MERGE_BYTES) break;
    taken.push(layer);
    bytes += layer.bytes;
  }
  return taken.length >= 2 ? taken : [];
}

/** The next merge, lowest level first (where capture adds layers), or undefined when there is nothing to merge. */
export function nextMerge(manifest: Manifest): MergeStep | undefined {
  let best: MergeStep | undefined;
  for (const group of groups(manifest)) {
    const inputs = mergeable(group);
    const first = inputs[0];
    if (first === undefined) continue;
    if (best === undefined || levelOf(first) < best.level) best = { kind: 'merge', level: levelOf(first), bucket: first.bucket, inputs };
  }
  return best;
}

/**
 * The image of a bucket at the vault's end, from its newest image and what came after.
 * Due (unless `force`) when the rows since that image pass IMAGE_RATIO times its own and
 * MIN_IMAGE_ROWS: a read at a point then takes at most about IMAGE_RATIO + 1 images' worth
 * of rows, and images add about 1 / IMAGE_RATIO to the vault's bytes.
 */
export function imageStep(manifest: Manifest, index: number, force: boolean): ImageStep | undefined {
  const bucket = { index, of: IMAGE_BUCKETS };
  const { floor, layers } = readSet(manifest, { bucket }, manifest.throughLsn);
  if (floor === manifest.throughLsn) return undefined;
  // A layer's rows spread over the image buckets its own bucket spans.
  const share = (layer: LayerEntry): number => layer.rows / (IMAGE_BUCKETS / (layer.bucket?.of ?? 1));
  const imaged = layers.filter((layer) => layer.maxLsn === floor && isBucketImage(layer)).reduce((sum, layer) => sum + share(layer), 0);
  const since = layers.filter((layer) => layer.maxLsn !== floor || !isBucketImage(layer)).reduce((sum, layer) => sum + share(layer), 0);
  if (!force && (since < MIN_IMAGE_ROWS || since < IMAGE_RATIO * imaged)) return undefined;
  if (since === 0) return undefined;
  return { kind: 'image', bucket, lsn: manifest.throughLsn, time: manifest.throughTime, floor, inputs: layers };
}

/** The images due now, one per bucket. */
export function imagesDue(manifest: Manifest, force = false): ImageStep[] {
  return Array.from({ length: IMAGE_BUCKETS }, (_, index) => imageStep(manifest, index, force)).flatMap((step) => step ?? []);
}

/** The next piece of work: merges first (they keep the layer count down), then images. */
export function nextCompactionStep(manifest: Manifest): CompactionStep | undefined {
  return nextMerge(manifest) ?? imagesDue(manifest)[0];
}

/** What the merges due now would take, for `recall status`. */
export function compactionBacklog(manifest: Manifest): CompactionBacklog {
  let layers = 0;
  let bytes = 0;
  for (const group of groups(manifest)) {
    for (let rest = group; ; rest = rest.slice(FAN_IN)) {
      const inputs = mergeable(rest);
      if (inputs.length === 0) break;
      layers += inputs.length;
      bytes += inputs.reduce((sum, layer) => sum + layer.bytes, 0);
    }
  }
  return { layers, bytes };
}

/** What one merge did. */
export interface CompactionResult {
  readonly replaced: readonly LayerEntry[];
  readonly written: readonly LayerEntry[];
  /** False when another committer replaced an input first: nothing changed, the files written are left to gc. */
  readonly committed: boolean;
}

/**
 * Runs one merge: writes the next level's layers into the vault, then commits them in
 * place of the inputs (retiring those), recomputed on the newest manifest if another
 * process committed meanwhile. A crash at any moment leaves either the old layers live
 * or the new ones, never both: files written and not committed are gc's.
 */
export async function compact(vault: Vault, duck: DuckDBConnection, step: CompactionStep): Promise<CompactionResult> {
  return step.kind === 'merge' ? merge(vault, duck, step) : image(vault, duck, step);
}

async function merge(vault: Vault, duck: DuckDBConnection, step: MergeStep): Promise<CompactionResult> {
  const files = await vault.layerFiles(step.inputs);
  const level = step.level + 1;
  const of = bucketsOf(level);
  const directory = await processScratchDirectory(vault.storage, 'compact');
  try {
    // Every output is written locally before any is put into the vault: the time between
    // a file's arrival there and the commit naming it stays short, well within gc's grace.
    const outputs: { local: string; entry: LayerEntry }[] = [];
    // The next level's buckets within the inputs' one: `of` is a multiple of the inputs'.
    const within = step.bucket ?? { index: 0, of: 1 };
    for (let index = within.index; index < of; index += within.of) {
      const ordered = `SELECT * FROM read_parquet(${fileList(files)}) WHERE ${tenantBucketSql('tenant', of)} = ${index} ORDER BY ${LAYER_ORDER}`;
      const file = await writeLayerFile(duck, directory, 'delta', ordered, DEFAULT_COMPRESSION_LEVEL);
      if (file !== undefined) outputs.push({ local: file.local, entry: { ...file.entry, level, bucket: { index, of } } });
    }
    for (const output of outputs) await vault.storage.putFile(output.entry.path, output.local);
    const written = outputs.map((output) => output.entry);
    const rowsIn = step.inputs.reduce((sum, layer) => sum + layer.rows, 0);
    const rowsOut = written.reduce((sum, layer) => sum + layer.rows, 0);
    if (rowsIn !== rowsOut) throw new InternalError(`a merge of ${step.inputs.length} layers wrote ${rowsOut} of their ${rowsIn} rows`);
    return await commitReplacing(vault, step.inputs, written);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/**
 * Writes a bucket's image: per key, its newest version at or below the step's LSN and
 * not below the previous image, unless that is a delete, with the image's LSN and time.
 * Versions are taken per tenant, as reads take them. The layers it read stay live:
 * reads before its LSN still need them.
 */
async function image(vault: Vault, duck: DuckDBConnection, step: ImageStep): Promise<CompactionResult> {
  const files = await vault.layerFiles(step.inputs);
  const directory = await processScratchDirectory(vault.storage, 'compact');
  try {
    const scope = `${tenantBucketSql('tenant', step.bucket.of)} = ${step.bucket.index} AND commit_lsn <= ${step.lsn}${step.floor === undefined ? '' : ` AND commit_lsn >= ${step.floor}`}`;
    const ordered = `SELECT ${step.lsn}::UBIGINT AS commit_lsn, 0::UINTEGER AS seq, make_timestamp(${step.time}::BIGINT) AS commit_time,
                            NULL::UBIGINT AS xid, "table", 'image' AS op, tenant, "key", schema_id, "row", NULL::VARCHAR AS context
                       FROM (SELECT "table", op, tenant, "key", schema_id, "row",
                                    row_number() OVER (PARTITION BY tenant, "table", "key" ORDER BY commit_lsn DESC, seq DESC) AS newest
                               FROM read_parquet(${fileList(files)}) WHERE ${scope})
                      WHERE newest = 1 AND op NOT IN ('delete', 'truncate')
                      ORDER BY ${LAYER_ORDER}`;
    const file = await writeLayerFile(duck, directory, 'image', ordered, DEFAULT_COMPRESSION_LEVEL);
    if (file === undefined) return { replaced: [], written: [], committed: false };
    const entry: LayerEntry = { ...file.entry, level: 1, bucket: step.bucket };
    await vault.storage.putFile(entry.path, file.local);
    return await commitReplacing(vault, [], [entry], step.inputs);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/**
 * Commits `written` in place of `replaced` (retiring those), recomputed on the newest
 * manifest; nothing is committed if one of `replaced` or `needed` is no longer live.
 */
async function commitReplacing(
  vault: Vault,
  replaced: readonly LayerEntry[],
  written: readonly LayerEntry[],
  needed: readonly LayerEntry[] = replaced,
): Promise<CompactionResult> {
  const gone = new Set(replaced.map((layer) => layer.path));
  let committed = false;
  await vault.update((current) => {
    if (current === undefined) throw new InternalError('a vault with layers to compact has no manifest');
    const live = new Set(current.layers.map((layer) => layer.path));
    committed = [...replaced, ...needed].every((layer) => live.has(layer.path));
    if (!committed) return undefined;
    const at = new Date().toISOString();
    return {
      ...current,
      layers: [...current.layers.filter((layer) => !gone.has(layer.path)), ...written],
      retired:
        replaced.length === 0
          ? current.retired
          : [...(current.retired ?? []), ...replaced.map((layer) => ({ path: layer.path, bytes: layer.bytes, at }))],
    };
  });
  return { replaced, written, committed };
}

/** A step about to run, for logs: "merging 8 level-0 layers", "imaging bucket 3/16 from 12 layers". */
export function describeStep(step: CompactionStep): string {
  return step.kind === 'merge'
    ? `merging ${step.inputs.length} level-${step.level} layers`
    : `imaging bucket ${step.bucket.index}/${step.bucket.of} from ${step.inputs.length} layers`;
}

/** A step done, for logs: "level 0 → 1: 8 layers (52114 bytes) into 1 (40960 bytes)". */
export function describeResult(step: CompactionStep, result: CompactionResult): string {
  const bytes = (layers: readonly LayerEntry[]): number => layers.reduce((sum, layer) => sum + layer.bytes, 0);
  if (step.kind === 'image') {
    const rows = result.written.reduce((sum, layer) => sum + layer.rows, 0);
    return `image of bucket ${step.bucket.index}/${step.bucket.of}: ${rows} rows (${bytes(result.written)} bytes) from ${step.inputs.length} layers`;
  }
  return `level ${step.level} → ${step.level + 1}: ${result.replaced.length} layers (${bytes(result.replaced)} bytes) into ${result.written.length} (${bytes(result.written)} bytes)`;
}
