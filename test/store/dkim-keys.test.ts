// store.dkimKeys (DKIM signing keys per domain, shared by the signer and the admin CLI),
// the same tests against every backend: sqlite (a temp dir per test) and postgres (a fresh schema
// per test). PostgreSQL unreachable: skipped with the reason printed, except with CI=true.

import assert from 'node:assert/strict';
import { eachBackend } from './backends.ts';

const T = 1_700_000_000_000;
const PEM = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIH0TZXN0IGtleSBub3QgdXNlZCBmb3Igc2lnbmluZyEh\n-----END PRIVATE KEY-----\n';

eachBackend('dkimKeys', (run) => {
  run('add stores a key (names lower-cased) that get, list and active return', async ({ store }) => {
    const k = await store.dkimKeys.add({ domain: 'Example.ORG', selector: 'PB20250101e', algorithm: 'ed25519-sha256', privateKeyPem: PEM, now: T });
    const want = { domain: 'example.org', selector: 'pb20250101e', algorithm: 'ed25519-sha256', privateKeyPem: PEM, createdAt: T, active: true, retiredAt: null };
    assert.deepEqual(k, want);
    assert.deepEqual(await store.dkimKeys.get('example.org', 'pb20250101E'), want);
    assert.equal(await store.dkimKeys.get('example.org', 'other'), null);
    assert.deepEqual(await store.dkimKeys.list(), [want]);
    assert.deepEqual(await store.dkimKeys.active('EXAMPLE.org'), [want]);
    assert.deepEqual(await store.dkimKeys.active('example.net'), []);
  });

  run('a selector is unique per domain, not across domains', async ({ store }) => {
    const k = { selector: 's1', algorithm: 'rsa-sha256' as const, privateKeyPem: PEM, now: T };
    await store.dkimKeys.add({ ...k, domain: 'a.example' });
    await store.dkimKeys.add({ ...k, domain: 'b.example' });
    await assert.rejects(store.dkimKeys.add({ ...k, domain: 'A.example' }), { name: 'StoreError', code: 'exists' });
    assert.equal((await store.dkimKeys.list()).length, 2);
  });

  run('rotation: new selector signs alongside, retire stops the old one; the admin CLI sees it', async ({ store, other }) => {
    const ks = store.dkimKeys;
    await ks.add({ domain: 'x.example', selector: 'old', algorithm: 'rsa-sha256', privateKeyPem: PEM, now: T });
    await ks.add({ domain: 'x.example', selector: 'new', algorithm: 'rsa-sha256', privateKeyPem: PEM, now: T + 1000 });
    await ks.add({ domain: 'w.example', selector: 'zz', algorithm: 'ed25519-sha256', privateKeyPem: PEM, now: T + 5 });
    assert.deepEqual((await ks.active('x.example')).map((k) => k.selector), ['old', 'new']);
    const cli = await other();
    const r = await cli.dkimKeys.retire('x.example', 'old', T + 2000);
    assert.equal(r?.active, false);
    assert.equal(r?.retiredAt, T + 2000);
    // retiring again keeps the first retirement time
    assert.equal((await ks.retire('x.example', 'old', T + 9000))?.retiredAt, T + 2000);
    assert.equal(await ks.retire('x.example', 'nope', T), null);
    assert.deepEqual((await ks.active('x.example')).map((k) => k.selector), ['new']);
    assert.deepEqual((await ks.list()).map((k) => `${k.domain}/${k.selector}/${k.active}`), ['w.example/zz/true', 'x.example/old/false', 'x.example/new/true']);
    assert.deepEqual((await ks.list('x.example')).map((k) => k.selector), ['old', 'new']);
    assert.equal(await cli.dkimKeys.remove('x.example', 'old'), true);
    assert.equal(await ks.remove('x.example', 'old'), false);
    assert.deepEqual((await ks.list('x.example')).map((k) => k.selector), ['new']);
  });
});
