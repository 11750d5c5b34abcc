// Local copies of a remote vault's layers, for DuckDB, which reads local files only, and
// its scratch files, which must be local. One directory per vault location; the least
// recently used copies go once the cache holds more bytes than its bound.

import { createHash } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseSize } from './memory-budget.js';

/** The bound when RECALL_CACHE_SIZE is not set: a few days of a busy capture's layers, small beside a disk. */
const DEFAULT_CACHE_BYTES = 2 * 1024 ** 3;

/**
 * Copies used this recently are never evicted, whatever the bound: a command looks up
 * every layer a query reads before DuckDB opens them, and an eviction in between (by
 * this process's next admission, or another's) made a layer it had just fetched look
 * missing from the store. The bound is therefore soft while commands use more than it.
 */
const IN_USE_MS = 15 * 60 * 1000;

/** The cache of one vault location. */
export interface LayerCache {
  /** Where files being built are written, on the cache's file system so admitting one is a rename. */
  readonly scratch: string;
  /** The local copy of an object, if the cache holds one; marks it used. */
  lookup(path: string): Promise<string | undefined>;
  /** Moves a finished local file in as the copy of an object, then evicts down to the bound. */
  admit(path: string, localFile: string): Promise<string>;
  /** Deletes the copy of an object deleted from the store (gc, forget): no copy outlives its object. */
  drop(path: string): Promise<void>;
}

/**
 * The cache directory and bound: RECALL_CACHE_DIR (else $XDG_CACHE_HOME/recall, else
 * ~/.cache/recall) and RECALL_CACHE_SIZE (a size such as 10GB; 2 GiB by default).
 */
export function cacheSettings(env: NodeJS.ProcessEnv): { readonly root: string; readonly bytes: number } {
  const root = env.RECALL_CACHE_DIR || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'recall');
  const size = env.RECALL_CACHE_SIZE;
  return { root, bytes: size === undefined || size === '' ? DEFAULT_CACHE_BYTES : parseSize(size, 'RECALL_CACHE_SIZE') };
}

/** The cache of one vault location: a directory named by a hash of the location, so two vaults never share copies. */
export async function layerCache(location: string, settings: { readonly root: string; readonly bytes: number }): Promise<LayerCache> {
  const base = join(settings.root, createHash('sha256').update(location).digest('hex').slice(0, 16));
  const objects = join(base, 'objects');
  const scratch = join(base, 'scratch');
  await mkdir(objects, { recursive: true, mode: 0o700 });
  await mkdir(scratch, { recursive: true, mode: 0o700 });
  const full = (path: string): string => join(objects, ...path.split('/'));

  return {
    scratch,

    async lookup(path) {
      const file = full(path);
      const now = new Date();
      // The modification time is the LRU clock: access times are often not kept (noatime).
      return utimes(file, now, now).then(
        () => file,
        (error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOENT') return undefined;
          throw error;
        },
      );
    },

    async admit(path, localFile) {
      const file = full(path);
      await mkdir(dirname(file), { recursive: true, mode: 0o700 });
      await rename(localFile, file);
      await evict(objects, settings.bytes, file);
      return file;
    },

    async drop(path) {
      await rm(full(path), { force: true });
    },
  };
}

/**
 * Removes the least recently used copies until the cache fits its bound. The copy just
 * admitted, and every copy used in the last IN_USE_MS, stay even if they alone are larger.
 */
async function evict(objects: string, bound: number, keep: string): Promise<void> {
  const copies: { file: string; bytes: number; used: number }[] = [];
  for (const entry of await readdir(objects, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = join(entry.parentPath, entry.name);
    const found = await stat(file).catch(() => undefined);
    if (found !== undefined) copies.push({ file, bytes: found.size, used: found.mtimeMs });
  }
  let total = copies.reduce((sum, copy) => sum + copy.bytes, 0);
  const inUseSince = Date.now() - IN_USE_MS;
  for (const copy of copies.sort((a, b) => a.used - b.used)) {
    if (total <= bound || copy.used >= inUseSince) break;
    if (copy.file === keep) continue;
    await rm(copy.file, { force: true });
    total -= copy.bytes;
  }
}
