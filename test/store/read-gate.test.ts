// Issue 12: the SQLite store commits mailbox writes without an fsync on the event loop and makes
// them durable with an fdatasync of the WAL on the thread pool (src/store/sqlite/changes.ts). Until
// that fdatasync returned, the rows are in the database but not on disk: here the fdatasync is
// held (a WalSync that waits for the test, then syncs for real), and through the Store interface
// nothing may show the write yet — not its caller's promise, not the bus, not a listing, STATUS,
// FETCH data, SEARCH, the mailbox's UIDNEXT or a POP3-style listing of another session — while a
// second connection on the file (what a crash would not necessarily keep) already has the row.
// Once it returns, everything shows it, in that order: the caller first, then the readers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { WalSync } from '../../src/store/sqlite/wal-sync.ts';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import { SystemFlag, type Store } from '../../src/store/store.ts';
import type { Change } from '../../src/store/bus.ts';

/** The real fdatasync, each started only when the test lets it (or failing, when told to). */
class HeldWalSync extends WalSync {
  hold = true;
  failNext = false;
  readonly #waiting: Array<() => void> = [];
  #inFlight: Promise<void> | null = null;

  override get running(): Promise<void> | null {
    return this.#inFlight ? this.#inFlight.then(() => {}, () => {}) : null;
  }

  override sync(): Promise<void> {
    if (!this.hold) return super.sync();
    const p = new Promise<void>((resolve, reject) =>
      this.#waiting.push(() => {
        if (this.failNext) {
          this.failNext = false;
          reject(new Error('EIO (test)'));
        } else super.sync().then(resolve, reject);
      }),
    );
    const clear = () => {
      if (this.#inFlight === mine) this.#inFlight = null;
    };
    const mine: Promise<void> = (this.#inFlight = p.then(clear, clear));
    return p;
  }

  get held(): number {
    return this.#waiting.length;
  }

  release(): void {
    for (const go of this.#waiting.splice(0)) go();
  }
}

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** Turns until cond() holds (bounded, so a bug fails instead of hanging). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 10_000) assert.fail(`never: ${what}`);
    await turns(1);
  }
}

/** A promise's state without waiting for it. */
function watch<T>(p: Promise<T>): { done: () => boolean; value: Promise<T> } {
  let done = false;
  const value = p.finally(() => (done = true));
  value.catch(() => {});
  return { done: () => done, value };
}

async function staged(store: Store, i: number) {
  const raw = Buffer.from(`Subject: gate ${i}\r\nMessage-ID: <gate.${i}@example.com>\r\n\r\nbody ${i}\r\n`);
  return { raw, blob: await store.stageBlob(raw) };
}

