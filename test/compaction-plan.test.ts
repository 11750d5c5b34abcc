// What compaction decides, on manifests built by hand: which layers a merge takes,
// when a bucket's image falls due on its own (rows since it against its size and the
// floor), when a fold past the retention horizon is due, and where a read's floor is.
// The work itself runs on real vaults in compaction.test.ts and retention.test.ts.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FAN_IN, foldDue, IMAGE_BUCKETS, imagesDue, nextMerge, readSet, type LayerEntry, type Manifest } from '../src/vault/index.js';
import { IMAGE_RATIO, MAX_MERGE_BYTES, MIN_IMAGE_ROWS } from '../src/vault/compaction.js';
import { handManifest } from './harness/manifests.js';

const T0 = 1_700_000_000_000_000n;
const SECOND = 1_000_000n;

function layer(name: string, from: number, to: number, rows: number, extra: Partial<LayerEntry> = {}): LayerEntry {
  return {
    path: `layers/delta/${name}.parquet`,
    kind: 'delta',
    minLsn: BigInt(from),
    maxLsn: BigInt(to),
    minTime: T0 + BigInt(from) * SECOND,
    maxTime: T0 + BigInt(to) * SECOND,
    rows,
    bytes: rows * 30,
    sha256: '0'.repeat(64),
    minTenant: 'a',
    maxTenant: 'z',
    ...extra,
  };
}

function manifest(layers: LayerEntry[], through: number, start = 1): Manifest {
  return handManifest(layers, { start, through }, (lsn) => T0 + BigInt(lsn) * SECOND);
}

const image = (index: number, at: number, rows: number): LayerEntry =>
  layer(`image-${index}-${at}`, at, at, rows, { kind: 'image', level: 1, bucket: { index, of: IMAGE_BUCKETS } });

describe('compaction plans', () => {
  test('a merge takes the oldest FAN_IN layers of the lowest level, within MAX_MERGE_BYTES', () => {
    const level0 = Array.from({ length: FAN_IN + 3 }, (_, i) => layer(`l0-${i}`, 10 + i, 10 + i, 100));
    const level1 = Array.from({ length: FAN_IN }, (_, i) => layer(`l1-${i}`, i, i, 100, { level: 1 }));
    const step = nextMerge(manifest([...level1, ...level0.reverse()], 100));
    assert.equal(step?.level, 0, 'level 0 first: that is where capture adds layers');
    assert.deepEqual(
      step.inputs.map((entry) => entry.path),
      Array.from({ length: FAN_IN }, (_, i) => `layers/delta/l0-${i}.parquet`),
    );
    assert.equal(nextMerge(manifest(level0.slice(0, FAN_IN - 1), 100)), undefined, 'fewer than FAN_IN wait');
    const huge = Array.from({ length: FAN_IN }, (_, i) => layer(`big-${i}`, i, i, 1, { bytes: MAX_MERGE_BYTES / 2 }));
    assert.equal(nextMerge(manifest(huge, 100))?.inputs.length, 2, 'as many as fit in MAX_MERGE_BYTES');
  });

  test('an image is due by itself once the rows since the last one pass IMAGE_RATIO times its own and MIN_IMAGE_ROWS', () => {
    const small = manifest([layer('a', 2, 50, MIN_IMAGE_ROWS - 1)], 50);
    assert.equal(imagesDue(small), undefined, 'a small vault needs no image');
    assert.equal(imagesDue(small, true)?.buckets.length, IMAGE_BUCKETS, '--images writes every bucket that changed');
    const grown = manifest([layer('a', 2, 50, MIN_IMAGE_ROWS * IMAGE_BUCKETS)], 50);
    const due = imagesDue(grown);
    assert.equal(due?.buckets.length, IMAGE_BUCKETS);
    assert.ok(
      due.buckets.every(({ floor }) => floor === 1n),
      'without an image, each floor is the history start',
    );
    // Bucket 3 has an image at 50 of many rows: the rows after it are few next to it.
    const imaged = manifest(
      [
        layer('a', 2, 50, MIN_IMAGE_ROWS * IMAGE_BUCKETS),
        image(3, 50, MIN_IMAGE_ROWS * 10),
        layer('b', 51, 60, MIN_IMAGE_ROWS * IMAGE_BUCKETS * 2),
      ],
      60,
    );
    const buckets = imagesDue(imaged)?.buckets.map(({ bucket }) => bucket.index) ?? [];
    assert.ok(!buckets.includes(3), `bucket 3 is not due again yet: ${buckets.join(',')}`);
    assert.equal(buckets.length, IMAGE_BUCKETS - 1);
    const later = manifest([...imaged.layers, layer('c', 61, 90, MIN_IMAGE_ROWS * IMAGE_BUCKETS * 10 * IMAGE_RATIO)], 90);
    assert.ok(
      imagesDue(later)?.buckets.some(({ bucket, floor }) => bucket.index === 3 && floor === 50n),
      'then it is, from its image',
    );
  });

  test('a fold is due once the start trails now − retention by a tenth of it, and a layer after the start holds a commit before it', () => {
    const retention = { ms: 100_000, text: '100s' };
    const vault = manifest([layer('a', 1, 1, 10, { kind: 'image' }), layer('b', 5, 200, 10), layer('c', 201, 400, 10)], 400);
    const at = (seconds: number): number => Number((T0 + BigInt(seconds) * SECOND) / 1000n);
    assert.equal(foldDue(vault, retention, at(100)), undefined, 'nothing older than the retention');
    assert.equal(foldDue(vault, retention, at(105)), undefined, 'within a fold step of the start');
    assert.deepEqual(foldDue(vault, retention, at(120)), { kind: 'fold', before: T0 + 20n * SECOND, retention });
    const folded = { ...vault, startLsn: 150n, startTime: T0 + 150n * SECOND };
    assert.equal(foldDue(folded, retention, at(300)), undefined, 'the only layer before the horizon straddles the start');
    assert.ok(foldDue(folded, retention, at(320)) !== undefined, 'then the next layer does');
  });

  test("a read's floor is its bucket's newest image at or below its point, else the history start", () => {
    const layers = [layer('a', 1, 1, 10, { kind: 'image' }), image(0, 40, 5), layer('b', 30, 60, 10), layer('old', 2, 20, 10)];
    const vault = manifest(layers, 60, 1);
    const atImage = readSet(vault, { bucket: { index: 0, of: IMAGE_BUCKETS } }, 50n);
    assert.equal(atImage.floor, 40n);
    assert.deepEqual(atImage.layers.map((entry) => entry.path).sort(), [layers[1]!.path, layers[2]!.path].sort());
    const before = readSet(vault, { bucket: { index: 0, of: IMAGE_BUCKETS } }, 35n);
    assert.equal(before.floor, 1n);
    assert.ok(
      before.layers.some((entry) => entry.path === layers[0]!.path),
      'the initial image, which ends at the floor',
    );
    const otherBucket = readSet({ ...vault, startLsn: 25n }, { bucket: { index: 1, of: IMAGE_BUCKETS } }, 50n);
    assert.equal(otherBucket.floor, 25n, 'a bucket without an image reads from the start retention moved');
    assert.ok(!otherBucket.layers.some((entry) => entry.path === layers[3]!.path), 'a layer wholly before the start is not read');
  });
});
