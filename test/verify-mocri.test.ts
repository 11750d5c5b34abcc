// The mocri case, on the oldest and newest supported majors: with data checksums off,
// part of a tenant table's heap file is overwritten while the server is down (rows
// vanish and a value changes, with no WAL record of it). `recall verify` names every
// tenant, key and column affected; restore to the newest point puts exactly those rows
// back, and a second verify is clean. And when a page's TIDs come to hold another
// tenant's rows, an index lookup for one tenant returns the other's: the plan stops,
// naming the damage, instead of planning to delete them.

import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import pg from 'pg';
import { testMajors } from './harness/majors.js';
import { waitFor, type Fixture } from './harness/recall.js';
import { capturedFixture, endAfterSuite } from './harness/workload.js';

const PAGE = 8192;

const SCHEMA = `
  CREATE TABLE public.tenants (id int PRIMARY KEY, name text NOT NULL);
  CREATE TABLE public.comments (tenant_id int NOT NULL REFERENCES public.tenants, id int NOT NULL, body text NOT NULL,
                                PRIMARY KEY (tenant_id, id));
  INSERT INTO public.tenants SELECT t, 'tenant ' || t FROM generate_series(1, 4) t;
  INSERT INTO public.comments SELECT t, i, 'comment ' || t || '/' || i || ' ' || repeat('x', 80)
    FROM generate_series(1, 150) i, generate_series(1, 4) t ORDER BY i, t;
  -- Each tenant's rows together on their own pages, for an index that points at another tenant's.
  CREATE TABLE public.notes (tenant_id int NOT NULL REFERENCES public.tenants, id int NOT NULL, body text NOT NULL,
                             PRIMARY KEY (tenant_id, id));
  INSERT INTO public.notes SELECT t, i, 'note ' || t || '/' || i || ' ' || repeat('y', 80)
    FROM generate_series(1, 2) t, generate_series(1, 300) i ORDER BY t, i;
`;

interface JsonDifference {
  kind: string;
  tenant: string;
  key: string[];
  columns?: string[];
}

