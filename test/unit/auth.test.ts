// Password logins through the authenticator with a real SQLite store and real scrypt: hashes,
// the login cache following password changes, and throttling per (name, source) — timed by an
// injected clock (sleeping advances virtual time), so no assertion depends on the machine's speed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { createAuthenticator, type Clock } from '../../src/auth/authenticator.ts';
import { hashPassword, verifyPassword } from '../../src/auth/password.ts';
import type { Store } from '../../src/store/store.ts';
import type { Logger } from '../../src/obs/log.ts';
import type { AuthResult } from '../../src/net/types.ts';

function virtualClock(start = 1_700_000_000_000): Clock & { t: number } {
  const c = {
    t: start,
    now: () => c.t,
    sleep: async (ms: number) => {
      c.t += Math.max(0, ms);
    },
  };
  return c;
}

function captureLog(): Logger & { lines: Array<{ event: string; f: Record<string, unknown> }> } {
  const lines: Array<{ event: string; f: Record<string, unknown> }> = [];
  const push = (event: string, f: Record<string, unknown> = {}) => void lines.push({ event, f });
  return { lines, debug: push, info: push, warn: push, error: push };
}

async function withStore(fn: (store: Store, path: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-auth-'));
  const path = join(dir, 'db.sqlite');
  const store = await openSqliteStore({ path, blobDir: join(dir, 'blobs') });
  try {
    await store.addDomain('example.com');
    await fn(store, path);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const reason = (r: AuthResult) => (r.ok ? 'ok' : r.reason);

test('password hashes are salted scrypt and verify only the right password', async () => {
  const a = await hashPassword('hunter2');
  const b = await hashPassword('hunter2');
  assert.match(a, /^\$scrypt\$ln=\d+,r=8,p=1\$/);
  assert.notEqual(a, b);
  assert.ok(await verifyPassword('hunter2', a));
  assert.equal(await verifyPassword('hunter3', a), false);
  assert.equal(await verifyPassword('hunter2', 'garbage'), false);
});

test('login, wrong password, unknown user; the login cache follows password changes', () =>
  withStore(async (store) => {
    const acc = await store.createAccount({ address: 'u@example.com', passwordHash: await hashPassword('right') });
    const auth = createAuthenticator(store, { clock: virtualClock(), policy: { failDelayMs: 0 } });
    try {
      assert.equal(reason(await auth.login('U@Example.com', 'right', '10.0.0.1')), 'ok');
      assert.equal(reason(await auth.login('u@example.com', 'right', '10.0.0.1')), 'ok', 'cached login still works');
      assert.equal(reason(await auth.login('u@example.com', 'wrong', '10.0.0.1')), 'invalid');
      assert.equal(reason(await auth.login('nobody@example.com', 'x', '10.0.0.2')), 'invalid');
      await store.updateAccount(acc.id, { passwordHash: await hashPassword('new') });
      assert.equal(reason(await auth.login('u@example.com', 'right', '10.0.0.3')), 'invalid', 'old password no longer accepted');
      assert.equal(reason(await auth.login('u@example.com', 'new', '10.0.0.3')), 'ok');
    } finally {
      auth.close();
    }
  }));

test('failures slow only their (account, source) pair, with growing delays; the right password is delayed, not refused', () =>
  withStore(async (store) => {
    await store.createAccount({ address: 'u@example.com', passwordHash: await hashPassword('right') });
    await store.createAccount({ address: 'v@example.com', passwordHash: await hashPassword('other') });
    const clock = virtualClock();
    const log = captureLog();
    const auth = createAuthenticator(store, { clock, log, policy: { failDelayMs: 0 } });
    try {
      const held: number[] = [];
      for (let i = 0; i < 10; i++) {
        const t0 = clock.t;
        assert.equal(reason(await auth.login('u@example.com', `wrong-${i}`, '10.0.0.1')), 'invalid', `attempt ${i + 1} is checked, not refused`);
        held.push(clock.t - t0);
        clock.t += 100; // the client retries 100 ms after each answer
      }
      // Three free, then ~1, 2, 4, 8 s and the 15 s cap (less the 100 ms the client took, and a
      // little less as the first failures decay during the waits).
      assert.deepEqual(held.slice(0, 6), [0, 0, 0, 900, 1900, 3900]);
      assert.ok(held[6]! > 7000 && held[6]! <= 7900, held.join(' '));
      assert.ok(held.slice(7).every((h) => h > 13_000 && h <= 14_900), held.join(' '));
      const rows = await store.loginFailures.list({ ip: '10.0.0.1' });
      assert.deepEqual(rows.map((r) => [r.username, r.failures]), [['u@example.com', 10]]);
      const failed = log.lines.filter((l) => l.event === 'auth.login-failed');
      assert.equal(failed.length, 10);
      assert.deepEqual(Object.keys(failed[9]!.f).filter((k) => ['user', 'ip', 'reason', 'delay'].includes(k)), ['user', 'ip', 'reason', 'delay']);
      assert.equal(failed[9]!.f.delay, 15_000);

      // Another account from that address, and the same account from another address: at once.
      for (const [u, p, ip] of [['v@example.com', 'other', '10.0.0.1'], ['u@example.com', 'right', '10.0.0.2']] as const) {
        const t0 = clock.t;
        assert.equal(reason(await auth.login(u, p, ip)), 'ok');
        assert.equal(clock.t - t0, 0, `${u} from ${ip} not delayed`);
      }
      // The pair itself with the right password: delayed (one 15 s gap), then OK, and forgiven.
      const t0 = clock.t;
      assert.equal(reason(await auth.login('u@example.com', 'right', '10.0.0.1')), 'ok');
      assert.ok(clock.t - t0 >= 14_000, `held ${clock.t - t0} ms`);
      assert.deepEqual(await store.loginFailures.list(), []);
      assert.equal(reason(await auth.login('u@example.com', 'wrong-again', '10.0.0.1')), 'invalid');
      assert.equal((await store.loginFailures.list())[0]!.failures, 1, 'counting starts again');
    } finally {
      auth.close();
    }
  }));

test('failures decay: after a few half-lives the pair logs in without waiting', () =>
  withStore(async (store) => {
    await store.createAccount({ address: 'u@example.com', passwordHash: await hashPassword('right') });
    const clock = virtualClock();
    const auth = createAuthenticator(store, { clock, policy: { failDelayMs: 0 } });
    try {
      for (let i = 0; i < 8; i++) await auth.login('u@example.com', `w${i}`, '10.0.0.1');
      clock.t += 2 * 5 * 60_000; // two half-lives: score 8 → 2
      const t0 = clock.t;
      assert.equal(reason(await auth.login('u@example.com', 'right', '10.0.0.1')), 'ok');
      assert.equal(clock.t - t0, 0);
    } finally {
      auth.close();
    }
  }));

test('a repeated wrong password (a device with an old one) is not counted again', () =>
  withStore(async (store) => {
    await store.createAccount({ address: 'u@example.com', passwordHash: await hashPassword('right') });
    const clock = virtualClock();
    const auth = createAuthenticator(store, { clock, policy: { failDelayMs: 0 } });
    try {
      for (let i = 0; i < 20; i++) {
        assert.equal(reason(await auth.login('u@example.com', 'last-years-password', '10.0.0.1')), 'invalid');
        clock.t += 1000;
      }
      const [row] = await store.loginFailures.list();
      assert.equal(row!.failures, 1);
      const t0 = clock.t;
      assert.equal(reason(await auth.login('u@example.com', 'right', '10.0.0.1')), 'ok');
      assert.equal(clock.t - t0, 0);
    } finally {
      auth.close();
    }
  }));

test('IPv6 sources are counted per /64; IPv4-mapped addresses as IPv4', () =>
  withStore(async (store) => {
    await store.createAccount({ address: 'u@example.com', passwordHash: await hashPassword('right') });
    const clock = virtualClock();
    const auth = createAuthenticator(store, { clock, policy: { failDelayMs: 0 } });
    try {
      for (let i = 0; i < 3; i++) await auth.login('u@example.com', `w${i}`, `2001:db8:1:2::${i + 1}`);
      await auth.login('u@example.com', 'm', '::ffff:192.0.2.7');
      assert.deepEqual((await store.loginFailures.list()).map((r) => [r.ip, r.failures]), [['192.0.2.7', 1], ['2001:db8:1:2::/64', 3]]);
      const t0 = clock.t;
      await auth.login('u@example.com', 'w9', '2001:db8:1:2:aaaa::9');
      assert.ok(clock.t - t0 >= 900, 'another address of the same /64 is slowed');
      const t1 = clock.t;
      assert.equal(reason(await auth.login('u@example.com', 'right', '2001:db8:1:3::1')), 'ok');
      assert.equal(clock.t - t1, 0, 'the neighbouring /64 is not');
    } finally {
      auth.close();
    }
  }));

test('an admin clear from another process (a second store handle) takes effect at the next attempt', () =>
  withStore(async (store, path) => {
    await store.createAccount({ address: 'u@example.com', passwordHash: await hashPassword('right') });
    const clock = virtualClock();
    const auth = createAuthenticator(store, { clock, policy: { failDelayMs: 0 } });
    const admin = await openSqliteStore({ path, blobDir: join(path, '..', 'blobs') });
    try {
      for (let i = 0; i < 8; i++) await auth.login('u@example.com', `w${i}`, '10.0.0.1');
      assert.equal(await admin.loginFailures.clear({ username: 'u@example.com' }), 1);
      const t0 = clock.t;
      assert.equal(reason(await auth.login('u@example.com', 'right', '10.0.0.1')), 'ok');
      assert.equal(clock.t - t0, 0);
    } finally {
      auth.close();
      await admin.close();
    }
  }));

test('a restarted server keeps the failures (loaded from the store)', () =>
  withStore(async (store) => {
    await store.createAccount({ address: 'u@example.com', passwordHash: await hashPassword('right') });
    const clock = virtualClock();
    const first = createAuthenticator(store, { clock, policy: { failDelayMs: 0 } });
    for (let i = 0; i < 6; i++) await first.login('u@example.com', `w${i}`, '10.0.0.1');
    first.close();
    const second = createAuthenticator(store, { clock, policy: { failDelayMs: 0 } });
    try {
      await second.ready;
      assert.ok(second.state.currentDelay('10.0.0.1', 'u@example.com', clock.t) >= 4000); // score ~6: gap ~8 s
    } finally {
      second.close();
    }
  }));

test('100 parallel wrong passwords and the right one: only the free allowance is checked at once', () =>
  withStore(async (store) => {
    await store.createAccount({ address: 'u@example.com', passwordHash: await hashPassword('right') });
    const log = captureLog();
    // Real time, small delays: the assertions count outcomes, they don't measure time.
    const auth = createAuthenticator(store, { log, policy: { delayMs: 50, maxDelayMs: 400, maxWaitMs: 1500, failDelayMs: 0 } });
    try {
      const wrong = Array.from({ length: 100 }, (_, i) => auth.login('u@example.com', `guess-${i}`, i % 2 ? '10.0.0.1' : '10.0.0.2'));
      const right = auth.login('u@example.com', 'right', '10.0.0.1');
      const results = await Promise.all([...wrong, right]);
      const checked = log.lines.filter((l) => l.event === 'auth.login-failed');
      const atOnce = checked.filter((l) => !l.f.held);
      assert.ok(atOnce.length <= 6, `${atOnce.length} checked without being held (3 per address)`);
      assert.ok(checked.length >= 6 && checked.length <= 30, `${checked.length} of 100 wrong guesses checked at all`);
      const refused = results.filter((r) => !r.ok && r.reason === 'throttled').length;
      assert.equal(refused + checked.length + (results[100]!.ok ? 1 : 0), 101);
      const delayed = log.lines.filter((l) => l.event === 'auth.throttled' && l.f.action === 'delayed');
      if (results[100]!.ok) assert.ok(delayed.some((l) => l.f.ip === '10.0.0.1'), 'the right password got through only after a wait');
    } finally {
      auth.close();
    }
  }));
