// Crash-test helpers: a writer that keeps committing small multi-tenant transactions
// with its own ground truth (a shadow table written in the same transaction), a
// capture child process whose stderr can be waited on, and the exactly-once and
// final-state checks of a vault against that ground truth.

import type { ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { after } from 'node:test';
import pg from 'pg';
import { prng } from '../../src/demo/random.js';
import { fixture, jsonLines, type Fixture, type RunResult } from './recall.js';

/** The schema the crash tests capture: a tenants root, a keyed table, and the ground truth. */
export const CRASH_SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY);
  CREATE TABLE items (tenant_id text, id bigint, v int, PRIMARY KEY (tenant_id, id));
  -- One row per change the writer made to items, in the same transaction: the ground truth.
  CREATE TABLE truth (seq bigserial PRIMARY KEY, tenant_id text NOT NULL, op text NOT NULL, id bigint NOT NULL, v int NOT NULL);
`;

/** Tenants with a few rows each before \`recall init\`, so the initial image matters too. */
export function seedSql(tenants: readonly string[], rowsPerTenant = 5): string {
  const values = tenants.flatMap((tenant) => Array.from({ length: rowsPerTenant }, (_, id) => `('${tenant}', ${id}, ${id * 10})`));
  return `INSERT INTO tenants VALUES ${tenants.map((t) => `('${t}')`).join(', ')};
          INSERT INTO items VALUES ${values.join(', ')};`;
}

export { prng } from '../../src/demo/random.js';

/** What the writer did. */
export interface WriterStats {
  /** Transactions whose COMMIT was acknowledged. */
  committed: number;
  /** Transactions that failed because the server went away (their outcome may be either). */
  interrupted: number;
  /** Times the writer had to open a new connection after the first. */
  reconnects: number;
  /** Errors that are not a lost connection: a bug in the workload or the server. */
  readonly unexpected: string[];
}

/** A running writer. */
export interface Writer {
  readonly stats: WriterStats;
  /** Resolves once `count` more transactions have committed (polls until the deadline). */
  progress(count: number, timeoutMs?: number): Promise<void>;
  /** Stops after the transaction in flight and closes the connection. */
  stop(): Promise<WriterStats>;
}

/** Errors that mean "the server or the connection went away", which a crash test expects. */
export function isConnectionLoss(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (/^08/.test(code) || /^57P0[1-3]$/.test(code) || /^E[A-Z]+$/.test(code))) return true;
  return /Connection terminated|ECONNRESET|ECONNREFUSED|EPIPE|socket|not queryable|the database system is/i.test(
    (error as Error)?.message ?? '',
  );
}

/**
 * Starts a writer on one connection: transactions of 1–3 changes to items across
 * tenants (insert, update, delete on distinct keys), each change recorded in `truth`
 * in the same transaction, only when it really changed a row. One connection and
 * one transaction at a time, so truth.seq order is commit order.
 */
export function startWriter(
  url: string,
  tenants: readonly string[],
  options: { seed: number; idsPerTenant?: number; pauseMs?: number },
): Writer {
  const random = prng(options.seed);
  const ids = options.idsPerTenant ?? 40;
  const pauseMs = options.pauseMs ?? 4;
  const stats: WriterStats = { committed: 0, interrupted: 0, reconnects: 0, unexpected: [] };
  let stopping = false;
  let client: pg.Client | undefined;
  let connections = 0;

  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

  async function transaction(db: pg.Client): Promise<void> {
    const size = 1 + Math.floor(random() * 3);
    const used = new Set<string>();
    await db.query('BEGIN');
    try {
      for (let i = 0; i < size; i++) {
        const tenant = pick(tenants);
        const id = Math.floor(random() * ids);
        if (used.has(`${tenant}/${id}`)) continue;
        used.add(`${tenant}/${id}`);
        const dice = random();
        const v = Math.floor(random() * 1_000_000);
        let op: 'insert' | 'update' | 'delete';
        let result: pg.QueryResult<{ v: string }>;
        if (dice < 0.4) {
          op = 'insert';
          result = await db.query('INSERT INTO items VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING v::text', [tenant, id, v]);
        } else if (dice < 0.8) {
          op = 'update';
          result = await db.query('UPDATE items SET v = $3 WHERE tenant_id = $1 AND id = $2 RETURNING v::text', [tenant, id, v]);
        } else {
          op = 'delete';
          result = await db.query('DELETE FROM items WHERE tenant_id = $1 AND id = $2 RETURNING v::text', [tenant, id]);
        }
        const changed = result.rows[0];
        if (changed !== undefined) {
          await db.query('INSERT INTO truth (tenant_id, op, id, v) VALUES ($1, $2, $3, $4)', [tenant, op, id, changed.v]);
        }
      }
      await db.query('COMMIT');
    } catch (error) {
      await db.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  const done = (async () => {
    while (!stopping) {
      try {
        if (client === undefined) {
          const next = new pg.Client({ connectionString: url });
          // A server crash surfaces as an 'error' event too; the failing query reports it.
          next.on('error', () => undefined);
          client = next;
          await next.connect();
          if (connections++ > 0) stats.reconnects++;
        }
        await transaction(client);
        stats.committed++;
      } catch (error) {
        if (isConnectionLoss(error)) stats.interrupted++;
        else stats.unexpected.push((error as Error)?.message ?? String(error));
        await client?.end().catch(() => undefined);
        client = undefined;
        // The server is down or restarting: retry at a gentle pace until it is back.
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      // Pacing, so the writer leaves CPU to capture on a small machine.
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
    await client?.end().catch(() => undefined);
  })();

  return {
    stats,
    async progress(count, timeoutMs = 30_000) {
      const target = stats.committed + count;
      const deadline = Date.now() + timeoutMs;
      while (stats.committed < target) {
        if (Date.now() > deadline) {
          throw new Error(
            `the writer committed ${stats.committed}/${target} transactions within ${timeoutMs} ms ` +
              `(${stats.interrupted} interrupted; unexpected: ${stats.unexpected.slice(-3).join(' | ') || 'none'})`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async stop() {
      stopping = true;
      await done;
      return stats;
    },
  };
}

/** A `recall capture` child process whose stderr lines can be awaited. */
export class CaptureProcess {
  readonly lines: string[] = [];
  /** When each stderr line arrived (Date.now()), index for index with `lines`. */
  readonly arrivals: number[] = [];
  private stdout = '';
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly startedAt = Date.now();
  private partial = '';

  constructor(readonly child: ChildProcess) {
    child.stderr?.on('data', (chunk: Buffer) => {
      const text = this.partial + chunk.toString();
      const parts = text.split('\n');
      this.partial = parts.pop() ?? '';
      this.lines.push(...parts);
      for (const _ of parts) this.arrivals.push(Date.now());
    });
    child.stdout?.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        if (this.partial !== '') {
          this.lines.push(this.partial);
          this.arrivals.push(Date.now());
        }
        this.partial = '';
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  /** Spawns `recall capture …` from the fixture, with `env` added to its environment. */
  static spawn(f: Fixture, args: readonly string[] = [], env?: NodeJS.ProcessEnv): CaptureProcess {
    return new CaptureProcess(f.spawnRecall(['capture', ...args], env));
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  get exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    return this.exitInfo;
  }

  get output(): string {
    return this.stdout;
  }

  /** Lines matching `pattern` so far. */
  count(pattern: RegExp): number {
    return this.lines.filter((line) => pattern.test(line)).length;
  }

  /** Milliseconds from spawn to the first stderr line matching `pattern`, if any. */
  firstAfter(pattern: RegExp): number | undefined {
    const index = this.lines.findIndex((line) => pattern.test(line));
    return index < 0 ? undefined : (this.arrivals[index] ?? Date.now()) - this.startedAt;
  }

  /** The stderr so far, for failure messages. */
  describe(): string {
    const exit = this.exitInfo === undefined ? 'still running' : `exit code ${this.exitInfo.code}, signal ${this.exitInfo.signal}`;
    return `capture (${exit}), stderr:\n${this.lines.slice(-30).join('\n')}`;
  }

  /**
   * Waits until at least `count` stderr lines match `pattern`. Fails at the deadline,
   * or at once if the process exits first (a capture must not die by itself).
   */
  async waitForLines(pattern: RegExp, count: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.count(pattern) < count) {
      if (!this.running) throw new Error(`capture exited while waiting for ${pattern} ×${count}: ${this.describe()}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} ×${count}: ${this.describe()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Waits for the process to exit, failing after the deadline. */
  async waitForExit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const outcome = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') throw new Error(`capture did not exit within ${timeoutMs} ms: ${this.describe()}`);
    return outcome;
  }

  /** kill -9 and wait for the process to be gone. */
  async kill9(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.waitForExit(10_000);
  }
}

