// Scratch files, and their removal once stale. Directories owned by one process are named
// by host and pid, so the next process of the same host can tell which ones a dead process
// left behind and remove them (another host sharing the vault's directory keeps its own:
// its processes cannot be seen from here).

import { hostname } from 'node:os';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { VaultStorage } from './storage.js';

/**
 * A fresh directory `<prefix>-<host>-<pid>-…` in the vault's scratch directory, after
 * removing those of this prefix that dead processes of this host left. Failing to
 * remove one is no reason to fail the work that needs a new one.
 */
export async function processScratchDirectory(storage: VaultStorage, prefix: string): Promise<string> {
  const scratch = await storage.scratchDirectory();
  const host = hostname().replace(/[^A-Za-z0-9.]/g, '_');
  const pattern = new RegExp(`^${prefix}-(.*)-(\\d+)-\\w{6}$`);
  for (const name of await readdir(scratch)) {
    const [, owner, pid] = pattern.exec(name) ?? [];
    if (owner === host && !isRunning(Number(pid))) await rm(join(scratch, name), { recursive: true, force: true }).catch(() => undefined);
  }
  return mkdtemp(join(scratch, `${prefix}-${host}-${process.pid}-`));
}

/** Whether a process of this host is alive (one of another user counts: it cannot be signalled, but it is there). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}
