// A vault in an S3 bucket under a prefix, through the AWS SDK v3. A PUT is durable once
// acknowledged; exclusivity is a conditional put (If-None-Match: *) where the store
// honours it, probed once per process, since stores that do not ignore the header and
// overwrite. Layers are read through a bounded local cache (layer-cache.ts): DuckDB
// reads local files only.

import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { UsageError, VaultAuthError, VaultPathError, VaultUnreachableError } from '../errors.js';
import { cacheSettings, layerCache, type LayerCache } from './layer-cache.js';
import { parseSize } from './memory-budget.js';
import type { StoredObject, VaultStorage } from './storage.js';

/**
 * Files larger than this go up in parts of this size: S3 takes at most 5 GB in one PUT,
 * and a bucket's image of a large database is more. Each part is held in memory while
 * it is sent, one at a time. RECALL_S3_PART_SIZE sets it; S3 takes parts of 5 MiB or more.
 */
const DEFAULT_PART_BYTES = 16 * 1024 * 1024;
const MIN_PART_BYTES = 5 * 1024 * 1024;

/** The part size for multipart uploads, from RECALL_S3_PART_SIZE. */
function partBytes(env: NodeJS.ProcessEnv): number {
  const text = env.RECALL_S3_PART_SIZE;
  if (text === undefined || text === '') return DEFAULT_PART_BYTES;
  const bytes = parseSize(text, 'RECALL_S3_PART_SIZE');
  if (bytes < MIN_PART_BYTES) {
    throw new UsageError(
      `RECALL_S3_PART_SIZE ${text} is below S3's minimum part size of 5 MiB`,
      'give at least 5MiB, or leave it unset (16 MiB)',
    );
  }
  return bytes;
}

/** A bucket and a key prefix ('' or ending in '/'), parsed from s3://bucket/prefix. */
export interface S3Location {
  readonly bucket: string;
  readonly prefix: string;
}

/** Parses s3://bucket/prefix, refusing one without a bucket. */
export function parseS3Location(location: string): S3Location {
  const match = /^s3:\/\/([^/]*)\/?(.*)$/i.exec(location);
  const bucket = match?.[1] ?? '';
  if (match === null || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new UsageError(
      `the vault ${location} names no valid bucket`,
      'write it as s3://bucket/prefix (a bucket name of 3–63 lowercase letters, digits, dots and hyphens)',
    );
  }
  const prefix = (match[2] ?? '').replace(/\/+$/, '');
  return { bucket, prefix: prefix === '' ? '' : `${prefix}/` };
}

/**
 * The client, configured from the environment as the AWS CLI is: credentials and region
 * from the standard chain, AWS_ENDPOINT_URL for S3-compatible stores, plus
 * AWS_S3_FORCE_PATH_STYLE=true (WAL-G's name) for those that serve no virtual-host names.
 */
function s3Client(env: NodeJS.ProcessEnv): S3Client {
  // The SDK warns on stderr, once, that releases after January 2027 will need Node 22:
  // the version here is pinned, and Recall's stderr carries its own messages only.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const attempts = Number(env.AWS_MAX_ATTEMPTS);
  return new S3Client({
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    ...(env.AWS_ENDPOINT_URL ? { endpoint: env.AWS_ENDPOINT_URL } : {}),
    forcePathStyle: env.AWS_S3_FORCE_PATH_STYLE === 'true',
    // The SDK's chain reads process.env itself; keys given in `env` (a test's, a child's) come first.
    ...(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? {
          credentials: {
            accessKeyId: env.AWS_ACCESS_KEY_ID,
            secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
            ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
          },
        }
      : {}),
    // The SDK's default sends aws-chunked bodies with trailing checksums, which
    // S3-compatible servers often reject; a checksum only where an API requires one.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Standard mode: capped exponential backoff (100 ms base, 20 s cap) with full jitter,
    // on throttling, 5xx and network errors. Eight attempts ride out a minute-long brown-out.
    retryMode: 'standard',
    maxAttempts: Number.isInteger(attempts) && attempts > 0 ? attempts : 8,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 120_000 },
  });
}

