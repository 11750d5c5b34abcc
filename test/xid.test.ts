// 32-bit xids from BEGIN widen to the 64-bit xid nearest the newest seen: across
// the 2^32 wraparound forwards, for an older transaction sent late, and at epoch 0.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { XidWidener } from '../src/capture/xid.js';

const EPOCH = 2n ** 32n;

describe('xid widening', () => {
  test('keeps the epoch of the reference', () => {
    const xids = new XidWidener(3n * EPOCH + 1000n);
    assert.equal(xids.widen(1001), 3n * EPOCH + 1001n);
    assert.equal(xids.widen(999), 3n * EPOCH + 999n, 'a slightly older xid stays in the same epoch');
  });

  test('crosses the wraparound forwards and stays there', () => {
    const xids = new XidWidener(3n * EPOCH + 0xfffffff0n);
    assert.equal(xids.widen(0xfffffffe), 3n * EPOCH + 0xfffffffen);
    assert.equal(xids.widen(5), 4n * EPOCH + 5n, 'a small xid after a large one is the next epoch');
    assert.equal(xids.widen(0xfffffff8), 3n * EPOCH + 0xfffffff8n, 'a transaction of before the wrap, sent late');
    assert.equal(xids.widen(10), 4n * EPOCH + 10n);
  });

  test('never goes below epoch 0 into negative xids', () => {
    const xids = new XidWidener(100n);
    assert.equal(xids.widen(50), 50n);
    assert.equal(xids.widen(0xfffffff0), 0xfffffff0n);
  });
});
