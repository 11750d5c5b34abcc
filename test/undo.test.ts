// Undo against real PostgreSQL: the Atlassian case (a script hard-deletes 40 of 60
// tenants in several tagged transactions while the others keep working and a new
// tenant signs up; `undo --actor` brings the 40 back exactly and changes nobody else),
// a mistaken TRUNCATE, and conflicts that must stop the plan.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import pg from 'pg';
import { recallContextSql } from '../src/capture/index.js';
import { SAAS_SCHEMA, cleanupScript, keepWorking, signUp, tenantNames, type TenantSize } from '../src/demo/saas.js';
import { fixture, jsonLines, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { counts, othersState, tenantState } from './harness/saas.js';
import { CaptureProcess, endAfterSuite, initAndCapture } from './harness/workload.js';

/** One tenant's rows out of a state of many (rows are row_to_json text, holding the tenant id). */
function tenantSlice(state: Record<string, string[]>, tenant: string): Record<string, string[]> {
  return Object.fromEntries(
    Object.entries(state).map(([table, rows]) => [
      table,
      rows.filter((row) => (JSON.parse(row) as { id?: string; tenant_id?: string })[table === 'tenants' ? 'id' : 'tenant_id'] === tenant),
    ]),
  );
}

for (const major of testMajors('one')) {
  describe(`undo on PostgreSQL ${major}`, () => {
    const { fixtures, captures } = endAfterSuite();

    /** A SaaS with these tenants (of this size), its history started and capture streaming. */
    const start = async (tenants: readonly string[], size?: TenantSize): Promise<Fixture> => {
      const f = await fixture(major, SAAS_SCHEMA);
      fixtures.push(f);
      await signUp(f.db, tenants, size);
      captures.push(await initAndCapture(f));
      return f;
    };

    test('the Atlassian case: undo --actor brings 40 deleted tenants back exactly, nobody else changes', async () => {
      const all = tenantNames(60);
      const doomed = all.slice(0, 40);
      const survivors = all.slice(40);
      const f = await start(all);
      const before = await tenantState(f.db, doomed);

      const worker = new pg.Client({ connectionString: f.cluster.url() });
      await worker.connect();
      const working = keepWorking(worker, survivors, 7);
      const xids = await cleanupScript(f.db, doomed, 10);
      await signUp(f.db, ['t999']);
      assert.ok((await working.stop()) > 0, 'the survivors kept working during the script');
      await worker.end();
      assert.deepStrictEqual(counts(await tenantState(f.db, doomed)), { tenants: 0, users: 0, projects: 0, issues: 0, memberships: 0 });
      const othersBefore = await othersState(f.db, doomed);

      const plan = await f.recall(['undo', '--actor', 'cleanup-script', '--dry-run', '--json']);
      assert.equal(plan.code, 0, plan.stderr);
      const [shown] = jsonLines<{ plan: { selection: { xids: string[] }; totals: Record<string, number>; unresolved: number } }>(
        plan.stdout,
      );
      assert.deepStrictEqual(shown?.plan.selection.xids, xids.map(String));
      assert.equal(shown?.plan.unresolved, 0);
      assert.equal(shown?.plan.totals.delete, 0);
      assert.equal(shown?.plan.totals.update, 0);
      const rows = Object.values(counts(before)).reduce((a, b) => a + b, 0);
      assert.equal(shown?.plan.totals.insert, rows);
      assert.deepStrictEqual(counts(await tenantState(f.db, doomed)).tenants, 0, '--dry-run wrote nothing');

      // One session, 10 tenants (200 rows) per transaction, at most 100 rows a second in
      // slices of 25: the throttle holds the last slice until 7.75 s into apply.
      const started = Date.now();
      const undo = await f.recall(['undo', '--actor', 'cleanup-script', '--yes', '--jobs', '1', '--max-rate', '100']);
      assert.equal(undo.code, 0, undo.stderr);
      assert.match(undo.stderr, /undo: wrote 800 row\(s\) of 40 tenant\(s\) in 4 transaction\(s\), each holding whole tenants/);
      assert.ok(Date.now() - started >= 7750, `--max-rate 100 held 800 rows to at least 7.75 s (took ${Date.now() - started} ms)`);
      assert.deepStrictEqual(await tenantState(f.db, doomed), before, 'the 40 tenants are back exactly as before the script');
      assert.deepStrictEqual(await othersState(f.db, doomed), othersBefore, 'no other row changed');

      // Identity and serial sequences still hand out fresh values; the updated_at trigger fires again for the app.
      await f.db.query(`INSERT INTO public.users (tenant_id, email, name) VALUES ('t001', 'new@t001.example', 'New')`);
      await f.db.query(`INSERT INTO public.projects (tenant_id, name) VALUES ('t001', 'After the undo')`);
    });

    test('a mistaken TRUNCATE of every tenant table is undone by --txn; later sign-ups stay', async () => {
      const tenants = tenantNames(8);
      const f = await start(tenants);
      const before = await tenantState(f.db, tenants);
      await f.db.query('BEGIN');
      await f.db.query(...recallContextSql({ actor: 'dba' }));
      await f.db.query('TRUNCATE public.tenants, public.users, public.projects, public.issues, public.memberships');
      const { rows } = await f.db.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid');
      await f.db.query('COMMIT');
      await signUp(f.db, ['t100', 't101']);
      const signUps = await tenantState(f.db, ['t100', 't101']);

      const undo = await f.recall(['undo', '--txn', rows[0]?.xid ?? '', '--yes']);
      assert.equal(undo.code, 0, undo.stderr);
      assert.deepStrictEqual(await tenantState(f.db, tenants), before, 'every truncated row is back');
      assert.deepStrictEqual(await tenantState(f.db, ['t100', 't101']), signUps, 'the sign-ups after the TRUNCATE stay');
    });

    test('conflicts stop the plan with exit 3 and write nothing, until --on-conflict resolves them', async () => {
      const tenants = tenantNames(4);
      const f = await start(tenants);
      const db = f.db;
      // A transaction to undo edits an issue of t002; the app edits that issue again afterwards.
      await db.query('BEGIN');
      await db.query(...recallContextSql({ actor: 'bulk-edit' }));
      const edited = await db.query<{ id: string }>(
        `UPDATE public.issues SET title = 'bulk' WHERE id = (SELECT min(id) FROM public.issues WHERE tenant_id = 't002') RETURNING id`,
      );
      const issue = edited.rows[0]?.id ?? '';
      const xid = (await db.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid')).rows[0]?.xid ?? '';
      await db.query('COMMIT');
      await db.query(`UPDATE public.issues SET status = 'done' WHERE id = $1`, [issue]);

      const refused = await f.recall(['undo', '--txn', xid, '--dry-run', '--json']);
      assert.equal(refused.code, 3, refused.stderr);
      assert.match(refused.stderr, /1 unresolved conflict; nothing was written/);
      const [doc] = jsonLines<{
        plan: {
          groups: { conflicts: { kind: string; key: string[]; ours: { title: string }; theirs: { title: string; status: string } }[] }[];
        };
      }>(refused.stdout);
      const conflict = doc?.plan.groups.flatMap((g) => g.conflicts)[0];
      assert.equal(conflict?.kind, 'changed-after');
      assert.deepStrictEqual(conflict?.key, [issue]);
      assert.notEqual(conflict?.ours.title, 'bulk', 'ours is the version before the undone transaction');
      assert.deepStrictEqual([conflict?.theirs.title, conflict?.theirs.status], ['bulk', 'done'], 'theirs is the live row');
      const live = await tenantState(db, tenants);
      assert.equal((await f.recall(['undo', '--txn', xid, '--yes'])).code, 3);
      assert.deepStrictEqual(await tenantState(db, tenants), live, 'an unresolved conflict writes nothing, even with --yes');

      assert.equal((await f.recall(['undo', '--txn', xid, '--on-conflict', 'theirs', '--yes'])).code, 0);
      assert.deepStrictEqual(await tenantState(db, tenants), live, 'theirs keeps the live row');
      const ours = await f.recall(['undo', '--txn', xid, '--on-conflict', 'ours', '--yes']);
      assert.equal(ours.code, 0, ours.stderr);
      const after = await db.query<{ title: string; status: string }>('SELECT title, status FROM public.issues WHERE id = $1', [issue]);
      assert.deepStrictEqual(
        after.rows[0],
        { title: conflict?.ours.title, status: 'open' },
        'ours writes the version before the undone transaction',
      );

      // edudip: two tenants deleted by mistake, and a user's unique email of one of them taken since by another tenant.
      const t001 = await tenantState(db, ['t001']);
      const [deleted] = await cleanupScript(db, ['t001', 't003'], 2, { actor: 'oops' });
      await db.query(`INSERT INTO public.users (tenant_id, email, name) VALUES ('t004', 'user1@t003.example', 'Reused')`);
      const livePlan = await tenantState(db, tenants);
      const unique = await f.recall(['undo', '--txn', String(deleted), '--dry-run']);
      assert.equal(unique.code, 3, unique.stderr);
      assert.match(unique.stdout, /unique public\.users key \["\d+"\] \(tenant t003\): users_email_key \(email\) is held by another row/);
      assert.match(
        unique.stdout,
        /theirs: .*"email":"user1@t003\.example".*"tenant_id":"t004"|theirs: .*"tenant_id":"t004".*"email":"user1@t003\.example"/,
      );
      assert.deepStrictEqual(await tenantState(db, tenants), livePlan, 'nothing written');

      // skip: t001 comes back; t003, which has the conflict, is left out whole.
      const skipped = await f.recall(['undo', '--txn', String(deleted), '--on-conflict', 'skip', '--yes']);
      assert.equal(skipped.code, 0, skipped.stderr);
      assert.match(skipped.stdout, /skipped \(--on-conflict skip\): t003/);
      assert.deepStrictEqual(await tenantState(db, ['t001']), t001, 'the tenant without conflicts is back');
      assert.deepStrictEqual(counts(await tenantState(db, ['t003'])), { tenants: 0, users: 0, projects: 0, issues: 0, memberships: 0 });

      // theirs: t003 comes back without the user whose email is taken, and without what depends on that user.
      const resolved = await f.recall(['undo', '--txn', String(deleted), '--on-conflict', 'theirs', '--yes']);
      assert.equal(resolved.code, 0, resolved.stderr);
      const back = await tenantState(db, ['t003']);
      assert.equal(back.tenants?.length, 1);
      assert.equal(back.users?.length, 2, 'the conflicting user stays out');
      const dangling = await db.query(
        `SELECT 'membership' FROM public.memberships m WHERE NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = m.user_id)
         UNION ALL SELECT 'issue' FROM public.issues i WHERE i.assignee_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = i.assignee_id)`,
      );
      assert.deepStrictEqual(dangling.rows, [], 'no foreign key dangles');
    });

    test('a row a later transaction already made what the undo wants is not a conflict; the plan digest tells plans apart', async () => {
      const tenants = tenantNames(2);
      const f = await start(tenants);
      const db = f.db;
      // Memberships and projects have no trigger of their own, so a row can be put back exactly.
      const members = await db.query<{ project_id: string; user_id: string; role: string }>(
        `SELECT project_id::text, user_id::text, role FROM public.memberships WHERE tenant_id = 't001' ORDER BY 1, 2 LIMIT 2`,
      );
      const [edited, removed] = members.rows;
      const member = (row: typeof edited): unknown[] => ['t001', row?.project_id, row?.user_id];
      const which = 'tenant_id = $1 AND project_id = $2 AND user_id = $3';
      // The transaction to undo: edits one membership, deletes another, adds a project.
      await db.query('BEGIN');
      await db.query(...recallContextSql({ actor: 'bulk-edit' }));
      await db.query(`UPDATE public.memberships SET role = 'bulk' WHERE ${which}`, member(edited));
      await db.query(`DELETE FROM public.memberships WHERE ${which}`, member(removed));
      const added = await db.query<{ id: string }>(
        `INSERT INTO public.projects (tenant_id, name) VALUES ('t001', 'added') RETURNING id::text`,
      );
      const xid = (await db.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid')).rows[0]?.xid ?? '';
      await db.query('COMMIT');
      await db.query(`UPDATE public.memberships SET role = 'later' WHERE ${which}`, member(edited));
      type PlanDoc = { plan: { id: string; digest: string; groups: { conflicts: unknown[] }[] } };
      const conflicted = jsonLines<PlanDoc>((await f.recall(['undo', '--txn', xid, '--dry-run', '--json'])).stdout)[0];
      assert.equal(conflicted?.plan.groups.flatMap((g) => g.conflicts).length, 1, 'a real change after the undone one is a conflict');

      // Later transactions put each row back as the undo would: the same values, the same row, no row.
      await db.query(`UPDATE public.memberships SET role = $4 WHERE ${which}`, [...member(edited), edited?.role]);
      await db.query(`INSERT INTO public.memberships (tenant_id, project_id, user_id, role) VALUES ($1, $2, $3, $4)`, [
        ...member(removed),
        removed?.role,
      ]);
      await db.query(`DELETE FROM public.projects WHERE id = $1`, [added.rows[0]?.id]);
      const live = await tenantState(db, tenants);

      const plan = await f.recall(['undo', '--txn', xid, '--dry-run', '--json']);
      assert.equal(plan.code, 0, plan.stderr);
      const [doc] = jsonLines<PlanDoc>(plan.stdout);
      assert.deepStrictEqual(
        doc?.plan.groups.flatMap((g) => g.conflicts),
        [],
        'identical versions are no conflict',
      );
      // One id for one selection (a rerun finds its own writes by it); the digest tells the plans apart.
      assert.equal(doc?.plan.id, conflicted?.plan.id);
      assert.notEqual(doc?.plan.digest, conflicted?.plan.digest);
      const again = jsonLines<PlanDoc>((await f.recall(['undo', '--txn', xid, '--dry-run', '--json'])).stdout)[0];
      assert.equal(again?.plan.digest, doc?.plan.digest, 'the same plan, the same digest');
      const text = await f.recall(['undo', '--txn', xid, '--dry-run']);
      assert.match(text.stdout, new RegExp(`^plan ${doc?.plan.id} \\(content ${doc?.plan.digest}\\): `, 'm'));

      const applied = await f.recall(['undo', '--txn', xid, '--yes']);
      assert.equal(applied.code, 0, applied.stderr);
      assert.deepStrictEqual(await tenantState(db, tenants), live, 'nothing left to write');
    });

    test('kill -9 during apply leaves each tenant untouched or fully restored, and a rerun completes the undo', async () => {
      const all = tenantNames(40);
      const f = await start(all, { users: 10, projects: 4, issuesPerProject: 60 });
      const before = await tenantState(f.db, all);
      await cleanupScript(f.db, all, 8);

      const undo = new CaptureProcess(f.spawnRecall(['undo', '--actor', 'cleanup-script', '--yes']));
      const restored = async (): Promise<number> =>
        Number((await f.db.query<{ n: string }>('SELECT count(*) AS n FROM public.tenants WHERE id = ANY($1)', [all])).rows[0]?.n);
      const deadline = Date.now() + 60_000;
      while ((await restored()) === 0 && undo.running && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      await undo.kill9();
      const partly = await restored();
      assert.ok(partly > 0 && partly < all.length, `killed mid-apply (${partly} of ${all.length} tenants written)`);

      for (const tenant of all) {
        const state = await tenantState(f.db, [tenant]);
        const rows = Object.values(state).reduce((sum, list) => sum + list.length, 0);
        if (rows > 0) assert.deepStrictEqual(counts(state), counts(tenantSlice(before, tenant)), `tenant ${tenant} is fully restored`);
        if (rows > 0) assert.deepStrictEqual(state, tenantSlice(before, tenant), `tenant ${tenant} is fully restored`);
      }
      // The dead restore's freeze died with its session: the application writes again.
      const written = (await f.db.query<{ id: string }>('SELECT min(id) AS id FROM public.tenants')).rows[0]?.id;
      await f.db.query(`INSERT INTO public.projects (tenant_id, name) VALUES ($1, 'while frozen?')`, [written]);
      await f.db.query(`DELETE FROM public.projects WHERE name = 'while frozen?'`);

      // Target files a process of this host left when it died are removed by the next run; those
      // of a live process, and of another host sharing the vault, are not.
      const dead = spawnSync(process.execPath, ['-e', '']).pid;
      const host = hostname().replace(/[^A-Za-z0-9.]/g, '_');
      const scratch = join(f.vault, 'scratch');
      const [stale, live, elsewhere] = [
        `targets-${host}-${dead}-Stale1`,
        `targets-${host}-${process.pid}-Live01`,
        `targets-other.host-${dead}-Away01`,
      ];
      for (const name of [stale, live, elsewhere]) {
        mkdirSync(join(scratch, name), { recursive: true });
        writeFileSync(join(scratch, name, '0.copy'), '1\tleft over\n');
      }

      const rerun = await f.recall(['undo', '--actor', 'cleanup-script', '--yes']);
      assert.equal(rerun.code, 0, rerun.stderr);
      assert.deepStrictEqual(
        readdirSync(scratch)
          .filter((name) => name.startsWith('targets-'))
          .sort(),
        [elsewhere, live].sort(),
        "the dead process's target files and the rerun's own are gone; the others stay",
      );
      for (const name of [live, elsewhere]) rmSync(join(scratch, name), { recursive: true });
      assert.doesNotMatch(rerun.stdout, /conflict/, "the first run's own writes are not conflicts");
      assert.deepStrictEqual(counts(await tenantState(f.db, all)), counts(before), rerun.stdout + rerun.stderr);
      assert.deepStrictEqual(await tenantState(f.db, all), before);
    });
  });
}
