// Invariant 2 for the initial image's own path: rows read as COPY text and turned into
// layer rows by DuckDB hold exactly the key and row text JSON.stringify makes of the
// server's values (the stream's form, which reads and restores match by key), for every
// character and escape, in one- and zero-column tables, across lines longer than the
// reader's default and pieces cut anywhere, written by DuckDB's JSON functions and by
// concatenation; each layer is in layer order; wide rows fit the smallest budget.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { imageTables } from '../src/capture/image-pipeline.js';
import { imageSchema } from '../src/capture/image.js';
import { DEFAULT_TENANCY, connectSource, readCatalog, resolveSource } from '../src/source/index.js';
import { openVault, fileList, openDuckDB, queryRows } from '../src/vault/index.js';
import { fixture, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';

const SCHEMA = `
  CREATE TABLE tenants (id text PRIMARY KEY);
  CREATE TABLE odd (tenant_id text NOT NULL, k text NOT NULL, v text, n numeric, PRIMARY KEY (tenant_id, k));
  CREATE TABLE single (v text PRIMARY KEY);
  CREATE TABLE nothing ();
  ALTER TABLE nothing REPLICA IDENTITY FULL;
  INSERT INTO tenants SELECT 't' || g FROM generate_series(1, 12) g;
  -- Every character from 1 to 127 alone, in the key and the value, and in company.
  INSERT INTO odd SELECT 't' || (c % 12 + 1), 'k' || chr(c), chr(c), c FROM generate_series(1, 127) c;
  INSERT INTO odd SELECT 't1', 'mix' || c, 'a' || chr(c) || '\\' || chr(c) || 'z', -c FROM generate_series(1, 127) c;
  INSERT INTO odd VALUES
    ('t2', E'\\\\N', E'\\\\N', NULL), ('t2', 'null', NULL, NULL), ('t2', '', '', 0),
    ('t3', E'\\\\u001F', E'\\\\u001F \\\\\\\\u000B \\u000b', 1), ('t3', E'\\\\\\\\', E'\\\\t\\\\n', 2),
    ('t4', 'quote"', 'say "hi"', 3), ('t4', U&'\\FEFFbom', U&'\\FEFF', 4), ('t4', 'unicode', 'é 🌍 ' || U&'\\2028', 5),
    ('t5', 'long', repeat('0123456789', 300000), 6),
    ('t 6', 'space', ' ', 7), ('T6', 'upper', 'x', 8), ('t10', 'ten', 'y', 9);
  INSERT INTO single VALUES (''), (E'\\\\N'), ('x');
  INSERT INTO nothing DEFAULT VALUES;
  INSERT INTO nothing DEFAULT VALUES;`;

/** What the rows must be: JSON.stringify of the server's text, read with no parsing at all. */
async function truth(f: Fixture): Promise<string[]> {
  const client = await connectSource(resolveSource(f.cluster.url()));
  try {
    const lines: string[] = [];
    for (const table of await readCatalog(client, DEFAULT_TENANCY)) {
      const { rows } = await client.query<Record<string, string | null>>({
        text: `SELECT * FROM ${table.sql}`,
        types: { getTypeParser: () => (value: string) => value },
      });
      for (const row of rows) {
        const tenant = table.tenantColumn === undefined ? null : (row[table.tenantColumn] ?? null);
        const key = JSON.stringify(table.key.map((name) => row[name] ?? null));
        lines.push(JSON.stringify([table.qualified, tenant, key, JSON.stringify(row)]));
      }
    }
    return lines.sort();
  } finally {
    await client.end();
  }
}

/** The image rows of the given layer files, in the same form, and whether each file is in layer order (byte order, nulls last). */
async function imaged(files: readonly string[]): Promise<{ lines: string[]; ordered: boolean }> {
  const instance = await DuckDBInstance.create(':memory:');
  const duck = await instance.connect();
  try {
    const rows = await queryRows(
      duck,
      `SELECT filename, file_row_number, "table", tenant, "key", "row" FROM read_parquet(${fileList(files)}, filename = true, file_row_number = true)
        ORDER BY filename, file_row_number`,
    );
    let ordered = true;
    for (let i = 1; i < rows.length; i++) {
      const [a, b] = [rows[i - 1], rows[i]];
      if (a === undefined || b === undefined || a.filename !== b.filename) continue;
      const order =
        compare(a.tenant as string | null, b.tenant as string | null) ||
        compare(a.table as string, b.table as string) ||
        compare(a.key as string, b.key as string);
      if (order > 0) ordered = false;
    }
    return { lines: rows.map((row) => JSON.stringify([row.table, row.tenant, row.key, row.row])).sort(), ordered };
  } finally {
    duck.closeSync();
  }
}

function compare(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

for (const major of testMajors('one')) {
  describe(`the image's COPY text path on PostgreSQL ${major}`, () => {
    let f: Fixture;
    before(async () => {
      f = await fixture(major, SCHEMA);
    });
    after(async () => f?.close());

    test('recall init stores every row as JSON.stringify would, in layer order', async () => {
      const run = await f.recall(['init']);
      assert.equal(run.code, 0, run.stderr);
      const vault = await openVault(f.vault);
      const layers = vault.manifest.layers.map((layer) => join(f.vault, layer.path));
      const { lines, ordered } = await imaged(layers);
      assert.deepStrictEqual(lines, await truth(f));
      assert.ok(ordered, 'every layer is sorted by tenant, table and key');
    });

    // Lines longer than these pieces: their JSON is written by concatenation.
    test('pieces cut inside a table meet at a line end and lose nothing', async () => {
      const vault = await openVault(join(f.vault, '..', 'pieces'));
      const reader = await connectSource(resolveSource(f.cluster.url()));
      const duck = await openDuckDB(await vault.storage.scratchDirectory());
      try {
        await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const targets = (await readCatalog(reader, DEFAULT_TENANCY)).map((table, id) => ({ table, schema: imageSchema(table, id, 1n) }));
        const image = await imageTables(reader, duck, vault.storage, targets, { lsn: 1n, micros: 0n }, { pieceBytes: 300 });
        // A piece ends at the last line end of the chunk that fills it: here one inside public.odd.
        assert.ok(image.layers.length >= 3, `pieces: ${image.layers.length}`);
        assert.equal(image.rows.get('public.odd'), 266);
        const { lines, ordered } = await imaged(image.layers.map((layer) => join(f.vault, '..', 'pieces', layer.path)));
        assert.deepStrictEqual(lines, await truth(f));
        assert.ok(ordered);
      } finally {
        duck.closeSync();
        await reader.end();
      }
    });
  });
}

const WIDE = `
  CREATE TABLE tenants (id text PRIMARY KEY);
  CREATE TABLE wide (tenant_id text NOT NULL, id int NOT NULL, body text, PRIMARY KEY (tenant_id, id));
  INSERT INTO tenants SELECT 't' || g FROM generate_series(1, 4) g;
  INSERT INTO wide SELECT 't' || (g % 4 + 1), g, repeat(md5(g::text), 3125) FROM generate_series(1, 400) g;
  INSERT INTO wide VALUES ('t1', 0, repeat(E'x\\t"', 1000000));`;

for (const major of testMajors('one')) {
  describe(`the image of wide rows on PostgreSQL ${major}`, () => {
    let f: Fixture;
    before(async () => {
      f = await fixture(major, WIDE);
    });
    after(async () => f?.close());

    test('40 MB of 100 KB rows and a 3 MB value, imaged exactly within a 128 MiB budget', async () => {
      const run = await f.recall(['init', '--memory-limit', '128MiB']);
      assert.equal(run.code, 0, run.stderr);
      const vault = await openVault(f.vault);
      const { lines, ordered } = await imaged(vault.manifest.layers.map((layer) => join(f.vault, layer.path)));
      assert.deepStrictEqual(lines, await truth(f));
      assert.ok(ordered);
    });
  });
}
