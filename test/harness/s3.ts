// A real S3-speaking server on loopback for tests: s3rver (npm), started in the test's
// own process on a free port with its files in a temporary directory, and the
// environment a Recall process needs to reach it (endpoint, path style, its credentials,
// a cache directory of its own).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

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
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: join(directory, 'data'),
    configureBuckets: [{ name: TEST_BUCKET, configs: [] }],
  });
  const { port } = (await server.run()) as { port: number };
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
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
