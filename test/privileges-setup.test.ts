// README's privilege set-up, run as README writes it: the SQL block is read out of
// README.md, so the advice cannot drift from what is tested. The application's role
// owns the tables and keeps writing and migrating throughout, while Recall, as its
// own role with only those grants, runs init, capture, restore and undo. A missing
// grant stops Recall with exit 2 and the GRANT that fixes it, and blocks nobody.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, test } from 'node:test';
import pg from 'pg';
import { recallContextSql } from '../src/capture/index.js';
import { SAAS_SCHEMA, signUp, tenantNames } from '../src/demo/saas.js';
import { fixture, type Fixture, type RunResult } from './harness/recall.js';
import { tenantState } from './harness/saas.js';
import { endAfterSuite, pointNow } from './harness/workload.js';

const APP_PASSWORD = 'app-secret';
const RECALL_PASSWORD = 'recall-secret';

/** The statements of README's privilege block, in order. */
function readmeStatements(): string[] {
  const readme = readFileSync(resolve(import.meta.dirname, '../README.md'), 'utf8');
  const marker = readme.indexOf('<!-- test/privileges-setup.test.ts runs the block below');
  assert.ok(marker >= 0, "README's privilege block is marked for this test");
  const block = /```sql\n([\s\S]*?)```/.exec(readme.slice(marker));
  assert.ok(block?.[1], "README's privilege block follows its marker");
  return block[1]
    .split(';')
    .map((statement) => statement.trim())
    .filter((statement) => statement !== '');
}

