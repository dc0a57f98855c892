// PostgreSQL-specific checks the conformance suite can't make through the Store interface:
// migrations, several store instances (server processes) sharing one database, and the blob
// reference counts in the tables themselves.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { openPostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { StoreError, SystemFlag, type Store } from '../../src/store/store.ts';
import type { MessageMeta } from '../../src/protocol/mime/types.ts';
import { PG_URL, dropSchema, freshSchemaName, pgAvailability, probePostgres, sql } from './pg-env.ts';

const availability = pgAvailability(await probePostgres());
if (availability.skip) console.log(`# postgres store tests skipped: ${availability.skip}`);

const meta = { v: 1 } as unknown as MessageMeta;
const body = (n = 200) => Buffer.concat([Buffer.from(`Subject: ${randomBytes(8).toString('hex')}\r\n\r\n`), Buffer.alloc(n, 0x61)]);

async function put(store: Store, mailboxId: number, raw: Buffer) {
  const st = await store.stageBlob(raw);
  try {
    return await store.deliver(st, meta, [{ mailboxId }]);
  } finally {
    st.release();
  }
}

/** Blob rows whose refcount differs from the messages referencing them. */
async function refcountDrift(schema: string) {
  return sql(
    schema,
    `SELECT b.id, b.refcount, coalesce(m.n, 0) AS refs FROM blobs b
     FULL JOIN (SELECT blob_id, count(*) AS n FROM messages GROUP BY blob_id) m ON m.blob_id = b.id
     WHERE b.refcount IS DISTINCT FROM coalesce(m.n, 0)`,
  );
}

