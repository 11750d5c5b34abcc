// Which failures capture waits out (with backoff) and which stop it. Two captures
// that both found the slot free race for it at START_REPLICATION; the loser's refusal
// must read like the wait for a slot held by a capture that just died.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTransient, slotRefusal } from '../src/capture/failures.js';
import { SlotBusyError, SlotLostError, UsageError } from '../src/errors.js';

/** An error as node-postgres gives a server's ErrorResponse or a socket's failure. */
function failure(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('capture failures', () => {
  test("START_REPLICATION's refusal of a slot in use is the slot-busy wait, naming the holder", () => {
    const refused = slotRefusal(failure('replication slot "recall_x" is active for PID 4242', '55006'), 'recall_x');
    assert.ok(refused instanceof SlotBusyError);
    assert.equal(refused.message, 'the slot "recall_x" is still held by process 4242');
    assert.equal(isTransient(refused), true);
    const other = failure('replication slot "recall_x" does not exist', '42704');
    assert.equal(slotRefusal(other, 'recall_x'), other, 'any other refusal is passed on as it is');
    assert.equal(isTransient(other), false);
  });

  test('the source and the network are waited out; the vault, bugs and a lost slot stop capture', () => {
    for (const waited of [
      failure('the database system is shutting down', '57P01'),
      failure('connection failure', '08006'),
      failure('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
      new Error('Connection terminated unexpectedly'),
    ]) {
      assert.equal(isTransient(waited), true, waited.message);
    }
    for (const fatal of [
      failure('no space left on device', 'ENOSPC'),
      failure('permission denied', 'EACCES'),
      new SlotLostError('the slot is gone', 'start a new vault'),
      new UsageError('bad flag', 'fix it'),
      new TypeError('undefined is not a function'),
    ]) {
      assert.equal(isTransient(fatal), false, fatal.message);
    }
  });
});
