// The VaultStorage contract, run over every backend (a directory, and S3 through a real
// S3-speaking server on loopback), in the style of Litestream's replica-client tests:
// what each call promises, checked the same way for each, and each backend's refusals
// of a location that cannot hold a vault.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RecallError, openStorage } from '../src/index.js';
import { putBytes, type VaultStorage } from '../src/vault/storage.js';
import { startS3Server, TEST_BUCKET, type S3Server } from './harness/s3.js';

const temporary = mkdtempSync(join(tmpdir(), 'recall-contract-'));
after(() => rmSync(temporary, { recursive: true, force: true }));

let server: S3Server;
before(async () => {
  server = await startS3Server();
});
after(() => server.close());

/** A fresh, empty location on a backend, opened the way commands open one. */
interface Backend {
  readonly name: string;
  fresh(): Promise<{ storage: VaultStorage; reopen(env?: NodeJS.ProcessEnv): Promise<VaultStorage> }>;
  /** Locations (and environments) each backend must refuse before any work, with the exit code. */
  unusable(): { readonly what: string; readonly location: string; readonly env: NodeJS.ProcessEnv; readonly exitCode: number }[];
}

const fsBackend: Backend = {
  name: 'fs',
  async fresh() {
    const location = join(mkdtempSync(join(temporary, 'fs-')), 'vault');
    return { storage: await openStorage(location), reopen: () => openStorage(location) };
  },
  unusable() {
    const file = join(temporary, 'a-file');
    writeFileSync(file, 'x');
    return [
      { what: 'a file', location: file, env: process.env, exitCode: 2 },
      { what: 'a missing parent', location: join(temporary, 'missing', 'vault'), env: process.env, exitCode: 2 },
    ];
  },
};

const s3Backend: Backend = {
  name: 's3',
  async fresh() {
    const location = `s3://${TEST_BUCKET}/${randomBytes(6).toString('hex')}/vault`;
    const env = { ...process.env, ...server.env };
    return { storage: await openStorage(location, env), reopen: (extra = {}) => openStorage(location, { ...env, ...extra }) };
  },
  unusable() {
    const env = { ...process.env, ...server.env, AWS_MAX_ATTEMPTS: '2' };
    return [
      { what: 'no bucket', location: 's3:///prefix', env, exitCode: 2 },
      { what: 'a missing bucket', location: 's3://no-such-bucket/prefix', env, exitCode: 2 },
      // s3rver checks the key id, not SigV4 signatures: a wrong key id is its refusal of credentials.
      { what: 'wrong credentials', location: `s3://${TEST_BUCKET}/x`, env: { ...env, AWS_ACCESS_KEY_ID: 'WRONGKEY' }, exitCode: 2 },
      {
        what: 'an unreachable endpoint',
        location: `s3://${TEST_BUCKET}/x`,
        env: { ...env, AWS_ENDPOINT_URL: 'http://127.0.0.1:1' },
        exitCode: 1,
      },
    ];
  },
};

/** A local file of `bytes` random bytes, as a layer being built would be. */
function localFile(directory: string, bytes: number): { path: string; data: Buffer } {
  const data = randomBytes(bytes);
  const path = join(directory, `${randomBytes(4).toString('hex')}.parquet`);
  writeFileSync(path, data);
  return { path, data };
}

