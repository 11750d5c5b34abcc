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
import { formatMicros } from '../timeline/point.js';
import { LAYER_ORDER } from './change.js';
import { fileList } from './duckdb.js';
import { writeBucketImages, type BucketFloor, type BucketImageRound } from './bucket-images.js';
import { writeLayerFile } from './layer-file.js';
import type { LayerBucket, LayerEntry, Manifest } from './manifest.js';
import { processScratchDirectory } from './process-directory.js';
import { IMAGE_BUCKETS, isBucketImage, readSet } from './read-set.js';
import { tenantBucketSql } from './tenant-bucket.js';
import { fold, foldDue, type FoldStep, type Retention } from './retention.js';
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
export const IMAGE_RATIO = 3;
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

/** Images of the buckets due, at the vault's end: the state of their tenants there. */
export interface ImageStep extends BucketImageRound {
  readonly kind: 'image';
}

export type CompactionStep = MergeStep | ImageStep | FoldStep;

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
 * Whether a bucket's image at the vault's end is due (always, with `force`, if anything
 * changed since its floor): when the rows since its newest image pass IMAGE_RATIO times
 * that image's and MIN_IMAGE_ROWS. A read at a point then takes at most about
 * IMAGE_RATIO + 1 images' worth of rows, and images add about 1 / IMAGE_RATIO to the
 * vault's bytes.
 */
function imageDue(manifest: Manifest, index: number, force: boolean): (BucketFloor & { inputs: readonly LayerEntry[] }) | undefined {
  const bucket = { index, of: IMAGE_BUCKETS };
  const { floor, layers } = readSet(manifest, { bucket }, manifest.throughLsn);
  if (floor === manifest.throughLsn) return undefined;
  // A layer's rows spread over the image buckets its own bucket spans.
  const share = (layer: LayerEntry): number => layer.rows / (IMAGE_BUCKETS / (layer.bucket?.of ?? 1));
  const isBase = (layer: LayerEntry): boolean => layer.maxLsn === floor && isBucketImage(layer);
  const imaged = layers.filter(isBase).reduce((sum, layer) => sum + share(layer), 0);
  const since = layers.filter((layer) => !isBase(layer)).reduce((sum, layer) => sum + share(layer), 0);
  if (force ? since === 0 : since < MIN_IMAGE_ROWS || since < IMAGE_RATIO * imaged) return undefined;
  return { bucket, floor, inputs: layers };
}

/** The images due now (or, with `force`, of every bucket that changed), as one step that reads their layers once. */
export function imagesDue(manifest: Manifest, force = false): ImageStep | undefined {
  const due = Array.from({ length: IMAGE_BUCKETS }, (_, index) => imageDue(manifest, index, force)).flatMap((one) => one ?? []);
  if (due.length === 0) return undefined;
  const inputs = [...new Map(due.flatMap((one) => one.inputs).map((layer) => [layer.path, layer])).values()];
  return {
    kind: 'image',
    buckets: due.map(({ bucket, floor }) => ({ bucket, floor })),
    inputs,
    lsn: manifest.throughLsn,
    time: manifest.throughTime,
  };
}

