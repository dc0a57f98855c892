// Queue IDs are what an administrator copies into `pillarbox queue show|retry|delete ID`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newQueueId } from '../../../src/store/queue-rows.ts';

test('queue IDs are 16 letters and digits: none reads as a command-line option', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const id = newQueueId();
    assert.match(id, /^[A-Za-z0-9]{16}$/);
    seen.add(id);
  }
  assert.equal(seen.size, 20_000);
});
