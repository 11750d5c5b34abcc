// COPY text rendered in DuckDB must be exactly what PostgreSQL's COPY FROM reads
// back: the SQL escaping (copyFieldSql) is checked against the Node one (copyField)
// on every character COPY's text format treats specially, in a real embedded DuckDB.
// The round trip through PostgreSQL itself is in types.test.ts (restore of every type).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { copyField, copyFieldSql } from '../src/restore/copy-text.js';
import { openDuckDB, queryRows } from '../src/vault/index.js';

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
