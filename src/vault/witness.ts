// The witness: the newest manifest version this host committed to a vault, and the
// SHA-256 of its record, kept outside the vault ($XDG_STATE_HOME/recall/witness). The
// chain inside the vault catches damage and naive edits; the witness catches what an
// edit of the vault alone can do consistently: a rewritten newest record with a new
// seal, or the newest records deleted (the vault rolled back).

import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { VaultCorruptError } from '../errors.js';
import { recordPath, refreshManifest, type ManifestHead } from './manifest-log.js';
import { sha256 } from './manifest.js';
import type { VaultStorage } from './storage.js';

/** What the witness of one vault location holds. */
export interface Witness {
  readonly version: number;
  /** SHA-256 of that version's record file. */
  readonly sha256: string;
}

/** The witness file of a vault location: RECALL_STATE_DIR, else $XDG_STATE_HOME/recall, else ~/.local/state/recall. */
export function witnessPath(location: string, env: NodeJS.ProcessEnv = process.env): string {
  const root = env.RECALL_STATE_DIR || join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'recall');
  return join(root, 'witness', `${createHash('sha256').update(location).digest('hex').slice(0, 32)}.json`);
}

/** The witness of a location, if this host ever committed to it. */
export async function readWitness(location: string): Promise<Witness | undefined> {
  const text = await readFile(witnessPath(location), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as Partial<Witness>;
    return typeof value.version === 'number' && typeof value.sha256 === 'string'
      ? { version: value.version, sha256: value.sha256 }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Records a commit, unless the witness already names a newer one (another process on
 * this host committed after it). Written to a temporary file and renamed, so a crash
 * leaves the old witness or the new one; a lagging witness only checks less.
 */
export async function recordWitness(location: string, witness: Witness): Promise<void> {
  const path = witnessPath(location);
  const current = await readWitness(location);
  if (current !== undefined && current.version >= witness.version) return;
  await mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${randomBytes(4).toString('hex')}`;
  await writeFile(temporary, JSON.stringify(witness), { mode: 0o600 });
  await rename(temporary, path);
}

/** Forgets the witness of a location: `recall init` makes a new vault there. */
export async function forgetWitness(location: string): Promise<void> {
  await rm(witnessPath(location), { force: true });
}

/**
 * The fault the witness finds in a vault, if any: its newest version older than the one
 * witnessed, or the witnessed version's record not the one committed. Versions pruned
 * since are not checked.
 */
export async function witnessFault(storage: VaultStorage, head: ManifestHead | undefined): Promise<string | undefined> {
  const witness = await readWitness(storage.location);
  if (witness === undefined) return undefined;
  const path = witnessPath(storage.location);
  const newest = head?.manifest.version ?? 0;
  if (newest < witness.version) {
    return `its newest manifest version is ${newest}, but this host committed version ${witness.version} (${path}): the newest commits were removed`;
  }
  if (witness.version < (head?.manifest.prunedBefore ?? 0)) return undefined;
  const hash =
    witness.version === newest ? head?.hash : await storage.read(recordPath(witness.version)).then((data) => data && sha256(data));
  if (hash !== witness.sha256) {
    return `manifest version ${witness.version} is not the one this host committed (${path}): the record was rewritten`;
  }
  return undefined;
}

/** Attempts at a clean check: a commit of another process between reading the manifest and the witness looks like a removed one. */
const WITNESS_ATTEMPTS = 3;

/** Refuses a vault the witness finds a fault in; the head, re-read if a newer commit raced the check. */
export async function assertWitnessed(storage: VaultStorage, head: ManifestHead): Promise<ManifestHead> {
  let current = head;
  let fault = await witnessFault(storage, current);
  for (let attempt = 1; fault !== undefined && attempt < WITNESS_ATTEMPTS; attempt++) {
    current = (await refreshManifest(storage, current)) ?? current;
    fault = await witnessFault(storage, current);
  }
  if (fault === undefined) return current;
  throw new VaultCorruptError(
    `the vault ${storage.location} was changed outside Recall: ${fault}`,
    `restore the vault from a copy; if you put an older copy back on purpose, delete ${witnessPath(storage.location)}`,
  );
}
