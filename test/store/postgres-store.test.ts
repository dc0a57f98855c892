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
import { PG_MIGRATIONS } from '../../src/store/postgres/schema.ts';
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
     FULL JOIN (SELECT blob_id, count(*) AS n FROM (SELECT blob_id FROM messages UNION ALL SELECT blob_id FROM pop_retained) r GROUP BY blob_id) m
       ON m.blob_id = b.id
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
        assert.deepEqual(versions, PG_MIGRATIONS.map((m) => m.version));
        await a.close();
        await b.close();
        const c = await openPostgresStore({ url: PG_URL, schema });
        assert.deepEqual((await sql(schema, 'SELECT version FROM schema_migrations ORDER BY version')).map((r) => r.version), PG_MIGRATIONS.map((m) => m.version));
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

    it('POP3 updates from two instances, racing deliveries, moves, expunges and Trash/Archive deletion: no deadlock, exact counts', async () => {
      const schema = freshSchemaName();
      const s1 = await openPostgresStore({ url: PG_URL, schema });
      const s2 = await openPostgresStore({ url: PG_URL, schema });
      try {
        await s1.addDomain('example.com');
        const a = await s1.createAccount({ address: 'a@example.com', passwordHash: 'h' });
        const b = await s1.createAccount({ address: 'b@example.com', passwordHash: 'h' });
        const inbox = (await s1.getMailbox(a.id, 'INBOX'))!;
        const bInbox = (await s1.getMailbox(b.id, 'INBOX'))!;
        const shared = [body(100), body(120), body(140)];
        const deliver = async (s: Store, i: number) => {
          const st = await s.stageBlob(i % 3 === 0 ? shared[i % shared.length]! : body(90 + i));
          try {
            await s.deliver(st, meta, i % 2 ? [{ mailboxId: inbox.id }, { mailboxId: bInbox.id }] : [{ mailboxId: inbox.id }]);
          } finally {
            st.release();
          }
        };
        for (let i = 0; i < 60; i++) await deliver(s1, i);
        const initial = (await s1.listMessages(inbox.id)).map((m) => m.uid);
        const actions = ['expunge', 'trash', 'archive', 'keep'] as const;
        let popRemoved = 0;
        let maxRetained = 0;
        const tolerated = (err: unknown) => {
          if (err instanceof StoreError && (err.code === 'not-found' || err.code === 'exists')) return;
          throw err;
        };
        await Promise.all(
          Array.from({ length: 80 }, async (_, i) => {
            const s = i % 2 ? s1 : s2;
            try {
              switch (i % 8) {
                case 0:
                case 1:
                case 2: {
                  // Each POP update takes two of the first messages (some already moved by others).
                  const k = Math.floor(i / 8) * 3 + (i % 8);
                  const uids = initial.slice(k * 2, k * 2 + 2);
                  // Mostly retaining; once a retainSince in the future drops every row.
                  const retainSince = i === 41 ? Date.now() + 60_000 : i % 5 === 0 ? null : Date.now() - 60_000;
                  const r = await s.popUpdate(inbox.id, { seen: uids.slice(1), remove: uids, action: actions[i % 4]!, retainSince }, { origin: `pop${i}` });
                  popRemoved += r.removed.length;
                  maxRetained = Math.max(maxRetained, (await s.popRetained(inbox.id, 0)).length);
                  break;
                }
                case 3:
                  await deliver(s, i);
                  break;
                case 4: {
                  const uids = (await s.listMessages(inbox.id)).slice(-2).map((m) => m.uid);
                  const archive = await s.getMailbox(a.id, 'Archive');
                  if (archive) await s.moveMessages(inbox.id, uids, archive.id);
                  break;
                }
                case 5:
                  for (const name of ['Trash', 'Archive']) {
                    const mb = await s.getMailbox(a.id, name);
                    if (mb) await s.expunge(mb.id, { onlyDeleted: false });
                  }
                  break;
                case 6:
                  await s.deleteMailbox(a.id, i % 16 === 6 ? 'Trash' : 'Archive');
                  break;
                default:
                  await s.createMailbox(a.id, i % 16 === 7 ? 'Archive' : 'Trash');
              }
            } catch (err) {
              tolerated(err);
            }
          }),
        );
        assert.ok(popRemoved > 10 && maxRetained > 3, `the race exercised POP removals (${popRemoved}) and retention (${maxRetained})`);
        assert.deepEqual(await refcountDrift(schema), []);
        for (const acc of [a, b]) {
          let bytes = 0;
          let count = 0;
          for (const mb of await s2.listMailboxes(acc.id))
            for (const m of await s2.listMessages(mb.id)) {
              bytes += m.size;
              count++;
            }
          const row = (await s2.getAccountById(acc.id))!;
          assert.equal(row.usedBytes, bytes, 'retained messages are outside usedBytes');
          assert.equal(row.messageCount, count);
        }
        // Every retained row's body is readable.
        for (const r of await s1.popRetained(inbox.id, 0)) assert.equal((await s2.readBlob(r.blobId)).length, r.size);
        await s2.removeAccount(a.id);
        assert.deepEqual(await sql(schema, 'SELECT inbox_id FROM pop_retained'), []);
        assert.deepEqual(await refcountDrift(schema), []);
        await s1.removeAccount(b.id);
        assert.deepEqual(await sql(schema, 'SELECT id FROM blobs'), [], 'no blob outlives its last reference');
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
