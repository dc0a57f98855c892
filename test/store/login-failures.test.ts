// store.loginFailures (the failed-login state login throttling keeps, shared with the admin CLI),
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
      const dir = mkdtempSync(join(tmpdir(), 'pillarbox-lf-'));
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

const HL = 300_000;
const T = 1_700_000_000_000;

for (const b of backends) {
  describe(`loginFailures (${b.name})`, { skip: b.skip }, () => {
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

    run('record adds 1 to a score that halves every half-life; failures count every one', async ({ store }) => {
      const lf = store.loginFailures;
      const r1 = await lf.record('192.0.2.1', 'a@example.com', T, HL);
      assert.deepEqual(r1, { ip: '192.0.2.1', username: 'a@example.com', score: 1, failures: 1, firstFailureAt: T, lastFailureAt: T });
      const r2 = await lf.record('192.0.2.1', 'a@example.com', T + HL, HL);
      assert.equal(r2.score, 1.5);
      assert.equal(r2.failures, 2);
      assert.equal(r2.firstFailureAt, T);
      assert.equal(r2.lastFailureAt, T + HL);
      // A failure stamped earlier than the last one (another process's clock): no decay, last kept.
      const r3 = await lf.record('192.0.2.1', 'a@example.com', T, HL);
      assert.equal(r3.score, 2.5);
      assert.equal(r3.lastFailureAt, T + HL);
      assert.deepEqual(await lf.list(), [r3]);
    });

    run('list filters by source and by name, ordered by source then name', async ({ store }) => {
      const lf = store.loginFailures;
      for (const [ip, u] of [['2001:db8:1:2::/64', 'b@x'], ['192.0.2.1', 'b@x'], ['192.0.2.1', 'a@x'], ['198.51.100.7', '*']]) await lf.record(ip!, u!, T, HL);
      assert.deepEqual((await lf.list()).map((r) => `${r.ip} ${r.username}`), ['192.0.2.1 a@x', '192.0.2.1 b@x', '198.51.100.7 *', '2001:db8:1:2::/64 b@x']);
      assert.deepEqual((await lf.list({ ip: '192.0.2.1' })).map((r) => r.username), ['a@x', 'b@x']);
      assert.deepEqual((await lf.list({ username: 'b@x' })).map((r) => r.ip), ['192.0.2.1', '2001:db8:1:2::/64']);
      assert.deepEqual(await lf.list({ ip: '192.0.2.1', username: 'zz' }), []);
    });

    run('clear removes a pair, a name everywhere, a source, or everything, and says how many', async ({ store }) => {
      const lf = store.loginFailures;
      const seed = async () => {
        await lf.clear();
        for (const ip of ['10.0.0.1', '10.0.0.2']) for (const u of ['a@x', 'b@x']) await lf.record(ip, u, T, HL);
      };
      await seed();
      assert.equal(await lf.clear({ ip: '10.0.0.1', username: 'a@x' }), 1);
      assert.equal((await lf.list()).length, 3);
      await seed();
      assert.equal(await lf.clear({ username: 'a@x' }), 2);
      assert.deepEqual((await lf.list()).map((r) => r.username), ['b@x', 'b@x']);
      await seed();
      assert.equal(await lf.clear({ ip: '10.0.0.2' }), 2);
      assert.deepEqual((await lf.list()).map((r) => r.ip), ['10.0.0.1', '10.0.0.1']);
      await seed();
      assert.equal(await lf.clear(), 4);
      assert.deepEqual(await lf.list(), []);
    });

    run('prune drops rows whose last failure is older than the cut-off', async ({ store }) => {
      const lf = store.loginFailures;
      await lf.record('10.0.0.1', 'old@x', T - 10 * HL, HL);
      await lf.record('10.0.0.1', 'new@x', T, HL);
      assert.equal(await lf.prune(T - HL), 1);
      assert.deepEqual((await lf.list()).map((r) => r.username), ['new@x']);
    });

    run('parallel failures from two store handles (server and CLI processes) are all counted', async ({ store, other }) => {
      const second = await other();
      await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? store : second).loginFailures.record('10.0.0.9', 'a@x', T, HL)));
      const [row] = await store.loginFailures.list();
      assert.equal(row!.failures, 40);
      assert.equal(row!.score, 40);
      // What one handle clears, the other no longer sees.
      assert.equal(await second.loginFailures.clear({ ip: '10.0.0.9' }), 1);
      assert.deepEqual(await store.loginFailures.list(), []);
    });
  });
}
