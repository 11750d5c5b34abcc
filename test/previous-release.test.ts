// A vault written by the previous release (commit d739749: slot "recall", bigints and
// strings both written as `42n`, no acknowledged position, no state files) opens and
// reads as before: its tenant `42n`, its column default `7n`, its rows and changes.
// The fixture was made by that release's init and capture; it is copied before use.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { jsonLines, runRecall } from './harness/recall.js';

const FIXTURE = resolve(import.meta.dirname, 'fixtures/vault-0.1.0-d739749');

describe('a vault of the previous release', () => {
  const directory = mkdtempSync(join(tmpdir(), 'recall-previous-'));
  const vault = join(directory, 'vault');
  cpSync(FIXTURE, vault, { recursive: true });
  after(() => rmSync(directory, { recursive: true, force: true }));
  // No source: show, log and status read the vault alone.
  const env: NodeJS.ProcessEnv = { ...process.env, RECALL_VAULT: vault, NO_COLOR: '1' };
  for (const name of Object.keys(env)) if (name.startsWith('PG') || name === 'RECALL_SOURCE' || name === 'DATABASE_URL') delete env[name];

  test('shows its rows, with the default of a column added later, and its changes', async () => {
    const shown = await runRecall(['show', '--tenant', 'acme', '--at', 'now', '--table', 'items', '--json'], env);
    assert.equal(shown.code, 0, shown.stderr);
    assert.deepStrictEqual(
      jsonLines<{ row: Record<string, string> }>(shown.stdout).map((r) => r.row),
      [
        { tenant_id: 'acme', id: '1', note: 'edited', price: '1.50', at: '2026-01-01 00:00:00+00', code: '7n' },
        { tenant_id: 'acme', id: '2', note: 'second', price: '2.00', at: '2026-01-03 00:00:00+00', code: '7n' },
      ],
    );
    const log = await runRecall(['log', '--tenant', '42n', '--json'], env);
    assert.equal(log.code, 0, log.stderr);
    assert.deepStrictEqual(
      jsonLines<{ op: string; key: string[] }>(log.stdout).map((c) => [c.op, c.key]),
      [['delete', ['42n', '1']]],
      'the tenant 42n is text, not a number',
    );
    const before = await runRecall(['show', '--tenant', '42n', '--at', 'before-txn:762', '--table', 'items', '--json'], env);
    assert.equal(jsonLines(before.stdout).length, 1, before.stderr);
  });

  test('status reads it without a source', async () => {
    const status = await runRecall(['status', '--json'], env);
    assert.equal(status.code, 0, status.stderr);
    const state = JSON.parse(status.stdout) as { vault: { layers: number }; slot: unknown; missingHistory: unknown };
    assert.deepStrictEqual([state.vault.layers, state.slot, state.missingHistory], [2, null, null]);
  });
});
