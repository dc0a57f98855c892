// Bulk commands in steps (src/store/sqlite/bulk.ts, src/store/postgres/writes.ts), against both
// backends with steps of 7 rows (SQLite also with steps that stop after one row, as a step past
// its deadline does), so every command here crosses many step boundaries: results,
// Change order and counters equal what one transaction gave; a COPY is never seen half done; a
// failed COPY leaves the destination as it was; a write to the destination waits for the COPY;
// a store closed in the middle of a COPY or a DELETE is cleaned up at the next (server) open.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import type { Change } from '../../src/store/bus.ts';
import { SystemFlag, type Account, type Mailbox, type Store } from '../../src/store/store.ts';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { PG_URL, dropSchema, freshSchemaName, pgAvailability, probePostgres } from './pg-env.ts';
import { eachBackend, type Backend } from './backends.ts';

const STEP = { maxRows: 7 };
/** Steps whose deadline has passed before they begin: each does its one guaranteed row and stops (Chunker.deadline). */
const ONE_ROW = { maxRows: 7, stepMs: 0 };
const N = 50;

interface Opened {
  store: Store;
  reopen(server: boolean): Promise<Store>;
  close(): Promise<void>;
  /** SQLite: one value read through a connection of its own (what is committed, durable or not). */
  peek?(sql: string): unknown;
}

/** Event-loop turns until cond() holds (a step of a bulk command committed). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

const pgProblem = await probePostgres();
const backends: Backend<Opened>[] = [
  ...[STEP, ONE_ROW].map((bulk): Backend<Opened> => ({
    name: bulk === STEP ? 'sqlite' : 'sqlite, every step stopped by its deadline after one row',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'pillarbox-bulk-'));
      const o = { path: join(dir, 'store.sqlite'), blobDir: join(dir, 'blobs'), bulk, readCheck: 'throw' as const };
      let store = await openSqliteStore(o);
      return {
        store,
        peek(sql: string) {
          const db = new Database(o.path, { readonly: true });
          try {
            return db.prepare(sql).pluck().get();
          } finally {
            db.close();
          }
        },
        async reopen(server: boolean) {
          await store.close().catch(() => {});
          store = await openSqliteStore({ ...o, collectGarbage: server });
          return store;
        },
        async close() {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  })),
  {
    name: 'postgres',
    ...pgAvailability(pgProblem),
    async open() {
      const { openPostgresStore } = await import('../../src/store/postgres/postgres-store.ts');
      const schema = freshSchemaName();
      let store = await openPostgresStore({ url: PG_URL, schema, bulk: STEP });
      return {
        store,
        async reopen() {
          await store.close().catch(() => {});
          store = await openPostgresStore({ url: PG_URL, schema, bulk: STEP });
          return store;
        },
        async close() {
          await store.close();
          await dropSchema(schema);
        },
      };
    },
  },
];

async function setup(store: Store, n = N): Promise<{ acct: Account; inbox: Mailbox; archive: Mailbox; trash: Mailbox }> {
  await store.addDomain('example.com');
  const acct = await store.createAccount({ address: 'bulk@example.com', passwordHash: 'x' });
  const inbox = (await store.getMailbox(acct.id, 'INBOX'))!;
  await fill(store, inbox.id, n);
  return { acct, inbox, archive: (await store.getMailbox(acct.id, 'Archive'))!, trash: (await store.getMailbox(acct.id, 'Trash'))! };
}

async function fill(store: Store, mailboxId: number, n: number, from = 1): Promise<void> {
  for (let i = from; i < from + n; i++) {
    const raw = Buffer.from(`Subject: bulk ${i}\r\nMessage-ID: <b${i}@example.com>\r\n\r\nbody ${i} ${'y'.repeat(i % 5)}\r\n`);
    const staged = await store.stageBlob(raw);
    const [r] = await store.deliver(staged, parseMessage(raw), [{ mailboxId, systemFlags: i % 3 === 0 ? SystemFlag.Deleted : 0, internalDate: Date.UTC(2024, 0, 1) + i * 1000 }]);
    staged.release();
    assert.ok(r?.ok);
  }
}

function record(store: Store, accountId: number): Change[] {
  const seen: Change[] = [];
  store.bus.subscribe(accountId, (cs) => seen.push(...cs));
  return seen;
}

/** Polls `probe` every event-loop turn until `p` settles; returns what it saw. */
async function watch<T, R>(p: Promise<T>, probe: () => Promise<R>): Promise<{ result: T; seen: R[] }> {
  let done = false;
  const seen: R[] = [];
  const out = p.finally(() => (done = true));
  while (!done) {
    seen.push(await probe());
    await new Promise((r) => setImmediate(r));
  }
  return { result: await out, seen };
}

