// The pure outbound policy (src/queue/policy.ts) and the NOTIFY rules of src/queue/bounce.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_RETRY, decide, retryDelay, statusOf, verdictOf } from '../../../src/queue/policy.ts';
import { reportable, wants, type BounceItem } from '../../../src/queue/bounce.ts';
import type { QueueMessage, QueueRecipient } from '../../../src/store/queue.ts';

const MIN = 60_000;

test('backoff: 5 min doubling, capped at 2 h', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 50].map((n) => retryDelay(n, DEFAULT_RETRY) / MIN), [5, 10, 20, 40, 80, 120, 120, 120]);
  assert.equal(retryDelay(3, { ...DEFAULT_RETRY, retryBase: 100, retryMax: 250 }), 250);
});

test('replies: 2xx sent, 4xx and no reply temporary, 5xx permanent; enhanced status read from the reply', () => {
  assert.deepEqual([250, 421, 451, 0, 550, 554].map(verdictOf), ['sent', 'temporary', 'temporary', 'temporary', 'permanent', 'permanent']);
  assert.equal(statusOf('550 5.1.1 <x@y>: no such user', 550), '5.1.1');
  assert.equal(statusOf('550-5.7.1 multi\r\n550 5.7.1 line', 550), '5.7.1');
  assert.equal(statusOf('550 no such user', 550), '5.0.0');
  assert.equal(statusOf('451 4.7.1 greylisted', 451), '4.7.1');
  assert.equal(statusOf('451 5.1.1 class mismatch', 451), '4.0.0');
  assert.equal(statusOf('cannot connect', 0), '4.0.0');
});

test('decide: deferral capped at expiry, expiry final, delay warning once after the threshold', () => {
  const created = 1_000_000;
  const m = { createdAt: created, expiresAt: created + 5 * 24 * 60 * MIN };
  const fresh = { attempts: 1, delayWarned: false };
  assert.deepEqual(decide('temporary', fresh, m, created + MIN, DEFAULT_RETRY), { kind: 'deferred', nextAttemptAt: created + 6 * MIN, warn: false });
  const late = created + 5 * 60 * MIN;
  assert.equal((decide('temporary', { attempts: 6, delayWarned: false }, m, late, DEFAULT_RETRY) as { warn: boolean }).warn, true);
  assert.equal((decide('temporary', { attempts: 7, delayWarned: true }, m, late, DEFAULT_RETRY) as { warn: boolean }).warn, false);
  const nearEnd = m.expiresAt - MIN;
  assert.deepEqual(decide('temporary', { attempts: 40, delayWarned: true }, m, nearEnd, DEFAULT_RETRY), { kind: 'deferred', nextAttemptAt: m.expiresAt, warn: false });
  assert.deepEqual(decide('temporary', { attempts: 41, delayWarned: true }, m, m.expiresAt, DEFAULT_RETRY), { kind: 'expired' });
  assert.deepEqual(decide('permanent', fresh, m, created, DEFAULT_RETRY), { kind: 'failed' });
  assert.deepEqual(decide('sent', fresh, m, m.expiresAt + 1, DEFAULT_RETRY), { kind: 'sent' });
  assert.equal((decide('temporary', { attempts: 9, delayWarned: false }, m, late, { ...DEFAULT_RETRY, delayWarning: 0 }) as { warn: boolean }).warn, false);
});

test('NOTIFY: default failures and delays; NEVER nothing; lists as given; never to <>', () => {
  assert.equal(wants(null, 'failed'), true);
  assert.equal(wants(null, 'delayed'), true);
  assert.equal(wants({ never: true }, 'failed'), false);
  assert.equal(wants({ success: true, failure: false, delay: true }, 'failed'), false);
  assert.equal(wants({ success: false, failure: true, delay: false }, 'delayed'), false);
  const r = (id: number, notify: QueueRecipient['notify']): QueueRecipient => ({
    id, messageId: 'm', address: `r${id}@x.test`, domain: 'x.test', orcpt: null, notify, state: 'queued', attempts: 1, nextAttemptAt: 0, lastAttemptAt: null, lastReply: null, delayWarned: false,
  });
  const items: BounceItem[] = [r(1, null), r(2, { never: true })].map((recipient) => ({ recipient, action: 'failed', status: '5.1.1', reply: '550 5.1.1 x', remoteMta: null }));
  const msg = (mailFrom: string) => ({ mailFrom }) as QueueMessage;
  assert.deepEqual(reportable(msg('a@b.test'), items).map((i) => i.recipient.id), [1]);
  assert.deepEqual(reportable(msg(''), items), []);
});