describe("README's privilege set-up on PostgreSQL 18", () => {
  const { fixtures } = endAfterSuite();

  test('the application owns its tables and keeps writing and migrating while Recall, with only the README grants, runs init, capture, restore and undo', async () => {
    const [victim, undone, bystander] = tenantNames(3) as [string, string, string];
    const f = await fixture(18, '');
    fixtures.push(f);

    const { admin, app } = await application(f, [victim, undone, bystander]);
    const prod = f.cluster.url({ database: 'prod', user: 'recall', password: RECALL_PASSWORD });
    const asRecall = (args: readonly string[]): Promise<RunResult> => f.recall(args, { RECALL_SOURCE: prod });
    const succeeds = async (args: readonly string[]): Promise<RunResult> => {
      const result = await asRecall(args);
      assert.equal(result.code, 0, `recall ${args.join(' ')}:\n${result.stderr}`);
      return result;
    };

    // First without the membership: init names it and creates nothing.
    const statements = readmeStatements();
    const membership = statements.find((statement) => /^GRANT app_owner TO recall$/.test(statement));
    assert.ok(membership, 'README grants membership in the owning role');
    for (const statement of statements.filter((s) => s !== membership)) await admin.query(statement);
    // README: "give the role a password (\password recall in psql)".
    await admin.query(`ALTER ROLE recall PASSWORD '${RECALL_PASSWORD}'`);
    const refused = await asRecall(['init']);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /role "recall" is not a member of "app_owner", which owns public\.issues, public\.memberships/);
    assert.match(refused.stderr, /fix: GRANT app_owner TO recall;/);
    assert.doesNotMatch(refused.stderr, /OWNER TO|GRANT SELECT|this is a bug/);
    assert.equal(await count(admin, 'SELECT 1 FROM pg_publication'), 0, 'no publication was created');
    assert.equal(await count(admin, 'SELECT 1 FROM pg_replication_slots'), 0, 'no slot was created');

    await admin.query(membership);
    await succeeds(['init']);
    assert.equal(await count(admin, 'SELECT 1 FROM pg_publication WHERE NOT puballtables'), 1, 'a per-table publication');
    assert.equal(
      await count(admin, `SELECT 1 FROM pg_tables WHERE schemaname = 'public' AND tableowner <> 'app_owner'`),
      0,
      'the application still owns every table',
    );
    await appWorks(app, bystander);
    await app.query('ALTER TABLE public.projects ADD COLUMN archived boolean NOT NULL DEFAULT false');
    await appWorks(app, bystander);
    await succeeds(['capture', '--until-caught-up']);

    // Restore a tenant the application damaged.
    const before = await tenantState(app, [victim]);
    const point = await pointNow();
    await app.query('DELETE FROM public.issues WHERE tenant_id = $1', [victim]);
    await app.query(`UPDATE public.tenants SET name = 'renamed' WHERE id = $1`, [victim]);
    await succeeds(['capture', '--until-caught-up']);
    await succeeds(['restore', '--tenant', victim, '--to', point, '--yes']);
    assert.deepStrictEqual(await tenantState(app, [victim]), before, 'the tenant is exactly as it was at the point');
    assert.equal(await guards(admin), 0, 'the freeze left no guard: membership lets Recall drop them');
    await appWorks(app, bystander);

    // Undo an actor's transaction, first without SET on session_replication_role.
    const beforeScript = await tenantState(app, [undone]);
    await app.query('BEGIN');
    await app.query(...recallContextSql({ actor: 'cleanup-script' }));
    await app.query('DELETE FROM public.memberships WHERE tenant_id = $1', [undone]);
    await app.query(`UPDATE public.issues SET status = 'closed' WHERE tenant_id = $1`, [undone]);
    await app.query('COMMIT');
    const afterScript = await tenantState(app, [undone]);
    await succeeds(['capture', '--until-caught-up']);

    const setting = statements.find((statement) => /^GRANT SET ON PARAMETER session_replication_role TO recall$/.test(statement));
    assert.ok(setting, 'README grants SET on session_replication_role');
    await admin.query('REVOKE SET ON PARAMETER session_replication_role FROM recall');
    const noSetting = await asRecall(['undo', '--actor', 'cleanup-script', '--yes']);
    assert.equal(noSetting.code, 2, noSetting.stderr);
    assert.match(noSetting.stderr, /may not set session_replication_role/);
    assert.match(noSetting.stderr, /GRANT SET ON PARAMETER session_replication_role TO recall;/);
    assert.doesNotMatch(noSetting.stderr, /this is a bug/);
    assert.ok(!noSetting.stderr.includes(RECALL_PASSWORD), 'the password is never printed');
    assert.deepStrictEqual(await tenantState(app, [undone]), afterScript, 'nothing was written');
    assert.equal(await guards(admin), 0, 'no guard stays behind');
    await appWorks(app, undone); // not blocked: the freeze is gone

    await admin.query(setting);
    await succeeds(['capture', '--until-caught-up']);
    await succeeds(['undo', '--actor', 'cleanup-script', '--yes']);
    assert.deepStrictEqual(await tenantState(app, [undone]), beforeScript, "the script's transaction is undone exactly");
    assert.equal(await guards(admin), 0);
    await appWorks(app, bystander);
    await app.query('ALTER TABLE public.users ADD COLUMN locale text');
    await appWorks(app, undone);

    await app.end();
    await admin.end();
  });

  test("after a superuser's init, a role with the narrower grants README lists runs init again, capture and restore; the application owns and migrates its tables", async () => {
    const [victim, bystander] = tenantNames(2) as [string, string];
    const f = await fixture(18, '');
    fixtures.push(f);
    const { admin, app } = await application(f, [victim, bystander]);
    const superuser = await f.recall(['init'], { RECALL_SOURCE: f.cluster.url({ database: 'prod' }) });
    assert.equal(superuser.code, 0, superuser.stderr);
    assert.equal(await count(admin, 'SELECT 1 FROM pg_publication WHERE puballtables'), 1, 'a FOR ALL TABLES publication');

    await admin.query(`CREATE ROLE recall LOGIN REPLICATION PASSWORD '${RECALL_PASSWORD}'`);
    for (const grant of narrowerGrants()) await admin.query(grant);
    const prod = f.cluster.url({ database: 'prod', user: 'recall', password: RECALL_PASSWORD });
    const succeeds = async (args: readonly string[]): Promise<RunResult> => {
      const result = await f.recall(args, { RECALL_SOURCE: prod });
      assert.equal(result.code, 0, `recall ${args.join(' ')}:\n${result.stderr}`);
      return result;
    };
    await succeeds(['init']); // no ownership needed: the publication takes every table already
    await app.query('ALTER TABLE public.projects ADD COLUMN archived boolean NOT NULL DEFAULT false');
    await appWorks(app, bystander);
    await succeeds(['capture', '--until-caught-up']);

    const before = await tenantState(app, [victim]);
    const point = await pointNow();
    await app.query('DELETE FROM public.issues WHERE tenant_id = $1', [victim]);
    await succeeds(['capture', '--until-caught-up']);
    const restored = await succeeds(['restore', '--tenant', victim, '--to', point, '--yes']);
    assert.deepStrictEqual(await tenantState(app, [victim]), before, 'the tenant is exactly as it was at the point');
    // Dropping a trigger takes the owner: the guards stay, README says so, and they block nothing.
    assert.match(restored.stderr, /guard trigger stays on .*blocks nothing/);
    assert.ok((await guards(admin)) > 0);
    await appWorks(app, victim);
    await app.query('ALTER TABLE public.users ADD COLUMN locale text');
    await appWorks(app, bystander);

    await app.end();
    await admin.end();
  });
});