for (const backend of [fsBackend, s3Backend]) {
  describe(`VaultStorage contract: ${backend.name}`, () => {
    test('read: a missing object is undefined; a written one comes back byte for byte', async () => {
      const { storage } = await backend.fresh();
      assert.equal(await storage.read('state/none.json'), undefined);
      const data = randomBytes(3000);
      assert.equal(await storage.createExclusive('manifest/log/000/1.json', data), true);
      assert.deepEqual(await storage.read('manifest/log/000/1.json'), data);
    });

    test('createExclusive: a second create of a path is refused and leaves the first', async () => {
      const { storage } = await backend.fresh();
      assert.equal(await storage.createExclusive('manifest/x.json', Buffer.from('first')), true);
      assert.equal(await storage.createExclusive('manifest/x.json', Buffer.from('second')), false);
      assert.equal((await storage.read('manifest/x.json'))?.toString(), 'first');
    });

    test('createExclusive: of writers racing for one path, exactly one wins where the store can refuse atomically', async () => {
      const { storage, reopen } = await backend.fresh();
      const exclusivity = await storage.exclusivity();
      // Each writer on its own storage object, as two processes would be.
      const writers = [storage, ...(await Promise.all(Array.from({ length: 7 }, () => reopen())))];
      const outcomes: boolean[] = await Promise.all(
        writers.map((writer, i) => writer.createExclusive('manifest/race.json', Buffer.from(`writer ${i}`))),
      );
      const winners = outcomes.flatMap((won, i) => (won ? [i] : []));
      if (exclusivity === 'atomic') {
        assert.equal(winners.length, 1, `exactly one winner, got ${winners.join(', ')}`);
        assert.equal((await storage.read('manifest/race.json'))?.toString(), `writer ${winners[0]}`);
      } else {
        // A store that ignores If-None-Match (s3rver) can only check first: that a writer
        // which comes after is refused is all it keeps (docs/ARCHITECTURE.md, "S3").
        assert.ok(winners.length >= 1);
        assert.equal(await storage.createExclusive('manifest/race.json', Buffer.from('late')), false);
      }
    });

    test('putFile: durable once it resolves (a fresh open reads it), replaces an existing object, and moves the local file', async () => {
      const { storage, reopen } = await backend.fresh();
      const scratch = await storage.scratchDirectory();
      const first = localFile(scratch, 70_000);
      await storage.putFile('layers/l0/a.parquet', first.path);
      assert.equal(existsSync(first.path), false, 'the local file was moved, not copied');
      assert.deepEqual(await (await reopen()).read('layers/l0/a.parquet'), first.data);
      await putBytes(storage, 'manifest/_last_checkpoint', 'one');
      await putBytes(storage, 'manifest/_last_checkpoint', 'two');
      assert.equal((await (await reopen()).read('manifest/_last_checkpoint'))?.toString(), 'two');
    });

    test('list: everything under a directory, sorted; not a sibling that shares its name as a prefix; nothing for a missing one', async () => {
      const { storage } = await backend.fresh();
      for (const path of ['m/log/b.json', 'm/log/a.json', 'm/log/000/c.json', 'm/logs/d.json', 'm/e.json']) {
        await putBytes(storage, path, path);
      }
      assert.deepEqual(await storage.list('m/log'), ['m/log/000/c.json', 'm/log/a.json', 'm/log/b.json']);
      assert.deepEqual(await storage.list('m'), ['m/e.json', 'm/log/000/c.json', 'm/log/a.json', 'm/log/b.json', 'm/logs/d.json']);
      assert.deepEqual(await storage.list('missing'), []);
    });

    test('listObjects: size and time of writing; remove: gone, and removing it again is no error', async () => {
      const { storage, reopen } = await backend.fresh();
      const before = Date.now();
      await putBytes(storage, 'layers/delta/x.parquet', 'twelve bytes');
      await putBytes(storage, 'layers/delta/y.parquet', 'y');
      const [x, y] = await storage.listObjects('layers');
      assert.equal(x?.path, 'layers/delta/x.parquet');
      assert.equal(x?.bytes, 12);
      assert.equal(y?.path, 'layers/delta/y.parquet');
      // Stores keep whole seconds (S3's LastModified): allow for the rounding down.
      assert.ok(
        x !== undefined && x.modified.getTime() >= before - 1_000 && x.modified.getTime() <= Date.now() + 1_000,
        `modified ${x?.modified.toISOString()}`,
      );
      await storage.remove('layers/delta/x.parquet');
      await storage.remove('layers/delta/x.parquet');
      await storage.remove('layers/delta/never.parquet');
      assert.deepEqual(await (await reopen()).list('layers'), ['layers/delta/y.parquet']);
      assert.equal(await (await reopen()).read('layers/delta/x.parquet'), undefined);
    });

    test('list: more than 1,000 objects (S3 pages LIST at 1,000 keys)', async () => {
      const { storage } = await backend.fresh();
      const names = Array.from({ length: 1_050 }, (_, i) => `own/${String(i).padStart(5, '0')}.json`);
      for (let i = 0; i < names.length; i += 5) {
        await Promise.all(names.slice(i, i + 5).map((name) => storage.createExclusive(name, Buffer.from(name))));
      }
      assert.deepEqual(await storage.list('own'), names);
    });

    test('localPath: a local file with the object’s bytes, for DuckDB; read again from a fresh open', async () => {
      const { storage, reopen } = await backend.fresh();
      const layer = localFile(await storage.scratchDirectory(), 200_000);
      await storage.putFile('layers/l0/b.parquet', layer.path);
      assert.deepEqual(readFileSync(await storage.localPath('layers/l0/b.parquet')), layer.data);
      const elsewhere = await reopen({ RECALL_CACHE_DIR: mkdtempSync(join(temporary, 'cache-')) });
      assert.deepEqual(readFileSync(await elsewhere.localPath('layers/l0/b.parquet')), layer.data);
      assert.equal(existsSync(await elsewhere.localPath('layers/l0/missing.parquet')), false);
    });

    test('errors: a location that cannot hold a vault is refused before any work, with a hint and no secret', async () => {
      for (const bad of backend.unusable()) {
        await assert.rejects(openStorage(bad.location, bad.env), (error: unknown) => {
          assert.ok(error instanceof RecallError, `${bad.what}: ${String(error)}`);
          assert.equal(error.exitCode, bad.exitCode, `${bad.what}: ${error.message}`);
          assert.ok(error.hint !== undefined && error.hint.length > 0, bad.what);
          assert.ok(!`${error.message}${error.hint}`.includes('S3RVER') && !error.message.includes('wrong-secret'), bad.what);
          return true;
        });
      }
    });
  });
}

