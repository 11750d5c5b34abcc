// The safety nets of restore and undo, against real PostgreSQL and a real capture
// process: a freeze that cannot be taken and a capture that has stopped
// acknowledging each end the command with exit 1 and write nothing, and the check
// after writing catches what the plan could not foresee (a trigger that fires even
// in replica mode, one that adds rows), rolls the tenant back and exits 3.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import pg from 'pg';
import { recallContextSql } from '../src/capture/index.js';
import { SAAS_SCHEMA, signUp, tenantNames } from '../src/demo/saas.js';
import { fixture, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { othersState, tenantState } from './harness/saas.js';
import { endAfterSuite, initAndCapture, pointNow, type CaptureProcess } from './harness/workload.js';

/** Recall's guard triggers present on the source. */
async function guards(db: pg.Client): Promise<number> {
  const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM pg_trigger WHERE tgname = 'recall_guard'`);
  return Number(rows[0]?.n);
}

for (const major of testMajors('one')) {
  describe(`restore and undo safety nets on PostgreSQL ${major}`, () => {
    const { fixtures, captures } = endAfterSuite();
    let f: Fixture;
    let capture: CaptureProcess;

    before(async () => {
      f = await fixture(major, SAAS_SCHEMA);
      fixtures.push(f);
      await signUp(f.db, tenantNames(6));
      capture = await initAndCapture(f);
      captures.push(capture);
    });

    test('a writer already at work on the tenant: the freeze gives up after --freeze-timeout, exit 1, nothing written, no guard left', async () => {
      const point = await pointNow();
      await f.db.query(`DELETE FROM public.issues WHERE tenant_id = 't001'`);
      const before = await tenantState(f.db, ['t001']);
      const writer = new pg.Client({ connectionString: f.cluster.url() });
      await writer.connect();
      try {
        await writer.query('BEGIN');
        await writer.query(`UPDATE public.projects SET name = name || '!' WHERE tenant_id = 't001'`);
        const started = Date.now();
        const restore = await f.recall(['restore', '--tenant', 't001', '--to', point, '--yes', '--freeze-timeout', '1']);
        assert.equal(restore.code, 1, restore.stderr);
        assert.match(restore.stderr, /could not freeze the affected rows within 1 s: a transaction writing to them is still running/);
        assert.match(restore.stderr, /pg_stat_activity/);
        assert.ok(Date.now() - started < 25_000, 'the freeze waited for --freeze-timeout, not for the default 30 s');
        assert.equal(await guards(f.db), 0, 'the guards installed before the timeout are removed');
      } finally {
        await writer.query('ROLLBACK');
        await writer.end();
      }
      assert.deepStrictEqual(await tenantState(f.db, ['t001']), before, 'nothing was written');
      const retry = await f.recall(['restore', '--tenant', 't001', '--to', point, '--yes']);
      assert.equal(retry.code, 0, retry.stderr);
    });

    test('a capture that stopped acknowledging: restore gives up after --catch-up-timeout, exit 1, saying how far behind', async () => {
      const pid = capture.child.pid;
      assert.ok(pid !== undefined);
      process.kill(pid, 'SIGSTOP');
      try {
        await f.db.query(`UPDATE public.issues SET status = 'doing' WHERE tenant_id = 't002'`);
        const before = await tenantState(f.db, ['t002']);
        const started = Date.now();
        const restore = await f.recall(['restore', '--tenant', 't002', '--to', 'now', '--yes', '--catch-up-timeout', '1']);
        assert.equal(restore.code, 1, restore.stderr);
        assert.ok(Date.now() - started < 30_000, 'the catch-up waited for --catch-up-timeout, not for the default 60 s');
        assert.match(restore.stderr, /the vault is \d+ bytes behind the source \(lsn:[0-9A-F]+\/[0-9A-F]+ of lsn:[0-9A-F]+\/[0-9A-F]+\)/);
        assert.match(restore.stderr, /recall status/);
        assert.deepStrictEqual(await tenantState(f.db, ['t002']), before, 'nothing was written');
        assert.equal(await guards(f.db), 0, 'no guard was installed');
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      const again = await f.recall(['restore', '--tenant', 't002', '--to', 'now', '--dry-run']);
      assert.equal(again.code, 0, again.stderr);
    });

    test("a key the restore needs is now held by another tenant's row: the plan shows it, exit 3, nothing written", async () => {
      const point = await pointNow();
      const { rows } = await f.db.query<{ id: number }>(`SELECT min(id) AS id FROM public.projects WHERE tenant_id = 't005'`);
      const taken = rows[0]?.id;
      await f.db.query(`DELETE FROM public.projects WHERE id = $1`, [taken]);
      await f.db.query(`INSERT INTO public.projects (id, tenant_id, name) VALUES ($1, 't006', 'squatter')`, [taken]);
      const before = await tenantState(f.db, ['t005', 't006']);
      for (const args of [['--dry-run', '--json'], ['--yes']]) {
        const restore = await f.recall(['restore', '--tenant', 't005', '--to', point, ...args]);
        assert.equal(restore.code, 3, restore.stderr);
        assert.match(restore.stderr, /unresolved conflict/);
        assert.deepStrictEqual(await tenantState(f.db, ['t005', 't006']), before, `${args.join(' ')} wrote nothing`);
        if (args.includes('--json')) {
          const { plan } = JSON.parse(restore.stdout.split('\n')[0] ?? '') as {
            plan: { groups: { conflicts: Record<string, unknown>[] }[] };
          };
          const conflicts = plan.groups.flatMap((group) => group.conflicts);
          assert.deepStrictEqual(
            conflicts.map((c) => [c.kind, c.table, c.tenant, c.key, c.detail, (c.theirs as Record<string, string>).name]),
            [['unique', 'public.projects', 't005', [String(taken)], 'the key is now held by a row of tenant t006', 'squatter']],
          );
        }
      }
      assert.equal(await guards(f.db), 0);

      // Keeping the other tenant's row (theirs) leaves the project out, and with it the rows
      // that reference it: they would otherwise point at the other tenant's project.
      const theirs = await f.recall(['restore', '--tenant', 't005', '--to', point, '--on-conflict', 'theirs', '--dry-run', '--json']);
      assert.equal(theirs.code, 0, theirs.stderr);
      const { plan } = JSON.parse(theirs.stdout.split('\n')[0] ?? '') as {
        plan: { groups: { conflicts: { kind: string; detail: string }[] }[] };
      };
      const crossTenant = plan.groups.flatMap((group) => group.conflicts).filter((c) => c.kind === 'foreign-key');
      assert.ok(crossTenant.length > 0, 'the rows under the project are conflicts too');
      assert.ok(
        crossTenant.every((c) => /the referenced row belongs to tenant t006/.test(c.detail)),
        JSON.stringify(crossTenant),
      );
      const applied = await f.recall(['restore', '--tenant', 't005', '--to', point, '--on-conflict', 'theirs', '--yes']);
      assert.equal(applied.code, 0, applied.stderr);
      const { rows: mixed } = await f.db.query(
        `SELECT i.id FROM public.issues i JOIN public.projects p ON p.id = i.project_id WHERE i.tenant_id <> p.tenant_id
         UNION ALL SELECT m.user_id FROM public.memberships m JOIN public.projects p ON p.id = m.project_id WHERE m.tenant_id <> p.tenant_id`,
      );
      assert.deepStrictEqual(mixed, [], "no row of t005 references t006's project");
      await f.db.query(`DELETE FROM public.projects WHERE id = $1`, [taken]);
    });

    test('init names a tenant table with no index led by its tenant column, and how to add one', async () => {
      await f.db.query(`CREATE TABLE public.notes (id int PRIMARY KEY, tenant_id text NOT NULL REFERENCES public.tenants, body text)`);
      const init = await f.recall(['init', '--json']);
      assert.equal(init.code, 0, init.stderr);
      assert.match(
        init.stderr,
        /note: public\.notes has no index led by its tenant column tenant_id: restoring one tenant will read the whole table \(CREATE INDEX ON public\.notes \(tenant_id\)\)/,
      );
      assert.deepStrictEqual((JSON.parse(init.stdout) as { unindexedTenantTables: string[] }).unindexedTenantTables, ['public.notes']);
      await f.db.query('CREATE INDEX ON public.notes (tenant_id)');
      const again = await f.recall(['init', '--json']);
      assert.doesNotMatch(again.stderr, /has no index led by/);
      assert.deepStrictEqual((JSON.parse(again.stdout) as { unindexedTenantTables: string[] }).unindexedTenantTables, []);
      await f.db.query('DROP TABLE public.notes');
    });

    test('target rows the table no longer accepts (a domain check added since): the plan stops with exit 3, nothing written, nothing left', async () => {
      await f.db.query(`
        CREATE DOMAIN short_text AS text;
        CREATE TABLE public.labels (id int PRIMARY KEY, tenant_id text NOT NULL REFERENCES public.tenants, name short_text NOT NULL);
        CREATE INDEX ON public.labels (tenant_id);
        INSERT INTO public.labels VALUES (1, 't001', 'a label too long for later'), (2, 't001', 'short');`);
      const point = await pointNow();
      await f.db.query(`DELETE FROM public.labels WHERE tenant_id = 't001'`);
      await f.db.query(`ALTER DOMAIN short_text ADD CONSTRAINT short CHECK (length(VALUE) < 10) NOT VALID`);
      const before = await tenantState(f.db, ['t001']);
      const restore = await f.recall(['restore', '--tenant', 't001', '--to', point, '--yes']);
      assert.equal(restore.code, 3, restore.stderr);
      assert.match(restore.stderr, /public\.labels as it is now refuses a row the plan would write: .*"short".*; nothing was written/);
      assert.match(restore.stderr, /^hint: the table or a type it uses changed since the point/m);
      assert.doesNotMatch(restore.stderr, /^\s+at /m, 'an error message, not a crash');
      assert.deepStrictEqual(await tenantState(f.db, ['t001']), before, 'nothing was written');
      assert.deepStrictEqual((await f.db.query('SELECT * FROM public.labels')).rows, []);
      assert.equal(await guards(f.db), 0);
      assert.deepStrictEqual(
        readdirSync(join(f.vault, 'scratch')).filter((name) => name.startsWith('targets-')),
        [],
        'no target files left',
      );
      await f.db.query('DROP TABLE public.labels; DROP DOMAIN short_text');
    });

    test('a trigger that fires even in replica mode rewrites restored rows: verify finds it, the tenant rolls back, exit 3', async () => {
      const point = await pointNow();
      await f.db.query('BEGIN');
      await f.db.query(...recallContextSql({ actor: 'vandal' }));
      await f.db.query(`UPDATE public.issues SET title = 'pwned' WHERE tenant_id = 't003'`);
      await f.db.query('COMMIT');
      await f.db.query(`
        CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.title := upper(NEW.title); RETURN NEW; END $$;
        CREATE TRIGGER issues_shout BEFORE INSERT OR UPDATE ON public.issues FOR EACH ROW EXECUTE FUNCTION shout();
        ALTER TABLE public.issues ENABLE ALWAYS TRIGGER issues_shout;`);
      try {
        const vandalised = await tenantState(f.db, ['t003']);
        const others = await othersState(f.db, ['t003']);
        for (const args of [
          ['restore', '--tenant', 't003', '--to', point, '--yes'],
          ['undo', '--actor', 'vandal', '--yes'],
        ]) {
          const run = await f.recall(args);
          assert.equal(run.code, 3, `${args[0]}: ${run.stderr}`);
          assert.match(
            run.stderr,
            /row\(s\) of public\.issues differ from the target: the result does not match the plan \(tenants t003\); rolled back/,
          );
          assert.deepStrictEqual(await tenantState(f.db, ['t003']), vandalised, `${args[0]} rolled the tenant back`);
          assert.deepStrictEqual(await othersState(f.db, ['t003']), others);
          assert.equal(await guards(f.db), 0);
        }
      } finally {
        await f.db.query('DROP TRIGGER issues_shout ON public.issues; DROP FUNCTION shout()');
      }
    });

    test('a trigger that adds rows of the tenant during the restore: verify finds the rows the plan never saw, exit 3', async () => {
      const point = await pointNow();
      await f.db.query(`DELETE FROM public.issues WHERE tenant_id = 't004'`);
      await f.db.query(`
        CREATE FUNCTION spawn_project() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN INSERT INTO public.projects (tenant_id, name) VALUES (NEW.tenant_id, 'spawned by issue ' || NEW.id); RETURN NULL; END $$;
        CREATE TRIGGER issues_spawn AFTER INSERT ON public.issues FOR EACH ROW EXECUTE FUNCTION spawn_project();
        ALTER TABLE public.issues ENABLE ALWAYS TRIGGER issues_spawn;`);
      try {
        const deleted = await tenantState(f.db, ['t004']);
        const restore = await f.recall(['restore', '--tenant', 't004', '--to', point, '--yes']);
        assert.equal(restore.code, 3, restore.stderr);
        assert.match(restore.stderr, /row\(s\) of public\.projects differ from the target/);
        assert.deepStrictEqual(await tenantState(f.db, ['t004']), deleted, 'the tenant rolled back');
      } finally {
        await f.db.query('DROP TRIGGER issues_spawn ON public.issues; DROP FUNCTION spawn_project()');
      }
      const retry = await f.recall(['restore', '--tenant', 't004', '--to', point, '--yes']);
      assert.equal(retry.code, 0, retry.stderr);
    });
  });
}
