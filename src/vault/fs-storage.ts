// A vault in a local directory. Durability comes from fsync of every file and of
// its directory before anything refers to it; exclusivity from link(2), which
// fails if the target exists. A path that cannot hold a vault is refused up front,
// in the user's words, rather than as the errno of whichever write meets it first.
// The vault holds the whole history of a database: its directories are 0700 and its
// files 0600 whatever the umask.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, chmod, mkdir, open, readdir, readFile, rename, link, stat, unlink, utimes } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { VaultPathError } from '../errors.js';
import type { VaultStorage } from './storage.js';

/** Opens (without creating anything yet) a vault directory. */
export function fsStorage(directory: string): VaultStorage {
  const root = resolve(directory);
  const full = (path: string): string => join(root, ...path.split('/'));

  return {
    location: root,

    assertUsable: () => assertVaultDirectory(root),

    async exposure() {
      const mode = await stat(root).then(
        (found) => found.mode & 0o777,
        () => undefined,
      );
      if (mode === undefined || (mode & 0o077) === 0) return undefined;
      return `the vault ${root} is readable by other users (mode ${mode.toString(8).padStart(4, '0')}), though it holds the whole history of the database: chmod -R go-rwx ${root}`;
    },

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
      await makeDirectory(dirname(target));
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

    exclusivity: async () => 'atomic',

    async putFile(path, localFile) {
      const target = full(path);
      await makeDirectory(dirname(target));
      await chmod(localFile, FILE_MODE);
      // The time it arrives in the vault, not the time it was written in scratch: gc's grace for a file no commit names yet runs from here.
      const now = new Date();
      await utimes(localFile, now, now);
      await syncPath(localFile);
      await rename(localFile, target);
      await syncPath(dirname(target));
    },

    async list(prefix) {
      return (await walkFiles(root, full(prefix))).map((file) => file.path);
    },

    async listObjects(prefix) {
      return Promise.all(
        (await walkFiles(root, full(prefix))).map(async ({ path, file }) => {
          const found = await stat(file);
          return { path, bytes: found.size, modified: found.mtime };
        }),
      );
    },

    async remove(path) {
      await unlink(full(path)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
    },

    async localPath(path) {
      return full(path);
    },

    async scratchDirectory() {
      // Inside the vault's own file system, so that putFile is a rename, not a copy.
      const scratch = join(root, 'scratch');
      await makeDirectory(scratch);
      return scratch;
    },
  };
}

/** The files under a directory (none if it is missing), by vault path, sorted; files being written (`.tmp`) are not there yet. */
async function walkFiles(root: string, base: string): Promise<{ path: string; file: string }[]> {
  const found: { path: string; file: string }[] = [];
  const walk = async (directory: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(directory, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const entry of entries) {
      const file = join(directory, entry.name);
      if (entry.isDirectory()) await walk(file);
      else if (!entry.name.endsWith('.tmp')) found.push({ path: relative(root, file).split('\\').join('/'), file });
    }
  };
  await walk(base);
  return found.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Every command writes into the vault (its scratch directory at least), so the
 * directory, or the parent it will be created in, must be a writable directory.
 * A missing parent is refused rather than created: a mistyped mount point
 * (/mnt/bakup) would otherwise put the history on the wrong disk.
 */
async function assertVaultDirectory(root: string): Promise<void> {
  const found = await kindOf(root);
  if (found === 'directory') return assertWritable(root, `the vault ${root}`);
  if (found === 'other') {
    throw new VaultPathError(
      `the vault path ${root} is a file, not a directory`,
      'pass --vault a directory (init creates a new one), or move the file away',
    );
  }
  const parent = dirname(root);
  const parentKind = found === 'missing' ? await kindOf(parent) : 'not-a-directory';
  if (parentKind === 'missing') {
    throw new VaultPathError(
      `the directory ${parent}, in which the vault ${root} would be created, does not exist`,
      `create it first (mkdir -p ${parent}), or fix the --vault path`,
    );
  }
  if (parentKind !== 'directory') {
    throw new VaultPathError(`the vault path ${root} lies under a file, not a directory`, 'pass --vault a path under a directory');
  }
  await assertWritable(parent, `the directory ${parent}, in which the vault ${root} would be created,`);
}

/** What a path is: stat without following errors into exceptions. ENOTDIR: a file stands where a directory should. */
async function kindOf(path: string): Promise<'directory' | 'other' | 'missing' | 'not-a-directory'> {
  try {
    return (await stat(path)).isDirectory() ? 'directory' : 'other';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    if (code === 'ENOTDIR') return 'not-a-directory';
    if (code === 'EACCES')
      throw new VaultPathError(`${path} cannot be reached: permission denied`, `run as a user who may enter its parent directories`);
    throw error;
  }
}

/** Refuses a directory this process may not create files in, or one on a read-only file system. */
async function assertWritable(directory: string, what: string): Promise<void> {
  try {
    await access(directory, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EROFS') {
      throw new VaultPathError(
        `${what} is on a read-only file system`,
        'remount it read-write, or copy the vault to a writable place and pass --vault that copy',
      );
    }
    if (code === 'EACCES' || code === 'EPERM') {
      const user = userInfo();
      throw new VaultPathError(
        `${what} is not writable by user ${user.username} (uid ${user.uid})`,
        `run Recall as the vault's owner, or give this user write access (chown/chmod u+rwx ${directory})`,
      );
    }
    throw error;
  }
}

const DIRECTORY_MODE = 0o700;
const FILE_MODE = 0o600;

/** mkdir -p, each directory it creates owner-only (chmod after, since the umask applies to mkdir's mode). */
async function makeDirectory(path: string): Promise<void> {
  const first = await mkdir(path, { recursive: true, mode: DIRECTORY_MODE });
  if (first === undefined) return;
  for (let directory = path; ; directory = dirname(directory)) {
    await chmod(directory, DIRECTORY_MODE);
    if (directory === first || dirname(directory) === directory) break;
  }
}

async function writeDurably(path: string, data: Buffer): Promise<void> {
  const handle = await open(path, 'w', FILE_MODE);
  try {
    await handle.chmod(FILE_MODE);
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
