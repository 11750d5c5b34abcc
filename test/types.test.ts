// Invariant 2 for values: every built-in type round-trips exactly, byte for byte
// in PostgreSQL's text form, whether it came from the initial image or the stream,
// and a TOASTed value an UPDATE leaves unchanged keeps its value; a restore writes
// every one of them back exactly.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fixture, jsonLines, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

const SCHEMA = `
  CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy 😀');
  CREATE DOMAIN positive AS numeric CHECK (VALUE > 0);
  CREATE TABLE tenants (id text PRIMARY KEY);
  CREATE TABLE "Typed Values" (
    tenant_id text NOT NULL, id int NOT NULL,
    n numeric, f4 real, f8 double precision, i8 bigint, b boolean, m money,
    ts timestamp, tstz timestamptz, d date, t time, ttz timetz, iv interval,
    js json, jsb jsonb, ta text[], ia int[], bytes bytea, u uuid, ip inet, net cidr, mac macaddr,
    e mood, dom positive, r int4range, tr tstzrange, txt text, vc varchar(10), ch char(3),
    bits varbit, pt point, tsv tsvector, big text,
    PRIMARY KEY (tenant_id, id));
  ALTER TABLE "Typed Values" ALTER COLUMN big SET STORAGE EXTERNAL;
  CREATE TABLE "Odd Names" (tenant_id text NOT NULL, "__proto__" text, "10" text, "2" int PRIMARY KEY,
    "quote""d" text, constructor text);
  INSERT INTO "Odd Names" VALUES ('t1', 'image', 'one', 1, 'i', 'j');
  INSERT INTO tenants VALUES ('t1');`;

/** Rows of edge values; `big` is a value large enough to be TOASTed out of line. */
const VALUES = `
  ('t1', ID, 'NaN', 'NaN', 'Infinity', -9223372036854775808, true, '-92233720368547758.08',
   '0001-01-01 00:00:00', '2026-11-20 09:46:00.123456+05:30', 'infinity', '24:00:00', '23:59:59.999999-12', '-1 year 2 mons -3 days 04:05:06.789',
   '{ "b" : 1,  "a" : [1, 2] }', '{"b": 1, "a": {"z": null, "y": "\\u00e9"}}', ARRAY['a"b', NULL, '', 'x,y', 'NULL', E'back\\\\slash'], '{{1,2},{3,NULL}}',
   '\\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2001:db8::1/64', '10.0.0.0/8', '08:00:2b:01:02:03',
   'happy 😀', 0.000000000000000000000000000001, '[1,10)', '[2026-01-01 00:00:00+00,infinity)', E'unicode é 🌍\\ttab\\nnewline', '', 'ab',
   B'10101', '(1.5,-2.25)', 'a fat cat:1A sat', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 3000) g)),
  ('t1', ID + 1, '12345678901234567890.123456789012345', '-0', '1e-308', 0, false, '0',
   '2026-02-28 23:59:59.999999', '-infinity', '2024-02-29', '00:00:00', '00:00:00+00', '0',
   'null', '[]', '{}', '{}', '\\x', '00000000-0000-0000-0000-000000000000', '0.0.0.0', '::/0', '00:00:00:00:00:00',
   'sad', 1, 'empty', 'empty', NULL, NULL, NULL,
   B'', '(0,0)', '', NULL),
  ('t1', ID + 2, '-0.00', '3.4028235e38', '2.2250738585072014e-308', 9223372036854775807, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, ARRAY[NULL]::text[], NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, ' ', 'x', NULL, NULL, NULL, NULL, NULL)`;

const TEXT_SETTINGS = `SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres';
  SET extra_float_digits = 3; SET bytea_output = 'hex'; SET lc_monetary = 'C'`;

/** Ground truth: the server's own output functions, read as raw text (no driver parsing, no casts). */
async function truth(f: Fixture): Promise<Record<string, string | null>[]> {
  await f.db.query(TEXT_SETTINGS);
  const { rows } = await f.db.query<Record<string, string | null>>({
    text: 'SELECT * FROM "Typed Values" ORDER BY id',
    types: { getTypeParser: () => (value: string) => value },
  });
  return rows;
}