describe('S3 backend', () => {
  test('the probe finds that s3rver ignores If-None-Match on PUT: exclusive creates are checked, not atomic', async () => {
    const { storage } = await s3Backend.fresh();
    assert.equal(await storage.exclusivity(), 'checked');
  });

  test('a file larger than RECALL_S3_PART_SIZE goes up in parts and reads back whole; a part size below 5 MiB is refused', async () => {
    const prefix = `${randomBytes(6).toString('hex')}/vault`;
    const env = { ...process.env, ...server.env };
    const writer = await openStorage(`s3://${TEST_BUCKET}/${prefix}`, { ...env, RECALL_S3_PART_SIZE: '5MiB' });
    // Three parts, the last a short one.
    const file = localFile(await writer.scratchDirectory(), 11 * 1024 * 1024 + 12345);
    await writer.putFile('layers/image/large.parquet', file.path);
    // s3rver's ETag of a multipart object is a plain MD5, so the parts cannot be seen here; the SDK's
    // commands, logged once, were CreateMultipartUpload, three UploadPart and CompleteMultipartUpload.
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: env.AWS_ENDPOINT_URL,
      forcePathStyle: true,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID ?? '', secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? '' },
    });
    const head = await client.send(new HeadObjectCommand({ Bucket: TEST_BUCKET, Key: `${prefix}/layers/image/large.parquet` }));
    client.destroy();
    assert.equal(head.ContentLength, file.data.length);
    const reader = await openStorage(`s3://${TEST_BUCKET}/${prefix}`, { ...env, RECALL_CACHE_DIR: mkdtempSync(join(temporary, 'parts-')) });
    assert.deepEqual(readFileSync(await reader.localPath('layers/image/large.parquet')), file.data);
    await assert.rejects(openStorage(`s3://${TEST_BUCKET}/${prefix}`, { ...env, RECALL_S3_PART_SIZE: '1MB' }), (error: unknown) => {
      assert.ok(error instanceof RecallError && error.exitCode === 2 && /below S3's minimum part size/.test(error.message), String(error));
      return true;
    });
  });

  test('holds at most RECALL_CACHE_SIZE bytes, least recently used copies going first, never one in use', async () => {
    const { reopen, storage } = await s3Backend.fresh();
    for (const name of ['a', 'b', 'c', 'd', 'e']) {
      await storage.putFile(`layers/${name}.parquet`, localFile(await storage.scratchDirectory(), 100_000).path);
    }
    const cacheDir = mkdtempSync(join(temporary, 'bounded-'));
    const reader = await reopen({ RECALL_CACHE_DIR: cacheDir, RECALL_CACHE_SIZE: '250KB' });
    const held = (): string[] =>
      readdirSync(cacheDir, { recursive: true, withFileTypes: true })
        .filter((entry) => entry.isFile())
        .map((entry) => entry.name)
        .sort();
    const a = await reader.localPath('layers/a.parquet');
    const b = await reader.localPath('layers/b.parquet');
    // Used an hour and two hours ago: past the window in which a copy counts as in use.
    const hoursAgo = (hours: number): Date => new Date(Date.now() - hours * 3_600_000);
    utimesSync(b, hoursAgo(2), hoursAgo(2));
    utimesSync(a, hoursAgo(1), hoursAgo(1));
    await reader.localPath('layers/c.parquet');
    assert.deepEqual(held(), ['a.parquet', 'c.parquet'], 'the least recently used copy went first');
    await reader.localPath('layers/d.parquet');
    assert.deepEqual(held(), ['c.parquet', 'd.parquet']);
    // c and d were used just now (a command may be about to open them): over the bound, nothing goes.
    await reader.localPath('layers/e.parquet');
    assert.deepEqual(held(), ['c.parquet', 'd.parquet', 'e.parquet']);
  });
});
