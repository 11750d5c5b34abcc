// COPY text must be exactly what PostgreSQL's COPY FROM reads back: the SQL escaping
// (copyFieldSql) is checked against the Node one (copyField) on every character COPY's
// text format treats specially, in a real embedded DuckDB; stored rows rendered from
// their JSON's bytes (TargetLines) are read back by a real PostgreSQL, whatever the
// piece boundaries. The round trip of every type is in types.test.ts (restore).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { copyField, copyFieldSql } from '../src/restore/copy-text.js';
import { TargetLines } from '../src/restore/target-lines.js';
import { startCluster } from '../src/sandbox/index.js';
import { openDuckDB, queryRows, type Manifest, type SchemaVersion } from '../src/vault/index.js';

const VALUES = [
  'plain',
  '',
  'back\\slash',
  '\\N',
  'line\nbreak',
  'carriage\rreturn',
  'tab\tseparated',
  'all \\ \n \r \t at once\\',
  '\\x00ff (bytea text)',
  'unicode é 🌍',
  `quotes ' and "`,
];

describe('COPY text rendered by DuckDB', () => {
  let duck: DuckDBConnection;
  const scratch = mkdtempSync(join(tmpdir(), 'recall-copy-text-'));
  before(async () => {
    duck = await openDuckDB(scratch);
  });
  after(() => {
    duck.closeSync();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('escapes every special character as copyField does, and NULL as \\N', async () => {
    for (const value of VALUES) {
      const [row] = await queryRows(duck, `SELECT ${copyFieldSql('$1::VARCHAR')} AS field`, [value]);
      assert.equal(row?.field, copyField(value), `value ${JSON.stringify(value)}`);
    }
    const [nullRow] = await queryRows(duck, `SELECT ${copyFieldSql('NULL::VARCHAR')} AS field`);
    assert.equal(nullRow?.field, '\\N');
    assert.equal(copyField(null), '\\N');
  });
});

/** Values COPY's text format or JSON's escapes treat specially, and characters of every UTF-8 length. */
const STORED = [
  ...VALUES,
  '\u0001 and \u001f',
  'del \u007f',
  'ends with a backslash\\',
  'a quote at the end"',
  '\\" a backslash, then a quote',
  'é€日本🙂ß',
  'line separator \u2028',
  'a\\u0041 (a backslash, then u0041)',
  'x'.repeat(3000),
];

describe('stored rows rendered as COPY text in Node', () => {
  const columns = STORED.map((_, i) => `c${i}`);
  const shape = { name: 'public.t', columns: ['id', ...columns], key: ['id'] };
  const layout: SchemaVersion = {
    id: 0,
    table: 'public.t',
    sinceLsn: 0n,
    columns: shape.columns.map((name, i) => ({ name, type: 'text', attnum: i + 1 })),
    key: ['id'],
    tenantColumn: null,
  };
  const reader = { manifest: { schemas: [layout] } as unknown as Manifest, layoutAt: () => layout };
  const rows = Array.from({ length: 40 }, (_, n) => ({
    id: String(n),
    ...Object.fromEntries(columns.map((name, i) => [name, n % 5 === i % 5 ? null : (STORED[(i + n) % STORED.length] ?? null)])),
  }));
  // As DuckDB exports them: schema id, tenant and later change (COPY fields), key JSON, row JSON (empty: absent).
  const exported = Buffer.from(
    rows
      .map((row, n) => `0\t${copyField(`tenant\t${n}`)}\t\\N\t${JSON.stringify([row.id])}\t${n % 7 === 3 ? '' : JSON.stringify(row)}\n`)
      .join(''),
  );
  const render = (pieces: readonly Buffer[]): Buffer => {
    const lines = new TargetLines(reader, shape, 0n);
    const out = pieces.map((piece) => lines.push(piece).text);
    lines.end();
    return Buffer.concat(out);
  };

  test('PostgreSQL reads the rendered lines back as the stored values, absent keys as the key alone', async () => {
    const cluster = await startCluster();
    const db = new pg.Client({ connectionString: cluster.url() });
    try {
      await db.connect();
      await db.query(`CREATE TABLE t (id text, ${columns.map((c) => `${c} text`).join(', ')}, present boolean, grp text, later text)`);
      const copy = db.query(copyFrom('COPY t FROM STDIN'));
      copy.end(render([exported]));
      await new Promise((resolve, reject) => copy.on('finish', resolve).on('error', reject));
      const { rows: back } = await db.query<Record<string, string | null>>('SELECT * FROM t ORDER BY id::int');
      back.forEach((row, n) => {
        const absent = n % 7 === 3;
        const expected = absent ? { ...Object.fromEntries(columns.map((c) => [c, null])), id: String(n) } : rows[n];
        assert.deepStrictEqual(
          { ...row, present: undefined, grp: undefined, later: undefined },
          { ...expected, present: undefined, grp: undefined, later: undefined },
        );
        assert.deepStrictEqual([row.present, row.grp, row.later], [!absent, `tenant\t${n}`, null]);
      });
    } finally {
      await db.end();
      await cluster.destroy();
    }
  });

  test('pieces cut anywhere, inside a line or a UTF-8 character, render the same text', () => {
    const whole = render([exported]);
    for (let cut = 1; cut < exported.length; cut += 97) {
      assert.ok(render([exported.subarray(0, cut), exported.subarray(cut)]).equals(whole), `cut at byte ${cut}`);
    }
    assert.ok(render(Array.from({ length: exported.length }, (_, i) => exported.subarray(i, i + 1))).equals(whole), 'a byte at a time');
  });

  test('rows of an older layout take the current one: renamed columns by attnum, added ones their default; JSON of another writer is parsed', () => {
    const old: SchemaVersion = {
      id: 0,
      table: 'public.u',
      sinceLsn: 0n,
      columns: [
        { name: 'id', type: 'int4', attnum: 1 },
        { name: 'old name', type: 'text', attnum: 2 },
        { name: 'dropped', type: 'text', attnum: 3 },
      ],
      key: ['id'],
      tenantColumn: null,
    };
    const current: SchemaVersion = {
      ...old,
      id: 1,
      sinceLsn: 10n,
      columns: [
        { name: 'id', type: 'int4', attnum: 1 },
        { name: 'new "name"', type: 'text', attnum: 2 },
        { name: 'added', type: 'text', attnum: 4, missing: 'a\tdefault' },
      ],
    };
    const lines = new TargetLines(
      { manifest: { schemas: [old, current] } as unknown as Manifest, layoutAt: () => current },
      { name: 'public.u', columns: ['id', 'new "name"', 'added'], key: ['id'] },
      10n,
    );
    const text = [
      `0\tt1\t\\N\t["1"]\t${JSON.stringify({ id: '1', 'old name': 'x', dropped: 'gone' })}`,
      `1\tt1\t\\N\t["2"]\t${JSON.stringify({ id: '2', 'new "name"': 'y', added: null })}`,
      `1\tt1\t\\N\t[ "3" ]\t{ "id": "3", "new \\"name\\"": 4, "added": "z" }`,
      `1\tt1\t{"op":"update"}\t[ "4" ]\t`,
    ].join('\n');
    const { text: rendered, rows } = lines.push(Buffer.from(`${text}\n`));
    assert.equal(rows, 4);
    assert.deepStrictEqual(rendered.toString().split('\n'), [
      '1\tx\ta\\tdefault\tt\tt1\t\\N',
      '2\ty\t\\N\tt\tt1\t\\N',
      '3\t4\tz\tt\tt1\t\\N',
      '4\t\\N\t\\N\tf\tt1\t{"op":"update"}',
      '',
    ]);
  });
});
