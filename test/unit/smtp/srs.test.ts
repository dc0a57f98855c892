// SRS (src/protocol/smtp/srs.ts): round trips, tampering, expiry, re-forwarding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Srs, MAX_AGE_DAYS, isSrsLocal } from '../../../src/protocol/smtp/srs.ts';

const DAY = 86_400_000;
const now = Date.UTC(2026, 4, 1, 12);
const srs = new Srs('a-secret-of-sufficient-length');

test('SRS0 round trip, case-insensitive, keeps = and + in the local part', () => {
  for (const a of ['adam@example.org', 'first.last+tag@sub.example.org', 'odd=local=part@example.org']) {
    const f = srs.forward(a, 'mx.pillarbox.test', now);
    assert.match(f, /^SRS0=[A-Z2-7]{6}=[A-Z2-7]{2}=/);
    assert.ok(f.endsWith('@mx.pillarbox.test'));
    assert.ok(isSrsLocal(f.slice(0, f.lastIndexOf('@'))));
    assert.deepEqual(srs.reverse(f, now), { ok: true, address: a });
    assert.deepEqual(srs.reverse(f.toLowerCase(), now + 3 * DAY), { ok: true, address: a.toLowerCase() }, 'a relay lower-cased it');
  }
});

test('our own domain and the null sender are not rewritten', () => {
  assert.equal(srs.forward('adam@mx.pillarbox.test', 'MX.pillarbox.test', now), 'adam@mx.pillarbox.test');
  assert.equal(srs.forward('', 'mx.pillarbox.test', now), '');
});

test('tampering is refused: hash, domain, local part, timestamp, another secret', () => {
  const f = srs.forward('adam@example.org', 'mx.pillarbox.test', now);
  const [local] = f.split('@');
  const parts = local!.split('=');
  const variants = [
    [parts[0], parts[1]!.slice(0, 5) + (parts[1]![5] === 'A' ? 'B' : 'A'), ...parts.slice(2)],
    [...parts.slice(0, 3), 'evil.example', parts[4]],
    [...parts.slice(0, 4), 'eve'],
    [parts[0], parts[1], parts[2] === 'AA' ? 'AB' : 'AA', ...parts.slice(3)],
  ];
  for (const v of variants) assert.deepEqual(srs.reverse(`${v.join('=')}@mx.pillarbox.test`, now), { ok: false, reason: 'bad-hash' });
  assert.deepEqual(new Srs('another-secret-entirely').reverse(f, now), { ok: false, reason: 'bad-hash' });
  assert.deepEqual(srs.reverse('SRS0=abc@mx.pillarbox.test', now), { ok: false, reason: 'malformed' });
  assert.deepEqual(srs.reverse('SRS0==XX=d=l@mx.pillarbox.test', now), { ok: false, reason: 'malformed' });
  assert.deepEqual(srs.reverse('adam@mx.pillarbox.test', now), { ok: false, reason: 'not-srs' });
});

test(`expiry: valid for ${MAX_AGE_DAYS} days, refused after, and not from the future`, () => {
  const f = srs.forward('adam@example.org', 'mx.pillarbox.test', now);
  assert.equal(srs.reverse(f, now + MAX_AGE_DAYS * DAY).ok, true);
  assert.deepEqual(srs.reverse(f, now + (MAX_AGE_DAYS + 1) * DAY), { ok: false, reason: 'expired' });
  assert.deepEqual(srs.reverse(f, now - 2 * DAY), { ok: false, reason: 'expired' });
  // The timestamp wraps every 1024 days: still checked across the wrap.
  const wrap = Date.UTC(2026, 0, 1) + (1024 - (Math.floor(Date.UTC(2026, 0, 1) / DAY) % 1024) - 1) * DAY;
  const g = srs.forward('adam@example.org', 'mx.pillarbox.test', wrap);
  assert.equal(srs.reverse(g, wrap + 5 * DAY).ok, true);
});

test('re-forwarding: SRS0 of another forwarder becomes SRS1; SRS1 reverses to the SRS0 at the first forwarder', () => {
  const first = new Srs('first-forwarder-secret!!');
  const s0 = first.forward('adam@example.org', 'fwd1.example', now);
  const s1 = srs.forward(s0, 'mx.pillarbox.test', now);
  assert.match(s1, /^SRS1=[A-Z2-7]{6}=fwd1\.example==[A-Z2-7]{6}=/);
  const back = srs.reverse(s1, now);
  assert.deepEqual(back, { ok: true, address: s0 });
  assert.deepEqual(first.reverse(s0, now), { ok: true, address: 'adam@example.org' });
  // A third forwarder keeps the first one's domain.
  const third = new Srs('third-forwarder-secret!!');
  const s1b = third.forward(s1, 'fwd3.example', now);
  assert.match(s1b, /^SRS1=[A-Z2-7]{6}=fwd1\.example==/);
  assert.deepEqual(third.reverse(s1b, now), { ok: true, address: s0 });
});

test('linear on long input', () => {
  const long = 'SRS0=' + '='.repeat(100_000) + '@x';
  assert.equal(srs.reverse(long, now).ok, false);
  assert.throws(() => new Srs('short'), RangeError);
});
