// Password logins: scrypt hashes, throttling per account and per IP, and the login cache never
// accepting a wrong or changed password.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { createAuthenticator } from '../../src/auth/authenticator.ts';
import { hashPassword, verifyPassword } from '../../src/auth/password.ts';

test('password hashes are salted scrypt and verify only the right password', async () => {
  const a = await hashPassword('hunter2');
  const b = await hashPassword('hunter2');
  assert.match(a, /^\$scrypt\$ln=\d+,r=8,p=1\$/);
  assert.notEqual(a, b);
  assert.ok(await verifyPassword('hunter2', a));
  assert.equal(await verifyPassword('hunter3', a), false);
  assert.equal(await verifyPassword('hunter2', 'garbage'), false);
});

test('login, wrong password, throttling per account and per IP, cache follows password changes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-auth-'));
  const store = await openSqliteStore({ path: join(dir, 'db.sqlite'), blobDir: join(dir, 'blobs') });
  try {
    await store.addDomain('example.com');
    const acc = await store.createAccount({ address: 'u@example.com', passwordHash: await hashPassword('right') });
    await store.createAccount({ address: 'v@example.com', passwordHash: await hashPassword('other') });
    const auth = createAuthenticator(store, { maxFailures: 3, windowMs: 60_000, failDelayMs: 1 });

    const ok = await auth.login('U@Example.com', 'right', '10.0.0.1');
    assert.equal(ok.ok, true);
    assert.equal((await auth.login('u@example.com', 'right', '10.0.0.1')).ok, true, 'cached login still works');
    const bad = await auth.login('u@example.com', 'wrong', '10.0.0.1');
    assert.deepEqual(bad.ok ? null : bad.reason, 'invalid');
    assert.equal((await auth.login('nobody@example.com', 'x', '10.0.0.2')).ok, false);

    // Password change: the cached login for the old password no longer works.
    await store.updateAccount(acc.id, { passwordHash: await hashPassword('new') });
    assert.equal((await auth.login('u@example.com', 'right', '10.0.0.3')).ok, false);
    assert.equal((await auth.login('u@example.com', 'new', '10.0.0.3')).ok, true);

    // Third failure for u@ (wrong, right-after-change, ...): now throttled even with the right password.
    await auth.login('u@example.com', 'nope', '10.0.0.4');
    const throttled = await auth.login('u@example.com', 'new', '10.0.0.5');
    assert.deepEqual(throttled.ok ? null : throttled.reason, 'throttled');
    // Another account from a clean IP is unaffected.
    assert.equal((await auth.login('v@example.com', 'other', '10.0.0.6')).ok, true);
    // Per IP: three failures from one address throttle every account from it.
    for (let i = 0; i < 3; i++) await auth.login(`x${i}@example.com`, 'x', '10.9.9.9');
    const ipThrottled = await auth.login('v@example.com', 'other', '10.9.9.9');
    assert.deepEqual(ipThrottled.ok ? null : ipThrottled.reason, 'throttled');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
