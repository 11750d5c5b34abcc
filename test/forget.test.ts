// `recall forget` on a real vault: after it, a DuckDB scan of every live layer finds no
// row of the tenant and no value of it in any other row, the files that held it are
// gone, every other tenant reads exactly as before at every point, and the tenant is
// unknown (exit 2, saying it was erased). Later changes of it are captured as usual,
// and an erasure beside a running, compacting capture loses nothing of the others.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { openVault } from '../src/index.js';
import { fixture, jsonLines, type Fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { catchUpHere, liveState, stateAt, writeRound } from './harness/rounds.js';
import {
  CaptureProcess,
  CRASH_SCHEMA,
  catchUp,
  checkVaultAgainstTruth,
  endAfterSuite,
  prng,
  seedSql,
  startWriter,
} from './harness/workload.js';

const VICTIM = 'victim-7f3a';
const OTHERS = ['acme', 'globex', 'initech', 'umbrella'];
const ALL = [...OTHERS, VICTIM];

/** Rows of every live layer that are the victim's or mention it anywhere, counted by DuckDB over the files themselves. */
async function victimTraces(f: Fixture): Promise<number> {
  const vault = await openVault(f.vault);
  const files = vault.manifest.layers.map((layer) => join(f.vault, layer.path));
  const duck = await (await DuckDBInstance.create(':memory:')).connect();
  try {
    const reader = await duck.runAndReadAll(
      `SELECT count(*) AS n FROM read_parquet([${files.map((file) => `'${file}'`).join(', ')}])
        WHERE tenant = '${VICTIM}' OR "key" LIKE '%${VICTIM}%' OR "row" LIKE '%${VICTIM}%' OR context LIKE '%${VICTIM}%'`,
    );
    return Number(reader.getRowObjects()[0]?.n ?? -1);
  } finally {
    duck.closeSync();
  }
}

/** Every file under layers/, as vault paths. */
function layerFilesOnDisk(f: Fixture): string[] {
  const root = join(f.vault, 'layers');
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(f.vault, join(entry.parentPath, entry.name)));
}

