// The manifest log on a real vault directory: records and checkpoints round-trip to
// the state callers see; a second writer is refused; over thousands of commits the
// bytes a commit writes and the bytes opening reads stay flat; and tampering with the
// newest record, an older record, the middle of the chain or a checkpoint is caught,
// by opening where it reads the file and by `recall verify --vault` (exit 3, naming it).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Vault, openVault, verifyVault } from '../src/index.js';
import { collectGarbage, planGc } from '../src/vault/index.js';
import { VaultConflictError, VaultCorruptError } from '../src/errors.js';
import { fsStorage } from '../src/vault/fs-storage.js';
import { CHECKPOINT_RECORDS, checkpointPath, openManifest, POINTER_PATH, recordPath } from '../src/vault/manifest-log.js';
import { runRecall } from './harness/recall.js';
import { countingStorage, syntheticDraft } from './harness/synthetic-commits.js';
import { witnessPath } from '../src/vault/witness.js';

const FIXTURE = resolve(import.meta.dirname, 'fixtures/vault-0.1.0-d739749');
const scratch = mkdtempSync(join(tmpdir(), 'recall-manifest-log-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let copies = 0;

async function commits(vault: Vault, from: number, to: number): Promise<void> {
  for (let n = from; n <= to; n++) await vault.commit(syntheticDraft(vault, n));
}

/** Total bytes of the manifest's files. */
function manifestBytes(directory: string): number {
  const walk = (path: string): number =>
    readdirSync(path, { withFileTypes: true }).reduce((sum, entry) => {
      const child = join(path, entry.name);
      return sum + (entry.isDirectory() ? walk(child) : statSync(child).size);
    }, 0);
  return walk(join(directory, 'manifest'));
}

/** What opening the vault reads. */
async function openCost(directory: string): Promise<{ reads: number; bytesRead: number; lists: number; namesListed: number }> {
  const { storage, counts } = countingStorage(fsStorage(directory));
  await openManifest(storage);
  return counts;
}

/** A fresh copy of a vault directory to damage. */
function copyOf(directory: string): string {
  const copy = join(scratch, `copy-${++copies}`);
  cpSync(directory, copy, { recursive: true });
  return copy;
}

async function openFails(directory: string, pattern: RegExp): Promise<void> {
  await assert.rejects(openVault(directory), (error: unknown) => {
    assert.ok(error instanceof VaultCorruptError, String(error));
    assert.match(error.message, pattern);
    return true;
  });
}

/** `recall verify --vault` exits 3 and names each file in a fault line. */
async function verifyFinds(directory: string, files: readonly string[]): Promise<void> {
  const run = await runRecall(['verify', '--vault', directory], { ...process.env, NO_COLOR: '1' });
  assert.equal(run.code, 3, run.stderr);
  for (const file of files) assert.match(run.stdout, new RegExp(`^fault +${file.replaceAll('.', '\\.')}: `, 'm'), run.stdout);
  assert.match(run.stderr, /^recall: the vault .+ has \d+ faults?, in /m);
}

/** Rewrites a sealed JSON file through `edit`, keeping its old seal (a naive edit) or sealing it again (a deliberate one). */
function editSealed(path: string, edit: (body: Record<string, unknown>) => void, reseal: boolean): void {
  const { seal, ...body } = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  edit(body);
  const text = JSON.stringify(body);
  const newSeal = reseal ? createHash('sha256').update(text).digest('hex') : seal;
  writeFileSync(path, `${text.slice(0, -1)},"seal":"${String(newSeal)}"}\n`);
}

describe('the manifest log', () => {
  const base = join(scratch, 'base');
  const TOTAL = 250;
  before(async () => {
    const vault = await openVault(base);
    await commits(vault, 1, TOTAL);
  });

  test('records fold to the state the writer holds; checkpoints at 1, then every 100 records, named by the pointer', async () => {
    const writer = await openVault(base);
    const reopened = await openVault(base);
    assert.deepStrictEqual(reopened.manifest, writer.manifest);
    assert.equal(reopened.manifest.version, TOTAL);
    assert.deepStrictEqual(readdirSync(join(base, 'manifest', 'checkpoints')), [
      '000000000001.json',
      '000000000101.json',
      '000000000201.json',
    ]);
    assert.equal((JSON.parse(readFileSync(join(base, POINTER_PATH), 'utf8')) as { version: number }).version, 201);
    // A record holds only what changed: one layer added, the LSNs.
    const record = JSON.parse(readFileSync(join(base, recordPath(TOTAL - 1)), 'utf8')) as Record<string, unknown>;
    assert.deepStrictEqual(Object.keys(record.set as object).sort(), ['acknowledgedLsn', 'throughLsn', 'throughTime']);
    assert.equal((record.addLayers as unknown[]).length, 1);
    assert.deepStrictEqual([record.removeLayers, record.putSchemas], [[], []]);
    const check = await verifyVault(base);
    assert.deepStrictEqual(
      check.faults.filter((fault) => !/^layers\/delta\/.+ is missing/.test(`${fault.file} ${fault.problem}`)),
      [],
      'no fault but the synthetic layers, which have no files',
    );
    assert.deepStrictEqual(check.manifest, { legacyVersions: 0, records: TOTAL, checkpoints: 3 });
  });

  test('without the pointer, opening finds the newest checkpoint by listing the checkpoints', async () => {
    const copy = copyOf(base);
    unlinkSync(join(copy, POINTER_PATH));
    assert.deepStrictEqual((await openVault(copy)).manifest, (await openVault(base)).manifest);
  });

  test('retention prunes the versions before the horizon: the chain starts at a checkpoint, and a deletion outside Recall stays a fault', async () => {
    const copy = copyOf(base);
    const vault = await openVault(copy);
    // Every version so far is older than a horizon of now; the newest checkpoint at or before it is 201.
    const plan = await planGc(vault, 3_600_000, { ms: 1, text: '1ms' }, Date.now() + 1);
    assert.deepStrictEqual(plan.manifest, { from: 1, to: 201 });
    await collectGarbage(vault, plan);
    assert.deepStrictEqual(readdirSync(join(copy, 'manifest', 'checkpoints')), ['000000000201.json']);
    assert.ok(!existsSync(join(copy, recordPath(200))) && existsSync(join(copy, recordPath(201))));
    const pruned = await openVault(copy);
    assert.equal(pruned.manifest.prunedBefore, 201);
    assert.deepStrictEqual(
      { ...pruned.manifest, prunedBefore: undefined, version: 0, previous: null, createdAt: '' },
      {
        ...(await openVault(base)).manifest,
        prunedBefore: undefined,
        version: 0,
        previous: null,
        createdAt: '',
      },
    );
    const check = await verifyVault(copy);
    assert.deepStrictEqual(
      check.faults.filter((fault) => !/^layers\/delta\/.+ is missing/.test(`${fault.file} ${fault.problem}`)),
      [],
      'the pruned chain walks clean from checkpoint 201',
    );
    assert.equal(check.manifest.records, TOTAL + 1 - 200);
    await commits(pruned, TOTAL + 2, TOTAL + 3);
    assert.equal((await openVault(copy)).manifest.version, TOTAL + 3, 'commits go on after a prune');
    // Deleting the start of a chain that recorded no prune is a gap, not a prune.
    const deleted = copyOf(base);
    for (let version = 1; version < 101; version++) unlinkSync(join(deleted, recordPath(version)));
    unlinkSync(join(deleted, checkpointPath(1)));
    await verifyFinds(deleted, [recordPath(100)]);
  });

  test('a process idle past the horizon: the records after its version were pruned, and its refresh opens afresh instead of forking', async () => {
    const directory = join(scratch, 'stale');
    const writer = await openVault(directory);
    await commits(writer, 1, 120);
    const stale = await openVault(directory);
    await commits(writer, 121, 260);
    await collectGarbage(writer, await planGc(writer, 3_600_000, { ms: 1, text: '1ms' }, Date.now() + 1));
    assert.ok(!existsSync(join(directory, recordPath(121))), 'the records after the stale head are gone');
    assert.equal((await stale.refresh()).version, writer.manifest.version);
    await stale.commit({ ...syntheticDraft(stale, 262), prunedBefore: stale.manifest.prunedBefore });
    const reopened = await openVault(directory);
    assert.equal(reopened.manifest.version, writer.manifest.version + 1, 'its commit follows the newest version');
    const check = await verifyVault(directory);
    assert.deepStrictEqual(
      check.faults.filter((fault) => !/^layers\/delta\/.+ is missing/.test(`${fault.file} ${fault.problem}`)),
      [],
    );
  });

  test('the witness outside the vault: a newest record rewritten with a new seal, or the newest records deleted, is refused', async () => {
    const rewritten = copyOf(base);
    await commits(await openVault(rewritten), TOTAL + 1, TOTAL + 2);
    editSealed(join(rewritten, recordPath(TOTAL + 2)), (body) => (body.addLayers as unknown[]).shift(), true);
    await openFails(rewritten, new RegExp(`changed outside Recall: manifest version ${TOTAL + 2} is not the one this host committed`));
    await verifyFinds(rewritten, [witnessPath(rewritten)]);
    const rolledBack = copyOf(base);
    await commits(await openVault(rolledBack), TOTAL + 1, TOTAL + 2);
    for (const version of [TOTAL + 1, TOTAL + 2]) unlinkSync(join(rolledBack, recordPath(version)));
    await openFails(rolledBack, new RegExp(`its newest manifest version is ${TOTAL}, but this host committed version ${TOTAL + 2}`));
    // A new vault where one was: the first commit starts a new chain, and the old witness no longer applies.
    rmSync(rolledBack, { recursive: true });
    const fresh = await openVault(rolledBack);
    await commits(fresh, 1, 3);
    assert.equal((await openVault(rolledBack)).manifest.version, 3);
  });

  test('a second writer is refused, and a reader catches up with the records since it opened', async () => {
    const copy = copyOf(base);
    const first = await openVault(copy);
    const second = await openVault(copy);
    await first.commit(syntheticDraft(first, TOTAL + 1));
    await assert.rejects(second.commit(syntheticDraft(second, TOTAL + 1)), VaultConflictError);
    assert.deepStrictEqual(await second.refresh(), first.manifest);
  });

  test('thousands of commits: bytes written per commit and bytes read on open stay flat', async (t) => {
    const directory = join(scratch, 'long');
    const vault = await openVault(directory);
    const window = 500;
    const written: number[] = [];
    const opened: Awaited<ReturnType<typeof openCost>>[] = [];
    let bytes = 0;
    for (let end = window; end <= 3000; end += window) {
      await commits(vault, end - window + 1, end);
      const now = manifestBytes(directory);
      written.push((now - bytes) / window);
      bytes = now;
      opened.push(await openCost(directory));
    }
    t.diagnostic(`manifest bytes written per commit, per 500 commits: ${written.map(Math.round).join(', ')}`);
    t.diagnostic(
      `opening reads (bytes/files/names listed): ${opened.map((cost) => `${cost.bytesRead}/${cost.reads}/${cost.namesListed}`).join(', ')}`,
    );
    const [first, ...rest] = written.slice(1); // the first window holds the vault's start
    for (const perCommit of rest) assert.ok(perCommit <= first! * 1.5, `bytes per commit ${written.join(', ')}`);
    assert.ok(first! < 4096, `a commit writes about a record and a hundredth of a checkpoint (${first} bytes)`);
    const reads = opened.map((cost) => cost.bytesRead);
    for (const cost of opened) {
      assert.ok(cost.reads <= CHECKPOINT_RECORDS + 2, `files read on open: ${cost.reads}`);
      assert.ok(cost.lists <= 3 && cost.namesListed <= 2000, `listed on open: ${cost.lists} lists, ${cost.namesListed} names`);
      assert.ok(cost.bytesRead <= Math.min(...reads.slice(1)) * 1.5 + 65_536, `bytes read on open: ${reads.join(', ')}`);
    }
  });

  test('the retired list: a record names the entries retired and taken off, not the list, which a reopen folds back whole', async () => {
    const directory = join(scratch, 'retired');
    const vault = await openVault(directory);
    await commits(vault, 1, 3);
    const entry = (n: number): { path: string; bytes: number; at: string } => ({
      path: `layers/delta/retired-${n}.parquet`,
      bytes: 1000 + n,
      at: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
    });
    const withRetired = async (retired: { path: string; bytes: number; at: string }[]): Promise<Record<string, unknown>> => {
      await vault.commit({ ...syntheticDraft(vault, vault.manifest.version + 1), retired: retired.length === 0 ? undefined : retired });
      return JSON.parse(readFileSync(join(directory, recordPath(vault.manifest.version)), 'utf8')) as Record<string, unknown>;
    };
    const many = Array.from({ length: 2000 }, (_, n) => entry(n));
    await withRetired(many);
    // One more retired: the record holds that one, whatever the list's length.
    const added = await withRetired([...many, entry(2000)]);
    assert.deepStrictEqual(added.addRetired, [entry(2000)]);
    assert.equal(added.removeRetired, undefined);
    assert.ok(!('retired' in (added.set as object)), 'the list is not set whole');
    assert.ok(readFileSync(join(directory, recordPath(vault.manifest.version))).length < 2048, 'the record stays small');
    // gc deleted half: the record names the paths.
    const kept = [...many.slice(1000), entry(2000)];
    const removed = await withRetired(kept);
    assert.deepStrictEqual(
      removed.removeRetired,
      many.slice(0, 1000).map((one) => one.path),
    );
    assert.equal(removed.addRetired, undefined);
    assert.deepStrictEqual((await openVault(directory)).manifest.retired, kept);
    // A capture's commit leaves the list alone and says nothing of it.
    const untouched = await withRetired(kept);
    assert.deepStrictEqual([untouched.addRetired, untouched.removeRetired], [undefined, undefined]);
    const emptied = await withRetired([]);
    assert.equal((emptied.removeRetired as unknown[]).length, kept.length);
    const reopened = await openVault(directory);
    assert.equal(reopened.manifest.retired, undefined);
    assert.deepStrictEqual(reopened.manifest, vault.manifest);
  });

  test('removing a layer entry from the newest record: opening fails naming it, so does verify', async () => {
    const copy = copyOf(base);
    const newest = recordPath(TOTAL);
    editSealed(join(copy, newest), (body) => (body.addLayers as unknown[]).shift(), false);
    await openFails(copy, new RegExp(`manifest file ${newest.replaceAll('.', '\\.')} in .+ fails its seal`));
    await verifyFinds(copy, [newest]);
  });

  test('an older record with another row count: verify names it, and resealed, the record after it and the checkpoint', async () => {
    const older = recordPath(150);
    const rows = (body: Record<string, unknown>): void => {
      (body.addLayers as { rows: number }[])[0]!.rows += 1;
    };
    const naive = copyOf(base);
    editSealed(join(naive, older), rows, false);
    assert.ok((await openVault(naive)).initialized, 'opening reads only what follows the newest checkpoint');
    await verifyFinds(naive, [older]);
    const deliberate = copyOf(base);
    editSealed(join(deliberate, older), rows, true);
    await verifyFinds(deliberate, [recordPath(151)]);
    // After the newest checkpoint, opening itself reads the record.
    const recent = copyOf(base);
    editSealed(join(recent, recordPath(230)), rows, true);
    await openFails(recent, /000000000231\.json in .+ does not chain to version 230/);
  });

  test('a record deleted from the middle: opening fails after the newest checkpoint, verify anywhere', async () => {
    const recent = copyOf(base);
    unlinkSync(join(recent, recordPath(230)));
    await openFails(recent, /000000000230\.json in .+ is missing, though record 231 exists/);
    await verifyFinds(recent, [recordPath(230)]);
    const old = copyOf(base);
    unlinkSync(join(old, recordPath(120)));
    await verifyFinds(old, [recordPath(120)]);
  });

  test('a corrupt checkpoint: opening fails naming it, verify too', async () => {
    const copy = copyOf(base);
    const path = join(copy, checkpointPath(201));
    const damaged = readFileSync(path);
    damaged[Math.floor(damaged.length / 2)]! ^= 0x01;
    writeFileSync(path, damaged);
    await openFails(copy, /checkpoints\/000000000201\.json in .+ does not match the SHA-256 that manifest\/_last_checkpoint records/);
    await verifyFinds(copy, [checkpointPath(201), POINTER_PATH]);
    // A checkpoint edited and sealed again still differs from the records before it.
    const resealed = copyOf(base);
    editSealed(join(resealed, checkpointPath(101)), (body) => ((body.state as { layers: unknown[] }).layers.length = 0), true);
    await verifyFinds(resealed, [checkpointPath(101)]);
  });
});

describe('a vault of release 0.1.0', () => {
  test('is read as it is, verified, and continued by a record chained to its newest version', async () => {
    const directory = copyOf(FIXTURE);
    assert.deepStrictEqual((await verifyVault(directory)).faults, []);
    const vault = await openVault(directory);
    const before = vault.manifest;
    assert.equal(before.version, 2);
    await vault.commit({ ...before, throughLsn: before.throughLsn + 1n, acknowledgedLsn: before.throughLsn + 100n });
    assert.ok(statSync(join(directory, recordPath(3))).isFile() && statSync(join(directory, checkpointPath(3))).isFile());
    const reopened = (await openVault(directory)).manifest;
    assert.deepStrictEqual(
      { ...reopened, version: 0, previous: null, createdAt: '' },
      {
        ...before,
        format: 1,
        version: 0,
        previous: null,
        createdAt: '',
        throughLsn: before.throughLsn + 1n,
        acknowledgedLsn: before.throughLsn + 100n,
      },
    );
    const check = await verifyVault(directory);
    assert.deepStrictEqual([check.faults, check.manifest], [[], { legacyVersions: 2, records: 1, checkpoints: 1 }]);
    // The link to 0.1.0's chain is checked too.
    writeFileSync(
      join(directory, 'manifest', '000000000002.json'),
      readFileSync(join(directory, 'manifest', '000000000002.json'), 'utf8').replace('"rows": 3', '"rows": 4'),
    );
    await verifyFinds(directory, [recordPath(3)]);
  });
});
