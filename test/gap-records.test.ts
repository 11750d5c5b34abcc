// What a gap record means, on manifests built by hand: which points are inside one,
// the floor a fresh image after it sets for later reads (and only for them), the
// first commit capture takes as new at an image's own point, and the record's round
// trip through the manifest's JSON form. Gaps on real servers: history-gaps.test.ts.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  firstNewCommitLsn,
  gapAtLsn,
  gapAtTime,
  historyFloor,
  historyFloorSql,
  IMAGE_BUCKETS,
  readSet,
  type GapRecord,
  type LayerEntry,
  type Manifest,
} from '../src/vault/index.js';
import { decodeScalars, jsonText } from '../src/vault/manifest.js';
import { handManifest } from './harness/manifests.js';

const T0 = 1_700_000_000_000_000n;

function layer(name: string, from: number, to: number, kind: LayerEntry['kind'] = 'delta'): LayerEntry {
  return {
    path: `layers/${kind}/${name}.parquet`,
    kind,
    minLsn: BigInt(from),
    maxLsn: BigInt(to),
    minTime: T0 + BigInt(from),
    maxTime: T0 + BigInt(to),
    rows: 10,
    bytes: 300,
    sha256: '0'.repeat(64),
    minTenant: 'a',
    maxTenant: 'z',
  };
}

function manifest(layers: LayerEntry[], through: number, gaps?: GapRecord[]): Manifest {
  return handManifest(layers, { start: 100, through }, (lsn) => T0 + BigInt(lsn), gaps === undefined ? {} : { gaps });
}

const closed: GapRecord = {
  cause: 'slot-dropped',
  detail: 'the replication slot "s" was dropped',
  fromLsn: 200n,
  fromTime: T0 + 200n,
  detectedAt: '2026-12-03T00:00:00Z',
  resumedLsn: 300n,
  resumedTime: T0 + 300n,
  resumedAt: '2026-12-03T00:01:00Z',
};

describe('gap records', () => {
  test('points strictly inside a gap are in it; its two ends are not', () => {
    const m = manifest([], 400, [closed]);
    assert.equal(gapAtLsn(m, 200n), undefined, 'the last commit before it reads exactly');
    assert.equal(gapAtLsn(m, 201n), closed);
    assert.equal(gapAtLsn(m, 299n), closed);
    assert.equal(gapAtLsn(m, 300n), undefined, 'the fresh image reads exactly');
    assert.equal(gapAtTime(m, T0 + 250n), closed);
    assert.equal(gapAtTime(m, T0 + 300n), undefined);
    const open = manifest([], 200, [{ ...closed, resumedLsn: undefined, resumedTime: undefined }]);
    assert.ok(gapAtLsn(open, 10_000n) !== undefined, 'an open gap runs to the end');
  });

  test('the fresh image floors reads at and after it, never before', () => {
    const m = manifest(
      [layer('image', 100, 100, 'image'), layer('before', 150, 200), layer('resume', 300, 300, 'image'), layer('after', 310, 320)],
      320,
      [closed],
    );
    assert.equal(historyFloor(m, 200n), 100n);
    assert.equal(historyFloor(m, 300n), 300n);
    assert.equal(historyFloor(m, 320n), 300n);
    const after = readSet(m, { bucket: { index: 0, of: IMAGE_BUCKETS } }, 320n);
    assert.equal(after.floor, 300n);
    assert.deepEqual(
      after.layers.map((entry) => entry.path),
      ['layers/image/resume.parquet', 'layers/delta/after.parquet'],
      'nothing from before the gap',
    );
    assert.equal(readSet(m, { bucket: { index: 0, of: IMAGE_BUCKETS } }, 200n).floor, 100n);
    assert.equal(historyFloorSql(m, 'x'), '(CASE WHEN x >= 300 THEN 300::UBIGINT ELSE 100::UBIGINT END)');
    assert.equal(historyFloorSql(manifest([], 320), 'x'), '100::UBIGINT');
  });

  test('a commit at an image’s own point is new; after a commit, only later ones are', () => {
    assert.equal(firstNewCommitLsn(manifest([layer('image', 100, 100, 'image')], 100)), 100n, 'init: nothing committed at its point yet');
    assert.equal(
      firstNewCommitLsn(manifest([layer('image', 100, 100, 'image'), layer('first', 100, 100)], 100)),
      101n,
      'the commit at it is held',
    );
    assert.equal(firstNewCommitLsn(manifest([layer('d', 150, 250)], 250)), 251n);
    assert.equal(firstNewCommitLsn(manifest([layer('d', 150, 250), layer('resume', 300, 300, 'image')], 300, [closed])), 300n, 'a resume');
  });

  test('a gap survives the manifest’s JSON form, bigints and all', () => {
    const open: GapRecord = { ...closed, resumedLsn: undefined, resumedTime: undefined, resumedAt: undefined };
    const text = jsonText({ gaps: [closed, open] });
    const decoded = decodeScalars(JSON.parse(text) as Record<string, unknown>);
    assert.deepStrictEqual(decoded.gaps, [
      closed,
      { cause: 'slot-dropped', detail: closed.detail, fromLsn: 200n, fromTime: T0 + 200n, detectedAt: closed.detectedAt },
    ]);
  });
});
