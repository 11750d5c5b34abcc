// Slots are per cluster: each vault names its own by default (its database and its
// own id), so two databases of one server, or two vaults of one database, each keep
// their slot and are captured side by side. A slot name already taken is refused
// (exit 2, nothing created); a slot is dropped only when the vault proves it created
// it and nothing consumed it (an init killed during its image).

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import pg from 'pg';
import { fixture, jsonLines, waitFor, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { endAfterSuite } from './harness/workload.js';

const SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY);
  CREATE TABLE items (tenant_id text NOT NULL REFERENCES tenants, id int NOT NULL, note text, PRIMARY KEY (tenant_id, id));
  INSERT INTO tenants VALUES ('a');
  INSERT INTO items VALUES ('a', 1, 'first');`;

const slots = async (db: pg.Client): Promise<{ slot_name: string; database: string }[]> =>
  (await db.query<{ slot_name: string; database: string }>('SELECT slot_name, database FROM pg_replication_slots ORDER BY 1')).rows;

for (const major of testMajors('one')) {
  describe(`slots of many vaults on PostgreSQL ${major}`, () => {
    const { fixtures } = endAfterSuite();
    let f: Fixture;
    let priv: pg.Client;
    /** The environment of another vault: of the database `database`, at a fresh path. */
    const vaultEnv = (database: string): NodeJS.ProcessEnv => ({
      RECALL_SOURCE: f.cluster.url({ database }),
      RECALL_VAULT: join(mkdtempSync(join(tmpdir(), 'recall-vault-')), 'vault'),
    });
    const notes = async (env: NodeJS.ProcessEnv): Promise<string[]> =>
      jsonLines<{ row: { note: string } }>(
        (await f.recall(['show', '--tenant', 'a', '--table', 'items', '--at', 'now', '--json'], env)).stdout,
      ).map((shown) => shown.row.note);
    let invoicing: NodeJS.ProcessEnv;
    let second: NodeJS.ProcessEnv;

    test('two databases of one server: each vault keeps its own slot, both are captured', async () => {
      f = await fixture(major, SCHEMA);
      fixtures.push(f);
      await f.db.query('CREATE DATABASE priv');
      priv = new pg.Client({ connectionString: f.cluster.url({ database: 'priv' }) });
      priv.on('error', () => undefined);
      await priv.connect();
      await priv.query(SCHEMA);
      invoicing = {};
      const first = await f.recall(['init', '--json']);
      assert.equal(first.code, 0, first.stderr);
      const slot = jsonLines<{ slot: string; publication: string }>(first.stdout)[0]!;
      assert.match(slot.slot, /^recall_postgres_[0-9a-f]{8}$/);
      assert.equal(slot.publication, slot.slot);
      if (major >= 17) {
        const { rows } = await f.db.query<{ failover: boolean }>('SELECT failover FROM pg_replication_slots WHERE slot_name = $1', [
          slot.slot,
        ]);
        assert.equal(rows[0]?.failover, true, 'on PostgreSQL 17 and later the slot is a failover slot');
      }
      assert.equal((await f.recall(['capture', '--until-caught-up'])).code, 0);

      second = vaultEnv('priv');
      const other = await f.recall(['init', '--json'], second);
      assert.equal(other.code, 0, other.stderr);
      assert.match(jsonLines<{ slot: string }>(other.stdout)[0]!.slot, /^recall_priv_[0-9a-f]{8}$/);
      assert.deepStrictEqual(
        (await slots(f.db)).map((s) => s.database),
        ['postgres', 'priv'],
        'both slots are there, each in its database',
      );

      await f.db.query(`INSERT INTO items VALUES ('a', 2, 'invoicing second')`);
      await priv.query(`INSERT INTO items VALUES ('a', 2, 'priv second')`);
      const captured = [
        await f.recall(['capture', '--until-caught-up'], invoicing),
        await f.recall(['capture', '--until-caught-up'], second),
      ];
      for (const run of captured) assert.equal(run.code, 0, run.stderr);
      assert.deepStrictEqual(await notes(invoicing), ['first', 'invoicing second']);
      assert.deepStrictEqual(await notes(second), ['first', 'priv second']);
      await priv.end();
    });

    test('a second vault of the same database gets a slot of its own while the first captures', async () => {
      const running = f.spawnRecall(['capture']);
      try {
        await waitFor(
          'the first capture to hold its slot',
          async () => (await f.db.query(`SELECT 1 FROM pg_replication_slots WHERE active AND database = 'postgres'`)).rowCount === 1,
        );
        const third = vaultEnv('postgres');
        const init = await f.recall(['init'], third);
        assert.equal(init.code, 0, init.stderr);
        assert.equal((await slots(f.db)).length, 3);
      } finally {
        running.kill('SIGTERM');
        await new Promise((resolve) => running.once('close', resolve));
      }
    });

    test('a slot name already taken: exit 2 with the fix, nothing created or dropped', async () => {
      const before = await slots(f.db);
      const publications = (await f.db.query('SELECT count(*)::int AS n FROM pg_publication')).rows[0].n as number;
      const taken = before.find((s) => s.database === 'postgres')!.slot_name;
      const fourth = vaultEnv('postgres');
      const init = await f.recall(['init', '--slot', taken, '--publication', 'recall_fourth'], fourth);
      assert.equal(init.code, 2, init.stderr);
      assert.match(
        init.stderr,
        new RegExp(`^recall: the replication slot "${taken}" already exists \\(database "postgres"\\) and is not this vault's`, 'm'),
      );
      assert.match(init.stderr, /^hint: pass another --slot NAME/m);
      assert.deepStrictEqual(await slots(f.db), before);
      assert.equal((await f.db.query('SELECT count(*)::int AS n FROM pg_publication')).rows[0].n, publications);

      const bad = await f.recall(['init', '--slot', 'Bad-Name'], fourth);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /^recall: --slot "Bad-Name" is not a replication slot name/m);
    });

    test('an init killed during its image leaves a slot that the next init of that vault drops and creates again', async () => {
      // An image that takes a moment: the init is killed between creating its slot and committing.
      await f.db.query(
        `CREATE TABLE bulk (id int PRIMARY KEY, note text); INSERT INTO bulk SELECT g, md5(g::text) FROM generate_series(1, 300000) g`,
      );
      const fifth = vaultEnv('postgres');
      const before = (await slots(f.db)).map((s) => s.slot_name);
      const dying = f.spawnRecall(['init'], fifth);
      const claimFile = join(fifth.RECALL_VAULT!, 'state', 'slot.json');
      let claim: { slot: string; consistentPoint: string | null } | undefined;
      await waitFor(
        'the init to create and record its slot',
        () => {
          try {
            claim = JSON.parse(readFileSync(claimFile, 'utf8')) as typeof claim;
          } catch {
            return false;
          }
          return claim?.consistentPoint !== null;
        },
        60_000,
        5,
      );
      dying.kill('SIGKILL');
      await new Promise((resolve) => dying.once('close', resolve));
      assert.equal(
        existsSync(join(fifth.RECALL_VAULT!, 'manifest')) && readdirSync(join(fifth.RECALL_VAULT!, 'manifest')).length > 0,
        false,
        'killed before its manifest',
      );
      await waitFor(
        'the killed init to release its slot',
        async () =>
          (await f.db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [claim!.slot])).rowCount === 1,
      );

      const again = await f.recall(['init', '--json'], fifth);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, new RegExp(`dropping the slot "${claim!.slot}" an earlier init of this vault left unused`));
      assert.equal(jsonLines<{ slot: string }>(again.stdout)[0]!.slot, claim!.slot);
      assert.deepStrictEqual((await slots(f.db)).map((s) => s.slot_name).sort(), [...before, claim!.slot].sort());
    });
  });
}