/** What a suite starts (fixtures, background captures), all ended by one `after` hook it registers. */
export function endAfterSuite(): { readonly fixtures: Fixture[]; readonly captures: CaptureProcess[] } {
  const started = { fixtures: [] as Fixture[], captures: [] as CaptureProcess[] };
  after(async () => {
    await Promise.all(started.captures.map((capture) => capture.kill9()));
    await Promise.all(started.fixtures.map((f) => f.close()));
  });
  return started;
}

/**
 * A fixture of `major` with `schema`, `recall init` done and a capture streaming, both
 * registered with the suite's `started` so that its `after` hook ends them.
 */
export async function capturedFixture(
  started: { readonly fixtures: Fixture[]; readonly captures: CaptureProcess[] },
  major: number,
  schema: string,
  options: { dataChecksums?: boolean } = {},
): Promise<{ f: Fixture; capture: CaptureProcess }> {
  const f = await fixture(major, schema, undefined, options);
  started.fixtures.push(f);
  // The fixture's client may die with a server a test stops: that must not crash the runner.
  f.db.on('error', () => undefined);
  const capture = await initAndCapture(f);
  started.captures.push(capture);
  return { f, capture };
}

/** Runs `recall init`, then starts `recall capture` in the background and waits until it streams. */
export async function initAndCapture(f: Fixture): Promise<CaptureProcess> {
  const init = await f.recall(['init']);
  assert.equal(init.code, 0, init.stderr);
  const capture = CaptureProcess.spawn(f);
  await capture.waitForLines(/capture: streaming slot/, 1, 30_000);
  return capture;
}