async function open() {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-gate-'));
  const path = join(dir, 'db.sqlite');
  const walSync = new HeldWalSync(path);
  walSync.hold = false;
  const store = await openSqliteStore({ path, blobDir: join(dir, 'blobs'), walSync, readCheck: 'throw' });
  await store.addDomain('example.com');
  const acc = await store.createAccount({ address: 'g@example.com', passwordHash: 'x' });
  const inbox = (await store.getMailbox(acc.id, 'INBOX'))!;
  const first = await staged(store, 0);
  const u1 = (await store.append(first.blob, parseMessage(first.raw), { mailboxId: inbox.id })).uid;
  first.blob.release();
  // What another connection on the file sees: committed rows, durable or not.
  const peek = new Database(path, { readonly: true });
  const rows = () => peek.prepare('SELECT count(*) FROM messages WHERE mailbox_id = ?').pluck().get(inbox.id) as number;
  return {
    store,
    walSync,
    inbox,
    u1,
    rows,
    async close() {
      peek.close();
      walSync.hold = false;
      walSync.release();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('a delivery is shown to nobody until its fdatasync returned: not its caller, the bus or any read', async () => {
  const t = await open();
  const { store, walSync, inbox, u1 } = t;
  try {
    const published: Change[] = [];
    store.bus.subscribe(inbox.accountId, (cs) => published.push(...cs));
    // Warm the listing cache: it must not follow the commit before it is durable either.
    assert.deepEqual((await store.listMessages(inbox.id)).map((m) => m.uid), [u1]);
    const before = await store.mailboxStatus(inbox.id);

    walSync.hold = true;
    const m = await staged(store, 1);
    const delivery = watch(store.deliver(m.blob, parseMessage(m.raw), [{ mailboxId: inbox.id }]));
    await until(() => walSync.held > 0, 'the delivery committed and asked for its fdatasync');
    assert.equal(t.rows(), 2, 'the row is in the database (a second connection sees it)');

    // Every kind of read another session makes, started while the fdatasync is held.
    const reads = {
      listing: watch(store.listMessages(inbox.id)),
      status: watch(store.mailboxStatus(inbox.id)),
      mailbox: watch(store.getMailboxById(inbox.id)),
      fetch: watch(store.getMessages(inbox.id, [u1, u1 + 1])),
      search: watch(store.matchHeader(inbox.id, 'subject', 'gate')),
      changed: watch(store.listMessages(inbox.id, { changedSince: before.highestModseq })),
      mailboxes: watch(store.listMailboxes(inbox.accountId)),
    };
    await turns(50);
    assert.equal(delivery.done(), false, 'not acknowledged before the fdatasync');
    assert.equal(published.length, 0, 'nothing published before the fdatasync');
    for (const [name, r] of Object.entries(reads)) assert.equal(r.done(), false, `${name} waits for the fdatasync`);

    walSync.release();
    const [r] = await delivery.value;
    assert.ok(r!.ok);
    const u2 = r!.uid!;
    assert.ok(u2 > u1);
    assert.deepEqual(published.filter((c) => c.kind === 'message-added').map((c) => (c as { uid: number }).uid), [u2]);
    // Each read, once it ran, sees the durable state with the new message: never half of it.
    assert.deepEqual((await reads.listing.value).map((x) => x.uid), [u1, u2]);
    const st = await reads.status.value;
    assert.equal(st.messages, before.messages + 1);
    assert.equal(st.uidNext, u2 + 1);
    assert.equal((await reads.mailbox.value)!.uidNext, u2 + 1);
    assert.deepEqual((await reads.fetch.value).map((x) => x.uid), [u1, u2]);
    assert.deepEqual(await reads.search.value, [u1, u2]);
    assert.deepEqual((await reads.changed.value).map((x) => x.uid), [u2]);
    assert.equal((await reads.mailboxes.value).find((x) => x.id === inbox.id)!.uidNext, u2 + 1);
    m.blob.release();
  } finally {
    await t.close();
  }
});

test('flags, expunge and APPEND in one batch: reads wait, then see all of it; a read that finished before saw none', async () => {
  const t = await open();
  const { store, walSync, inbox, u1 } = t;
  try {
    walSync.hold = true;
    const m = await staged(store, 2);
    const early = await store.listMessages(inbox.id); // no commit pending: at once
    const flags = watch(store.storeFlags(inbox.id, [u1], 'add', { systemFlags: SystemFlag.Seen | SystemFlag.Deleted, keywords: ['Gate'] }));
    const append = watch(store.append(m.blob, parseMessage(m.raw), { mailboxId: inbox.id }));
    await until(() => walSync.held > 0, 'the batch committed');
    const listing = watch(store.listMessages(inbox.id));
    const status = watch(store.mailboxStatus(inbox.id));
    await turns(50);
    assert.equal(flags.done() || append.done() || listing.done() || status.done(), false);
    assert.deepEqual(early.map((x) => [x.uid, x.systemFlags]), [[u1, 0]]);

    walSync.release();
    await flags.value;
    const { uid: u2 } = await append.value;
    const l = await listing.value;
    assert.deepEqual(l.map((x) => [x.uid, x.systemFlags, x.keywords]), [
      [u1, SystemFlag.Seen | SystemFlag.Deleted, ['Gate']],
      [u2, 0, []],
    ]);
    assert.equal((await status.value).unseen, 1);

    // EXPUNGE: the message stays listed until the expunge is durable.
    walSync.hold = true;
    const expunge = watch(store.expunge(inbox.id));
    await until(() => walSync.held > 0, 'the expunge committed');
    const during = watch(store.listMessages(inbox.id));
    const log = watch(store.expungedSince(inbox.id, 0));
    await turns(50);
    assert.equal(expunge.done() || during.done() || log.done(), false);
    walSync.release();
    assert.deepEqual(await expunge.value, [u1]);
    assert.deepEqual((await during.value).map((x) => x.uid), [u2]);
    assert.deepEqual(await log.value, [u1]);
    m.blob.release();
  } finally {
    await t.close();
  }
});

test('a failed fdatasync: the write is not acknowledged, and reads go on afterwards', async () => {
  const t = await open();
  const { store, walSync, inbox, u1 } = t;
  try {
    walSync.hold = true;
    walSync.failNext = true;
    const m = await staged(store, 3);
    const append = watch(store.append(m.blob, parseMessage(m.raw), { mailboxId: inbox.id }));
    await until(() => walSync.held > 0, 'the append committed');
    const listing = watch(store.listMessages(inbox.id));
    await turns(20);
    assert.equal(listing.done(), false);
    walSync.release();
    await assert.rejects(append.value, /not made durable/);
    // The rows may be there (committed, not known durable): the reader is not stuck behind them.
    const l = await listing.value;
    assert.ok(l.some((x) => x.uid === u1));
    walSync.hold = false;
    const n = await staged(store, 4);
    assert.ok((await store.append(n.blob, parseMessage(n.raw), { mailboxId: inbox.id })).uid > u1);
    m.blob.release();
    n.blob.release();
  } finally {
    await t.close();
  }
});

test("one account's fdatasync holds back that account's reads only: another user's mailbox reads go on, then see their own state", async () => {
  const t = await open();
  const { store, walSync, inbox, u1 } = t;
  try {
    const other = await store.createAccount({ address: 'h@example.com', passwordHash: 'x' });
    const otherInbox = (await store.getMailbox(other.id, 'INBOX'))!;
    const sent = await staged(store, 7);
    const theirs = (await store.append(sent.blob, parseMessage(sent.raw), { mailboxId: otherInbox.id })).uid;
    sent.blob.release();
    const sibling = await store.createMailbox(inbox.accountId, 'Sibling');

    walSync.hold = true;
    const m = await staged(store, 8);
    const delivery = watch(store.deliver(m.blob, parseMessage(m.raw), [{ mailboxId: inbox.id }]));
    await until(() => walSync.held > 0, 'the delivery committed and asked for its fdatasync');
    assert.equal(t.rows(), 2, 'the row is in the database (a second connection sees it)');

    // The other account: every mailbox read runs at once and shows its own (durable) mail; so does
    // a mailbox of the same account the delivery did not touch.
    const free = {
      listing: watch(store.listMessages(otherInbox.id)),
      status: watch(store.mailboxStatus(otherInbox.id)),
      fetch: watch(store.getMessages(otherInbox.id, [theirs])),
      mailboxes: watch(store.listMailboxes(other.id)),
      mailbox: watch(store.getMailboxById(otherInbox.id)),
      sibling: watch(store.mailboxStatus(sibling.id)),
    };
    await turns(50);
    for (const [name, r] of Object.entries(free)) assert.equal(r.done(), true, `${name} of another account goes on during the fdatasync`);
    assert.deepEqual((await free.listing.value).map((x) => x.uid), [theirs]);
    assert.equal((await free.status.value).messages, 1);
    assert.deepEqual((await free.fetch.value).map((x) => x.uid), [theirs]);
    assert.ok((await free.mailboxes.value).some((x) => x.id === otherInbox.id));
    assert.equal((await free.mailbox.value)!.id, otherInbox.id);
    assert.equal((await free.sibling.value).messages, 0);

    // The delivering account's own reads, and reads not scoped to one account, wait.
    const held = {
      status: watch(store.mailboxStatus(inbox.id)),
      fetch: watch(store.getMessages(inbox.id, [u1, u1 + 1])),
      mailboxes: watch(store.listMailboxes(inbox.accountId)),
      journal: watch(store.journalHead(inbox.accountId)),
      search: watch(store.matchHeader(otherInbox.id, 'subject', 'gate')),
      account: watch(store.getAccount('h@example.com')),
    };
    await turns(50);
    for (const [name, r] of Object.entries(held)) assert.equal(r.done(), false, `${name} waits for the fdatasync`);
    assert.equal(delivery.done(), false);

    walSync.release();
    const [r] = await delivery.value;
    assert.ok(r!.ok);
    assert.equal((await held.status.value).messages, 2);
    assert.deepEqual((await held.fetch.value).map((x) => x.uid), [u1, r!.uid]);
    assert.deepEqual(await held.search.value, [theirs]);
    m.blob.release();
  } finally {
    await t.close();
  }
});

test('a \\Recent claim with nothing new above the boundary writes nothing: it does not wait for an fdatasync', async () => {
  const t = await open();
  const { store, walSync, inbox, u1 } = t;
  try {
    assert.equal(await store.claimRecent(inbox.id, u1 + 1, true), 0, 'the first claim takes the message');
    const other = await store.createMailbox(inbox.accountId, 'Elsewhere');
    walSync.hold = true;
    // A write to another mailbox waits for its fdatasync meanwhile.
    const m = await staged(store, 9);
    const delivery = watch(store.deliver(m.blob, parseMessage(m.raw), [{ mailboxId: other.id }]));
    await until(() => walSync.held > 0, 'the delivery committed and asked for its fdatasync');
    const again = watch(store.claimRecent(inbox.id, u1 + 1, true));
    await turns(50);
    assert.equal(again.done(), true, 'a re-SELECT with no new mail is answered during the fdatasync');
    assert.equal(await again.value, u1 + 1, 'the boundary as the first claim left it: nothing recent');
    walSync.release();
    assert.ok((await delivery.value)[0]!.ok);
    m.blob.release();
  } finally {
    await t.close();
  }
});
