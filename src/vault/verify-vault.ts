// `recall verify --vault`: everything a command would trust, checked at once. Every
// manifest file of the chain (walkChain), the newest commit against this host's
// witness, and every live layer's SHA-256; each fault is listed with its file. It reads the storage itself, so a vault that no longer
// opens can still be checked.

import { stat } from 'node:fs/promises';
import { VaultCorruptError, VaultMissingError } from '../errors.js';
import { formatLsn } from '../timeline/lsn.js';
import { hashFile } from './layer-buffer.js';
import { openManifest, refreshManifest, walkChain, type ManifestHead } from './manifest-log.js';
import type { Manifest } from './manifest.js';
import { openStorage } from './open-storage.js';
import { witnessFault, witnessPath } from './witness.js';

/** One thing wrong with one file of the vault. */
export interface VaultFault {
  /** Path in the vault. */
  readonly file: string;
  readonly problem: string;
}

/** What `verifyVault` checked, and what it found. */
export interface VaultCheck {
  readonly location: string;
  /** Manifest versions: full versions of release 0.1.0, then records; and checkpoints of the log. */
  readonly manifest: { readonly legacyVersions: number; readonly records: number; readonly checkpoints: number };
  readonly layers: { readonly checked: number; readonly bytes: number };
  readonly faults: readonly VaultFault[];
}

/** Walks the whole manifest chain and hashes every live layer of a vault location. */
export async function verifyVault(location: string): Promise<VaultCheck> {
  const storage = await openStorage(location);
  const walk = await walkChain(storage);
  if (walk.legacyVersions + walk.records + walk.checkpoints === 0) {
    throw new VaultMissingError(
      `the vault ${storage.location} holds no history yet`,
      'run `recall init` first (check --vault / RECALL_VAULT)',
    );
  }
  const faults: VaultFault[] = walk.faults.map(({ file, problem }) => ({ file, problem }));
  // The live layers are those a command would read: of the state opening gives, else of the walk's.
  let head: ManifestHead | undefined;
  try {
    head = await openManifest(storage);
  } catch (error) {
    if (!(error instanceof VaultCorruptError)) throw error;
  }
  const manifest: Manifest | undefined = head?.manifest ?? walk.manifest;
  let witnessed = head === undefined ? undefined : await witnessFault(storage, head);
  // A commit of a running capture between the two reads is no fault: read the manifest again first.
  if (witnessed !== undefined && head !== undefined)
    witnessed = await witnessFault(storage, (await refreshManifest(storage, head)) ?? head);
  if (witnessed !== undefined) faults.push({ file: witnessPath(storage.location), problem: witnessed });
  let bytes = 0;
  for (const layer of manifest?.layers ?? []) {
    const path = await storage.localPath(layer.path);
    const range = `lsn:${formatLsn(layer.minLsn)}–lsn:${formatLsn(layer.maxLsn)}, ${layer.rows} rows`;
    const size = await stat(path).then(
      (found) => found.size,
      () => undefined,
    );
    if (size === undefined) faults.push({ file: layer.path, problem: `is missing (${range})` });
    else if (size !== layer.bytes || (await hashFile(path)) !== layer.sha256)
      faults.push({ file: layer.path, problem: `fails its checksum (${range})` });
    bytes += size ?? 0;
  }
  return {
    location: storage.location,
    manifest: { legacyVersions: walk.legacyVersions, records: walk.records, checkpoints: walk.checkpoints },
    layers: { checked: manifest?.layers.length ?? 0, bytes },
    faults,
  };
}
