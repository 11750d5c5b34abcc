// Running Recall as a user does: the built CLI (`bin/recall.js`) in a child process,
// with the source and vault passed through the environment. Node is spawned
// directly (not through npx) so a kill -9 hits the process that holds the slot.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { startCluster, type Cluster } from '../../src/sandbox/index.js';

const BIN = resolve(import.meta.dirname, '../../bin/recall.js');

/** The outcome of one CLI run. */
export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A throwaway source database with a vault directory beside it. */
export interface Fixture {
  readonly cluster: Cluster;
  readonly vault: string;
  readonly env: NodeJS.ProcessEnv;
  readonly db: pg.Client;
  recall(args: readonly string[], env?: NodeJS.ProcessEnv): Promise<RunResult>;
  spawnRecall(args: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess;
  close(): Promise<void>;
}

/** Starts a cluster of `major`, runs `schema` in its `postgres` database, and connects a client. */
export async function fixture(
  major: number,
  schema: string,
  settings?: Record<string, string>,
  options: { dataChecksums?: boolean } = {},
): Promise<Fixture> {
  const cluster = await startCluster({ major, ...(settings ? { settings } : {}), ...options });
  const directory = mkdtempSync(join(tmpdir(), 'recall-vault-'));
  const vault = join(directory, 'vault');
  const env: NodeJS.ProcessEnv = { ...process.env, RECALL_SOURCE: cluster.url(), RECALL_VAULT: vault, NO_COLOR: '1' };
  delete env.DATABASE_URL;
  const db = new pg.Client({ connectionString: cluster.url() });
  await db.connect();
  if (schema) await db.query(schema);
  return {
    cluster,
    vault,
    env,
    db,
    recall: (args, extra) => runRecall(args, { ...env, ...extra }),
    spawnRecall: (args, extra) => spawn(process.execPath, [BIN, ...args], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] }),
    async close() {
      await db.end().catch(() => undefined);
      await cluster.destroy();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** Where and as whom a run happens: a working directory (for ./recall.yml), another OS user (for permission bits). */
export interface RunAs {
  readonly cwd?: string;
  readonly user?: { readonly uid: number; readonly gid: number } | null;
}

/** Runs the CLI to completion. */
export function runRecall(args: readonly string[], env: NodeJS.ProcessEnv, as: RunAs = {}): Promise<RunResult> {
  const user = as.user ?? undefined;
  return collect(
    spawn(process.execPath, [BIN, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(as.cwd === undefined ? {} : { cwd: as.cwd }),
      ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }),
    }),
  );
}

/** Runs the CLI under a file-size limit of `kib` KiB (ulimit -f), so its writes past it fail with EFBIG. */
export function runRecallWithFileLimit(args: readonly string[], env: NodeJS.ProcessEnv, kib: number): Promise<RunResult> {
  const command = `ulimit -f ${kib} && exec "$0" "$@"`;
  return collect(spawn('bash', ['-c', command, process.execPath, BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** A child's exit code and output, once it has closed. */
function collect(child: ChildProcess): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/** Parses JSON-lines output. */
export function jsonLines<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T);
}

/** Waits until `check` holds, polling, or fails after the deadline. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000, pollMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** A CLI run with the peak resident memory of its process (VmHWM, read while it runs). */
export interface MeasuredRun extends RunResult {
  readonly peakRssBytes: number;
}

/** Runs the CLI to completion, sampling its peak RSS from /proc (the kernel keeps the high-water mark). */
export async function runRecallMeasured(args: readonly string[], env: NodeJS.ProcessEnv): Promise<MeasuredRun> {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let peak = 0;
  const timer = setInterval(() => {
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (match) peak = Math.max(peak, Number(match[1]) * 1024);
    } catch {
      // the process has just ended
    }
  }, 50);
  try {
    return { ...(await collect(child)), peakRssBytes: peak };
  } finally {
    clearInterval(timer);
  }
}
