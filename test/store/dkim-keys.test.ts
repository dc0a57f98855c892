// store.dkimKeys (DKIM signing keys per domain, shared by the signer and the admin CLI),
// the same tests against every backend: sqlite (a temp dir per test) and postgres (a fresh schema
// per test). PostgreSQL unreachable: skipped with the reason printed, except with CI=true.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Store } from '../../src/store/store.ts';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { openPostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { PG_URL, dropSchema, freshSchemaName, pgAvailability, probePostgres } from './pg-env.ts';

interface Backend {
  name: string;
  skip?: string;
  fail?: string;
  /** A store, and a second handle on the same data (another process: the admin CLI). */
  open(): Promise<{ store: Store; other(): Promise<Store>; close(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'pillarbox-dk-'));
      const o = { path: join(dir, 'store.sqlite'), blobDir: join(dir, 'blobs') };
      const store = await openSqliteStore(o);
      const others: Store[] = [];
      return {
        store,
        other: async () => (others.push(await openSqliteStore(o)), others.at(-1)!),
        async close() {
          for (const s of [store, ...others]) await s.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'postgres',
    ...pgAvailability(await probePostgres()),
    async open() {
      const schema = freshSchemaName();
      const store = await openPostgresStore({ url: PG_URL, schema });
      const others: Store[] = [];
      return {
        store,
        other: async () => (others.push(await openPostgresStore({ url: PG_URL, schema })), others.at(-1)!),
        async close() {
          for (const s of [store, ...others]) await s.close();
          await dropSchema(schema);
        },
      };
    },
  },
];
const T = 1_700_000_000_000;
const PEM = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIH0TZXN0IGtleSBub3QgdXNlZCBmb3Igc2lnbmluZyEh\n-----END PRIVATE KEY-----\n';

for (const b of backends) {
  describe(`dkimKeys (${b.name})`, { skip: b.skip }, () => {
    const run = (name: string, fn: (o: Awaited<ReturnType<Backend['open']>>) => Promise<void>) =>
      it(name, async () => {
        if (b.fail) assert.fail(b.fail);
        const o = await b.open();
        try {
          await fn(o);
        } finally {
          await o.close();
        }
      });

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
}
