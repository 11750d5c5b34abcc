// Picks the storage backend of a vault location: s3://bucket/prefix is an S3 vault,
// anything else a local directory. Either is refused before any work if it cannot hold
// a vault (a missing bucket, refused credentials, a file where the directory should be).

import { fsStorage } from './fs-storage.js';
import type { VaultStorage } from './storage.js';
import { Vault } from './vault.js';

/** The storage of a vault location, checked usable. */
export async function openStorage(location: string, env: NodeJS.ProcessEnv = process.env): Promise<VaultStorage> {
  // The AWS SDK is loaded only for an S3 vault: every command of a local one would pay its start-up.
  const storage = /^s3:\/\//i.test(location) ? await (await import('./s3-storage.js')).s3Storage(location, env) : fsStorage(location);
  await storage.assertUsable();
  return storage;
}

/** The vault at a location: openStorage, then Vault.open. */
export async function openVault(location: string, env: NodeJS.ProcessEnv = process.env): Promise<Vault> {
  return Vault.open(await openStorage(location, env));
}