for (const major of testMajors('all')) {
  describe(`type round-trip on PostgreSQL ${major}`, () => {
    let f: Fixture;
    before(async () => {
      f = await fixture(major, `${SCHEMA}; INSERT INTO "Typed Values" VALUES ${VALUES.replaceAll('ID', '1')};`);
    });
    after(async () => f?.close());

    test('values from the image and from the stream read back exactly', async () => {
      assert.equal((await f.recall(['init'])).code, 0);
      // Through the stream: the same edge values, then an update that leaves the TOASTed column unchanged.
      await f.db.query(`INSERT INTO "Typed Values" VALUES ${VALUES.replaceAll('ID', '11')}`);
      await f.db.query(`UPDATE "Typed Values" SET txt = 'touched' WHERE id IN (1, 11)`);
      await f.db.query(`UPDATE "Typed Values" SET n = 42 WHERE id = 11`);
      const captured = await f.recall(['capture', '--until-caught-up']);
      assert.equal(captured.code, 0, captured.stderr);

      const shown = await f.recall(['show', '--tenant', 't1', '--at', 'now', '--table', '"Typed Values"', '--json']);
      assert.equal(shown.code, 0, shown.stderr);
      const rows = jsonLines<{ table: string; row: Record<string, string | null> }>(shown.stdout);
      assert.ok(rows.every((r) => r.table === 'public."Typed Values"'));
      const expected = await truth(f);
      assert.equal(rows.length, expected.length);
      const big = rows.find((r) => r.row.id === '11')?.row.big ?? '';
      rows.forEach((r, i) => {
        const { big: shownBig, ...shownRest } = r.row;
        const { big: trueBig, ...trueRest } = expected[i] ?? {};
        assert.deepStrictEqual(shownRest, trueRest, `row ${i}`);
        assert.ok(shownBig === trueBig, `row ${i}: the large TOASTed value differs`);
      });
      assert.equal(big.length, 96_000, 'the unchanged TOASTed value was filled from its previous version');
    });

    test('column names a JavaScript object would reorder or swallow keep their values', async () => {
      await f.db.query(`INSERT INTO "Odd Names" VALUES ('t1', 'p', 'ten', 2, 'q', 'c'), ('t1', NULL, '', 3, 'r', 's')`);
      await f.db.query(`UPDATE "Odd Names" SET "__proto__" = 'p2' WHERE "2" = 2`);
      // A later column: every row is then read in a layout other than the one it was written in.
      await f.db.query(`ALTER TABLE "Odd Names" ADD COLUMN later text DEFAULT 'd'`);
      const captured = await f.recall(['capture', '--until-caught-up']);
      assert.equal(captured.code, 0, captured.stderr);
      const shown = await f.recall(['show', '--tenant', 't1', '--at', 'now', '--table', '"Odd Names"', '--json']);
      assert.equal(shown.code, 0, shown.stderr);
      const rows = jsonLines<{ row: Record<string, string | null> }>(shown.stdout).map((r) => r.row);
      const own = (row: Record<string, string | null> | undefined) =>
        Object.fromEntries(Object.entries(row ?? {}).sort(([a], [b]) => a.localeCompare(b)));
      assert.deepStrictEqual(
        rows.map(own).sort((a, b) => Number(a['2']) - Number(b['2'])),
        [
          { '10': 'one', '2': '1', ['__proto__']: 'image', constructor: 'j', 'quote"d': 'i', tenant_id: 't1', later: 'd' },
          { '10': 'ten', '2': '2', ['__proto__']: 'p2', constructor: 'c', 'quote"d': 'q', tenant_id: 't1', later: 'd' },
          { '10': '', '2': '3', ['__proto__']: null, constructor: 's', 'quote"d': 'r', tenant_id: 't1', later: 'd' },
        ].map(own),
      );
    });

    test("a restore writes every value back exactly (COPY of the vault's text)", async () => {
      const before = await truth(f);
      const point = new Date().toISOString();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await f.db.query(`UPDATE "Typed Values" SET n = 0, jsb = '{}', ta = NULL, big = 'x', tstz = now() WHERE id % 2 = 1`);
      await f.db.query(`DELETE FROM "Typed Values" WHERE id % 2 = 0`);
      const restored = await f.recall(['restore', '--tenant', 't1', '--to', point, '--yes']);
      assert.equal(restored.code, 0, restored.stderr);
      const after = await truth(f);
      assert.equal(after.length, before.length);
      after.forEach((row, i) => assert.deepStrictEqual(row, before[i], `row ${i}`));
    });

    test('verify reads every value equal to the history: no false alarm on any type or column name', async () => {
      // The rows came from the image, the stream (a TOASTed value left unchanged among them), a later
      // column's default and a restore: each compares by its exact text form.
      const verified = await f.recall(['verify', '--json']);
      assert.equal(verified.code, 0, verified.stdout + verified.stderr);
      const result = JSON.parse(verified.stdout) as { differences: unknown[]; tables: number; rows: number };
      assert.deepStrictEqual(result.differences, []);
      assert.equal(result.tables, 3);
      assert.ok(result.rows >= 10, `${result.rows} rows compared`);
    });
  });
}
