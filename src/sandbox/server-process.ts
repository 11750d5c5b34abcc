// Runs PostgreSQL's programs (initdb, pg_ctl) with a clean environment and, when
// we are root, as the `postgres` OS user: the server refuses to run as root.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** The OS identity PostgreSQL's programs run as; `null` means our own. */
export type ServerUser = { readonly uid: number; readonly gid: number } | null;

/** How a program ended and what it printed. */
export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

let userLookup: Promise<ServerUser> | undefined;

/** The identity to run the server as: the `postgres` user (created if missing) when we are root. */
export function serverUser(): Promise<ServerUser> {
  if (process.getuid?.() !== 0) return Promise.resolve(null);
  userLookup ??= findOrCreatePostgresUser();
  userLookup.catch(() => (userLookup = undefined));
  return userLookup;
}

async function findOrCreatePostgresUser(): Promise<ServerUser> {
  if (!(await userExists())) {
    try {
      await execFileAsync('useradd', ['--system', '--no-create-home', 'postgres']);
    } catch (error) {
      // A concurrent test process may have created it between our check and useradd.
      if (!(await userExists())) {
        throw new Error(`PostgreSQL refuses to run as root and the \`postgres\` OS user could not be created`, {
          cause: error,
        });
      }
    }
  }
  const uid = Number((await execFileAsync('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await execFileAsync('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

async function userExists(): Promise<boolean> {
  try {
    await execFileAsync('id', ['-u', 'postgres']);
    return true;
  } catch {
    return false;
  }
}

// PG* variables of the caller (PGDATA, PGPORT, PGHOST…) would silently redirect
// initdb and pg_ctl, and a translated locale would make the server log unreadable for us.
function cleanEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' };
  if (process.env.TZ !== undefined) env.TZ = process.env.TZ;
  return env;
}

/** Runs `file` as `user` in `cwd`, killing it after `timeoutMs`; never rejects on a non-zero exit. */
export function run(
  file: string,
  args: readonly string[],
  options: { readonly user: ServerUser; readonly cwd: string; readonly timeoutMs: number },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: cleanEnvironment(),
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs,
      ...(options.user === null ? {} : { uid: options.user.uid, gid: options.user.gid }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== null) stderr += `\n(${file} was killed by ${signal} after at most ${options.timeoutMs} ms)`;
      resolve({ code, stdout, stderr });
    });
  });
}
