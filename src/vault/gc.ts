// Garbage collection: deletes layer files that no live manifest version needs. Those a
// commit replaced (compaction) go once the grace period has passed since it, so a
// reader that opened an older version still finishes; those no commit ever named (a
// crash between writing a layer and committing it) once they are that old themselves.

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
}

/**
 * Sorts the files under layers/ into live, due and waiting. The listing comes before
 * the manifest is read, so a layer committed in between counts as live, and one
 * written after it is not seen at all.
 */
export async function planGc(vault: Vault, graceMs: number, now = Date.now()): Promise<GcPlan> {
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
  return { due, waiting, live: live.size, retired: [...retired.keys()] };
}

/**
 * Deletes the files the plan found due, then commits the manifest without their retired
 * entries (and without those of files already gone). A crash in between leaves entries
 * for files that are gone, which the next gc drops.
 */
export async function collectGarbage(vault: Vault, plan: GcPlan): Promise<void> {
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
  });
}
