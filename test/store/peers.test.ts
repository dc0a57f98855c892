// Two SQLite stores on one file with peers (issue 15, `--workers`: src/store/sqlite/peers.ts), in
// one test process, each relaying its commits' heads to the other's bus as the primary does:
// - a subscriber of B gets A's delivery, flag change and expunge as ordinary Changes (flags filled
//   in from the database), in seq order, and B's cached listing follows A's writes;
// - B reads A's commits only after an fdatasync of its own (PRAGMA data_version changed);
// - a write while another connection holds the write lock waits off the loop (the batch is tried
//   again; timers keep firing) and commits once the lock is free;
// - a COPY another process was staging (its bulk_ops row) holds the mailbox: a delivery waits,
//   and goes through once recoverProcess(pid) undid that process's staged rows;
// - a body file whose last reference went stays until a later sweep (another process may hold it
//   staged); a delivery of a staged body whose file a peer swept fails instead of referencing it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { WalSync } from '../../src/store/sqlite/wal-sync.ts';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import { SystemFlag, type Store } from '../../src/store/store.ts';
import type { Change } from '../../src/store/bus.ts';

/** The real fdatasync, counted. */
class CountingWalSync extends WalSync {
  n = 0;
  override sync(): Promise<void> {
    this.n++;
    return super.sync();
  }
}