/** Runs `recall capture --until-caught-up`; it must exit 0 before the deadline. */
export async function catchUp(f: Fixture, timeoutMs: number): Promise<{ elapsedMs: number; lines: string[] }> {
  const started = Date.now();
  const capture = CaptureProcess.spawn(f, ['--until-caught-up']);
  try {
    const exit = await capture.waitForExit(timeoutMs);
    assert.deepEqual(exit, { code: 0, signal: null }, `capture --until-caught-up failed: ${capture.describe()}`);
    return { elapsedMs: Date.now() - started, lines: capture.lines };
  } finally {
    await capture.kill9();
  }
}

function succeeded(result: RunResult, what: string): string {
  assert.equal(result.code, 0, `${what} exited with ${result.code}:\n${result.stderr}`);
  return result.stdout;
}

interface LoggedChange {
  lsn: string;
  table: string;
  op: string;
  key: (string | null)[];
  row: Record<string, string | null> | null;
}

/**
 * Invariants 1 and 2 against the ground truth, per tenant: `recall log` of items holds
 * each change of the truth table exactly once and in commit order, the truth table's
 * own rows are in the vault exactly once, and `recall show --at now` equals the live rows.
 */
export async function checkVaultAgainstTruth(f: Fixture, tenants: readonly string[]): Promise<{ changes: number }> {
  const db = new pg.Client({ connectionString: f.cluster.url() });
  db.on('error', () => undefined);
  await db.connect();
  let changes = 0;
  try {
    for (const tenant of tenants) {
      const truth = (
        await db.query<{ seq: string; op: string; id: string; v: string }>(
          'SELECT t.seq::text AS seq, t.op, t.id::text AS id, t.v::text AS v FROM truth t WHERE t.tenant_id = $1 ORDER BY t.seq',
          [tenant],
        )
      ).rows;
      changes += truth.length;

      // items: every change once, in commit order, with its values.
      const logged = jsonLines<LoggedChange>(
        succeeded(await f.recall(['log', '--tenant', tenant, '--table', 'public.items', '--json']), `recall log --tenant ${tenant}`),
      );
      const seen = new Map<string, number>();
      for (const change of logged) {
        const id = `${change.lsn} ${JSON.stringify(change.key)} ${change.op}`;
        seen.set(id, (seen.get(id) ?? 0) + 1);
      }
      const doubled = [...seen].filter(([, n]) => n > 1);
      assert.deepEqual(doubled, [], `tenant ${tenant}: changes logged more than once (lsn key op ×n)`);
      const fromLog = logged.map((c) => {
        assert.equal(c.table, 'public.items');
        assert.equal(c.key[0], tenant, `tenant ${tenant}: a change of another tenant in its log: ${JSON.stringify(c)}`);
        return `${c.op} ${c.key[1]} ${c.row?.v ?? 'null'}`;
      });
      const fromTruth = truth.map((t) => `${t.op} ${t.id} ${t.v}`);
      assertSameSequence(fromLog, fromTruth, `tenant ${tenant}: recall log of public.items vs the truth table`);

      // truth: its own rows are captured too, each exactly once.
      const shadow = jsonLines<LoggedChange>(
        succeeded(await f.recall(['log', '--tenant', tenant, '--table', 'public.truth', '--json']), `recall log --table public.truth`),
      );
      assertSameSequence(
        shadow.map((c) => `${c.op} ${c.key[0]}`),
        truth.map((t) => `insert ${t.seq}`),
        `tenant ${tenant}: recall log of public.truth vs the truth table`,
      );

      // show at now: exactly the live rows, in text form.
      const live = (
        await db.query<{ tenant_id: string; id: string; v: string | null }>(
          'SELECT i.tenant_id, i.id::text AS id, i.v::text AS v FROM items i WHERE i.tenant_id = $1 ORDER BY i.id',
          [tenant],
        )
      ).rows.map((r) => ({ tenant_id: r.tenant_id, id: r.id, v: r.v }));
      const shown = jsonLines<{ table: string; row: Record<string, string | null> }>(
        succeeded(
          await f.recall(['show', '--tenant', tenant, '--at', 'now', '--table', 'public.items', '--json']),
          `recall show --tenant ${tenant}`,
        ),
      );
      assert.ok(shown.every((s) => s.table === 'public.items'));
      const rows = shown.map((s) => s.row).sort((a, b) => Number(a.id) - Number(b.id));
      assert.deepEqual(rows, live, `tenant ${tenant}: recall show --at now vs SELECT … FROM items`);
    }
  } finally {
    await db.end().catch(() => undefined);
  }
  return { changes };
}

/** Compares two sequences and, when they differ, names the first difference and the counts. */
function assertSameSequence(actual: readonly string[], expected: readonly string[], what: string): void {
  if (actual.length === expected.length && actual.every((item, i) => item === expected[i])) return;
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  assert.fail(
    `${what}: ${actual.length} vs ${expected.length} changes; first difference at #${i}: ` +
      `vault ${JSON.stringify(actual.slice(i, i + 3))}, truth ${JSON.stringify(expected.slice(i, i + 3))}`,
  );
}

/** A random whole number of milliseconds in [min, max]. */
/**
 * A point after everything so far has committed, before anything that follows. The
 * waits on both sides matter: a point has milliseconds, a commit time microseconds,
 * so a commit in the same millisecond as the point would fall after it.
 */
export async function pointNow(): Promise<string> {
  await new Promise((resolve) => setTimeout(resolve, 5));
  const point = new Date().toISOString();
  await new Promise((resolve) => setTimeout(resolve, 50));
  return point;
}

export function randomBetween(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}
