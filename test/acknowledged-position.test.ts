// The acknowledged position never passes what the vault holds durably (invariant 1):
// an idle keepalive counts only while nothing is staged, a commit end only once its
// manifest version is committed, and nothing is sent before the vault records it.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AcknowledgedPosition } from '../src/capture/acknowledged-position.js';

describe('the acknowledged position', () => {
  test('starts at what the vault records and moves only forward', () => {
    const ack = new AcknowledgedPosition(100n);
    assert.equal(ack.recorded, 100n);
    assert.equal(ack.toRecord(90n, false), undefined, 'a vault behind its own record asks nothing to be recorded');
    ack.recordedAs(80n);
    assert.equal(ack.recorded, 100n, 'a smaller record never lowers it');
  });

  test('an idle keepalive counts only while nothing is staged', () => {
    const ack = new AcknowledgedPosition(100n);
    ack.idle(500n);
    assert.equal(ack.durable(100n, false), 100n, 'with changes staged, the WAL end past them is not durable');
    assert.equal(ack.toRecord(100n, false), undefined);
    assert.equal(ack.durable(100n, true), 500n);
    assert.equal(ack.toRecord(100n, true), 500n);
    assert.equal(ack.recorded, 100n, 'nothing counts as recorded until the vault says so');
    ack.recordedAs(500n);
    assert.equal(ack.recorded, 500n);
    assert.equal(ack.toRecord(100n, true), undefined);
  });

  test('a committed batch raises the record with its manifest; a commit found in the vault does not', () => {
    const ack = new AcknowledgedPosition(100n);
    ack.committed(200n, false);
    assert.equal(ack.recorded, 100n, 'a duplicate commit is durable, but the vault does not record it as sent');
    assert.equal(ack.toRecord(150n, false), 200n);
    ack.committed(300n, true);
    assert.equal(ack.recorded, 300n, 'the manifest version records its end as acknowledged');
    assert.equal(ack.durable(250n, false), 300n);
    ack.committed(250n, true);
    assert.equal(ack.durable(0n, false), 300n, 'an older commit end never lowers the durable position');
  });

  test('never passes the durable position, whatever arrives in between', () => {
    // A random walk of events against a model that knows what is durable.
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const ack = new AcknowledgedPosition(0n);
    let vaultThrough = 0n;
    let durableEnd = 0n;
    let wal = 0n;
    let staged = false;
    for (let step = 0; step < 10_000; step++) {
      wal += BigInt(1 + random(100));
      switch (random(4)) {
        case 0:
          staged = true;
          break;
        case 1:
          // A batch commits: the vault now holds everything through this WAL position.
          vaultThrough = wal - 1n;
          durableEnd = wal;
          ack.committed(wal, true);
          staged = false;
          break;
        case 2:
          if (!staged) {
            ack.idle(wal);
            durableEnd = wal;
          }
          break;
        default: {
          const position = ack.toRecord(vaultThrough, !staged);
          if (position !== undefined) ack.recordedAs(position);
        }
      }
      assert.ok(ack.recorded <= durableEnd, `step ${step}: recorded ${ack.recorded} passes the durable ${durableEnd}`);
    }
  });
});
