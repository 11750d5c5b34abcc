// Garbage collection: deletes layer files that no live manifest version needs. Those a
// commit replaced (compaction, retention) go once the grace period has passed since it,
// so a reader that opened an older version still finishes; those no commit ever named
// (a crash between writing a layer and committing it) once they are that old
// themselves. With retention, manifest versions older than the horizon go too.

import { deleteManifestBefore, prunePoint } from './manifest-log.js';
import { retentionHorizon, type Retention } from './retention.js';
import type { Vault } from './vault.js';

/** How long a replaced or unreferenced file is kept (gc-grace). */
export const DEFAULT_GC_GRACE_MS = 60 * 60 * 1000;

const LAYERS_DIR = 'layers';

/** A file gc may delete, and why. */
export interface GarbageFile {
  readonly path: string;
  readonly bytes: number;
  /** replaced: by a commit (retired in the manifest); unreferenced: never committed. */
  readonly reason: 'replaced' | 'unreferenced';
  /** When the grace period started: the replacing commit, or the file's writing. */
  readonly since: string;
}

/** What a gc would do now. */
export interface GcPlan {
  /** Past the grace period: deleted by collectGarbage. */
  readonly due: readonly GarbageFile[];
  /** Within it: kept this time. */
  readonly waiting: readonly GarbageFile[];
  /** Live layers, never touched. */
  readonly live: number;
  /** The retired entries the manifest held when planning. */
  readonly retired: readonly string[];
  /** Manifest versions `from` up to `to` (excluded), older than the retention horizon; undefined: none to prune. */
  readonly manifest: { readonly from: number; readonly to: number } | undefined;
}

/**
 * Sorts the files under layers/ into live, due and waiting. The listing comes before
 * the manifest is read, so a layer committed in between counts as live, and one
 * written after it is not seen at all.
 */
export async function planGc(vault: Vault, graceMs: number, retention?: Retention, now = Date.now()): Promise<GcPlan> {
  const files = await vault.storage.listObjects(LAYERS_DIR);
  const manifest = await vault.refresh();
  const live = new Set(manifest.layers.map((layer) => layer.path));
  const retired = new Map((manifest.retired ?? []).map((entry) => [entry.path, entry.at]));
  const due: GarbageFile[] = [];
  const waiting: GarbageFile[] = [];
  for (const file of files) {
    if (live.has(file.path)) continue;
    const replacedAt = retired.get(file.path);
    const since = replacedAt ?? file.modified.toISOString();
    const garbage: GarbageFile = {
      path: file.path,
      bytes: file.bytes,
      reason: replacedAt === undefined ? 'unreferenced' : 'replaced',
      since,
    };
    (now - Date.parse(since) >= graceMs ? due : waiting).push(garbage);
  }
  const from = manifest.prunedBefore ?? 1;
  const to =
    retention === undefined ? undefined : await prunePoint(vault.storage, from, new Date(Number(retentionHorizon(retention, now) / 1000n)));
  return { due, waiting, live: live.size, retired: [...retired.keys()], manifest: to === undefined ? undefined : { from, to } };
}

/**
 * Deletes the files the plan found due, then commits the manifest without their retired
 * entries (and without those of files already gone). A crash in between leaves entries
 * for files that are gone, which the next gc drops.
 */
export async function collectGarbage(vault: Vault, plan: GcPlan): Promise<void> {
  const prune = plan.manifest;
  if (prune !== undefined) {
    // Recorded before the files go, so that a walk of the chain tells a prune from a deletion outside Recall.
    await vault.update((current) =>
      current === undefined || (current.prunedBefore ?? 1) >= prune.to ? undefined : { ...current, prunedBefore: prune.to },
    );
    await deleteManifestBefore(vault.storage, prune.from, prune.to);
  }
  for (const file of plan.due) await vault.storage.remove(file.path);
  // An entry stays while its file does; one retired after planning was not judged yet.
  const judged = new Set(plan.retired);
  const present = new Set(plan.waiting.map((file) => file.path));
  await vault.update((current) => {
    const retired = current?.retired ?? [];
    const kept = retired.filter((entry) => !judged.has(entry.path) || present.has(entry.path));
    if (current === undefined || kept.length === retired.length) return undefined;
    return { ...current, retired: kept.length === 0 ? undefined : kept };
  });
  await vault.recordGc({
    at: new Date().toISOString(),
    deleted: plan.due.length,
    bytes: plan.due.reduce((sum, file) => sum + file.bytes, 0),
    ...(prune === undefined ? {} : { manifestVersions: prune.to - prune.from }),
  });
}
