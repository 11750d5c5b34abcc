// A vault written by the previous release (commit d739749: slot "recall", bigints and
// strings both written as `42n`, no acknowledged position, no state files) opens and
// reads as before: its tenant `42n`, its column default `7n`, its rows and changes.
// The fixture was made by that release's init and capture; it is copied before use.
// Capturing into such a vault needs its own source, so the second part makes one of
// that shape on a live server: one full manifest version lacking the new fields,
// which the first commit continues as a manifest log. `verify --vault` checks both.

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { openVault } from '../src/index.js';
import { jsonText } from '../src/vault/manifest.js';
import { checkpointPath, recordPath } from '../src/vault/manifest-log.js';
import { fixture, jsonLines, runRecall } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { witnessPath } from '../src/vault/witness.js';
import { endAfterSuite } from './harness/workload.js';

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

  test('verify --vault walks its chain and hashes its layers', async () => {
    const verified = await runRecall(['verify', '--vault', '--json'], env);
    assert.equal(verified.code, 0, verified.stderr);
    const check = JSON.parse(verified.stdout) as { manifest: unknown; layers: { checked: number }; faults: unknown[] };
    assert.deepStrictEqual(
      [check.manifest, check.layers.checked, check.faults],
      [{ legacyVersions: 2, records: 0, checkpoints: 0 }, 2, []],
    );
  });

  test('status reads it without a source', async () => {
    const status = await runRecall(['status', '--json'], env);
    assert.equal(status.code, 0, status.stderr);
    const state = JSON.parse(status.stdout) as { vault: { layers: number }; slot: unknown; missingHistory: unknown };
    assert.deepStrictEqual([state.vault.layers, state.slot, state.missingHistory], [2, null, null]);
  });
});

for (const major of testMajors('one')) {
  describe(`capture into a vault of the previous release's shape on PostgreSQL ${major}`, () => {
    const { fixtures } = endAfterSuite();

    test('keeps its slot, captures, and records what it acknowledges from then on', async () => {
      const f = await fixture(major, `CREATE TABLE tenants (id text PRIMARY KEY); INSERT INTO tenants VALUES ('acme');`);
      fixtures.push(f);
      assert.equal((await f.recall(['init', '--slot', 'recall'])).code, 0);
      // As the previous release wrote it: one full manifest version, no acknowledged position, no state files.
      const { acknowledgedLsn: _dropped, ...manifest } = (await openVault(f.vault)).manifest;
      rmSync(join(f.vault, 'manifest'), { recursive: true });
      mkdirSync(join(f.vault, 'manifest'));
      writeFileSync(join(f.vault, 'manifest', '000000000001.json'), `${jsonText({ ...manifest, previous: null }, 2)}\n`);
      rmSync(join(f.vault, 'state'), { recursive: true, force: true });
      // A vault the previous release wrote has no witness on this host: this one's, of the rewritten init, goes too.
      rmSync(witnessPath(f.vault), { force: true });

      await f.db.query(`INSERT INTO tenants VALUES ('globex')`);
      const captured = await f.recall(['capture', '--until-caught-up']);
      assert.equal(captured.code, 0, captured.stderr);
      assert.match(captured.stderr, /streaming slot "recall"/);
      const shown = await f.recall(['show', '--tenant', 'globex', '--at', 'now', '--json']);
      assert.equal(jsonLines(shown.stdout).length, 1, shown.stderr);
      const status = JSON.parse((await f.recall(['status', '--json'])).stdout) as { missingHistory: unknown; slot: { name: string } };
      assert.deepStrictEqual([status.slot.name, status.missingHistory], ['recall', null]);
      // The first commit continues 0.1.0's chain as a record, with a checkpoint, and records its acknowledged position.
      const record = JSON.parse(readFileSync(join(f.vault, recordPath(2)), 'utf8')) as { set: { acknowledgedLsn?: string } };
      assert.match(record.set.acknowledgedLsn ?? '', /^\d+n$/, 'the next flush records its acknowledged position');
      assert.ok(existsSync(join(f.vault, checkpointPath(2))), 'and writes a checkpoint at once');
      const verified = await f.recall(['verify', '--vault']);
      assert.equal(verified.code, 0, verified.stdout);
      assert.match(verified.stdout, /1 versions of release 0\.1\.0/);
    });
  });
}
