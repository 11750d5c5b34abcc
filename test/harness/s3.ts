// A real S3-speaking server on loopback for tests: s3rver (npm), in a child process on a
// free port with its files in a temporary directory, and the environment a Recall
// process needs to reach it (endpoint, path style, its credentials, a cache directory of
// its own). The child runs with OpenSSL's legacy provider: s3rver ciphers its LIST
// continuation tokens with DES, which Node 17+ refuses otherwise (every LIST past
// 1,000 keys would be a 500).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const S3RVER_BIN = createRequire(import.meta.url).resolve('s3rver/bin/s3rver.js');

/** The bucket every test server holds. */
export const TEST_BUCKET = 'recall-test';

/** s3rver's fixed credentials: it checks request signatures against them. */
const ACCESS_KEY = 'S3RVER';
const SECRET_KEY = 'S3RVER';

/** A running test server. */
export interface S3Server {
  readonly endpoint: string;
  /** The AWS_* variables (and RECALL_CACHE_DIR) that point a Recall process at it. */
  readonly env: NodeJS.ProcessEnv;
  /** The secret the tests check is never printed. */
  readonly secret: string;
  close(): Promise<void>;
}

/** Starts s3rver with TEST_BUCKET on 127.0.0.1. */
export async function startS3Server(): Promise<S3Server> {
  const directory = mkdtempSync(join(tmpdir(), 'recall-s3-'));
  mkdirSync(join(directory, 'data'));
  const child = spawn(
    process.execPath,
    [
      '--openssl-legacy-provider',
      S3RVER_BIN,
      '-d',
      join(directory, 'data'),
      '-a',
      '127.0.0.1',
      '-p',
      '0',
      '-s',
      '--configure-bucket',
      TEST_BUCKET,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const found = /listening on [\d.]+:(\d+)/.exec(output);
      if (found?.[1] !== undefined) resolve(Number(found[1]));
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening: ${output}`)));
  });
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    secret: SECRET_KEY,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: SECRET_KEY,
      AWS_REGION: 'us-east-1',
      RECALL_CACHE_DIR: join(directory, 'cache'),
    },
    async close() {
      if (child.exitCode === null) {
        child.kill();
        await once(child, 'exit');
      }
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
