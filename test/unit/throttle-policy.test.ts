// The login throttling policy on its own, driven by an explicit clock (every call takes `now`):
// per-(name, source) spacing that grows and decays, sources slowed as a whole only when abusive,
// in-flight attempts counted, and the IPv6 /64 / IPv4-mapped source keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_POLICY, ThrottleState, decayed, pairGap, sourceGap, type Decision, type ThrottlePolicy } from '../../src/auth/throttle-policy.ts';
import { sourceKey } from '../../src/auth/source-key.ts';
import type { LoginFailureRow } from '../../src/store/login-failures.ts';

const P: ThrottlePolicy = { ...DEFAULT_POLICY };

/** One failed attempt through the state, as the authenticator does it (store = in memory). */
function fail(s: ThrottleState, ip: string, name: string, now: number): Decision {
  const d = s.reserve(ip, name, now);
  if (d.kind === 'go') {
    s.localFailure(ip, s.effectiveName(ip, name), Math.max(now, d.at));
    s.finish(d.ticket);
  }
  return d;
}

function goAt(d: Decision): number {
  assert.equal(d.kind, 'go', JSON.stringify(d));
  return (d as { at: number }).at;
}

test('the pair gap doubles after the free failures and is capped; scores halve every half-life', () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 20].map((e) => pairGap(P, e)),
    [0, 0, 0, 1000, 2000, 4000, 8000, 15000, 15000, 15000],
  );
  assert.equal(sourceGap(P, 7), 0);
  assert.ok(sourceGap(P, 12) > sourceGap(P, 10) && sourceGap(P, 40) === P.maxDelayMs);
  const row = { score: 8, lastFailureAt: 1000 };
  assert.equal(decayed(row, 1000, P.halfLifeMs), 8);
  assert.equal(decayed(row, 1000 + P.halfLifeMs, P.halfLifeMs), 4);
  assert.equal(decayed(row, 1000 + 3 * P.halfLifeMs, P.halfLifeMs), 1);
});

test('sequential failures space one pair more and more; other names and other sources go at once', () => {
  const s = new ThrottleState(P);
  let t = 1_000_000;
  const starts: number[] = [];
  for (let i = 0; i < 10; i++) {
    const at = goAt(fail(s, '10.0.0.1', 'a@x', t));
    starts.push(at - t); // how long this attempt was held
    t = at + 100; // the client asks again 100 ms after its answer
  }
  // Three free, then ~1, 2, 4, 8 s and the 15 s cap (minus the 100 ms the client took); the 8th a
  // little under 16 s because the first failures decayed during the 15 s of waiting before it.
  assert.deepEqual(starts.slice(0, 7), [0, 0, 0, 900, 1900, 3900, 7900]);
  assert.ok(starts[7]! > 13_000 && starts[7]! <= 14_900, String(starts[7]));
  assert.deepEqual(starts.slice(8), [14_900, 14_900]);
  // B from the same address, A from another: no wait at all.
  assert.equal(goAt(s.reserve('10.0.0.1', 'b@x', t)), t);
  assert.equal(goAt(s.reserve('10.0.0.2', 'a@x', t)), t);
  // The slow-down fades: after two half-lives (score 10 → 2.5) A from 10.0.0.1 is free again.
  const later = t + 2 * P.halfLifeMs;
  assert.equal(s.currentDelay('10.0.0.1', 'a@x', later), 0);
  assert.ok(s.currentDelay('10.0.0.1', 'a@x', t + P.halfLifeMs) > 0, 'after one half-life (score 5) still slowed');
});

test('a right password clears the pair, not the other names of the source', () => {
  const s = new ThrottleState(P);
  const t = 5_000_000;
  for (let i = 0; i < 5; i++) fail(s, '10.0.0.1', 'a@x', t);
  for (let i = 0; i < 2; i++) fail(s, '10.0.0.1', 'c@x', t);
  assert.ok(s.hasPair('10.0.0.1', 'a@x'));
  s.clearPair('10.0.0.1', 'a@x');
  assert.equal(s.pairScore('10.0.0.1', 'a@x', t), 0);
  assert.equal(s.pairScore('10.0.0.1', 'c@x', t), 2);
});

test('a source failing for many names is slowed as a whole, also for a name that has not failed', () => {
  const s = new ThrottleState(P);
  let t = 9_000_000;
  // Two failures each for six names: no pair is past its free allowance.
  for (let n = 0; n < 6; n++) for (let i = 0; i < 2; i++) goAt(fail(s, '10.6.6.6', `u${n}@x`, t));
  t += 10;
  // 12 failures from 6 names: abusive, past sourceFreeFailures (8): a fresh name waits its turn.
  const fresh = goAt(s.reserve('10.6.6.6', 'innocent@x', t));
  assert.ok(fresh > t, `held: ${fresh - t} ms`);
  assert.ok(fresh - t <= P.maxDelayMs);
  // The same name from a clean source is not affected.
  assert.equal(goAt(s.reserve('10.7.7.7', 'innocent@x', t)), t);
});

test('one name failing many times does not slow the other names of its source', () => {
  const s = new ThrottleState(P);
  let t = 20_000_000;
  for (let i = 0; i < 20; i++) t = goAt(fail(s, '192.0.2.9', 'phone@x', t)) + 50;
  assert.equal(goAt(s.reserve('192.0.2.9', 'colleague@x', t)), t);
});

