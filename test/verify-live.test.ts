// `recall verify`: the live database against the history, on the oldest and newest
// supported majors. A clean database under a concurrent write load reads as equal
// every time (no false alarm on any type's text form); changes made where logical
// decoding never sees them (the publication publishing none meanwhile, a table
// switched to UNLOGGED) are each found, with their kind, tenant, key, columns and
// both versions.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { testMajors } from './harness/majors.js';
import { fixture, waitFor, type Fixture } from './harness/recall.js';
import { CaptureProcess, capturedFixture, endAfterSuite } from './harness/workload.js';

const SCHEMA = `
  CREATE TYPE public.mood AS ENUM ('calm', 'busy');
  CREATE TYPE public.pair AS (a int, b text);
  CREATE TABLE public.tenants (id int PRIMARY KEY, name text NOT NULL);
  CREATE TABLE public.items (
    tenant_id int NOT NULL REFERENCES public.tenants, id int NOT NULL,
    title text, code char(6), active boolean, price numeric(12, 3), ratio float8, at timestamptz, span interval,
    doc jsonb, tags text[], raw bytea, mood public.mood, pair public.pair, "Odd ""name""" text,
    PRIMARY KEY (tenant_id, id));
  CREATE TABLE public.countries (code text PRIMARY KEY, name text NOT NULL);
  INSERT INTO public.tenants SELECT t, 'tenant ' || t FROM generate_series(1, 4) t;
  -- A tenant column that may be NULL (shared notes), and a table with an inheritance child of its own.
  CREATE TABLE public.notes (tenant_id int REFERENCES public.tenants, id int PRIMARY KEY, body text);
  INSERT INTO public.notes SELECT CASE WHEN i % 3 = 0 THEN NULL ELSE i % 4 + 1 END, i, 'note ' || i FROM generate_series(1, 12) i;
  CREATE TABLE public.logs (tenant_id int NOT NULL, id int NOT NULL, message text, PRIMARY KEY (tenant_id, id));
  CREATE TABLE public.logs_old (PRIMARY KEY (tenant_id, id)) INHERITS (public.logs);
  INSERT INTO public.logs VALUES (1, 1, 'current'), (2, 2, E'colour \\x1b[31mred\\x1b[0m and \\x1f unit');
  INSERT INTO public.logs_old VALUES (1, 10, 'archived'), (3, 11, 'archived');
  INSERT INTO public.countries VALUES ('de', 'Germany'), ('fr', 'France');
  INSERT INTO public.items
    SELECT t, i, 'item ' || i || E' \\u00e9\\n"q"', 'c' || i, i % 2 = 0, i * 1.125, i / 3.0, '2026-01-01 00:00:00+00'::timestamptz + i * interval '1 hour',
           interval '1 day 2 hours', jsonb_build_object('n', i, 'deep', jsonb_build_array(1, 'x')), ARRAY['a', 'b c', NULL],
           decode('00ff' || lpad(to_hex(i), 2, '0'), 'hex'), CASE WHEN i % 2 = 0 THEN 'calm' ELSE 'busy' END::public.mood,
           ROW(i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'p' END)::public.pair, CASE WHEN i % 4 = 0 THEN NULL ELSE 'odd' END
      FROM generate_series(1, 4) t, generate_series(1, 25) i;
`;

interface JsonDifference {
  kind: string;
  table: string;
  tenant: string | null;
  key: string[];
  columns?: string[];
  live?: Record<string, string | null>;
  vault?: Record<string, string | null>;
}
interface JsonResult {
  rows: number;
  tenants: number;
  tables: number;
  differences: JsonDifference[];
  skipped: unknown[];
}

const resultOf = (stdout: string): JsonResult => JSON.parse(stdout) as JsonResult;

