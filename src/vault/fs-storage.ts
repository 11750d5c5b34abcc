// A vault in a local directory. Durability comes from fsync of every file and of
// its directory before anything refers to it; exclusivity from link(2), which
// fails if the target exists.

import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, link, unlink } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import type { VaultStorage } from './storage.js';

/** Opens (without creating anything yet) a vault directory. */
export function fsStorage(directory: string): VaultStorage {
  const root = resolve(directory);
  const full = (path: string): string => join(root, ...path.split('/'));

  return {
    location: root,

    async read(path) {
      try {
        return await readFile(full(path));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
    },

    async createExclusive(path, data) {
      const target = full(path);
      await mkdir(dirname(target), { recursive: true });
      const temporary = `${target}.${randomBytes(6).toString('hex')}.tmp`;
      await writeDurably(temporary, data);
      try {
        await link(temporary, target);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw error;
      } finally {
        await unlink(temporary).catch(() => undefined);
      }
      await syncPath(dirname(target));
      return true;
    },

    async putFile(path, localFile) {
      const target = full(path);
      await mkdir(dirname(target), { recursive: true });
      await syncPath(localFile);
      await rename(localFile, target);
      await syncPath(dirname(target));
    },

    async list(prefix) {
      const base = full(prefix);
      const found: string[] = [];
      const walk = async (directory: string): Promise<void> => {
        let entries;
        try {
          entries = await readdir(directory, { withFileTypes: true });
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
          throw error;
        }
        for (const entry of entries) {
          const path = join(directory, entry.name);
          if (entry.isDirectory()) await walk(path);
          else if (!entry.name.endsWith('.tmp')) found.push(relative(root, path).split('\\').join('/'));
        }
      };
      await walk(base);
      return found.sort();
    },

    async localPath(path) {
      return full(path);
    },

    async scratchDirectory() {
      // Inside the vault's own file system, so that putFile is a rename, not a copy.
      const scratch = join(root, 'scratch');
      await mkdir(scratch, { recursive: true });
      return scratch;
    },
  };
}

async function writeDurably(path: string, data: Buffer): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsync of a file or a directory (a rename is durable only once its directory is synced). */
async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