eachBackend('bulk commands in steps', (run, b) => {
  run('STORE over many steps: every message, its own increasing MODSEQ, Changes in UID order', async ({ store }) => {
    const { acct, inbox } = await setup(store);
    const seen = record(store, acct.id);
    const before = (await store.getMailboxById(inbox.id))!.highestModseq;
    const r = await store.storeFlags(inbox.id, [...Array(N).keys()].map((i) => N - i), 'add', { systemFlags: SystemFlag.Seen, keywords: ['$Bulk'] });
    assert.equal(r.updated.length, N);
    assert.deepEqual(r.updated.map((u) => u.uid), [...Array(N).keys()].map((i) => i + 1));
    r.updated.forEach((u, k) => assert.equal(u.modseq, before + k + 1));
    const flags = seen.filter((c) => c.kind === 'flags-changed');
    assert.deepEqual(flags.map((c) => c.uid), r.updated.map((u) => u.uid));
    const list = await store.listMessages(inbox.id);
    assert.ok(list.every((m) => m.systemFlags & SystemFlag.Seen && m.keywords.includes('$Bulk')));
    assert.equal((await store.getMailboxById(inbox.id))!.highestModseq, before + N);
  });

  run('EXPUNGE over many steps removes exactly the \\Deleted messages and logs them', async ({ store }) => {
    const { acct, inbox } = await setup(store);
    const seen = record(store, acct.id);
    const hms = (await store.getMailboxById(inbox.id))!.highestModseq;
    const deleted = (await store.listMessages(inbox.id)).filter((m) => m.systemFlags & SystemFlag.Deleted).map((m) => m.uid);
    const removed = await store.expunge(inbox.id);
    assert.deepEqual(removed, deleted);
    assert.deepEqual(seen.flatMap((c) => (c.kind === 'messages-expunged' ? c.uids : [])), deleted);
    assert.deepEqual(await store.expungedSince(inbox.id, hms), deleted);
    const left = await store.listMessages(inbox.id);
    assert.equal(left.length, N - deleted.length);
    assert.ok(left.every((m) => !(m.systemFlags & SystemFlag.Deleted)));
    const acc = (await store.getAccountById(acct.id))!;
    assert.equal(acc.messageCount, left.length);
    assert.equal(acc.usedBytes, left.reduce((s, m) => s + m.size, 0));
    // With a UID list: only those.
    assert.deepEqual(await store.expunge(inbox.id, { uids: [1, 2, 4, 49], onlyDeleted: false }), [1, 2, 4, 49]);
  });

  run('MOVE over many steps: each message in exactly one mailbox, flags and usage kept', async ({ store }) => {
    const { acct, inbox, archive } = await setup(store);
    const seen = record(store, acct.id);
    const usage = (await store.getAccountById(acct.id))!.usedBytes;
    const src = await store.listMessages(inbox.id);
    const r = await store.moveMessages(inbox.id, src.map((m) => m.uid), archive.id);
    assert.deepEqual(r.mapping.map((m) => m[0]), src.map((m) => m.uid));
    assert.deepEqual(r.mapping.map((m) => m[1]), src.map((_, k) => k + 1));
    assert.equal((await store.listMessages(inbox.id)).length, 0);
    const dst = await store.listMessages(archive.id);
    assert.deepEqual(dst.map((m) => [m.internalDate, m.systemFlags, m.blobId]), src.map((m) => [m.internalDate, m.systemFlags, m.blobId]));
    assert.equal((await store.getAccountById(acct.id))!.usedBytes, usage);
    // Every source UID is announced expunged once, every new one added once.
    assert.deepEqual(seen.flatMap((c) => (c.kind === 'messages-expunged' ? c.uids : [])), src.map((m) => m.uid));
    assert.deepEqual(seen.filter((c) => c.kind === 'message-added').map((c) => (c as { uid: number }).uid), dst.map((m) => m.uid));
    // Bodies and search data travelled with the rows.
    const [rec] = await store.getMessages(archive.id, [dst[4]!.uid]);
    assert.equal(rec!.meta.envelope.subject, 'bulk 5');
    assert.deepEqual(await store.matchHeader(archive.id, 'subject', 'bulk 17'), [dst[16]!.uid]);
  });

  run('COPY over many steps is never seen half done, and writes to the destination wait for it', async ({ store }) => {
    const { acct, inbox, archive } = await setup(store);
    const seen = record(store, acct.id);
    const src = await store.listMessages(inbox.id);
    const before = await store.mailboxStatus(archive.id);
    let delivered: Promise<unknown> | null = null;
    let turns = 0;
    const { result, seen: probes } = await watch(store.copyMessages(inbox.id, src.map((m) => m.uid), archive.id), async () => {
      // A delivery to the destination while the copy runs: committed after it. From the second
      // probe on, so the copy has begun (at the first, both would start together: a race for the
      // first lock that any other query on the pool, e.g. a change follower's, can tip).
      if (!delivered && turns++ > 0) {
        const raw = Buffer.from('Subject: during\r\n\r\nx\r\n');
        const staged = await store.stageBlob(raw);
        delivered = store.deliver(staged, parseMessage(raw), [{ mailboxId: archive.id }]).finally(() => staged.release());
      }
      // In this order: PostgreSQL may commit between two reads, never backwards.
      const mb = (await store.getMailboxById(archive.id))!;
      const st = await store.mailboxStatus(archive.id);
      const list = await store.listMessages(archive.id);
      return { messages: st.messages, listed: list.length, uidNext: mb.uidNext };
    });
    const [d] = (await delivered!) as Array<{ ok: boolean; uid: number }>;
    assert.equal(result.mapping.length, N);
    for (const p of probes) {
      assert.ok(p.messages === 0 || p.messages >= N, `never a partial copy in STATUS (${JSON.stringify(p)})`);
      assert.ok(p.listed === 0 || p.listed >= N, `never a partial copy in the listing (${JSON.stringify(p)})`);
      if (p.messages === 0) assert.equal(p.uidNext, before.uidNext, 'UIDNEXT does not run ahead of the visible mailbox');
    }
    assert.ok(d!.ok);
    assert.ok(d!.uid > Math.max(...result.mapping.map((m) => m[1])), 'the delivery got a UID after the copies');
    const added = seen.filter((c) => c.kind === 'message-added' && c.mailboxId === archive.id).map((c) => (c as { uid: number }).uid);
    assert.deepEqual(added, [...result.mapping.map((m) => m[1]), d!.uid], 'the copies are announced before the delivery');
    const acc = (await store.getAccountById(acct.id))!;
    const all = [...(await store.listMessages(inbox.id)), ...(await store.listMessages(archive.id))];
    assert.equal(acc.usedBytes, all.reduce((s, m) => s + m.size, 0));
  });

  run('every step of every bulk command is in the change journal, in the order and with the seqs the bus published', async ({ store }) => {
    const { acct, inbox, archive, trash } = await setup(store);
    const from = await store.journalHead(acct.id);
    const seen = record(store, acct.id);
    const uids = (await store.listMessages(inbox.id)).map((m) => m.uid);
    await store.copyMessages(inbox.id, uids, archive.id);
    await store.storeFlags(archive.id, uids.map((_, i) => i + 1), 'add', { systemFlags: SystemFlag.Flagged, keywords: ['$X'] });
    await store.moveMessages(archive.id, uids.map((_, i) => i + 1).slice(0, 20), trash.id);
    await store.expunge(inbox.id);
    await store.deleteMailbox(acct.id, 'Archive');
    const journal = [];
    for (let since = from; ; ) {
      const r = await store.changesSince(acct.id, since, 25);
      assert.ok(!r.resync);
      journal.push(...r.changes);
      if (since === r.head || r.changes.length === 0) break;
      since = r.changes.at(-1)!.seq;
    }
    assert.ok(seen.length > 2 * N, `${seen.length} changes`);
    assert.deepEqual(journal.map((c) => c.seq), seen.map((_, i) => from + i + 1), 'seqs without a gap');
    assert.deepEqual(seen.map((c) => c.seq), journal.map((c) => c.seq), 'published with the seqs of the journal');
    // The journal keeps which message and its MODSEQ, not its flags (read from the store).
    const view = (c: Record<string, unknown>) => {
      const { at: _a, keywords: _k, systemFlags: _f, ...r } = c;
      return r.kind === 'message-added' || r.kind === 'flags-changed' ? r : { ...r, ...(_k ? { keywords: _k } : {}), ...(_f !== undefined ? { systemFlags: _f } : {}) };
    };
    assert.deepEqual(journal.map(view), seen.map(view));
  });

  run('a COPY that does not fit leaves the destination as it was', async ({ store }) => {
    const { acct, inbox, archive } = await setup(store);
    const usage = (await store.getAccountById(acct.id))!.usedBytes;
    // Room for about half of a second copy.
    await store.updateAccount(acct.id, { quota: usage + Math.floor(usage / 2) });
    const seen = record(store, acct.id);
    await assert.rejects(
      store.copyMessages(inbox.id, (await store.listMessages(inbox.id)).map((m) => m.uid), archive.id),
      (e: Error & { code?: string }) => e.code === 'quota',
    );
    assert.equal((await store.listMessages(archive.id)).length, 0);
    assert.equal((await store.mailboxStatus(archive.id)).messages, 0);
    assert.equal((await store.getAccountById(acct.id))!.usedBytes, usage);
    assert.equal(seen.filter((c) => c.kind === 'message-added').length, 0);
    // The mailbox takes mail again, with UIDs above anything the failed copy used.
    await fill(store, archive.id, 1);
    const [m] = await store.listMessages(archive.id);
    assert.ok(m!.uid >= 1);
  });

  run('DELETE of a big mailbox and removal of the account drop every row and reference', async ({ store }) => {
    const { acct, inbox, archive } = await setup(store);
    await store.copyMessages(inbox.id, (await store.listMessages(inbox.id)).map((m) => m.uid), archive.id);
    await store.deleteMailbox(acct.id, 'Archive');
    assert.equal(await store.getMailbox(acct.id, 'Archive'), null);
    const acc = (await store.getAccountById(acct.id))!;
    const list = await store.listMessages(inbox.id);
    assert.equal(acc.messageCount, N);
    assert.equal(acc.usedBytes, list.reduce((s, m) => s + m.size, 0));
    // The bodies are still there for INBOX.
    assert.equal((await store.readBlob(list[0]!.blobId)).length, list[0]!.size);
    const again = await store.createMailbox(acct.id, 'Archive');
    assert.equal((await store.listMessages(again.id)).length, 0);
    await store.removeAccount(acct.id);
    assert.equal(await store.getAccountById(acct.id), null);
    await assert.rejects(store.readBlob(list[0]!.blobId));
  });

  run('RENAME INBOX in steps: the messages keep their UIDs in the new mailbox, INBOX is left empty', async ({ store }) => {
    const { acct, inbox } = await setup(store);
    const before = await store.listMessages(inbox.id);
    const uidNext = (await store.getMailboxById(inbox.id))!.uidNext;
    await store.renameMailbox(acct.id, 'INBOX', 'Old');
    const old = (await store.getMailbox(acct.id, 'Old'))!;
    assert.deepEqual((await store.listMessages(old.id)).map((m) => [m.uid, m.blobId]), before.map((m) => [m.uid, m.blobId]));
    assert.ok(old.uidNext >= uidNext);
    assert.equal((await store.listMessages(inbox.id)).length, 0);
    assert.deepEqual(await store.expungedSince(inbox.id, 0), before.map((m) => m.uid));
  });

  run('POP3 UPDATE of many messages in steps (Trash)', async ({ store }) => {
    const { inbox, trash } = await setup(store);
    const uids = (await store.listMessages(inbox.id)).map((m) => m.uid);
    const r = await store.popUpdate(inbox.id, { seen: uids.slice(0, 20), remove: uids.slice(10), action: 'trash', retainSince: null });
    assert.deepEqual(r.removed, uids.slice(10));
    assert.equal(r.mailbox?.id, trash.id);
    const left = await store.listMessages(inbox.id);
    assert.deepEqual(left.map((m) => m.uid), uids.slice(0, 10));
    assert.ok(left.every((m) => m.systemFlags & SystemFlag.Seen));
    const moved = await store.listMessages(trash.id);
    assert.equal(moved.length, N - 10);
    assert.equal(moved.filter((m) => m.systemFlags & SystemFlag.Seen).length, 10);
  });

  if (b.name === 'sqlite') {
    run('a store closed in the middle of a COPY or a DELETE is cleaned up at the next server start', async (o) => {
      const { acct, inbox, archive } = await setup(o.store);
      const usage = (await o.store.getAccountById(acct.id))!.usedBytes;
      const uids = (await o.store.listMessages(inbox.id)).map((m) => m.uid);
      const copy = o.store.copyMessages(inbox.id, uids, archive.id).catch((e: Error) => e);
      // Until a step has staged rows (each step waits for its fdatasync: no fixed number of turns).
      await until(() => (o.peek!(`SELECT count(*) FROM messages WHERE mailbox_id = ${archive.id}`) as number) > 0);
      await o.store.close(); // steps after this fail: the staged rows stay, with their journal row
      assert.ok((await copy) instanceof Error, 'the copy did not complete');
      let store = await o.reopen(false);
      // The admin CLI (not a server start) leaves them alone: still not visible.
      assert.equal((await store.mailboxStatus(archive.id)).messages, 0);
      store = await o.reopen(true);
      const st = await store.mailboxStatus(archive.id);
      assert.equal(st.messages, 0);
      assert.ok(st.uidNext > 1, `staged UIDs are not given out again (UIDNEXT ${st.uidNext})`);
      assert.equal((await store.getAccountById(acct.id))!.usedBytes, usage);
      // DELETE interrupted after its first commit: the mailbox is gone, the rest is finished.
      const dropped = (await store.getMailbox(acct.id, 'INBOX'))!;
      await store.renameMailbox(acct.id, 'INBOX', 'Big');
      const big = (await store.getMailbox(acct.id, 'Big'))!;
      const del = store.deleteMailbox(acct.id, 'Big').catch((e: Error) => e);
      await until(() => o.peek!(`SELECT count(*) FROM mailboxes WHERE id = ${big.id}`) === 0);
      await store.close();
      await del;
      store = await o.reopen(false);
      assert.equal(await store.getMailbox(acct.id, 'Big'), null);
      assert.ok((await store.getAccountById(acct.id))!.messageCount > 0, 'the drop was interrupted');
      const fresh = await store.createMailbox(acct.id, 'Fresh');
      assert.ok(fresh.id > big.id, 'a mailbox id whose messages are still being dropped is not reused');
      store = await o.reopen(true);
      const acc = (await store.getAccountById(acct.id))!;
      assert.equal(acc.messageCount, 0);
      assert.equal(acc.usedBytes, 0);
      assert.equal((await store.listMessages(big.id)).length, 0);
      assert.ok(dropped.id !== big.id);
    });
  }
}, backends);
