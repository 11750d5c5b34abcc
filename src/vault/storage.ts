// The one interface between the vault and where its bytes live. Every backend (a
// local directory, S3) implements it and passes the same contract tests.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Where a vault's files live. Paths are relative, '/'-separated. */
export interface VaultStorage {
  /** Human-readable location, e.g. the directory or s3://bucket/prefix. */
  readonly location: string;
  /**
   * Refuses, before any work, a location that cannot hold a vault (VaultPathError):
   * one that is not a directory, that this process may not write, or whose parent is missing.
   */
  assertUsable(): Promise<void>;
  /** Whether others than its owner may read the vault, which holds the whole history: a warning to show, or undefined. */
  exposure(): Promise<string | undefined>;
  /** The whole object, or undefined if it does not exist. */
  read(path: string): Promise<Buffer | undefined>;
  /**
   * Creates an object only if none exists at that path, durably; false if one
   * already did. This is the manifest's atomic switch (a conditional put on S3).
   */
  createExclusive(path: string, data: Buffer): Promise<boolean>;
  /**
   * How createExclusive refuses a second writer: 'atomic' where the store decides between
   * racing writers (link(2), a conditional put), 'checked' where it can only look first
   * (an S3-compatible store that ignores If-None-Match), so that two writers racing can
   * both win and only the replication slot keeps a second capture out.
   */
  exclusivity(): Promise<'atomic' | 'checked'>;
  /** Moves a finished local file into the vault, durably (fsync of file and directory). */
  putFile(path: string, localFile: string): Promise<void>;
  /** Object paths under a prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  /** The objects under a prefix with their size and time of writing, sorted by path (what gc judges age by). */
  listObjects(prefix: string): Promise<StoredObject[]>;
  /** Deletes an object; nothing happens if there is none (a second gc after a crash finds some gone). */
  remove(path: string): Promise<void>;
  /** A local file DuckDB can read for this object (the file itself, or a verified cache copy). */
  localPath(path: string): Promise<string>;
  /** A local scratch directory for files being built. */
  scratchDirectory(): Promise<string>;
}

/** An object as a listing shows it. */
export interface StoredObject {
  readonly path: string;
  readonly bytes: number;
  readonly modified: Date;
}

/** Writes (or replaces) a small object durably: through a scratch file, then moved into the vault. */
export async function putBytes(storage: VaultStorage, path: string, data: Buffer | string): Promise<void> {
  const local = join(await storage.scratchDirectory(), `${path.replaceAll('/', '-')}-${process.pid}`);
  await writeFile(local, data);
  await storage.putFile(path, local);
}
