// Capture of real data sizes under a small memory budget: rows of 1.3 to 9 KB
// (text of 200–8,000 bytes, numeric, timestamptz, jsonb), composite keys with the
// tenant first, a foreign key to another tenant's rows, and values of 1 MB stored
// out of line. Single transactions of 30,000 and 200,000 inserts, 30,000 updates
// (some leaving a 1 MB value unchanged, so it must come from history), 30,000
// deletes, 12,000 updates and deletes of rows whose 3 KB values stay out of line,
// and a TRUNCATE of everything are each captured exactly, within the budget.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { fixture, runRecallMeasured, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

const BUDGET = 128 * 1024 * 1024;

const SCHEMA = `
  CREATE TABLE tenants (id int PRIMARY KEY, name text NOT NULL);
  INSERT INTO tenants SELECT g, 'tenant ' || g FROM generate_series(1, 4) g;
  CREATE TABLE items (tenant_id int NOT NULL REFERENCES tenants, id bigint NOT NULL, a text, b text, c text,
                      price numeric(12,2), at timestamptz, doc jsonb, PRIMARY KEY (tenant_id, id));
  CREATE TABLE links (tenant_id int NOT NULL REFERENCES tenants, id bigint NOT NULL, item_tenant int NOT NULL, item_id bigint NOT NULL,
                      note text, PRIMARY KEY (tenant_id, id), FOREIGN KEY (item_tenant, item_id) REFERENCES items);
  CREATE TABLE docs (tenant_id int NOT NULL REFERENCES tenants, id int NOT NULL, title text, body text, PRIMARY KEY (tenant_id, id));
  ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
  INSERT INTO docs SELECT 1 + g % 4, g, 'doc ' || g, (SELECT string_agg(md5((g * 100000 + i)::text), '') FROM generate_series(1, 32768) i)
    FROM generate_series(1, 3) g;
  CREATE TABLE notes (tenant_id int NOT NULL REFERENCES tenants, id int NOT NULL, title text, body text, PRIMARY KEY (tenant_id, id));
  ALTER TABLE notes ALTER COLUMN body SET STORAGE EXTERNAL;
  INSERT INTO notes SELECT 1 + g % 4, g, 'note ' || g, repeat(md5(g::text), 100) FROM generate_series(1, 12000) g;`;

/** Inserts items [from, to) spread over the tenants: about 1.3 KB each, every 20th 9 KB. */
const insertItems = (from: number, to: number): string => `
  INSERT INTO items SELECT 1 + g % 4, g, repeat(md5(g::text), 7), repeat(md5((g + 1)::text), 32),
                           CASE WHEN g % 20 = 0 THEN repeat(md5((g + 2)::text), 250) END,
                           g * 1.25, timestamptz '2026-01-01 00:00:00+00' + g * interval '1.000001 second',
                           jsonb_build_object('n', g, 'tags', jsonb_build_array('x', 'y'), 'note', 'ünïcode ' || g)
    FROM generate_series(${from}, ${to - 1}) g`;

/** Text columns of each table, in order, to digest the same rows on both sides. */
const COLUMNS: Readonly<Record<string, readonly string[]>> = {
  items: ['tenant_id', 'id', 'a', 'b', 'c', 'price', 'at', 'doc'],
  links: ['tenant_id', 'id', 'item_tenant', 'item_id', 'note'],
  docs: ['tenant_id', 'id', 'title', 'body'],
  notes: ['tenant_id', 'id', 'title', 'body'],
};