for (const major of testMajors('all')) {
  describe(`recall verify, PostgreSQL ${major}`, () => {
    const started = endAfterSuite();
    const { captures } = started;
    let f: Fixture;

    before(async () => ({ f } = await capturedFixture(started, major, SCHEMA)));

    test('a clean database under writes reads equal, every time', async () => {
      for (let round = 1; round <= 3; round++) {
        // Writes before and while verify runs: each snapshot's point is exact, so none is a difference.
        await f.db.query(`UPDATE public.items SET price = price + 1, at = at + interval '1 second' WHERE id % 5 = $1`, [round]);
        await f.db.query(`INSERT INTO public.items (tenant_id, id, title) VALUES ($1, 100 + $1 * 10 + $2, 'new')`, [
          (round % 4) + 1,
          round,
        ]);
        const writing = f.db.query(`DELETE FROM public.items WHERE tenant_id = 4 AND id = $1`, [round]);
        const verified = await f.recall(['verify', '--json']);
        await writing;
        assert.equal(verified.code, 0, `round ${round}: ${verified.stdout}\n${verified.stderr}`);
        const result = resultOf(verified.stdout);
        assert.deepStrictEqual(result.differences, []);
        assert.equal(result.tables, 6);
        assert.equal(result.tenants, 4);
        assert.ok(result.rows >= 100, `${result.rows} rows compared`);
      }
    });

    test('a table this role may not read is left out, named with why; the rest is compared', async () => {
      await f.db.query(`CREATE ROLE verifier LOGIN REPLICATION PASSWORD 'verifier-pw';
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO verifier; REVOKE SELECT ON public.countries FROM verifier`);
      const source = f.cluster.url({ user: 'verifier', password: 'verifier-pw' });
      const verified = await f.recall(['verify'], { RECALL_SOURCE: source });
      assert.equal(verified.code, 0, verified.stdout + verified.stderr);
      assert.match(verified.stdout, /^skipped +public\.countries: this role may not read it: grant it SELECT/m);
      assert.match(verified.stdout, /in 5 tables/);
    });

    test('changes decoding never saw are each found: missing, extra and changed rows, with both versions', async () => {
      // With the publication publishing no row changes meanwhile, the history never hears of them.
      const { rows } = await f.db.query<{ name: string }>(`SELECT quote_ident(pubname) AS name FROM pg_publication`);
      const publication = rows[0]!.name;
      await f.db.query(`ALTER PUBLICATION ${publication} SET (publish = 'truncate')`);
      await f.db.query(`DELETE FROM public.items WHERE tenant_id = 2 AND id = 7`);
      await f.db.query(`UPDATE public.items SET title = 'silently changed', code = 'zz' WHERE tenant_id = 3 AND id = 8`);
      await f.db.query(`INSERT INTO public.items (tenant_id, id, title) VALUES (1, 999, 'appeared')`);
      await f.db.query(`ALTER PUBLICATION ${publication} SET (publish = 'insert, update, delete, truncate')`);
      await f.db.query(`UPDATE public.countries SET name = 'Deutschland' WHERE code = 'de'`);

      const verified = await f.recall(['verify', '--json']);
      assert.equal(verified.code, 3, verified.stderr);
      assert.match(verified.stderr, /differ in 3 rows/);
      const found = resultOf(verified.stdout).differences.sort((a, b) => (a.tenant ?? '').localeCompare(b.tenant ?? ''));
      assert.deepStrictEqual(
        found.map(({ kind, table, tenant, key, columns }) => ({ kind, table, tenant, key, columns })),
        [
          { kind: 'extra-live', table: 'public.items', tenant: '1', key: ['1', '999'], columns: undefined },
          { kind: 'missing-live', table: 'public.items', tenant: '2', key: ['2', '7'], columns: undefined },
          { kind: 'differs', table: 'public.items', tenant: '3', key: ['3', '8'], columns: ['title', 'code'] },
        ],
      );
      const changed = found[2]!;
      assert.equal(changed.live?.title, 'silently changed');
      assert.equal(changed.live?.code, 'zz    ', 'char(6) keeps its padding, as its output function writes it');
      assert.equal(changed.vault?.code, 'c8    ');
      assert.equal(found[1]!.vault?.title, 'item 7 é\n"q"', "the missing row's last version, from the history");
      assert.equal(found[0]!.live?.title, 'appeared');

      const one = await f.recall(['verify', '--tenant', '3', '--table', 'public.items']);
      assert.equal(one.code, 3, one.stderr);
      assert.match(one.stdout, /differs +public\.items tenant 3 key \["3","8"\]: title "silently changed" \(history "item 8/);
      assert.doesNotMatch(one.stdout, /tenant [12]/, 'only the tenant asked for');
      // In batches of tenants, each in its own snapshot (four here: some 130 rows, at most 40 a snapshot), the same differences.
      await f.db.query('ANALYZE');
      const batched = await f.recall(['verify', '--json', '--snapshot-rows', '40']);
      assert.equal(batched.code, 3, batched.stderr);
      const batchedResult = JSON.parse(batched.stdout) as JsonResult & { batches: unknown[] };
      assert.equal(batchedResult.batches.length, 4, 'four snapshots of four image buckets each');
      assert.deepStrictEqual(batchedResult.differences.map((d) => `${d.kind} ${d.tenant} ${d.key.join('/')}`).sort(), [
        'differs 3 3/8',
        'extra-live 1 1/999',
        'missing-live 2 2/7',
      ]);
      assert.equal(batchedResult.tenants, 4);

      const clean = await f.recall(['verify', '--tenant', '4']);
      assert.equal(clean.code, 0, clean.stdout + clean.stderr);
      assert.match(clean.stdout, /ok +the live database equals the history/);

      // Status shows the last full pass (with what it found) and the newer partial one.
      const status = await f.recall(['status']);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /^verify {5}last full pass \S+: \d+ rows of 4 tenants, 3 DIFFERENCES \(tenants [123], [123], [123]\)/m);
      assert.match(status.stdout, /^ {11}last partial \S+: \d+ rows of 1 tenants, equal$/m);
    });

    test('capture --verify-every runs verify in the background and logs what it finds', async () => {
      // The suite's capture gives the slot to one that verifies every 2 s; the differences planted above remain.
      await captures[0]!.kill9();
      const verifying = CaptureProcess.spawn(f, ['--verify-every', '2s']);
      captures.push(verifying);
      await verifying.waitForLines(/^capture: verify: \d+ DIFFERENCES in tenants/, 1, 60_000);
      const line = verifying.lines.find((l) => /^capture: verify: /.test(l)) ?? '';
      assert.match(line, /3 DIFFERENCES in tenants [123], [123], [123]; `recall verify` lists them/);
      const status = await f.recall(['status', '--json']);
      const { verify, detectionLatencyMs } = (
        JSON.parse(status.stdout) as {
          vault: { verify: { lastFull: { differences: number; everyMs: number } }; detectionLatencyMs: number };
        }
      ).vault;
      assert.equal(verify.lastFull.differences, 3);
      assert.equal(verify.lastFull.everyMs, 2_000, 'the schedule it ran on');
      assert.ok(detectionLatencyMs > 2_000, `the schedule plus a pass: ${detectionLatencyMs} ms`);
      assert.match(
        (await f.recall(['status'])).stdout,
        /^detection  a difference made now is found within about \d+\.\d s \(verify every 2s, plus a full pass\)$/m,
      );
    });

    test('writes to a table switched to UNLOGGED, which decoding never sees, are found', async () => {
      await f.db.query(`CREATE TABLE public.sessions (tenant_id int NOT NULL, id int NOT NULL, data text, PRIMARY KEY (tenant_id, id))`);
      await f.db.query(`INSERT INTO public.sessions SELECT t, i, 'logged' FROM generate_series(1, 2) t, generate_series(1, 3) i`);
      await f.db.query(`ALTER TABLE public.sessions SET UNLOGGED`);
      // The switch rewrites the table; once the history holds it as it is now, every later write goes unseen.
      await waitFor('the history to hold the switched table', async () => {
        const run = await f.recall(['verify', '--table', 'public.sessions']);
        return run.code === 0;
      });
      await f.db.query(`UPDATE public.sessions SET data = 'unlogged' WHERE tenant_id = 1 AND id = 2`);
      await f.db.query(`INSERT INTO public.sessions VALUES (2, 9, 'unlogged')`);
      const verified = await f.recall(['verify', '--table', 'public.sessions', '--json']);
      assert.equal(verified.code, 3, verified.stderr);
      assert.deepStrictEqual(
        resultOf(verified.stdout)
          .differences.map((d) => `${d.kind} ${d.key.join('/')} ${(d.columns ?? []).join(',')}`)
          .sort(),
        ['differs 1/2 data', 'extra-live 2/9 '],
      );
      await f.db.query(`DROP TABLE public.sessions`);
    });

    test('bad input is refused before any work: exit 2', async () => {
      for (const args of [
        ['--max-rate', '0'],
        ['--table', 'public.nowhere'],
        ['--tenant', ''],
        ['--catch-up-timeout', 'soon'],
        ['--snapshot-rows', '-5'],
      ]) {
        const run = await f.recall(['verify', ...args]);
        assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
        assert.match(run.stderr, /^recall: /m);
      }
      for (const args of [
        ['--verify-every', '0s'],
        ['--verify-every', '40d'],
        ['--verify-every', 'often'],
        ['--verify-every', '1h', '--until-caught-up'],
      ]) {
        const run = await f.recall(['capture', ...args]);
        assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
        assert.match(run.stderr, /^recall: /m);
      }
    });
  });
}

const [newest] = testMajors('one');
describe(`recall verify without a free replication slot, PostgreSQL ${newest}`, () => {
  const { fixtures } = endAfterSuite();

  test('says what to raise, exit 1, and leaves nothing behind', async () => {
    const f = await fixture(newest!, 'CREATE TABLE public.tenants (id int PRIMARY KEY); INSERT INTO public.tenants VALUES (1);', {
      max_replication_slots: '1',
    });
    fixtures.push(f);
    assert.equal((await f.recall(['init'])).code, 0);
    const run = await f.recall(['verify']);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /^recall: verify needs a temporary replication slot .+ none free/m);
    assert.match(run.stderr, /raise max_replication_slots/);
    const { rows } = await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_replication_slots`);
    assert.equal(rows[0]!.n, 1, "only capture's slot");
  });
});
