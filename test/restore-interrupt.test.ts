// SIGINT during a restore or undo, against real PostgreSQL and the real CLI: while
// planning (nothing written), during apply with several tenants in two sessions
// (each tenant committed whole or untouched, the output naming which), and after
// the last commit (exit 0); the guards are gone each time. And --max-rate within one
// tenant's transaction: the apply takes at least its rows over the rate.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { SAAS_SCHEMA, cleanupScript, signUp, tenantNames } from '../src/demo/saas.js';
import { fixture, jsonLines, waitFor, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { counts, othersState, tenantState, type State } from './harness/saas.js';
import { CaptureProcess, endAfterSuite, initAndCapture, pointNow } from './harness/workload.js';

/** Advisory lock namespaces of the freeze (src/restore/freeze.ts): per tenant, and the guards' own. */
const TENANT_LOCKS = 0x52434c01;
const GUARD_LOCK = 0x52434c03;

async function guards(db: pg.Client): Promise<number> {
  const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM pg_trigger WHERE tgname = 'recall_guard'`);
  return Number(rows[0]?.n);
}

/** Advisory locks of a namespace in pg_locks: granted or waited for. */
async function advisoryLocks(db: pg.Client, namespace: number, granted: boolean): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = $1 AND granted = $2`,
    [namespace, granted],
  );
  return Number(rows[0]?.n);
}

/** Each tenant's rows on its own, to compare tenant by tenant. */
async function perTenant(db: pg.Client, tenants: readonly string[]): Promise<Map<string, State>> {
  const states = new Map<string, State>();
  for (const t of tenants) states.set(t, await tenantState(db, [t]));
  return states;
}

const NOTHING = { tenants: 0, users: 0, projects: 0, issues: 0, memberships: 0 };