for (const major of testMajors('all')) {
  describe(`a heap damaged under the covers (mocri), PostgreSQL ${major}`, () => {
    const started = endAfterSuite();
    let f: Fixture;

    // Checksums off, so a damaged page reads back silently; the fixture's client dies with the server the test stops.
    before(async () => ({ f } = await capturedFixture(started, major, SCHEMA, { dataChecksums: false })));

    test('verify names what was lost, restore puts it back, and verify is clean again', async () => {
      const { rows: vanished } = await f.db.query<{ tenant_id: string; id: string }>(
        `SELECT tenant_id::text, id::text FROM public.comments WHERE (ctid::text::point)[0] = 1 ORDER BY 1, 2`,
      );
      const { rows: changed } = await f.db.query<{ tenant_id: string; id: string; body: string }>(
        `SELECT tenant_id::text, id::text, body FROM public.comments WHERE ctid = '(2,5)'`,
      );
      const victim = changed[0]!;
      const { rows: file } = await f.db.query<{ path: string }>(`SELECT pg_relation_filepath('public.comments') AS path`);
      await f.db.query('CHECKPOINT');
      await f.cluster.stop();
      const heap = await open(join(f.cluster.dataDir, file[0]!.path), 'r+');
      try {
        await heap.write(Buffer.alloc(PAGE), 0, PAGE, PAGE); // page 1: its rows vanish
        const page = Buffer.alloc(PAGE);
        await heap.read(page, 0, PAGE, 2 * PAGE);
        const at = page.indexOf(victim.body);
        assert.ok(at > 0, 'the changed row is on page 2');
        page.write('COMMENT', at); // same length: the row reads back changed
        await heap.write(page, 0, PAGE, 2 * PAGE);
      } finally {
        await heap.close();
      }
      await f.cluster.start();
      await streamingAgain(f);

      const verified = await f.recall(['verify', '--json']);
      assert.equal(verified.code, 3, verified.stderr);
      const found = (JSON.parse(verified.stdout) as { differences: JsonDifference[] }).differences;
      assert.deepStrictEqual(
        found
          .filter((d) => d.kind === 'missing-live')
          .map((d) => `${d.tenant}/${d.key[1]}`)
          .sort(),
        vanished.map((row) => `${row.tenant_id}/${row.id}`).sort(),
        'every row of the zeroed page, by tenant and key',
      );
      assert.deepStrictEqual(
        found.filter((d) => d.kind !== 'missing-live').map((d) => ({ kind: d.kind, tenant: d.tenant, key: d.key, columns: d.columns })),
        [{ kind: 'differs', tenant: victim.tenant_id, key: [victim.tenant_id, victim.id], columns: ['body'] }],
      );
      assert.ok(vanished.length > 10, `${vanished.length} rows were on page 1`);

      const tenants = [...new Set(found.map((d) => d.tenant))].sort();
      const point = new Date().toISOString();
      const restore = await f.recall(['restore', '--tenant', tenants.join(','), '--to', point, '--yes']);
      assert.equal(restore.code, 0, restore.stderr);
      assert.match(
        restore.stderr,
        new RegExp(`wrote ${vanished.length + 1} row\\(s\\)`),
        'the lost rows and the changed one, nothing else',
      );
      const again = await f.recall(['verify']);
      assert.equal(again.code, 0, again.stdout + again.stderr);
      const db = new pg.Client({ connectionString: f.cluster.url() });
      await db.connect();
      try {
        const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.comments`);
        assert.equal(rows[0]!.n, 600);
      } finally {
        await db.end();
      }
    });

    test('an index that returns another tenant’s rows stops the plan, named as damage', async () => {
      const db = new pg.Client({ connectionString: f.cluster.url() });
      await db.connect();
      let page: { path: string; victim: number; other: number };
      try {
        const { rows } = await db.query<{ path: string; victim: string; other: string }>(
          `SELECT pg_relation_filepath('public.notes') AS path,
                  (SELECT min((ctid::text::point)[0])::int FROM public.notes WHERE tenant_id = 1)::text AS victim,
                  (SELECT max((ctid::text::point)[0])::int - 1 FROM public.notes WHERE tenant_id = 2)::text AS other`,
        );
        page = { path: rows[0]!.path, victim: Number(rows[0]!.victim), other: Number(rows[0]!.other) };
        const { rows: pure } = await db.query<{ tenants: string }>(
          `SELECT count(DISTINCT tenant_id)::text AS tenants FROM public.notes WHERE (ctid::text::point)[0] IN ($1, $2)`,
          [page.victim, page.other],
        );
        assert.equal(pure[0]!.tenants, '2', 'one tenant on each page');
        await db.query('CHECKPOINT');
      } finally {
        await db.end();
      }
      await f.cluster.stop();
      const heap = await open(join(f.cluster.dataDir, page.path), 'r+');
      try {
        const copied = Buffer.alloc(PAGE);
        await heap.read(copied, 0, PAGE, page.other * PAGE);
        await heap.write(copied, 0, PAGE, page.victim * PAGE); // tenant 1's TIDs now hold tenant 2's rows
      } finally {
        await heap.close();
      }
      await f.cluster.start();
      await streamingAgain(f);
      // Index scans only, as the planner picks them on a table of real size.
      const byIndex = `${f.cluster.url()}?options=${encodeURIComponent('-c enable_seqscan=off -c enable_bitmapscan=off')}`;
      const restore = await f.recall(['restore', '--tenant', '1', '--to', new Date().toISOString(), '--dry-run'], {
        RECALL_SOURCE: byIndex,
      });
      assert.equal(restore.code, 1, restore.stdout + restore.stderr);
      assert.match(
        restore.stderr,
        /^recall: the source database is damaged: an index of public\.notes returned (rows of tenant\(s\) 2 when asked for others|\d+ row\(s\) under keys they do not hold)\b.*; nothing was written\nhint: run REINDEX TABLE public\.notes; /m,
      );
      assert.doesNotMatch(restore.stdout, /delete/i, 'no plan to delete tenant 2’s rows');
    });
  });
}

/**
 * Waits until the suite's capture streams again after a restart: a command that
 * catches up while that capture is still in its reconnect backoff starts a capture of
 * its own, which then waits for the slot the suite's capture takes (noted in the
 * session's closing note as a catch-up race to fix).
 */
async function streamingAgain(f: Fixture): Promise<void> {
  await waitFor('the capture to stream again', async () => {
    const status = await f.recall(['status', '--json']);
    return status.code === 0 && (JSON.parse(status.stdout) as { slot: { state: string } | null }).slot?.state === 'streaming';
  });
}