for (const major of testMajors('all')) {
  describe(`recall forget on PostgreSQL ${major}`, () => {
    const { fixtures } = endAfterSuite();

    test('no row or value of the tenant is left in any live file, the old files are gone, the others are exact, it is unknown', async () => {
      const f = await fixture(major, `${CRASH_SCHEMA}; ${seedSql(ALL)}`);
      fixtures.push(f);
      const init = await f.recall(['init']);
      assert.equal(init.code, 0, init.stderr);
      const random = prng(31);
      const points: { lsn: string; live: string }[] = [];
      for (let round = 0; round < 18; round++) {
        const lsn = await writeRound(f, ALL, random, round);
        await catchUpHere(f);
        if (round % 4 === 3) points.push({ lsn, live: await liveState(f, OTHERS) });
        // Merged and bucketed layers hold the victim too, and replaced ones wait for gc.
        if (round === 12) assert.equal((await f.recall(['compact'])).code, 0);
      }
      assert.ok((await victimTraces(f)) > 0, 'the victim has history to forget');
      const others = async (): Promise<string[]> => Promise.all(points.map((point) => stateAt(f, OTHERS, point.lsn)));
      const before = await others();
      assert.deepEqual(
        before,
        points.map((point) => point.live),
      );
      const version = (await openVault(f.vault)).manifest.version;

      const dry = await f.recall(['forget', '--tenant', VICTIM, '--dry-run']);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stderr, /^layers\/\S+\.parquet {2}\d+ of \d+ rows {2}\d+ bytes$/m);
      assert.match(dry.stderr, /forget: would erase: \d+ layers \(\d+ bytes\) hold \d+ rows of tenant "victim-7f3a"/);
      const unasked = await f.recall(['forget', '--tenant', VICTIM]);
      assert.equal(unasked.code, 2, unasked.stderr);
      assert.match(unasked.stderr, /pass --yes/);
      const unknown = await f.recall(['forget', '--tenant', 'nobody', '--yes']);
      assert.equal(unknown.code, 2, unknown.stderr);
      assert.match(unknown.stderr, /tenant "nobody" never appears in the history/);
      assert.equal((await openVault(f.vault)).manifest.version, version, 'a dry run, a refusal and an unknown tenant change nothing');

      const forgotten = await f.recall(['forget', '--tenant', VICTIM, '--yes', '--json']);
      assert.equal(forgotten.code, 0, forgotten.stderr);
      const result = jsonLines<{ rows: number; deleted: number }>(forgotten.stdout)[0];
      assert.ok(result !== undefined && result.rows > 0 && result.deleted > 0, forgotten.stdout);
      assert.equal(await victimTraces(f), 0, 'no row or value of the victim in any live layer');
      const vault = await openVault(f.vault);
      const live = new Set(vault.manifest.layers.map((layer) => layer.path));
      assert.deepEqual(
        layerFilesOnDisk(f).filter((path) => !live.has(path)),
        [],
        'the old files and the replaced ones are deleted at once',
      );
      assert.equal(vault.manifest.retired, undefined);
      const erasure = vault.manifest.erasures?.[0];
      assert.ok(erasure !== undefined && /^[0-9a-f]{64}$/.test(erasure.tenant), 'the erasure is recorded by a keyed hash');
      assert.ok(
        !JSON.stringify(vault.manifest, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value)).includes(VICTIM),
        'the manifest does not name the victim',
      );

      assert.deepEqual(await others(), before, 'every other tenant reads the same at every point');
      const shown = await f.recall(['show', '--tenant', VICTIM, '--at', 'now']);
      assert.equal(shown.code, 2, shown.stderr);
      assert.match(shown.stderr, /tenant "victim-7f3a" was erased from the history at \S+/);
      const again = await f.recall(['forget', '--tenant', VICTIM, '--yes']);
      assert.equal(again.code, 2, again.stderr);
      assert.match(again.stderr, /was erased from the history/);
      const verify = await f.recall(['verify', '--vault']);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);

      // The application may recreate the tenant: its later changes are captured as usual.
      await f.db.query(`INSERT INTO items VALUES ('${VICTIM}', 500, 1) ON CONFLICT (tenant_id, id) DO UPDATE SET v = 1`);
      const lsn = (await f.db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn ?? '';
      await catchUpHere(f);
      assert.deepEqual(JSON.parse(await stateAt(f, [VICTIM], lsn)), {
        [VICTIM]: [{ table: 'public.items', row: { tenant_id: VICTIM, id: '500', v: '1' } }],
      });
    });
  });
}

for (const major of testMajors('one')) {
  describe(`recall forget beside a running capture on PostgreSQL ${major}`, () => {
    const { fixtures, captures } = endAfterSuite();

    test('forget beside a capture that compacts, under a writer: the victim is gone, every change of the others is there once', async () => {
      const f = await fixture(major, `${CRASH_SCHEMA}; ${seedSql(ALL)}`);
      fixtures.push(f);
      const init = await f.recall(['init']);
      assert.equal(init.code, 0, init.stderr);
      // History of the victim first, then a writer on the others only.
      const random = prng(5);
      for (let round = 0; round < 10; round++) await writeRound(f, [VICTIM], random, round);
      const running = CaptureProcess.spawn(f, ['--flush-interval', '50ms']);
      captures.push(running);
      const writer = startWriter(f.cluster.url(), OTHERS, { seed: 17, pauseMs: 2 });
      try {
        await writer.progress(150, 60_000);
        await running.waitForLines(/^compact: merging/, 1, 60_000);
        const forgotten = await f.recall(['forget', '--tenant', VICTIM, '--yes']);
        assert.equal(forgotten.code, 0, forgotten.stderr);
        await writer.progress(150, 60_000);
      } finally {
        const stats = await writer.stop();
        assert.deepEqual(stats.unexpected, []);
      }
      running.child.kill('SIGINT');
      assert.deepEqual(await running.waitForExit(60_000), { code: 0, signal: null }, running.describe());
      await catchUp(f, 60_000);
      assert.equal(await victimTraces(f), 0, running.describe());
      await checkVaultAgainstTruth(f, OTHERS);
      const verify = await f.recall(['verify', '--vault']);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    });
  });
}