/** Whether the store refuses a put with If-None-Match: * over an existing object. */
type ConditionalWrites = 'honoured' | 'ignored';

/** Opens (creating nothing in the bucket) a vault at s3://bucket/prefix. */
export async function s3Storage(location: string, env: NodeJS.ProcessEnv = process.env): Promise<VaultStorage> {
  const { bucket, prefix } = parseS3Location(location);
  const name = `s3://${bucket}/${prefix}`.replace(/\/$/, '');
  const client = s3Client(env);
  const cache: LayerCache = await layerCache(name, cacheSettings(env));
  const partSize = partBytes(env);
  const key = (path: string): string => `${prefix}${path}`;
  const failure = (error: unknown, what: string): Error => storeError(error, name, what, env);
  let conditional: Promise<ConditionalWrites> | undefined;

  const exists = async (path: string): Promise<boolean> => {
    try {
      await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key(path) }));
      return true;
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw failure(error, `reading ${path}`);
    }
  };

  /** A conditional put; false when the store refused it because the object exists. */
  const putIfAbsent = async (path: string, data: Buffer): Promise<boolean> => {
    for (let attempt = 0; ; attempt++) {
      try {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key(path), Body: data, IfNoneMatch: '*' }));
        return true;
      } catch (error) {
        const status = statusOf(error);
        if (status === 412) return false;
        // 409: another conditional put of this key is in flight; its outcome decides, so ask again.
        if (status !== 409 || attempt >= 5) throw failure(error, `writing ${path}`);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 100 * 2 ** attempt));
      }
    }
  };

  /**
   * Puts one probe object twice under `_probe/`: a store that honours If-None-Match
   * refuses the second. Once per process, on the first exclusive create only, so
   * commands that only read never write.
   */
  const probeConditionalWrites = async (): Promise<ConditionalWrites> => {
    const probe = `_probe/${process.pid}-${randomBytes(6).toString('hex')}`;
    try {
      const first = await putIfAbsent(probe, Buffer.from('probe'));
      const second = await putIfAbsent(probe, Buffer.from('probe'));
      return first && !second ? 'honoured' : 'ignored';
    } finally {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(probe) })).catch(() => undefined);
    }
  };

  const listObjects = async (directory: string): Promise<StoredObject[]> => {
    const found: StoredObject[] = [];
    const base = directory === '' ? prefix : `${key(directory).replace(/\/+$/, '')}/`;
    let token: string | undefined;
    do {
      const page = await client
        .send(new ListObjectsV2Command({ Bucket: bucket, Prefix: base, ...(token === undefined ? {} : { ContinuationToken: token }) }))
        .catch((error: unknown) => {
          throw failure(error, `listing ${directory}`);
        });
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        found.push({ path: object.Key.slice(prefix.length), bytes: object.Size ?? 0, modified: object.LastModified ?? new Date() });
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return found.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  };

  const exclusivity = async (): Promise<'atomic' | 'checked'> => {
    conditional ??= probeConditionalWrites();
    return (await conditional) === 'honoured' ? 'atomic' : 'checked';
  };

  return {
    location: name,

    async assertUsable() {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }));
      } catch (error) {
        throw failure(error, 'opening the vault');
      }
    },

    // Who may read a bucket is its policy's business, which a HEAD cannot see.
    exposure: async () => undefined,

    async read(path) {
      try {
        const found = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key(path) }));
        return Buffer.from(await (found.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
      } catch (error) {
        if (statusOf(error) === 404) return undefined;
        throw failure(error, `reading ${path}`);
      }
    },

    async createExclusive(path, data) {
      if ((await exclusivity()) === 'atomic') return putIfAbsent(path, data);
      // The store cannot refuse a second writer: a check first catches one that comes
      // after, and the replication slot (one connection at a time) keeps out a second
      // capture (docs/ARCHITECTURE.md, "S3").
      if (await exists(path)) return false;
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key(path), Body: data })).catch((error: unknown) => {
        throw failure(error, `writing ${path}`);
      });
      return true;
    },

    exclusivity,

    async putFile(path, localFile) {
      const { size } = await stat(localFile);
      try {
        if (size <= partSize) {
          await client.send(
            new PutObjectCommand({ Bucket: bucket, Key: key(path), Body: createReadStream(localFile), ContentLength: size }),
          );
        } else {
          // One part in flight at a time: memory stays one part, whatever the file's size. A failed upload is aborted.
          const upload = new Upload({
            client,
            params: { Bucket: bucket, Key: key(path), Body: createReadStream(localFile) },
            partSize,
            queueSize: 1,
          });
          await upload.done();
        }
      } catch (error) {
        throw failure(error, `writing ${path}`);
      }
      // The file just written is the copy the next read of it would download.
      await cache.admit(path, localFile);
    },

    async list(directory) {
      return (await listObjects(directory)).map((object) => object.path);
    },

    listObjects,

    async remove(path) {
      // S3 answers a DELETE of a missing key with success, as remove promises.
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(path) })).catch((error: unknown) => {
        throw failure(error, `deleting ${path}`);
      });
      await cache.drop(path);
    },

    async localPath(path) {
      const cached = await cache.lookup(path);
      if (cached !== undefined) return cached;
      const temporary = await mkdtemp(join(cache.scratch, 'download-'));
      const file = join(temporary, 'object');
      try {
        const found = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key(path) }));
        await pipeline(found.Body as Readable, createWriteStream(file, { mode: 0o600 }));
        return await cache.admit(path, file);
      } catch (error) {
        // A missing object has no local path: the caller (Vault.layerFiles) reports it as missing.
        if (statusOf(error) === 404) return join(temporary, 'missing');
        throw failure(error, `reading ${path}`);
      } finally {
        await rm(temporary, { recursive: true, force: true });
      }
    },

    scratchDirectory: async () => cache.scratch,
  };
}