async function pair() {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-peers-'));
  const path = join(dir, 'db.sqlite');
  const blobDir = join(dir, 'blobs');
  const stores: Store[] = [];
  const relay = (from: number) => (a: number, h: number) => {
    for (let i = 0; i < stores.length; i++) if (i !== from) stores[i]!.bus.notify(a, h);
  };
  const a = await openSqliteStore({ path, blobDir, peers: { relay: relay(0) }, readCheck: 'throw' });
  stores.push(a);
  const bSync = new CountingWalSync(path);
  const b = await openSqliteStore({ path, blobDir, peers: { relay: relay(1) }, readCheck: 'throw', walSync: bSync });
  stores.push(b);
  await a.addDomain('example.com');
  const acc = await a.createAccount({ address: 'p@example.com', passwordHash: 'x' });
  const inbox = (await a.getMailbox(acc.id, 'INBOX'))!;
  return {
    a,
    b,
    acc,
    inbox,
    path,
    bSync,
    async close() {
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function put(store: Store, mailboxId: number, i: number): Promise<number> {
  const raw = Buffer.from(`Subject: peer ${i}\r\nMessage-ID: <peer.${i}@example.com>\r\n\r\nbody ${i}\r\n`);
  const blob = await store.stageBlob(raw);
  try {
    const [r] = await store.deliver(blob, parseMessage(raw), [{ mailboxId }]);
    assert.ok(r?.ok);
    return r.uid;
  } finally {
    blob.release();
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

test("peers: B's subscriber gets A's changes as ordinary Changes, in order; B's listing follows; B's read of A's commit waits for an fdatasync", async () => {
  const t = await pair();
  try {
    const { a, b, inbox } = t;
    const got: Change[] = [];
    b.bus.subscribe(inbox.accountId, (cs) => got.push(...cs));
    await new Promise((r) => setTimeout(r, 20)); // the follower reads its head
    assert.deepEqual(await b.listMessages(inbox.id), []);
    const n0 = t.bSync.n;
    await b.listMessages(inbox.id);
    await b.mailboxStatus(inbox.id);
    assert.equal(t.bSync.n, n0, 'nothing committed elsewhere: no fdatasync before a read');
    const u1 = await put(a, inbox.id, 1);
    await b.mailboxStatus(inbox.id);
    assert.ok(t.bSync.n > n0, "A's commit seen by B: B's read came after an fdatasync of its own");
    const u2 = await put(a, inbox.id, 2);
    await until(() => got.length >= 2, 'two arrivals');
    assert.deepEqual(got.map((c) => [c.kind, (c as { uid?: number }).uid]), [['message-added', u1], ['message-added', u2]]);
    assert.deepEqual((await b.listMessages(inbox.id)).map((m) => m.uid), [u1, u2], "B's listing (cached empty before) has A's messages");
    await a.storeFlags(inbox.id, [u1], 'add', { systemFlags: SystemFlag.Flagged, keywords: ['$Work'] });
    await until(() => got.length >= 3, 'the flag change');
    const f = got[2] as Extract<Change, { kind: 'flags-changed' }>;
    assert.equal(f.kind, 'flags-changed');
    assert.equal(f.systemFlags, SystemFlag.Flagged);
    assert.deepEqual(f.keywords, ['$Work']);
    assert.equal((await b.listMessages(inbox.id)).find((m) => m.uid === u1)?.systemFlags, SystemFlag.Flagged);
    await a.expunge(inbox.id, { uids: [u2], onlyDeleted: false });
    await until(() => got.length >= 4, 'the expunge');
    assert.deepEqual((got[3] as { uids?: number[] }).uids, [u2]);
    assert.deepEqual((await b.listMessages(inbox.id)).map((m) => m.uid), [u1]);
    const seqs = got.map((c) => c.seq!);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
  } finally {
    await t.close();
  }
});

test('peers: a batch meeting another connection\'s write lock waits off the event loop and commits once it is free', async () => {
  const t = await pair();
  const lock = new Database(t.path);
  try {
    lock.prepare('BEGIN IMMEDIATE').run();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    let done = false;
    const p = put(t.b, t.inbox.id, 7).then((uid) => ((done = true), uid));
    await new Promise((r) => setTimeout(r, 100));
    clearInterval(timer);
    assert.equal(done, false, 'not committed while the lock is held');
    assert.ok(ticks >= 5, `timers kept firing while the write waited (${ticks})`);
    lock.prepare('COMMIT').run();
    const uid = await p;
    assert.deepEqual((await t.a.listMessages(t.inbox.id)).map((m) => m.uid), [uid]);
  } finally {
    lock.close();
    await t.close();
  }
});

test("peers: another process's staged COPY holds its mailbox until recoverProcess undoes it", async () => {
  const t = await pair();
  const other = new Database(t.path);
  try {
    const { a, b, inbox } = t;
    const u1 = await put(a, inbox.id, 1);
    // What a worker killed mid-COPY leaves: its bulk_ops row (owner = its pid); no staged rows yet.
    const mb = other.prepare('SELECT account_id, uid_next, highest_modseq FROM mailboxes WHERE id = ?').get(inbox.id) as Record<string, number>;
    other
      .prepare("INSERT INTO bulk_ops (kind, mailbox_id, account_id, uid_from, hms, created_at, owner) VALUES ('copy', ?, ?, ?, ?, ?, 4242)")
      .run(inbox.id, mb.account_id, mb.uid_next, mb.highest_modseq, Date.now());
    let done = false;
    const p = put(b, inbox.id, 2).then((uid) => ((done = true), uid));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(done, false, 'the delivery waits for the hold');
    assert.equal(await a.recoverProcess!(9999), 0, 'another pid: nothing to undo');
    assert.ok((await a.recoverProcess!(4242)) >= 1);
    const u2 = await p;
    assert.deepEqual((await b.listMessages(inbox.id)).map((m) => m.uid), [u1, u2]);
  } finally {
    other.close();
    await t.close();
  }
});

test("peers: a DELETE a killed worker left half done (mailbox gone, messages not yet) is finished by recoverProcess: usage and bodies released", async () => {
  const t = await pair();
  const other = new Database(t.path);
  try {
    const { a, acc } = t;
    const doomed = await a.createMailbox(acc.id, 'Doomed');
    for (let i = 10; i < 13; i++) await put(a, doomed.id, i);
    const before = (await a.getAccountById(acc.id))!;
    assert.equal(before.messageCount, 3);
    // What deleteMailbox's first commit leaves when its process dies before the steps ran.
    other.transaction(() => {
      other.prepare('DELETE FROM mailboxes WHERE id = ?').run(doomed.id);
      other.prepare("INSERT INTO bulk_ops (kind, mailbox_id, account_id, created_at, owner) VALUES ('drop', ?, ?, ?, 4242)").run(doomed.id, acc.id, Date.now());
    })();
    assert.equal((await a.getAccountById(acc.id))!.messageCount, 3, 'the messages still count against the account');
    assert.equal(await a.recoverProcess!(9999), 0, 'another pid: nothing to finish');
    assert.ok((await a.recoverProcess!(4242)) >= 1);
    const after = (await a.getAccountById(acc.id))!;
    assert.equal(after.messageCount, 0);
    assert.equal(after.usedBytes, 0);
    assert.equal(other.prepare('SELECT count(*) FROM messages WHERE mailbox_id = ?').pluck().get(doomed.id), 0);
    assert.equal(other.prepare('SELECT count(*) FROM bulk_ops').pluck().get(), 0);
    assert.equal(await a.recoverProcess!(4242), 0, 'done: nothing left');
  } finally {
    other.close();
    await t.close();
  }
});

test("peers: a body file whose last reference went is swept later, under the lock; a peer's staged copy of it never ends up referenced without its file", async () => {
  const t = await pair();
  try {
    const { a, b, inbox } = t;
    const sweeper = (s: Store) => (s as unknown as { deadBlobs: { sweep(graceMs?: number): Promise<number> } }).deadBlobs;
    const raw = Buffer.from('Subject: shared body\r\n\r\nthe same bytes twice\r\n');
    const first = await a.stageBlob(raw);
    const [r] = await a.deliver(first, parseMessage(raw), [{ mailboxId: inbox.id }]);
    first.release();
    assert.ok(r?.ok);
    const file = join(dirname(t.path), 'blobs', first.id.slice(0, 2), first.id);
    // B stages the same content (the file exists: B keeps it pinned, in B's memory only).
    const again = await b.stageBlob(raw);
    await a.expunge(inbox.id, { uids: [r.uid], onlyDeleted: false });
    assert.ok(existsSync(file), 'not unlinked at the commit');
    assert.equal(await sweeper(a).sweep(), 0, 'younger than the grace period: kept');
    assert.equal(await sweeper(a).sweep(0), 1, 'A knows nothing of B\'s pin: swept');
    assert.equal(existsSync(file), false);
    await assert.rejects(b.deliver(again, parseMessage(raw), [{ mailboxId: inbox.id }]), /removed meanwhile/);
    again.release();
    assert.deepEqual(await b.listMessages(inbox.id), []);
    // Staged again (the file is written anew): delivered, and a sweep leaves a referenced file alone.
    const third = await b.stageBlob(raw);
    const [r3] = await b.deliver(third, parseMessage(raw), [{ mailboxId: inbox.id }]);
    third.release();
    assert.ok(r3?.ok);
    assert.equal(await sweeper(a).sweep(0), 0);
    assert.ok(existsSync(file));
    assert.equal((await a.readBlob(first.id)).toString(), raw.toString());
  } finally {
    await t.close();
  }
});

test("peers: pings go only to a store that wants the account; one told late pulls once and misses nothing", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-peers-'));
  const path = join(dir, 'db.sqlite');
  const blobDir = join(dir, 'blobs');
  // The primary's routing (src/cluster/primary.ts): B's wanted accounts, its 'want' messages held
  // until the test lets them through (a primary that has not read them yet).
  const wants = new Set<number>();
  const said: Array<[number, boolean]> = [];
  const held: Array<() => void> = [];
  let forwarded = 0;
  let b: Store | null = null;
  const a = await openSqliteStore({
    path,
    blobDir,
    readCheck: 'throw',
    peers: { relay: (acc, h) => (wants.has(acc) ? (forwarded++, b!.bus.notify(acc, h)) : undefined) },
  });
  b = await openSqliteStore({
    path,
    blobDir,
    readCheck: 'throw',
    peers: {
      relay: () => {},
      want: (acc, on) => {
        said.push([acc, on]);
        held.push(() => {
          if (!on) return void wants.delete(acc);
          wants.add(acc);
          b!.bus.notify(acc, 0); // the 'wanted' answer: one pull (src/cluster/worker.ts)
        });
      },
    },
  });
  try {
    await a.addDomain('example.com');
    const acc = await a.createAccount({ address: 'w@example.com', passwordHash: 'x' });
    const inbox = (await a.getMailbox(acc.id, 'INBOX'))!;
    const got: Change[] = [];
    const off1 = b.bus.subscribe(acc.id, (cs) => got.push(...cs));
    const off2 = b.bus.subscribe(acc.id, () => {});
    assert.deepEqual(said, [[acc.id, true]], 'one want for the first local subscriber only');
    await new Promise((r) => setTimeout(r, 20)); // the follower reads its head
    const u1 = await put(a, inbox.id, 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(forwarded, 0, 'not wanted yet: the ping went nowhere');
    assert.equal(got.length, 0);
    for (const f of held.splice(0)) f();
    await until(() => got.length >= 1, "the arrival whose ping was not forwarded, pulled on 'wanted'");
    assert.deepEqual(got.map((c) => [c.kind, (c as { uid?: number }).uid]), [['message-added', u1]]);
    const u2 = await put(a, inbox.id, 2);
    await until(() => got.length >= 2, 'the next arrival, by its ping');
    assert.equal(forwarded, 1);
    assert.equal((got[1] as { uid?: number }).uid, u2);
    off1();
    assert.equal(said.length, 1, 'a subscriber is left: still wanted');
    off2();
    assert.deepEqual(said, [[acc.id, true], [acc.id, false]]);
    for (const f of held.splice(0)) f();
    await put(a, inbox.id, 3);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(forwarded, 1, 'no local subscriber: no ping');
  } finally {
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
