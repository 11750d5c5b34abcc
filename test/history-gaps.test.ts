// Gaps in the history are loud. For each way the vault can miss changes (its slot
// dropped, dropped and re-created, invalidated by max_slot_wal_keep_size; the source
// rewound by a restore from a copy of its files; the source another server), capture
// stops with the cause, the gap is recorded and shown by status, points inside it are
// refused (exit 2), `init --resume` continues after it, and points on both sides read
// exactly what the source held then. One vault lives through all five, in order.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { describe, test, before } from 'node:test';
import pg from 'pg';
import { startCluster, type Cluster } from '../src/sandbox/index.js';
import { fixture, jsonLines, waitFor, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { endAfterSuite } from './harness/workload.js';

const SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY);
  CREATE TABLE items (tenant_id text NOT NULL REFERENCES tenants, id int NOT NULL, note text, PRIMARY KEY (tenant_id, id));
  CREATE TABLE filler (tenant_id text NOT NULL REFERENCES tenants, id int NOT NULL, pad text, PRIMARY KEY (tenant_id, id));
  INSERT INTO tenants VALUES ('t1'), ('t2');
  INSERT INTO items SELECT 't1', g, 'first ' || g FROM generate_series(1, 5) g;
  INSERT INTO items SELECT 't2', g, 'other ' || g FROM generate_series(1, 3) g;`;

interface Status {
  vault: { newestLsn: string; gaps: { cause: string; from: { lsn: string }; to: { lsn: string } | null }[] };
  missingHistory: { cause: string } | null;
}

for (const major of testMajors('all')) {
  describe(`gaps in the history on PostgreSQL ${major}`, () => {
    const { fixtures } = endAfterSuite();
    let f: Fixture;
    let db: pg.Client;
    /** A session on the source; a server the test stops ends it, so each step opens its own. */
    const connect = async (cluster: Cluster = f.cluster): Promise<pg.Client> => {
      const client = new pg.Client({ connectionString: cluster.url() });
      client.on('error', () => undefined);
      await client.connect();
      return client;
    };
    const live = async (client: pg.Client = db): Promise<string[]> =>
      (
        await client.query<{ line: string }>(`SELECT id || '=' || coalesce(note, '') AS line FROM items WHERE tenant_id = 't1' ORDER BY id`)
      ).rows.map((row) => row.line);
    const shown = async (at: string, env?: NodeJS.ProcessEnv): Promise<string[]> => {
      const run = await f.recall(['show', '--tenant', 't1', '--table', 'items', '--at', at, '--json'], env);
      assert.equal(run.code, 0, run.stderr);
      return jsonLines<{ row: { id: string; note: string | null } }>(run.stdout)
        .map(({ row }) => `${row.id}=${row.note ?? ''}`)
        .sort((a, b) => Number(a.split('=')[0]) - Number(b.split('=')[0]));
    };
    const state = async (env?: NodeJS.ProcessEnv): Promise<Status> => {
      const run = await f.recall(['status', '--json'], env);
      assert.equal(run.code, 0, run.stderr);
      return JSON.parse(run.stdout) as Status;
    };
    const slotName = async (): Promise<string> =>
      (JSON.parse((await f.recall(['status', '--json'])).stdout) as { slot: { name: string } }).slot.name;
    /** Changes the vault will never see: a row updated, one deleted, one inserted. */
    const writeInsideGap = async (client: pg.Client, tag: string): Promise<void> => {
      const next = (await client.query<{ n: string }>(`SELECT max(id) + 1 AS n FROM items WHERE tenant_id = 't1'`)).rows[0]!.n;
      await client.query(
        `UPDATE items SET note = 'in gap ${tag}' WHERE tenant_id = 't1' AND id = (SELECT min(id) FROM items WHERE tenant_id = 't1')`,
      );
      await client.query(`DELETE FROM items WHERE tenant_id = 't1' AND id = (SELECT max(id) FROM items WHERE tenant_id = 't1')`);
      await client.query(`INSERT INTO items VALUES ('t1', $1, 'inserted in gap ${tag}')`, [Number(next) + 1]);
    };
    /** Writes WAL until the server's position passes `lsn` (a resume needs the positions to keep growing). */
    const passLsn = async (client: pg.Client, lsn: string): Promise<void> => {
      for (let i = 0; i < 64; i++) {
        const { rows } = await client.query<{ past: boolean }>(`SELECT pg_current_wal_lsn() > $1::pg_lsn AS past`, [lsn]);
        if (rows[0]?.past === true) return;
        await client.query(`INSERT INTO filler VALUES ('t2', ${1_000_000 + i}, 'wal') ON CONFLICT DO NOTHING`);
        await client.query('SELECT pg_switch_wal()');
      }
      throw new Error(`the server's WAL did not pass ${lsn}`);
    };

    /**
     * One cause, end to end: history before it, `breakIt` opening the gap, capture
     * stopping with `message`, status and reads refusing, resume, history after it.
     */
    const throughGap = async (
      cause: string,
      message: RegExp,
      breakIt: () => Promise<void>,
      options: { env?: NodeJS.ProcessEnv; prepare?: () => Promise<void>; resumeSource?: () => Promise<pg.Client> } = {},
    ): Promise<{ before: { lsn: string; rows: string[] }; after: { lsn: string; rows: string[] } }> => {
      await options.prepare?.();
      await db.query(
        `UPDATE items SET note = 'before ${cause}' WHERE tenant_id = 't1' AND id = (SELECT max(id) FROM items WHERE tenant_id = 't1')`,
      );
      assert.equal((await f.recall(['capture', '--until-caught-up'])).code, 0);
      const beforeLsn = (await state()).vault.newestLsn;
      const beforeRows = await live();

      await breakIt();
      const stopped = await f.recall(['capture', '--until-caught-up'], options.env);
      assert.equal(stopped.code, 1, stopped.stderr);
      assert.match(stopped.stderr, message);
      assert.match(stopped.stderr, /init --resume/);
      const open = (await state(options.env)).vault.gaps.at(-1);
      assert.deepStrictEqual({ cause: open?.cause, from: open?.from.lsn, to: open?.to }, { cause, from: beforeLsn, to: null });
      assert.match((await f.recall(['status'], options.env)).stdout, /^gap {8}OPEN since .*\n {11}fix: `recall init --resume`/m);
      // The vault stops where it was complete: after that nothing is answered, before it everything is.
      const refused = await f.recall(['show', '--tenant', 't1', '--at', 'now'], options.env);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /^recall: now is after the history stopped at a gap: /m);
      assert.deepStrictEqual(await shown(`lsn:${beforeLsn}`, options.env), beforeRows);
      const restore = await f.recall(['restore', '--tenant', 't1', '--to', `lsn:${beforeLsn}`, '--dry-run'], options.env);
      assert.equal(restore.code, 1, 'no plan over an open gap');
      assert.match(restore.stderr, /init --resume/);

      const source = options.resumeSource === undefined ? db : await options.resumeSource();
      const resumed = await f.recall(['init', '--resume'], options.env);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.match(resumed.stdout, /^resumed: the gap from lsn:\S+ to lsn:\S+ is recorded/);
      await source.query(
        `UPDATE items SET note = 'after ${cause}' WHERE tenant_id = 't1' AND id = (SELECT min(id) FROM items WHERE tenant_id = 't1')`,
      );
      const captured = await f.recall(['capture', '--until-caught-up'], options.env);
      assert.equal(captured.code, 0, captured.stderr);
      const after = await state(options.env);
      const closed = after.vault.gaps.at(-1);
      assert.equal(closed?.cause, cause);
      assert.ok(closed?.to !== null && closed?.to !== undefined, 'the gap is closed');
      const afterRows = await live(source);
      assert.deepStrictEqual(await shown(`lsn:${after.vault.newestLsn}`, options.env), afterRows, 'exact after the gap');
      assert.deepStrictEqual(await shown(`lsn:${beforeLsn}`, options.env), beforeRows, 'exact before the gap');
      // Just past its start and just before its end: inside, refused and named.
      for (const inside of [bump(closed.from.lsn, 1), bump(closed.to.lsn, -1)]) {
        const run = await f.recall(['show', '--tenant', 't1', '--at', `lsn:${inside}`], options.env);
        assert.equal(run.code, 2, run.stderr);
        assert.match(run.stderr, /is inside a gap in the history \(/);
      }
      const logged = await f.recall(['log', '--tenant', 't1', '--since', `lsn:${beforeLsn}`, '--json'], options.env);
      assert.equal(logged.code, 0, logged.stderr);
      assert.match(logged.stderr, /^note: the history has a gap from lsn:/m);
      assert.deepStrictEqual(
        jsonLines<{ row: { note: string } }>(logged.stdout).map((change) => change.row.note),
        [`after ${cause}`],
        'the changes after the gap, none from inside it',
      );
      if (source !== db) await source.end();
      return { before: { lsn: beforeLsn, rows: beforeRows }, after: { lsn: after.vault.newestLsn, rows: afterRows } };
    };

    before(async () => {
      f = await fixture(major, SCHEMA);
      fixtures.push(f);
      f.db.on('error', () => undefined);
      db = f.db;
      assert.equal((await f.recall(['init'])).code, 0);
    });

    test('a dropped slot: a restore to a point before the gap puts back exactly that state', async () => {
      const slot = await slotName();
      const { before: earlier } = await throughGap('slot-dropped', /the replication slot "\S+" was dropped/, async () => {
        await db.query('SELECT pg_drop_replication_slot($1)', [slot]);
        await writeInsideGap(db, 'dropped');
      });
      assert.equal(await slotName(), slot, 'a free name is used again');
      const restored = await f.recall(['restore', '--tenant', 't1', '--to', `lsn:${earlier.lsn}`, '--yes']);
      assert.equal(restored.code, 0, restored.stderr);
      assert.deepStrictEqual(await live(), earlier.rows);
      const verified = await f.recall(['verify']);
      assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    });

    test('a slot dropped and created again under its name is found, and left to its owner', async () => {
      const slot = await slotName();
      await throughGap('slot-ahead', /was the slot dropped and created again/, async () => {
        await db.query('SELECT pg_drop_replication_slot($1)', [slot]);
        await writeInsideGap(db, 're-created');
        await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
      });
      assert.notEqual(await slotName(), slot, 'the resume took a slot of its own');
      assert.equal(
        (await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount,
        1,
        'not dropped by Recall',
      );
      await db.query('SELECT pg_drop_replication_slot($1)', [slot]);
    });

    test('a slot invalidated by max_slot_wal_keep_size', async () => {
      const slot = await slotName();
      await throughGap('slot-invalidated', /was invalidated: the source removed WAL it still needed/, async () => {
        await db.query(`ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`);
        await db.query('SELECT pg_reload_conf()');
        await writeInsideGap(db, 'invalidated');
        await waitFor('the slot to be invalidated', async () => {
          await db.query(`INSERT INTO filler SELECT 't2', coalesce(max(id), 0) + 1, 'wal' FROM filler WHERE tenant_id = 't2'`);
          await db.query('SELECT pg_switch_wal()');
          await db.query('CHECKPOINT');
          const { rows } = await db.query<{ wal_status: string }>('SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1', [
            slot,
          ]);
          return rows[0]?.wal_status === 'lost';
        });
        await db.query('ALTER SYSTEM RESET max_slot_wal_keep_size');
        await db.query('SELECT pg_reload_conf()');
      });
      assert.equal(await slotName(), slot, 'the invalidated slot was dropped and its name used again');
    });

    test('a source put back from a copy of its files (rewound behind the vault)', async () => {
      const copy = `${f.cluster.dataDir}-copy`;
      const slot = await slotName();
      await throughGap(
        'source-rewound',
        /is behind the vault's end .*restored from a backup or rewound/,
        async () => {
          await db.end();
          await f.cluster.stop();
          await rm(f.cluster.dataDir, { recursive: true, force: true });
          copyFiles(copy, f.cluster.dataDir);
          await rm(copy, { recursive: true, force: true });
          await f.cluster.start();
          db = await connect();
          await writeInsideGap(db, 'rewound');
        },
        {
          // The copy, then history the copy never reaches: captured, then lost with the files.
          prepare: async () => {
            await db.end();
            await f.cluster.stop();
            copyFiles(f.cluster.dataDir, copy);
            await f.cluster.start();
            db = await connect();
            await db.query(`INSERT INTO filler SELECT 't1', g, repeat('x', 1000) FROM generate_series(1, 3000) g`);
          },
          resumeSource: async () => {
            await passLsn(db, (await state()).vault.newestLsn);
            return db;
          },
        },
      );
      // The slot came back with the files: reused if the vault's claim proves it unconsumed since the last resume, else left to drop.
      if ((await slotName()) !== slot) await db.query('SELECT pg_drop_replication_slot($1)', [slot]);
    });

    test('another server under the same database name: withdrawn when the right one is back, a new lineage on resume', async () => {
      const other = await startCluster({ major });
      try {
        const setup = await connect(other);
        await setup.query(SCHEMA);
        await setup.query(`UPDATE items SET note = 'on the new server' WHERE tenant_id = 't1'`);
        const elsewhere = { RECALL_SOURCE: other.url() };
        // Pointed at the wrong server and back: the gap is withdrawn, nothing was missed.
        const wrong = await f.recall(['capture', '--until-caught-up'], elsewhere);
        assert.equal(wrong.code, 1, wrong.stderr);
        assert.match(wrong.stderr, /the source is another server/);
        assert.equal((await state()).vault.gaps.at(-1)?.to === null, true, 'recorded');
        const back = await f.recall(['capture', '--until-caught-up']);
        assert.equal(back.code, 0, back.stderr);
        assert.ok(
          (await state()).vault.gaps.every((gap) => gap.to !== null),
          'withdrawn once this vault’s own server is back',
        );

        const { before: earlier, after } = await throughGap(
          'source-changed',
          /the source is another server \(system \d+, not \d+\)/,
          async () => undefined,
          {
            env: elsewhere,
            resumeSource: async () => {
              await passLsn(setup, (await state()).vault.newestLsn);
              return connect(other);
            },
          },
        );
        assert.deepStrictEqual(after.rows.slice(1), [
          '2=on the new server',
          '3=on the new server',
          '4=on the new server',
          '5=on the new server',
        ]);
        assert.deepStrictEqual(await shown(`lsn:${earlier.lsn}`, elsewhere), earlier.rows, 'the old server’s history is still readable');
        const verified = await f.recall(['verify'], elsewhere);
        assert.equal(verified.code, 0, verified.stdout + verified.stderr);
        await setup.end();
      } finally {
        await other.destroy();
      }
    });
  });
}

/** A copy of a data directory with its owner and modes (the server may run as another user). */
function copyFiles(from: string, to: string): void {
  execFileSync('cp', ['-a', from, to]);
}

/** An LSN text moved by `bytes`. */
function bump(lsn: string, bytes: number): string {
  const [high, low] = lsn.split('/').map((part) => BigInt(`0x${part}`));
  const value = (high! << 32n) + low! + BigInt(bytes);
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}