if (availability.fail) {
  it('postgres store', () => assert.fail(`CI=true and PostgreSQL cannot be used: ${availability.fail}`));
} else if (availability.skip) {
  it('postgres store', { skip: availability.skip }, () => {});
} else {
  describe('postgres store', () => {
    it('applies its numbered migrations once, also when two processes open a new schema at once', async () => {
      const schema = freshSchemaName();
      try {
        const [a, b] = await Promise.all([openPostgresStore({ url: PG_URL, schema }), openPostgresStore({ url: PG_URL, schema })]);
        const versions = (await sql(schema, 'SELECT version FROM schema_migrations ORDER BY version')).map((r) => r.version);
        assert.deepEqual(versions, [1, 2]);
        await a.close();
        await b.close();
        const c = await openPostgresStore({ url: PG_URL, schema });
        assert.deepEqual((await sql(schema, 'SELECT version FROM schema_migrations ORDER BY version')).map((r) => r.version), [1, 2]);
        await c.close();
        await assert.rejects(c.listDomains(), (e: unknown) => e instanceof StoreError && e.code === 'invalid');
      } finally {
        await dropSchema(schema);
      }
    });

    it('UIDVALIDITY comes from the clock-seeded sequence and keeps increasing across reopen', async () => {
      const schema = freshSchemaName();
      try {
        let store = await openPostgresStore({ url: PG_URL, schema });
        await store.addDomain('example.com');
        const a = await store.createAccount({ address: 'a@example.com', passwordHash: 'h' });
        const first = await store.listMailboxes(a.id);
        const nowS = Math.floor(Date.now() / 1000);
        for (const mb of first) assert.ok(mb.uidValidity >= nowS - 3600 && mb.uidValidity <= nowS + 3600, `uidvalidity ${mb.uidValidity} not near ${nowS}`);
        await store.close();
        store = await openPostgresStore({ url: PG_URL, schema });
        const mb = await store.createMailbox(a.id, 'Later');
        assert.ok(mb.uidValidity > Math.max(...first.map((m) => m.uidValidity)));
        await store.close();
      } finally {
        await dropSchema(schema);
      }
    });

    it('two store instances (two processes) on one database keep quota, UIDs and blob refcounts exact', async () => {
      const schema = freshSchemaName();
      const s1 = await openPostgresStore({ url: PG_URL, schema });
      const s2 = await openPostgresStore({ url: PG_URL, schema });
      try {
        await s1.addDomain('example.com');
        const size = 230;
        const quota = 60 * size;
        const a = await s1.createAccount({ address: 'a@example.com', passwordHash: 'h', quota });
        const inbox = (await s2.getMailbox(a.id, 'INBOX'))!;
        const archive = (await s1.getMailbox(a.id, 'Archive'))!;
        const shared = body(size - 40);
        const results = await Promise.all(
          Array.from({ length: 200 }, async (_, i) => {
            const s = i % 2 ? s1 : s2;
            // A quarter of the deliveries reuse one body: its refcount is contended too.
            const raw = i % 4 === 0 ? shared : body(size - 40);
            const r = (await put(s, i % 3 ? inbox.id : archive.id, raw))[0]!;
            if (r.ok && i % 5 === 0) await s.expunge(r.mailboxId, { uids: [r.uid], onlyDeleted: false });
            return r;
          }),
        );
        assert.ok(results.some((r) => !r.ok && r.reason === 'quota'));
        const acc = (await s1.getAccountById(a.id))!;
        let bytes = 0;
        let count = 0;
        for (const mb of [inbox, archive]) {
          const list = await s2.listMessages(mb.id);
          assert.equal(new Set(list.map((m) => m.uid)).size, list.length);
          for (const m of list) {
            bytes += m.size;
            count++;
          }
        }
        assert.equal(acc.usedBytes, bytes);
        assert.equal(acc.messageCount, count);
        assert.ok(acc.usedBytes <= quota);
        assert.deepEqual(await refcountDrift(schema), []);

        // Mixed copies, moves, flag changes and expunges from both instances.
        await Promise.all(
          Array.from({ length: 60 }, async (_, i) => {
            const s = i % 2 ? s1 : s2;
            const from = i % 3 ? inbox.id : archive.id;
            const to = i % 3 ? archive.id : inbox.id;
            const uids = (await s.listMessages(from)).slice(0, 2).map((m) => m.uid);
            try {
              if (i % 4 === 0) await s.moveMessages(from, uids, to);
              else if (i % 4 === 1) await s.copyMessages(from, uids, to);
              else if (i % 4 === 2) await s.storeFlags(from, uids, 'add', { systemFlags: SystemFlag.Deleted, keywords: [] });
              else await s.expunge(from);
            } catch (err) {
              if (!(err instanceof StoreError && err.code === 'quota')) throw err;
            }
          }),
        );
        assert.deepEqual(await refcountDrift(schema), []);
        await s2.removeAccount(a.id);
        assert.deepEqual(await sql(schema, 'SELECT id FROM blobs'), [], 'no blob outlives its last reference');
        assert.deepEqual(await sql(schema, 'SELECT mailbox_id FROM expunged'), []);
      } finally {
        await s1.close();
        await s2.close();
        await dropSchema(schema);
      }
    });

    it('stages in memory within a bound, reads staged bodies, and fails fast when the server is unreachable', async () => {
      const schema = freshSchemaName();
      const store = await openPostgresStore({ url: PG_URL, schema, defaultMaxBlobBytes: 1000 });
      try {
        await assert.rejects(store.stageBlob(Buffer.alloc(1001)), (e: unknown) => e instanceof StoreError && e.code === 'invalid');
        await assert.rejects(store.stageBlob(Readable.from([Buffer.alloc(600), Buffer.alloc(600)])), (e: unknown) => e instanceof StoreError && e.code === 'invalid');
        const raw = Buffer.alloc(1000, 0x62);
        const st = await store.stageBlob(raw);
        assert.equal(st.id, createHash('sha256').update(raw).digest('hex'));
        assert.ok((await store.readBlob(st.id, 10, 20)).equals(raw.subarray(10, 20)));
        st.release();
        await assert.rejects(store.readBlob(st.id), (e: unknown) => e instanceof StoreError && e.code === 'not-found');
        // A BlobRef that was never staged nor stored can't be delivered.
        await store.addDomain('example.com');
        const a = await store.createAccount({ address: 'a@example.com', passwordHash: 'h' });
        const inbox = (await store.getMailbox(a.id, 'INBOX'))!;
        await assert.rejects(store.deliver({ id: st.id, size: 1000 }, meta, [{ mailboxId: inbox.id }]), (e: unknown) => e instanceof StoreError && e.code === 'not-found');
        assert.equal((await store.getAccountById(a.id))!.usedBytes, 0);
        // Once stored, the same content can be referenced again without staging.
        const st2 = await store.stageBlob(raw);
        await store.deliver(st2, meta, [{ mailboxId: inbox.id }]);
        st2.release();
        const again = await store.append({ id: st2.id, size: 1000 }, meta, { mailboxId: inbox.id });
        assert.equal(again.uid, 2);
        assert.deepEqual(await refcountDrift(schema), []);
      } finally {
        await store.close();
        await dropSchema(schema);
      }
      const t0 = Date.now();
      await assert.rejects(openPostgresStore({ url: 'postgres://postgres@127.0.0.1:1/none' }));
      assert.ok(Date.now() - t0 < 10_000);
    });
  });
}