/** The HTTP status of an SDK error, if it got as far as a response. */
function statusOf(error: unknown): number | undefined {
  if (error instanceof S3ServiceException) return error.$metadata.httpStatusCode;
  return undefined;
}

/**
 * An SDK error in the user's words, with its fix. The message names the location and
 * the access key's id at most, never a secret (the SDK's own messages carry none either).
 */
function storeError(error: unknown, location: string, what: string, env: NodeJS.ProcessEnv): Error {
  const status = statusOf(error);
  const code = error instanceof S3ServiceException ? error.name : ((error as { code?: string }).code ?? (error as Error).name);
  const endpoint = env.AWS_ENDPOINT_URL || 'AWS S3';
  if (status === 404 || code === 'NoSuchBucket') {
    return new VaultPathError(
      `the bucket of the vault ${location} does not exist at ${endpoint}`,
      'create the bucket first (aws s3 mb), or fix --vault / RECALL_VAULT or AWS_ENDPOINT_URL',
      { cause: error },
    );
  }
  if (code === 'CredentialsProviderError') {
    return new VaultAuthError(
      `no AWS credentials were found for ${what} in ${location}`,
      'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an instance or task role applies',
      { cause: error },
    );
  }
  if (status === 401 || status === 403 || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch') {
    return new VaultAuthError(
      `${endpoint} refused the credentials for ${what} in ${location} (${code ?? `HTTP ${status}`})`,
      'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and that the key may read, write and list the bucket',
      { cause: error },
    );
  }
  if (status === undefined) {
    return new VaultUnreachableError(
      `${endpoint} cannot be reached for ${what} in ${location} (${code ?? (error as Error).message})`,
      'check AWS_ENDPOINT_URL and the network, then run the command again',
      { cause: error },
    );
  }
  return error as Error;
}
