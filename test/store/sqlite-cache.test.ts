// The SQLite store caches whole-mailbox listings; a write by another process (a second store on
// the same files, as the admin CLI or an import would be) must still be seen at once, and callers
// must never be able to change the cached copy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import { SystemFlag, type Mailbox, type Store } from '../../src/store/store.ts';

async function put(store: Store, mailboxId: number, i: number): Promise<number> {
  const raw = Buffer.from(`Subject: cache ${i}\r\n\r\nbody ${i}\r\n`);
  const staged = await store.stageBlob(raw);
  try {
    return (await store.append(staged, parseMessage(raw), { mailboxId })).uid;
  } finally {
    staged.release();
  }
}

/** Two stores on the same files (this process and "another process"), an account and its INBOX. */
async function withTwoStores(address: string, fn: (a: Store, b: Store, inbox: Mailbox) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-cache-'));
  const opts = { path: join(dir, 'db.sqlite'), blobDir: join(dir, 'blobs') };
  const a = await openSqliteStore(opts);
  const b = await openSqliteStore(opts);
  try {
    await a.addDomain('example.com');
    const acc = await a.createAccount({ address, passwordHash: 'x' });
    await fn(a, b, (await a.getMailbox(acc.id, 'INBOX'))!);
  } finally {
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('mailbox listings follow writes from this store and from another process', () =>
  withTwoStores('c@example.com', async (a, b, inbox) => {
    const u1 = await put(a, inbox.id, 1);
    assert.deepEqual((await a.listMessages(inbox.id)).map((m) => m.uid), [u1]);

    // Another process delivers and flags: the next listing shows it.
    const u2 = await put(b, inbox.id, 2);
    assert.deepEqual((await a.listMessages(inbox.id)).map((m) => m.uid), [u1, u2]);
    await b.storeFlags(inbox.id, [u1], 'add', { systemFlags: SystemFlag.Flagged, keywords: ['Work'] });
    const after = await a.listMessages(inbox.id);
    assert.equal(after[0]!.systemFlags, SystemFlag.Flagged);
    assert.deepEqual(after[0]!.keywords, ['Work']);
    assert.deepEqual((await a.listMessages(inbox.id, { changedSince: after[1]!.modseq })).map((m) => m.uid), [u1]);

    // Summaries are shared with the cache and frozen: changing one throws and changes nothing.
    assert.throws(() => {
      after[0]!.systemFlags = 0;
    }, TypeError);
    assert.throws(() => after[0]!.keywords.push('Mutated'), TypeError);
    after.pop(); // the array itself is the caller's
    const again = await a.listMessages(inbox.id);
    assert.equal(again[0]!.systemFlags, SystemFlag.Flagged);
    assert.deepEqual(again[0]!.keywords, ['Work']);
    assert.equal(again.length, 2);

    // Own writes: expunge, then the listing is current.
    await a.storeFlags(inbox.id, [u2], 'add', { systemFlags: SystemFlag.Deleted, keywords: [] });
    await a.expunge(inbox.id);
    assert.deepEqual((await a.listMessages(inbox.id)).map((m) => m.uid), [u1]);
    assert.deepEqual((await b.listMessages(inbox.id)).map((m) => m.uid), [u1]);
  }));

// Our own commits update the cached listing in place (no reload); after any mix of writes —
// concurrent ones sharing a group commit, one failing inside the batch, copies, moves, INBOX
// renamed away — the listing must equal what a second store reads from the database.
test('the cached listing, updated in place, always equals the database', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-cache-'));
  const opts = { path: join(dir, 'db.sqlite'), blobDir: join(dir, 'blobs') };
  const a = await openSqliteStore(opts);
  const b = await openSqliteStore(opts);
  const same = async (mailboxId: number, what: string) => {
    const mine = await a.listMessages(mailboxId);
    const fresh = await b.listMessages(mailboxId);
    assert.deepEqual(mine.map((m) => ({ ...m })), fresh.map((m) => ({ ...m })), what);
    for (const since of [0, Math.floor((fresh.at(-1)?.modseq ?? 0) / 2)])
      assert.deepEqual((await a.listMessages(mailboxId, { changedSince: since })).map((m) => m.uid), fresh.filter((m) => m.modseq > since).map((m) => m.uid), `${what}: changedSince ${since}`);
  };
  try {
    await a.addDomain('example.com');
    const acc = await a.createAccount({ address: 'c@example.com', passwordHash: 'x' });
    const inbox = (await a.getMailbox(acc.id, 'INBOX'))!;
    const archive = (await a.getMailbox(acc.id, 'Archive'))!;
    const uids: number[] = [];
    for (let i = 0; i < 20; i++) uids.push(await put(a, inbox.id, i));
    await a.listMessages(inbox.id);
    await a.listMessages(archive.id);
    await same(inbox.id, 'after appends');

    // Concurrent writes of every kind in one event-loop turn (one group commit), one of which fails.
    const flags = { systemFlags: SystemFlag.Seen, keywords: ['$Label1'] };
    const results = await Promise.allSettled([
      a.storeFlags(inbox.id, uids.slice(0, 5), 'add', flags),
      put(a, inbox.id, 100),
      a.storeFlags(inbox.id, [uids[1]!], 'remove', { systemFlags: SystemFlag.Seen, keywords: [] }),
      a.copyMessages(inbox.id, uids.slice(5, 8), archive.id),
      a.moveMessages(inbox.id, uids.slice(8, 10), archive.id),
      a.append({ id: 'f'.repeat(64), size: 1 }, parseMessage(Buffer.from('x')), { mailboxId: 999999 }),
      a.storeFlags(inbox.id, [uids[12]!], 'add', { systemFlags: SystemFlag.Deleted, keywords: [] }),
      put(a, archive.id, 101),
    ]);
    assert.equal(results.filter((r) => r.status === 'rejected').length, 1, 'only the append to a missing mailbox fails');
    await same(inbox.id, 'INBOX after the batch');
    await same(archive.id, 'Archive after the batch');

    await a.expunge(inbox.id);
    await a.storeFlags(inbox.id, uids.slice(14), 'set', { systemFlags: SystemFlag.Answered, keywords: ['Work', 'Later'] });
    await same(inbox.id, 'after expunge and replace');

    // Another process writes between two of ours: our next write must not patch a stale listing.
    await put(b, inbox.id, 200);
    await a.storeFlags(inbox.id, [uids[15]!], 'add', { systemFlags: SystemFlag.Flagged, keywords: [] });
    await same(inbox.id, 'after a write from another process');

    // INBOX renamed away: its messages leave INBOX (RFC 9051 §6.3.6).
    await a.renameMailbox(acc.id, 'INBOX', 'Old');
    await same(inbox.id, 'INBOX after rename');
    assert.equal((await a.listMessages(inbox.id)).length, 0);
  } finally {
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('STATUS counts and FETCH records of a mailbox with a cached listing follow this store\'s and another process\'s writes', () =>
  withTwoStores('s@example.com', async (a, b, inbox) => {
    const uids = [await put(a, inbox.id, 1), await put(a, inbox.id, 2), await put(a, inbox.id, 3)];
    const sizes = (await a.listMessages(inbox.id)).map((m) => m.size); // the listing is cached now
    const total = sizes.reduce((x, y) => x + y, 0);
    const counts = async (s: Store) => {
      const st = await s.mailboxStatus(inbox.id);
      return [st.messages, st.unseen, st.deleted, st.size, st.recent];
    };
    assert.deepEqual(await counts(a), [3, 3, 0, total, 3]);
    await a.claimRecent(inbox.id, uids[1]! + 1, true); // the first two seen by a session
    await a.storeFlags(inbox.id, [uids[0]!], 'add', { systemFlags: SystemFlag.Seen, keywords: [] });
    await a.storeFlags(inbox.id, [uids[2]!], 'add', { systemFlags: SystemFlag.Deleted, keywords: [] });
    assert.deepEqual(await counts(a), [3, 2, 1, total, 1]);
    await a.listMessages(inbox.id);
    // Another process's write: this store's cached listing is behind, the counts are not.
    await b.expunge(inbox.id);
    assert.deepEqual(await counts(a), [2, 1, 0, sizes[0]! + sizes[1]!, 0]);
    assert.deepEqual(await counts(a), await counts(b));
    const u4 = await put(b, inbox.id, 4);
    await a.listMessages(inbox.id);
    assert.deepEqual(await counts(a), [3, 2, 0, sizes[0]! + sizes[1]! + (await a.listMessages(inbox.id)).find((m) => m.uid === u4)!.size, 1]);
    assert.deepEqual(await counts(a), await counts(b), 'the cached count and the counted rows agree');
    // FETCH's records come from the cached listing too: the same as the rows read by b.
    await b.storeFlags(inbox.id, [u4], 'add', { systemFlags: SystemFlag.Answered, keywords: ['$Later'] });
    await a.listMessages(inbox.id);
    const records = async (s: Store) => (await s.getMessages(inbox.id, [u4, uids[0]!, 999, uids[0]!])).map((r) => ({ ...r, meta: r.meta.envelope.subject }));
    const fromCache = await records(a);
    assert.deepEqual(fromCache.map((r) => r.uid), [uids[0]!, u4], 'ascending, each once, a missing UID left out');
    assert.deepEqual(fromCache, await records(b));
    (await a.getMessages(inbox.id, [u4]))[0]!.keywords.push('$Mine'); // the caller's copy
    assert.deepEqual((await a.getMessages(inbox.id, [u4]))[0]!.keywords, ['$Later']);
  }));
