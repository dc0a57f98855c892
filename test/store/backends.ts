// The store backends for tests that run the same cases against each: sqlite (a temp dir per case)
// and postgres (a fresh schema per case). PostgreSQL unreachable: skipped with the reason printed,
// except with CI=true, where that is a failure (pg-env.ts).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Store } from '../../src/store/store.ts';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { openPostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { PG_URL, dropSchema, freshSchemaName, pgAvailability, probePostgres } from './pg-env.ts';

/** A store, and a second handle on the same data (another process: the admin CLI). */
export interface OpenedStore {
  store: Store;
  other(): Promise<Store>;
  close(): Promise<void>;
}

/** A backend: how to open a store on it (`O`: the opened store and whatever else a suite needs). */
export interface Backend<O extends { close(): Promise<void> } = OpenedStore> {
  name: string;
  /** Why the backend can't run here (skipped), or undefined. */
  skip?: string;
  /** Why the backend must fail here (CI without PostgreSQL), or undefined. */
  fail?: string;
  open(): Promise<O>;
}

export const backends: Backend[] = [
  {
    name: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'pillarbox-st-'));
      const o = { path: join(dir, 'store.sqlite'), blobDir: join(dir, 'blobs'), readCheck: 'throw' as const };
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

/**
 * `describe(title (backend))` for every backend (`list`, else `backends`); `define(run, backend)`
 * declares the cases, where `run(name, fn)` gives each case a freshly opened store and closes it
 * afterwards.
 */
export function eachBackend<O extends { close(): Promise<void> } = OpenedStore>(
  title: string,
  define: (run: (name: string, fn: (o: O) => Promise<void>) => void, backend: Backend<O>) => void,
  list: readonly Backend<O>[] = backends as unknown as readonly Backend<O>[],
): void {
  for (const b of list) {
    describe(`${title} (${b.name})`, { skip: b.skip }, () => {
      define((name, fn) =>
        it(name, async () => {
          if (b.fail) assert.fail(b.fail);
          const o = await b.open();
          try {
            await fn(o);
          } finally {
            await o.close();
          }
        }), b);
    });
  }
}