/** The next piece of work: merges first (they keep the layer count down), then a fold past the retention horizon, then images. */
export function nextCompactionStep(manifest: Manifest, retention?: Retention, now = Date.now()): CompactionStep | undefined {
  return nextMerge(manifest) ?? (retention === undefined ? undefined : foldDue(manifest, retention, now)) ?? imagesDue(manifest);
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
 * Runs one step: writes its layers into the vault, then commits them (in place of the
 * inputs a merge or fold replaces, retiring those), recomputed on the newest manifest if
 * another process committed meanwhile. A crash at any moment leaves either the old
 * layers live or the new ones, never both: files written and not committed are gc's.
 */
export async function compact(vault: Vault, duck: DuckDBConnection, step: CompactionStep): Promise<CompactionResult> {
  switch (step.kind) {
    case 'merge':
      return merge(vault, duck, step);
    case 'image':
      return image(vault, duck, step);
    case 'fold':
      return fold(vault, duck, step);
  }
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
      const file = await writeLayerFile(duck, directory, 'delta', ordered);
      if (file !== undefined) outputs.push({ local: file.local, entry: { ...file.entry, level, bucket: { index, of } } });
    }
    for (const output of outputs) await vault.putLayer(output);
    const written = outputs.map((output) => output.entry);
    const rowsIn = step.inputs.reduce((sum, layer) => sum + layer.rows, 0);
    const rowsOut = written.reduce((sum, layer) => sum + layer.rows, 0);
    if (rowsIn !== rowsOut) throw new InternalError(`a merge of ${step.inputs.length} layers wrote ${rowsOut} of their ${rowsIn} rows`);
    return await commitReplacing(vault, step.inputs, written);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/** Writes the images of the due buckets. The layers they read stay live: reads before the images' LSN still need them. */
async function image(vault: Vault, duck: DuckDBConnection, step: ImageStep): Promise<CompactionResult> {
  const directory = await processScratchDirectory(vault.storage, 'compact');
  try {
    const files = await writeBucketImages(vault, duck, directory, step);
    if (files.length === 0) return { replaced: [], written: [], committed: false };
    for (const file of files) await vault.putLayer(file);
    return await commitReplacing(
      vault,
      [],
      files.map((file) => file.entry),
      step.inputs,
    );
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/**
 * Commits `written` in place of `replaced` (retiring those), recomputed on the newest
 * manifest; nothing is committed if one of `replaced` or `needed` is no longer live.
 */
export async function commitReplacing(
  vault: Vault,
  replaced: readonly LayerEntry[],
  written: readonly LayerEntry[],
  needed: readonly LayerEntry[] = replaced,
): Promise<CompactionResult> {
  const oldest = written.reduce<bigint | undefined>(
    (low, layer) => (low === undefined || layer.minLsn < low ? layer.minLsn : low),
    undefined,
  );
  const gone = new Set(replaced.map((layer) => layer.path));
  let committed = false;
  await vault.update((current) => {
    if (current === undefined) throw new InternalError('a vault with layers to compact has no manifest');
    const live = new Set(current.layers.map((layer) => layer.path));
    // An image from before a fold that moved the start past it would hold rows no read may see; one of
    // a bucket already imaged at that LSN (by `recall compact --images` beside capture's compactor)
    // would be read together with the other, every row twice.
    const imaged = (layer: LayerEntry): boolean =>
      isBucketImage(layer) &&
      current.layers.some(
        (live) =>
          isBucketImage(live) &&
          live.maxLsn === layer.maxLsn &&
          live.bucket?.index === layer.bucket?.index &&
          live.bucket?.of === layer.bucket?.of,
      );
    const stale =
      (oldest !== undefined && written.some((layer) => layer.kind === 'image') && oldest < current.startLsn) || written.some(imaged);
    committed = !stale && [...replaced, ...needed].every((layer) => live.has(layer.path));
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
  switch (step.kind) {
    case 'merge':
      return `merging ${step.inputs.length} level-${step.level} layers`;
    case 'image':
      return `imaging ${step.buckets.length} of ${IMAGE_BUCKETS} buckets from ${step.inputs.length} layers`;
    case 'fold':
      return `folding the history before ${formatMicros(step.before)} (retention ${step.retention.text}) into images`;
  }
}

/** A step done, for logs: "level 0 → 1: 8 layers (52114 bytes) into 1 (40960 bytes)". */
export function describeResult(step: CompactionStep, result: CompactionResult): string {
  const bytes = (layers: readonly LayerEntry[]): number => layers.reduce((sum, layer) => sum + layer.bytes, 0);
  const rows = result.written.reduce((sum, layer) => sum + layer.rows, 0);
  if (step.kind === 'image')
    return `images of ${result.written.length} buckets: ${rows} rows (${bytes(result.written)} bytes) from ${step.inputs.length} layers`;
  if (step.kind === 'fold')
    return `history before ${formatMicros(step.before)} folded into ${result.written.length} images (${rows} rows); ${result.replaced.length} layers (${bytes(result.replaced)} bytes) retired`;
  return `level ${step.level} → ${step.level + 1}: ${result.replaced.length} layers (${bytes(result.replaced)} bytes) into ${result.written.length} (${bytes(result.written)} bytes)`;
}
