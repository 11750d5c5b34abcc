// A restore run by a role that lacks one privilege README lists: first CREATE on
// the recall schema, which a superuser's init created for the DDL hook (the freeze's
// guard function goes there too); then the right to set session_replication_role,
// which keeps the application's triggers off restored rows. Each time it must stop
// with exit 2, name the GRANT that is missing, write nothing and block no writer.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SAAS_SCHEMA, signUp, tenantNames } from '../src/demo/saas.js';
import { fixture } from './harness/recall.js';
import { tenantState } from './harness/saas.js';
import { endAfterSuite, initAndCapture } from './harness/workload.js';

const PASSWORD = 'limited-secret';

describe('restore with a missing privilege on PostgreSQL 18', () => {
  const { fixtures, captures } = endAfterSuite();

  test('a role without CREATE on the recall schema, then without SET on session_replication_role: exit 2, the GRANT named, nothing written, nobody blocked', async () => {
    const tenants = tenantNames(3);
    const victim = tenants[0] as string;
    const f = await fixture(18, SAAS_SCHEMA);
    fixtures.push(f);
    await signUp(f.db, tenants);
    captures.push(await initAndCapture(f));
    const point = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await f.db.query(`DELETE FROM public.issues WHERE tenant_id = $1`, [victim]);
    const deleted = await tenantState(f.db, [victim]);

    // Everything README's privilege tables list for restore, except SET on session_replication_role.
    await f.db.query(`CREATE ROLE recall_limited LOGIN REPLICATION PASSWORD '${PASSWORD}'`);
    await f.db.query(`GRANT CREATE ON DATABASE postgres TO recall_limited`);
    await f.db.query(`GRANT SELECT, INSERT, UPDATE, DELETE, TRIGGER ON ALL TABLES IN SCHEMA public TO recall_limited`);
    await f.db.query(`GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO recall_limited`);
    const limited = f.cluster.url({ user: 'recall_limited', password: PASSWORD });

    const noSchema = await f.recall(['restore', '--tenant', victim, '--to', point, '--yes'], { RECALL_SOURCE: limited });
    assert.equal(noSchema.code, 2, noSchema.stderr);
    assert.match(noSchema.stderr, /GRANT CREATE ON SCHEMA recall TO recall_limited/);
    assert.deepStrictEqual(await tenantState(f.db, [victim]), deleted, 'nothing was written');
    await f.db.query(`GRANT CREATE ON SCHEMA recall TO recall_limited`);

    const result = await f.recall(['restore', '--tenant', victim, '--to', point, '--yes'], { RECALL_SOURCE: limited });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /session_replication_role/);
    assert.match(result.stderr, /GRANT SET ON PARAMETER session_replication_role/);
    assert.ok(!result.stderr.includes(PASSWORD), 'the password is never printed');
    assert.deepStrictEqual(await tenantState(f.db, [victim]), deleted, 'nothing was written');
    // Dropping a trigger takes the table's owner, which this role is not: the guards stay, and say so.
    assert.match(result.stderr, /guard trigger stays on .*public\.issues.*blocks nothing/);
    await f.db.query(`UPDATE public.tenants SET name = name WHERE id = $1`, [victim]); // not blocked: the freeze is gone

    // The same role with the grant restores the tenant.
    await f.db.query(`GRANT SET ON PARAMETER session_replication_role TO recall_limited`);
    const granted = await f.recall(['restore', '--tenant', victim, '--to', point, '--yes'], { RECALL_SOURCE: limited });
    assert.equal(granted.code, 0, granted.stderr);
    assert.notDeepStrictEqual(await tenantState(f.db, [victim]), deleted, 'restored once the grant is in place');
  });
});