test('parallel attempts count before their result: only the free allowance goes at once', () => {
  const s = new ThrottleState(P);
  const t = 30_000_000;
  const ds = Array.from({ length: 101 }, () => s.reserve('10.0.0.1', 'a@x', t));
  const go = ds.filter((d) => d.kind === 'go');
  assert.equal(go.length, P.freeFailures, 'three reserved at once');
  assert.ok(go.every((d) => goAt(d) === t));
  assert.ok(ds.slice(P.freeFailures).every((d) => d.kind === 'wait'), 'the rest wait for those outcomes');
  // Those three fail; the waiters decide again: growing gaps, and past maxWaitMs refused unchecked.
  for (const d of go) {
    s.localFailure('10.0.0.1', 'a@x', t + 80);
    s.finish((d as { ticket: { ip: string; name: string } }).ticket);
  }
  const now = t + 80;
  const again = Array.from({ length: 98 }, () => s.reserve('10.0.0.1', 'a@x', now));
  const scheduled = again.filter((d) => d.kind === 'go').map((d) => goAt(d) - now);
  const refused = again.filter((d) => d.kind === 'refuse').length;
  assert.deepEqual(scheduled, [920, 2920, 6920, 14920, 29920]);
  assert.equal(refused, 98 - scheduled.length);
});

test('parallel right passwords of a clean pair: three checks in flight, each finish lets the next go unspaced', () => {
  const s = new ThrottleState(P);
  const t = 40_000_000;
  const ticket = (d: Decision | undefined) => (d as { ticket: { ip: string; name: string } }).ticket;
  const ds = Array.from({ length: 5 }, () => s.reserve('10.0.0.1', 'a@x', t));
  assert.deepEqual(ds.map((d) => d.kind), ['go', 'go', 'go', 'wait', 'wait']);
  // The first succeeds (nothing to clear) and finishes: the fourth goes at once, the fifth still waits.
  s.finish(ticket(ds[0]));
  const fourth = s.reserve('10.0.0.1', 'a@x', t + 60);
  assert.equal(goAt(fourth), t + 60);
  assert.equal(s.reserve('10.0.0.1', 'a@x', t + 60).kind, 'wait');
  s.finish(ticket(ds[1]));
  const fifth = s.reserve('10.0.0.1', 'a@x', t + 70);
  assert.equal(goAt(fifth), t + 70);
  // When all have finished, clean logins leave no state behind.
  for (const d of [ds[2], fourth, fifth]) s.finish(ticket(d));
  assert.deepEqual(s.stats(), { sources: 0, lanes: 0 });
});

test('too many waiters on one pair: further attempts are refused at once', () => {
  const s = new ThrottleState({ ...P, maxWaiters: 2 });
  const t = 50_000_000;
  for (let i = 0; i < 3; i++) s.reserve('10.0.0.1', 'a@x', t);
  for (let i = 0; i < 2; i++) {
    assert.equal(s.reserve('10.0.0.1', 'a@x', t).kind, 'wait');
    void s.settled('10.0.0.1', 'a@x');
  }
  assert.equal(s.reserve('10.0.0.1', 'a@x', t).kind, 'refuse');
});

test('a refresh read before a local change is not applied over it; an admin clear is', () => {
  const s = new ThrottleState(P);
  const t = 60_000_000;
  const row = (score: number): LoginFailureRow => ({ ip: '10.0.0.1', username: 'a@x', score, failures: score, firstFailureAt: t, lastFailureAt: t });
  s.applyFailure(row(4));
  const v = s.version('10.0.0.1');
  s.applyFailure(row(5)); // a failure recorded while the read was in flight
  assert.equal(s.replaceSource('10.0.0.1', [row(4)], v), false);
  assert.equal(s.pairScore('10.0.0.1', 'a@x', t), 5);
  assert.equal(s.replaceSource('10.0.0.1', [], s.version('10.0.0.1')), true);
  assert.equal(s.hasSource('10.0.0.1'), false);
});

test('names past the per-source cap share one row; decayed rows and idle lanes are swept', () => {
  const s = new ThrottleState({ ...P, maxNamesPerSource: 3 });
  const t = 70_000_000;
  for (const n of ['a', 'b', 'c', 'd', 'e']) fail(s, '10.0.0.1', n, t);
  assert.equal(s.effectiveName('10.0.0.1', 'zzz'), '*');
  assert.equal(s.pairScore('10.0.0.1', 'e', t), 2, 'd and e share *');
  s.sweep(t + 20 * P.halfLifeMs);
  assert.deepEqual(s.stats(), { sources: 0, lanes: 0 });
});

test('source keys: IPv4 as is, IPv6 by /64, IPv4-mapped as IPv4', () => {
  assert.equal(sourceKey('127.0.0.1'), '127.0.0.1');
  assert.equal(sourceKey('::ffff:127.0.0.2'), '127.0.0.2');
  assert.equal(sourceKey('::ffff:7f00:1'), '127.0.0.1');
  assert.equal(sourceKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:DB8:1:2:ffff::1'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8::1'), '2001:db8::/64');
  assert.equal(sourceKey('[2001:db8:0:aa::5]'), '2001:db8:0:aa::/64');
  assert.equal(sourceKey('fe80::1%eth0'), 'fe80::/64');
  assert.equal(sourceKey('2001:db8:1:2::/64'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('::1'), '::1');
  assert.equal(sourceKey(''), 'unknown');
});