for (const major of testMajors('one')) {
  describe(`SIGINT and --max-rate during restore and undo on PostgreSQL ${major}`, () => {
    let other: pg.Client | undefined;
    after(() => other?.end().catch(() => undefined));
    const { fixtures, captures } = endAfterSuite();
    let f: Fixture;

    before(async () => {
      f = await fixture(major, SAAS_SCHEMA);
      fixtures.push(f);
      await signUp(f.db, tenantNames(30));
      await signUp(f.db, ['big'], { users: 50, projects: 10, issuesPerProject: 50 });
      captures.push(await initAndCapture(f));
      other = new pg.Client({ connectionString: f.cluster.url() });
      await other.connect();
      other.on('error', () => undefined);
    });

    test('SIGINT while planning (the freeze waits for a writer): exit 130 at once, nothing written, no guard left', async () => {
      const point = await pointNow();
      await f.db.query(`DELETE FROM public.issues WHERE tenant_id = 't001'`);
      const deleted = await tenantState(f.db, ['t001']);
      // A writer that passed the guard holds its tenant's lock shared: the freeze waits for it.
      await other?.query(`SELECT pg_advisory_lock_shared(${TENANT_LOCKS}, hashtext('t001'))`);
      try {
        const restore = new CaptureProcess(
          f.spawnRecall(['restore', '--tenant', 't001', '--to', point, '--yes', '--jobs', '1', '--freeze-timeout', '120']),
        );
        await waitFor('the freeze to wait for the writer', async () => (await advisoryLocks(f.db, TENANT_LOCKS, false)) > 0);
        assert.ok((await guards(f.db)) > 0, 'the guards are in place while the freeze waits');
        const signalled = Date.now();
        restore.child.kill('SIGINT');
        const exit = await restore.waitForExit(60_000);
        const stderr = restore.lines.join('\n');
        assert.deepEqual(exit, { code: 130, signal: null }, stderr);
        assert.ok(Date.now() - signalled < 30_000, 'the wait for the freeze was cancelled, not sat out');
        assert.match(stderr, /restore: SIGINT received; stopping at the next safe point/);
        assert.match(stderr, /recall: interrupted while planning; nothing was written, every tenant is untouched/);
        assert.doesNotMatch(stderr, /bug in Recall/);
      } finally {
        await other?.query(`SELECT pg_advisory_unlock_shared(${TENANT_LOCKS}, hashtext('t001'))`);
      }
      assert.equal(await guards(f.db), 0, 'the guards are removed');
      assert.deepStrictEqual(await tenantState(f.db, ['t001']), deleted, 'nothing was written');
      const retry = await f.recall(['restore', '--tenant', 't001', '--to', point, '--yes']);
      assert.equal(retry.code, 0, retry.stderr);
    });

    test('SIGINT during apply with 24 tenants in two sessions: each tenant committed whole or untouched, and the output says which', async () => {
      const tenants = tenantNames(24, 2);
      const original = await perTenant(f.db, tenants);
      const point = await pointNow();
      await cleanupScript(f.db, tenants, 24, { actor: 'sweeper' });
      const others = await othersState(f.db, tenants);
      // Two sessions of 12 tenants, each a transaction of 10 and one of 2; the rate spreads them over seconds.
      const restore = new CaptureProcess(
        f.spawnRecall(['restore', '--tenant', tenants.join(','), '--to', point, '--yes', '--jobs', '2', '--max-rate', '60', '--json']),
      );
      await waitFor(
        'a first transaction to commit',
        async () => {
          const { rows } = await f.db.query<{ n: string }>('SELECT count(*) AS n FROM public.tenants WHERE id = ANY($1)', [tenants]);
          return Number(rows[0]?.n) > 0 || !restore.running;
        },
        60_000,
        10,
      );
      restore.child.kill('SIGINT');
      const exit = await restore.waitForExit(60_000);
      const stderr = restore.lines.join('\n');
      assert.deepEqual(exit, { code: 130, signal: null }, stderr);
      assert.match(stderr, /restore: SIGINT received/);

      const state = await perTenant(f.db, tenants);
      const restored = tenants.filter((t) => (counts(state.get(t) as State).tenants ?? 0) > 0);
      for (const t of tenants) {
        if (restored.includes(t)) assert.deepStrictEqual(state.get(t), original.get(t), `${t} is fully restored`);
        else assert.deepStrictEqual(counts(state.get(t) as State), NOTHING, `${t} is untouched (still deleted)`);
      }
      assert.ok(restored.length > 0 && restored.length < tenants.length, `some tenants committed, some not: ${restored.join(', ')}`);
      const untouched = tenants.filter((t) => !restored.includes(t));
      const message = new RegExp(
        `^recall: interrupted during apply: ${restored.length} of 24 committed \\(${restored.join(', ')}\\); not written and untouched: ${untouched.join(', ')}$`,
        'm',
      );
      assert.match(stderr, message);
      assert.match(stderr, /^hint: run the same command again to write the rest/m);
      const [, interrupted] = jsonLines<{ interrupted?: { committed: string[]; untouched: string[] } }>(restore.output);
      assert.deepStrictEqual(interrupted?.interrupted?.committed, restored);
      assert.deepStrictEqual(interrupted?.interrupted?.untouched, untouched);
      assert.equal(await guards(f.db), 0, 'the guards are removed');
      assert.deepStrictEqual(await othersState(f.db, tenants), others, 'nobody else changed');

      const rerun = await f.recall(['restore', '--tenant', tenants.join(','), '--to', point, '--yes']);
      assert.equal(rerun.code, 0, rerun.stderr);
      assert.match(rerun.stderr, new RegExp(`of ${untouched.length} tenant\\(s\\)`), 'the rerun writes only the rest');
      assert.deepStrictEqual(await perTenant(f.db, tenants), original);
    });

    test('SIGINT after the last commit of an undo (while the guards are removed): exit 0, every tenant written, no guard left', async () => {
      const tenants = ['t026', 't027'];
      const original = await tenantState(f.db, tenants);
      await cleanupScript(f.db, tenants, 2, { actor: 'late-sweeper' });
      // Held once the freeze is in place: the guards' removal at the end waits for it.
      const undo = new CaptureProcess(f.spawnRecall(['undo', '--actor', 'late-sweeper', '--yes', '--max-rate', '20']));
      await waitFor('the freeze', async () => (await advisoryLocks(f.db, TENANT_LOCKS, true)) >= tenants.length, 60_000, 10);
      await other?.query(`SELECT pg_advisory_lock(${GUARD_LOCK}, 0)`);
      try {
        await waitFor('the undo to commit and wait to remove the guards', async () => {
          if (!undo.running) return true;
          return (await advisoryLocks(f.db, GUARD_LOCK, false)) > 0;
        });
        assert.ok(undo.running, undo.describe());
        assert.deepStrictEqual(await tenantState(f.db, tenants), original, 'every tenant is written before the signal');
        undo.child.kill('SIGINT');
        await undo.waitForLines(/undo: SIGINT received/, 1, 30_000);
      } finally {
        await other?.query(`SELECT pg_advisory_unlock(${GUARD_LOCK}, 0)`);
      }
      const exit = await undo.waitForExit(60_000);
      const stderr = undo.lines.join('\n');
      assert.deepEqual(exit, { code: 0, signal: null }, stderr);
      assert.match(stderr, /undo: wrote \d+ row\(s\) of 2 tenant\(s\)/);
      assert.match(stderr, /undo: the signal came after the work was done; nothing is left undone/);
      assert.equal(await guards(f.db), 0, 'the guards are removed');
      assert.deepStrictEqual(await tenantState(f.db, tenants), original);
    });

    test("--max-rate holds within one tenant's transaction: the apply takes at least its rows over the rate", async () => {
      const original = await tenantState(f.db, ['big']);
      const point = await pointNow();
      await f.db.query(`DELETE FROM public.tenants WHERE id = 'big'`);
      const rate = 400;
      const started = Date.now();
      const restore = await f.recall(['restore', '--tenant', 'big', '--to', point, '--yes', '--max-rate', String(rate)]);
      const elapsed = Date.now() - started;
      assert.equal(restore.code, 0, restore.stderr);
      const written = Number(/restore: wrote (\d+) row\(s\) of 1 tenant\(s\) in 1 transaction\(s\)/.exec(restore.stderr)?.[1]);
      assert.ok(written > 1000, restore.stderr);
      // The first slice (a quarter second's worth) goes at once, each later one when the rows before it fit the rate.
      const atLeast = ((written - rate / 4) / rate) * 1000;
      assert.ok(elapsed >= atLeast, `${written} rows at ${rate} rows/s took ${elapsed} ms, less than ${atLeast} ms`);
      assert.deepStrictEqual(await tenantState(f.db, ['big']), original);
    });
  });
}