for (const major of testMajors('all')) {
  describe(`capture of wide rows in a ${BUDGET / 1024 / 1024} MB budget on PostgreSQL ${major}`, () => {
    let f: Fixture | undefined;
    let duck: DuckDBConnection | undefined;
    after(async () => {
      duck?.closeSync();
      await f?.close();
    });

    /** Captures until caught up in the budget; returns the peak RSS. */
    const capture = async (): Promise<number> => {
      const run = await runRecallMeasured(['capture', '--until-caught-up', '--memory-limit', `${BUDGET / 1024 / 1024}MiB`], f!.env);
      assert.equal(run.code, 0, run.stderr);
      return run.peakRssBytes;
    };

    /** A digest of a table's rows: from the database, and from the vault's newest version of each key. */
    const digests = async (table: string): Promise<{ live: string; vault: string; rows: number }> => {
      const columns = COLUMNS[table]!;
      const live = await f!.db.query<{ d: string | null; n: string }>(
        `SELECT md5(string_agg(d, ',' ORDER BY d)) AS d, count(*)::text AS n
           FROM (SELECT md5(concat_ws(chr(31), ${columns.map((c) => `coalesce(${c}::text, '\\N')`).join(', ')})) AS d FROM ${table}) t`,
      );
      duck ??= await (await DuckDBInstance.create(':memory:')).connect();
      const reader = await duck.runAndReadAll(
        `SELECT md5(string_agg(d, ',' ORDER BY d)) AS d FROM (
           SELECT md5(concat_ws(chr(31), ${columns.map((c) => `coalesce(json_extract_string("row", '$.${c}'), '\\N')`).join(', ')})) AS d
             FROM (SELECT *, row_number() OVER (PARTITION BY "key" ORDER BY commit_lsn DESC, seq DESC) AS newest
                     FROM read_parquet('${f!.vault}/layers/*/*.parquet') WHERE "table" = 'public.${table}')
            WHERE newest = 1 AND op NOT IN ('delete', 'truncate'))`,
      );
      const vault = reader.getRowObjectsJson()[0]?.d as string | null;
      return { live: live.rows[0]?.d ?? 'empty', vault: vault ?? 'empty', rows: Number(live.rows[0]?.n) };
    };

    const assertExact = async (): Promise<void> => {
      for (const table of Object.keys(COLUMNS)) {
        const { live, vault } = await digests(table);
        assert.equal(vault, live, `public.${table}: the vault's newest rows differ from the database's`);
      }
    };

    const peaks: number[] = [];

    test('setup: init in the budget', async () => {
      f = await fixture(major, SCHEMA);
      // Text forms as the walsender renders them (Recall pins these settings).
      await f.db.query(`SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET extra_float_digits = 3`);
      const init = await f.recall(['init', '--memory-limit', '128MiB']);
      assert.equal(init.code, 0, init.stderr);
    });

    test('one transaction of 30,000 inserts, with references to another tenant', async () => {
      await f!.db.query(`BEGIN; ${insertItems(1, 30_001)};
        INSERT INTO links SELECT 1, g, 2, g * 4 + 1, 'points at tenant 2' FROM generate_series(1, 5000) g; COMMIT`);
      peaks.push(await capture());
      await assertExact();
    });

    test('one transaction of 200,000 inserts (about 340 MB of row text)', async () => {
      await f!.db.query(insertItems(30_001, 230_001));
      peaks.push(await capture());
      await assertExact();
    });

    test('one transaction of 30,000 updates, some leaving a 1 MB value unchanged (twice over)', async () => {
      await f!.db.query(`BEGIN;
        UPDATE items SET price = price + 1, b = upper(b) WHERE id BETWEEN 100000 AND 129999;
        UPDATE docs SET title = title || ' (edited)';
        UPDATE docs SET title = title || ' (again)' WHERE id = 1;
        COMMIT`);
      peaks.push(await capture());
      await assertExact();
    });

    test('one transaction of 30,000 deletes, each completed from history', async () => {
      await f!.db.query(`DELETE FROM items WHERE id BETWEEN 150000 AND 179999`);
      peaks.push(await capture());
      await assertExact();
      const deletes = await duck!.runAndReadAll(
        `SELECT count(*) FILTER (WHERE "row" IS NOT NULL AND tenant IS NOT NULL) AS complete, count(*) AS n
           FROM read_parquet('${f!.vault}/layers/*/*.parquet') WHERE op = 'delete' AND "table" = 'public.items'`,
      );
      assert.deepStrictEqual(deletes.getRowObjectsJson()[0], { complete: '30000', n: '30000' });
    });

    test('12,000 updates leaving a 3 KB value unchanged, then half of them again, then deletes of a third, caught up together', async () => {
      // Many values of a few KB: each chunk takes its values in Node, never through DuckDB's
      // JSON functions, which hold many times a vector's text (this ran out of memory there).
      await f!.db.query(`UPDATE notes SET title = title || ' (edited)'`);
      await f!.db.query(`UPDATE notes SET title = title || ' (again)' WHERE id % 2 = 0`);
      await f!.db.query(`DELETE FROM notes WHERE id % 3 = 0`);
      peaks.push(await capture());
      await assertExact();
    });

    test('a TRUNCATE of every row (200,000 wide rows and three 1 MB values) is expanded into its removed rows', async () => {
      const before = (await digests('items')).rows;
      await f!.db.query(`TRUNCATE items, links, docs`);
      peaks.push(await capture());
      await assertExact();
      const truncated = await duck!.runAndReadAll(
        `SELECT count(*) AS n, count(*) FILTER (WHERE "table" = 'public.docs' AND length(json_extract_string("row", '$.body')) = 1048576) AS docs
           FROM read_parquet('${f!.vault}/layers/*/*.parquet') WHERE op = 'truncate' AND "table" IN ('public.items', 'public.docs')`,
      );
      assert.deepStrictEqual(truncated.getRowObjectsJson()[0], { n: String(before + 3), docs: '3' });
    });

    test('capture stayed within its budget throughout', () => {
      // DuckDB's native memory and Node's runtime come on top of what Recall accounts for;
      // the bound is generous but far below the data each transaction put in play.
      const peak = Math.max(...peaks);
      console.log(`peak RSS per capture (MiB): ${peaks.map((p) => Math.round(p / 2 ** 20)).join(', ')}`);
      assert.ok(peak < 3 * BUDGET, `peak RSS ${Math.round(peak / 2 ** 20)} MiB is above 3× the ${BUDGET / 2 ** 20} MiB budget`);
    });
  });
}
