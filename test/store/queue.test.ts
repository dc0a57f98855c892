// The outbound queue (src/store/queue.ts, issue 13) on both backends: SQLite (a temp dir per test)
// and PostgreSQL (a fresh schema per test, dropped afterwards; skipped when unreachable, except
// with CI=true). Every test opens real stores; "two nodes" are two stores on the same database.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { blobPath } from '../../src/store/blob/fs-blob-store.ts';
import { StoreError, memoryBlob, type Store } from '../../src/store/store.ts';
import type { QueueMessageInput, QueueRecipient } from '../../src/store/queue.ts';
import { PG_URL, dropSchema, freshSchemaName, pgAvailability, probePostgres } from './pg-env.ts';

interface Db {
  /** A store on this database (several may be open at once: "nodes"). */
  open(o?: { keepFinal?: boolean; collectGarbage?: boolean }): Promise<Store>;
  /** Whether the body is still kept by the backend (file or row). */
  blobKept(id: string): Promise<boolean>;
  destroy(): Promise<void>;
}
interface Backend {
  name: string;
  skip?: string;
  fail?: string;
  create(): Promise<Db>;
}

const pgProblem = await probePostgres();
const backends: Backend[] = [
  {
    name: 'sqlite',
    async create() {
      const dir = mkdtempSync(join(tmpdir(), 'pillarbox-queue-'));
      const blobDir = join(dir, 'blobs');
      return {
        open: (o = {}) =>
          openSqliteStore({ path: join(dir, 'store.sqlite'), blobDir, queueKeepFinal: o.keepFinal ?? false, collectGarbage: o.collectGarbage ?? false }),
        async blobKept(id) {
          // The row says; its file is unlinked off the event loop just after the commit.
          const db = new Database(join(dir, 'store.sqlite'), { readonly: true });
          const row = db.prepare('SELECT 1 FROM blobs WHERE id = ?').get(id) !== undefined;
          db.close();
          const file = blobPath(blobDir, id);
          for (let i = 0; i < 250 && !row && existsSync(file); i++) await pause(20);
          return row && existsSync(file);
        },
        async destroy() {
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'postgres',
    ...pgAvailability(pgProblem),
    async create() {
      const { openPostgresStore } = await import('../../src/store/postgres/postgres-store.ts');
      const { sql } = await import('./pg-env.ts');
      const schema = freshSchemaName();
      return {
        open: (o = {}) => openPostgresStore({ url: PG_URL, schema, queueKeepFinal: o.keepFinal ?? false }),
        async blobKept(id) {
          return (await sql(schema, 'SELECT 1 FROM blobs WHERE id = $1', [id])).length === 1;
        },
        destroy: () => dropSchema(schema),
      };
    },
  },
];

// ------------------------------------------------------------------ helpers

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

function body(tag = 'q'): Buffer {
  return Buffer.from(`From: a@example.org\r\nTo: x@remote.test\r\nSubject: ${tag} ${randomBytes(6).toString('hex')}\r\n\r\nhello\r\n`);
}

async function enqueue(store: Store, rcpts: string[], extra: Partial<QueueMessageInput> = {}, raw = body()) {
  const staged = await store.stageBlob(raw);
  try {
    const m = await store.queue.enqueue({
      blob: staged,
      mailFrom: 'a@example.org',
      origin: 'submission',
      recipients: rcpts.map((address) => ({ address })),
      now: T0,
      expiresAt: T0 + 120 * HOUR,
      ...extra,
    });
    return { m, raw };
  } finally {
    staged.release();
  }
}

const ids = (rs: QueueRecipient[]) => rs.map((r) => r.id).sort((a, b) => a - b);
const storeError = (code: string) => (err: unknown) => err instanceof StoreError && err.code === code;

async function withDb(b: Backend, fn: (db: Db) => Promise<void>): Promise<void> {
  const db = await b.create();
  try {
    await fn(db);
  } finally {
    await db.destroy();
  }
}

async function withStore(b: Backend, fn: (s: Store, db: Db) => Promise<void>, o: { keepFinal?: boolean } = {}): Promise<void> {
  await withDb(b, async (db) => {
    const s = await db.open(o);
    try {
      await fn(s, db);
    } finally {
      await s.close();
    }
  });
}

// ------------------------------------------------------------------ tests

for (const b of backends) {
  describe(`queue store: ${b.name}`, { skip: b.skip }, () => {
    if (b.fail) {
      it('backend available', () => assert.fail(b.fail));
      return;
    }

    it('enqueue is durable: after reopening (and orphan collection) message, recipients and body are there', async () => {
      await withDb(b, async (db) => {
        const s1 = await db.open();
        const notify = { success: false, failure: true, delay: true };
        const staged = await s1.stageBlob(body());
        const raw = await s1.readBlob(staged.id);
        const m = await s1.queue.enqueue({
          blob: staged,
          mailFrom: 'a@example.org',
          envid: 'ENV1',
          ret: 'HDRS',
          accountId: 7,
          origin: 'submission',
          recipients: [{ address: 'Bob@Remote.TEST', orcpt: 'rfc822;Bob@Remote.TEST', notify }, { address: 'carol@other.test', notify: { never: true } }],
          now: T0,
          expiresAt: T0 + 5 * HOUR,
        });
        staged.release();
        assert.match(m.id, /^[A-Za-z0-9]{16}$/);
        assert.equal(m.recipients.length, 2);
        assert.deepEqual(
          m.recipients.map((r) => [r.address, r.domain, r.state, r.attempts, r.nextAttemptAt, r.orcpt]),
          [
            ['Bob@Remote.TEST', 'remote.test', 'queued', 0, T0, 'rfc822;Bob@Remote.TEST'],
            ['carol@other.test', 'other.test', 'queued', 0, T0, null],
          ],
        );
        await s1.close();
        const s2 = await db.open({ collectGarbage: true });
        try {
          const got = await s2.queue.get(m.id);
          assert.deepEqual(got, m);
          assert.deepEqual(got!.recipients[0]!.notify, notify);
          assert.deepEqual(got!.recipients[1]!.notify, { never: true });
          assert.equal(got!.envid, 'ENV1');
          assert.equal(got!.ret, 'HDRS');
          assert.equal(got!.accountId, 7);
          assert.deepEqual(await s2.readBlob(m.blob.id), raw);
          assert.deepEqual((await s2.queue.list()).map((x) => x.id), [m.id]);
        } finally {
          await s2.close();
        }
      });
    });

    it('a message kept as prefix + body from an offset: both survive a reopen; size is what goes out', async () => {
      await withDb(b, async (db) => {
        const s1 = await db.open();
        const returnPath = 'Return-Path: <a@example.org>\r\n';
        const raw = Buffer.concat([Buffer.from(returnPath), body()]);
        const prefix = 'DKIM-Signature: v=1; a=ed25519-sha256; d=example.org; s=x;\r\n b=abc\r\n';
        const { m } = await enqueue(s1, ['bob@remote.test'], { prefix, start: returnPath.length }, raw);
        assert.equal(m.prefix, prefix);
        assert.equal(m.start, returnPath.length);
        assert.equal(m.blob.size, raw.length);
        assert.equal(m.size, prefix.length + raw.length - returnPath.length);
        const plain = (await enqueue(s1, ['bob@remote.test'])).m;
        assert.deepEqual([plain.prefix, plain.start, plain.size], ['', 0, plain.blob.size]);
        await s1.close();
        const s2 = await db.open({ collectGarbage: true });
        try {
          assert.deepEqual(await s2.queue.get(m.id), m);
          assert.deepEqual(await s2.readBlob(m.blob.id), raw);
        } finally {
          await s2.close();
        }
      });
    });

    it('a body given as data (not staged) is stored with the rows: readable, streamable, durable, gone with the message', async () => {
      await withDb(b, async (db) => {
        const s1 = await db.open();
        const raw = Buffer.concat([Buffer.from('Return-Path: <a@example.org>\r\n'), body('inline')]);
        const mb = memoryBlob(raw);
        const m = await s1.queue.enqueue({ blob: mb, data: raw, start: 30, mailFrom: 'a@example.org', origin: 'submission', recipients: [{ address: 'x@remote.test' }], now: T0, expiresAt: T0 + HOUR });
        assert.deepEqual([m.blob, m.start, m.size], [{ id: mb.id, size: raw.length }, 30, raw.length - 30]);
        await s1.close();
        const s2 = await db.open({ collectGarbage: true });
        try {
          assert.deepEqual(await s2.readBlob(mb.id), raw);
          assert.deepEqual(await s2.readBlob(mb.id, 30, 40), raw.subarray(30, 40));
          const chunks: Buffer[] = [];
          for await (const c of s2.streamBlob(mb.id, 30)) chunks.push(c as Buffer);
          assert.deepEqual(Buffer.concat(chunks), raw.subarray(30));
          const [c] = await s2.queue.claim({ now: T0, owner: 'n1', leaseMs: 60_000, limit: 1 });
          await s2.queue.settle('n1', [{ recipientId: c!.recipients[0]!.id, kind: 'sent', reply: '250 ok' }], T0 + 1);
          assert.equal(await s2.queue.get(m.id), null);
          await assert.rejects(s2.readBlob(mb.id), storeError('not-found'));
          // Bad data: not the blob it claims to be; too big to be kept with the rows.
          const other = body('other');
          await assert.rejects(s2.queue.enqueue({ blob: mb, data: other, mailFrom: '', origin: 'dsn', recipients: [{ address: 'a@x.test' }], now: T0, expiresAt: T0 + HOUR }), storeError('invalid'));
          const big = Buffer.alloc(300 * 1024, 0x61);
          await assert.rejects(s2.queue.enqueue({ blob: memoryBlob(big), data: big, mailFrom: '', origin: 'dsn', recipients: [{ address: 'a@x.test' }], now: T0, expiresAt: T0 + HOUR }), storeError('limit'));
        } finally {
          await s2.close();
        }
      });
    });

    it('refuses bad input with clear errors', async () => {
      await withStore(b, async (s) => {
        await assert.rejects(enqueue(s, []), storeError('invalid'));
        await assert.rejects(enqueue(s, ['nodomain']), storeError('invalid'));
        await assert.rejects(enqueue(s, Array.from({ length: 1001 }, (_, i) => `u${i}@x.test`)), storeError('limit'));
        await assert.rejects(enqueue(s, ['a@x.test'], { start: 10_000 }), storeError('invalid'));
        await assert.rejects(enqueue(s, ['a@x.test'], { start: -1 }), storeError('invalid'));
        await assert.rejects(enqueue(s, ['a@x.test'], { prefix: 'DKIM-Signature: no line end' }), storeError('invalid'));
        await assert.rejects(enqueue(s, ['a@x.test'], { prefix: `X: ${'a'.repeat(70_000)}\r\n` }), storeError('limit'));
        await assert.rejects(
          s.queue.enqueue({ blob: { id: 'ab'.repeat(32), size: 3 }, mailFrom: '', origin: 'dsn', recipients: [{ address: 'a@x.test' }], now: T0, expiresAt: T0 }),
          storeError('not-found'),
        );
        assert.deepEqual(await s.queue.stats(T0), { messages: 0, recipients: 0, oldestCreatedAt: null, nextDueAt: null });
        assert.equal(await s.queue.nextDue(), null);
      });
    });

    it('claim leases due recipients grouped per (message, domain); attempts counted; lease expiry frees them', async () => {
      await withStore(b, async (s) => {
        const { m } = await enqueue(s, ['a@one.test', 'b@ONE.test', 'c@two.test']);
        const c1 = await s.queue.claim({ now: T0, owner: 'n1', leaseMs: 60_000, limit: 10 });
        assert.equal(c1.length, 2);
        const byDomain = new Map(c1.map((x) => [x.domain, x]));
        assert.deepEqual(byDomain.get('one.test')!.recipients.map((r) => r.address), ['a@one.test', 'b@ONE.test']);
        assert.deepEqual(byDomain.get('two.test')!.recipients.map((r) => r.address), ['c@two.test']);
        for (const bt of c1) {
          assert.equal(bt.message.id, m.id);
          assert.equal(bt.leaseUntil, T0 + 60_000);
          assert.equal(bt.message.recipients.length, 3);
          for (const r of bt.recipients) assert.equal(r.attempts, 1);
        }
        // Leased: nobody else gets them until the lease ends.
        assert.deepEqual(await s.queue.claim({ now: T0 + 59_999, owner: 'n2', leaseMs: 60_000, limit: 10 }), []);
        // Lease expired (n1 crashed): n2 gets them, attempt 2.
        const c2 = await s.queue.claim({ now: T0 + 60_000, owner: 'n2', leaseMs: 60_000, limit: 1 });
        assert.equal(c2.length, 1, 'limit bounds the batches');
        assert.ok(c2[0]!.recipients.every((r) => r.attempts === 2));
        // n1's late outcome for a recipient n2 now holds is ignored.
        const r0 = c2[0]!.recipients[0]!;
        assert.equal(await s.queue.settle('n1', [{ recipientId: r0.id, kind: 'sent', reply: '250 late' }], T0 + 60_001), 0);
        assert.equal((await s.queue.get(m.id))!.recipients.find((r) => r.id === r0.id)!.state, 'queued');
        // The other batch's lease also expired and nobody re-claimed it: n1 still holds it.
        const other = c1.find((x) => x.domain !== c2[0]!.domain)!;
        assert.equal(await s.queue.settle('n1', other.recipients.map((r) => ({ recipientId: r.id, kind: 'sent' as const, reply: '250 ok' })), T0 + 60_002), other.recipients.length);
        assert.equal(await s.queue.settle('n2', c2[0]!.recipients.map((r) => ({ recipientId: r.id, kind: 'sent' as const, reply: '250 ok' })), T0 + 60_003), c2[0]!.recipients.length);
        assert.equal(await s.queue.get(m.id), null);
      });
    });

    it('enqueue with a lease: the recipients are leased as by a claim; nobody else claims them until it ends', async () => {
      await withStore(b, async (s) => {
        const { m } = await enqueue(s, ['a@one.test', 'b@one.test'], { lease: { owner: 'n1', until: T0 + 60_000 } });
        assert.deepEqual(m.recipients.map((r) => [r.state, r.attempts, r.nextAttemptAt]), [['queued', 1, T0 + 60_000], ['queued', 1, T0 + 60_000]]);
        assert.deepEqual(await s.queue.claim({ now: T0 + 59_999, owner: 'n2', leaseMs: 60_000, limit: 10 }), []);
        // The owner settles as after a claim: one sent, one deferred.
        const [a, bb] = m.recipients;
        const outcomes = [
          { recipientId: a!.id, kind: 'sent' as const, reply: '250 ok' },
          { recipientId: bb!.id, kind: 'deferred' as const, reply: '451 later', nextAttemptAt: T0 + 1000 },
        ];
        assert.equal(await s.queue.settle('n1', outcomes, T0 + 500), 2);
        const c = await s.queue.claim({ now: T0 + 1000, owner: 'n2', leaseMs: 60_000, limit: 10 });
        assert.deepEqual(c.map((x) => x.recipients.map((r) => [r.address, r.attempts])), [[['b@one.test', 2]]]);
        // A lease that ends is claimable by another node (the owner crashed before delivering).
        const { m: m2 } = await enqueue(s, ['c@two.test'], { lease: { owner: 'n1', until: T0 + 60_000 } });
        const c2 = await s.queue.claim({ now: T0 + 60_000, owner: 'n2', leaseMs: 60_000, limit: 10 });
        assert.deepEqual(c2.map((x) => [x.message.id, x.recipients[0]!.attempts]), [[m2.id, 2]]);
        await assert.rejects(enqueue(s, ['d@two.test'], { lease: { owner: 'n1', until: T0 } }), storeError('invalid'));
      });
    });

    it('two concurrent claimers (two stores on one database) never get the same recipient', async () => {
      await withDb(b, async (db) => {
        const s1 = await db.open();
        const s2 = await db.open();
        try {
          const all: number[] = [];
          for (let i = 0; i < 20; i++) all.push(...(await enqueue(s1, [`a${i}@one.test`, `b${i}@two.test`, `c${i}@three.test`])).m.recipients.map((r) => r.id));
          const got: number[] = [];
          const worker = async (s: Store, owner: string) => {
            for (let round = 0; round < 50; round++) {
              const bs = await s.queue.claim({ now: T0, owner, leaseMs: HOUR, limit: 3 });
              if (bs.length === 0 && round > 0) return;
              for (const bt of bs) got.push(...bt.recipients.map((r) => r.id));
            }
          };
          await Promise.all([worker(s1, 'n1'), worker(s2, 'n2'), worker(s1, 'n1b'), worker(s2, 'n2b')]);
          assert.equal(new Set(got).size, got.length, 'a recipient was leased twice');
          assert.deepEqual(got.sort((x, y) => x - y), all.sort((x, y) => x - y));
        } finally {
          await s1.close();
          await s2.close();
        }
      });
    });

    it('settle per recipient: sent / failed final, deferred waits for its next attempt', async () => {
      await withStore(
        b,
        async (s) => {
          const { m } = await enqueue(s, ['ok@d.test', 'bad@d.test', 'later@d.test']);
          const [bt] = await s.queue.claim({ now: T0, owner: 'n1', leaseMs: 60_000, limit: 5 });
          const [ok, bad, later] = bt!.recipients;
          const n = await s.queue.settle(
            'n1',
            [
              { recipientId: ok!.id, kind: 'sent', reply: '250 2.0.0 queued as X' },
              { recipientId: bad!.id, kind: 'failed', reply: '550 5.1.1 no such user' },
              { recipientId: later!.id, kind: 'deferred', reply: '451 4.3.0 try later', nextAttemptAt: T0 + HOUR, delayWarned: true },
            ],
            T0 + 1000,
          );
          assert.equal(n, 3);
          const got = (await s.queue.get(m.id))!;
          const st = new Map(got.recipients.map((r) => [r.address, r]));
          assert.equal(st.get('ok@d.test')!.state, 'sent');
          assert.equal(st.get('ok@d.test')!.lastReply, '250 2.0.0 queued as X');
          assert.equal(st.get('bad@d.test')!.state, 'failed');
          const l = st.get('later@d.test')!;
          assert.deepEqual([l.state, l.attempts, l.nextAttemptAt, l.lastAttemptAt, l.lastReply, l.delayWarned], ['queued', 1, T0 + HOUR, T0 + 1000, '451 4.3.0 try later', true]);
          // Settled twice: the lease is gone, nothing applies.
          assert.equal(await s.queue.settle('n1', [{ recipientId: later!.id, kind: 'sent', reply: '250' }], T0 + 1001), 0);
          assert.deepEqual(await s.queue.claim({ now: T0 + HOUR - 1, owner: 'n1', leaseMs: 1000, limit: 5 }), []);
          const [again] = await s.queue.claim({ now: T0 + HOUR, owner: 'n1', leaseMs: 1000, limit: 5 });
          assert.deepEqual(again!.recipients.map((r) => [r.address, r.attempts]), [['later@d.test', 2]]);
          // Final recipients are never claimed again.
          assert.equal((await s.queue.stats(T0)).recipients, 1);
        },
        { keepFinal: true },
      );
    });

    it('a message whose recipients are all final is removed with its blob reference', async () => {
      await withStore(b, async (s, db) => {
        const { m } = await enqueue(s, ['a@x.test', 'b@y.test']);
        const bs = await s.queue.claim({ now: T0, owner: 'n1', leaseMs: 1000, limit: 5 });
        const [first, second] = bs.flatMap((x) => x.recipients);
        await s.queue.settle('n1', [{ recipientId: first!.id, kind: 'sent', reply: '250' }], T0 + 1);
        assert.ok(await s.queue.get(m.id), 'one recipient is still open');
        assert.ok(await db.blobKept(m.blob.id));
        await s.queue.settle('n1', [{ recipientId: second!.id, kind: 'expired', reply: '451 gave up' }], T0 + 2);
        assert.equal(await s.queue.get(m.id), null);
        assert.equal(await db.blobKept(m.blob.id), false);
        await assert.rejects(s.readBlob(m.blob.id), storeError('not-found'));
        assert.deepEqual(await s.queue.stats(T0), { messages: 0, recipients: 0, oldestCreatedAt: null, nextDueAt: null });
      });
    });

    it('skipDomains leaves busy destinations for later', async () => {
      await withStore(b, async (s) => {
        await enqueue(s, ['a@busy.test', 'b@free.test']);
        await enqueue(s, ['c@BUSY.test']);
        const bs = await s.queue.claim({ now: T0, owner: 'n1', leaseMs: 1000, limit: 10, skipDomains: ['Busy.test'] });
        assert.deepEqual(bs.map((x) => x.domain), ['free.test']);
        const rest = await s.queue.claim({ now: T0, owner: 'n1', leaseMs: 1000, limit: 10 });
        assert.deepEqual(rest.map((x) => x.domain), ['busy.test', 'busy.test']);
      });
    });

    it('retry makes deferred recipients due now (one message or all), not leased ones; remove and stats', async () => {
      await withStore(b, async (s, db) => {
        const a = (await enqueue(s, ['a@x.test'])).m;
        const c = (await enqueue(s, ['c@y.test'], { now: T0 + 10 })).m;
        const d = (await enqueue(s, ['d@z.test'], { now: T0 + 20 })).m;
        const bs = await s.queue.claim({ now: T0 + 20, owner: 'n1', leaseMs: HOUR, limit: 10 });
        assert.equal(bs.length, 3);
        const rid = (id: string) => bs.find((x) => x.message.id === id)!.recipients[0]!.id;
        await s.queue.settle(
          'n1',
          [a, c].map((m) => ({ recipientId: rid(m.id), kind: 'deferred' as const, reply: '421 busy', nextAttemptAt: T0 + 5 * HOUR })),
          T0 + 30,
        );
        assert.deepEqual(await s.queue.stats(T0 + 30), { messages: 3, recipients: 3, oldestCreatedAt: T0, nextDueAt: T0 + 20 + HOUR });
        assert.equal(await s.queue.nextDue(), T0 + 20 + HOUR, 'nextDue agrees with stats');
        assert.equal(await s.queue.retry(a.id, T0 + 40), 1);
        assert.equal(await s.queue.retry(a.id, T0 + 40), 0, 'already due');
        assert.equal(await s.queue.retry(null, T0 + 40), 1, 'c only: d is leased');
        const again = await s.queue.claim({ now: T0 + 40, owner: 'n2', leaseMs: 1000, limit: 10 });
        assert.deepEqual(again.map((x) => x.message.id).sort(), [a.id, c.id].sort());
        assert.equal(await s.queue.remove(d.id), true);
        assert.equal(await s.queue.remove(d.id), false);
        assert.equal(await s.queue.get(d.id), null);
        assert.equal(await db.blobKept(d.blob.id), false);
        assert.equal((await s.queue.stats(T0)).messages, 2);
      });
    });

    it('list pages oldest first with limit and afterId', async () => {
      await withStore(b, async (s) => {
        const made: string[] = [];
        for (let i = 0; i < 25; i++) made.push((await enqueue(s, [`u${i}@x.test`], { now: T0 + i })).m.id);
        const seen: string[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await s.queue.list({ limit: 10, ...(after ? { afterId: after } : {}) });
          if (page.length === 0) break;
          assert.ok(page.length <= 10);
          seen.push(...page.map((m) => m.id));
          after = page.at(-1)!.id;
        }
        assert.deepEqual(seen, made);
        assert.equal((await s.queue.list()).length, 25);
        await assert.rejects(s.queue.list({ afterId: 'nope' }), storeError('not-found'));
      });
    });

    it('a body shared with a mailbox message survives the queue, and the other way round', async () => {
      await withStore(b, async (s, db) => {
        await s.addDomain('example.org');
        const acc = await s.createAccount({ address: 'a@example.org', passwordHash: 'x' });
        const sent = (await s.getMailbox(acc.id, 'Sent'))!;
        // Queue first, then the Sent copy of the same bytes: the delivery fills in the parse.
        const raw = body('shared');
        const { m } = await enqueue(s, ['x@remote.test'], {}, raw);
        const staged = await s.stageBlob(raw);
        const { uid } = await s.append(staged, parseMessage(raw), { mailboxId: sent.id });
        staged.release();
        assert.equal(staged.id, m.blob.id);
        assert.equal(await s.queue.remove(m.id), true);
        assert.deepEqual(await s.readBlob(m.blob.id), raw);
        const [rec] = await s.getMessages(sent.id, [uid]);
        assert.equal(rec!.meta.envelope.subject, parseMessage(raw).envelope.subject);
        // Mailbox first, then queued; the message is expunged while queued.
        const raw2 = body('shared2');
        const st2 = await s.stageBlob(raw2);
        const { uid: uid2 } = await s.append(st2, parseMessage(raw2), { mailboxId: sent.id });
        const m2 = await s.queue.enqueue({ blob: st2, mailFrom: 'a@example.org', origin: 'submission', recipients: [{ address: 'y@remote.test' }], now: T0, expiresAt: T0 + HOUR });
        st2.release();
        await s.expunge(sent.id, { uids: [uid, uid2], onlyDeleted: false });
        assert.deepEqual(await s.readBlob(m2.blob.id), raw2, 'the queue still holds it');
        assert.equal(await db.blobKept(m.blob.id), false, 'nothing needs the first body any more');
        const [bt] = await s.queue.claim({ now: T0, owner: 'n', leaseMs: 1000, limit: 1 });
        await s.queue.settle('n', [{ recipientId: bt!.recipients[0]!.id, kind: 'sent', reply: '250' }], T0);
        assert.equal(await db.blobKept(m2.blob.id), false);
      });
    });
  });
}