/** The GRANTs README lists for a narrower role after a superuser's init, as README writes them. */
function narrowerGrants(): string[] {
  const readme = readFileSync(resolve(import.meta.dirname, '../README.md'), 'utf8');
  const start = readme.indexOf("**A superuser's `init`, then a narrower role.**");
  const end = readme.indexOf('The publication depends on who runs `init`:', start);
  assert.ok(start >= 0 && end > start, 'README has the narrower set-up');
  const grants = [...readme.slice(start, end).matchAll(/GRANT [^`;]+/g)].map((match) => match[0]);
  assert.ok(grants.length >= 5, `README lists the narrower grants (${grants.join('; ')})`);
  return grants;
}

/** A database prod with an application role, app_owner, that owns its tables (as README assumes) and tenants in them. */
async function application(f: Fixture, tenants: readonly string[]): Promise<{ admin: pg.Client; app: pg.Client }> {
  await f.db.query(`CREATE ROLE app_owner LOGIN PASSWORD '${APP_PASSWORD}'`);
  await f.db.query('CREATE DATABASE prod');
  const admin = await connect(f, { database: 'prod' });
  await admin.query('GRANT CREATE ON SCHEMA public TO app_owner');
  const app = await connect(f, { database: 'prod', user: 'app_owner', password: APP_PASSWORD });
  await app.query(SAAS_SCHEMA);
  await signUp(app, tenants);
  return { admin, app };
}

/** A client of the fixture's cluster. */
async function connect(f: Fixture, as: { database: string; user?: string; password?: string }): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: f.cluster.url(as) });
  // A failed test leaves it open while the cluster goes away.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Rows a query returns. */
async function count(client: pg.Client, sql: string): Promise<number> {
  return (await client.query(sql)).rowCount ?? 0;
}

/** Recall's guard triggers on the source. */
function guards(client: pg.Client): Promise<number> {
  return count(client, `SELECT 1 FROM pg_trigger WHERE tgname = 'recall_guard'`);
}

/** The application's everyday writes to one tenant: each one must succeed, and leave the tenant as it was. */
async function appWorks(app: pg.Client, tenant: string): Promise<void> {
  const { rows } = await app.query<{ id: string }>(
    `INSERT INTO public.projects (tenant_id, name) VALUES ($1, 'app check') RETURNING id::text`,
    [tenant],
  );
  const id = rows[0]?.id;
  await app.query(`UPDATE public.projects SET name = 'app check, renamed' WHERE id = $1`, [id]);
  assert.equal((await app.query('DELETE FROM public.projects WHERE id = $1', [id])).rowCount, 1);
}
