// The change journal (src/store/journal.ts), against both backends: every committed change gets
// the next seq of its account in the same transaction, readable with changesSince; a failed write
// leaves no entry; pruning keeps a gap-free tail and answers "resync" before it; a second store on
// the same data (another process) follows the first by pulling after a notification.

import assert from 'node:assert/strict';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import type { Change } from '../../src/store/bus.ts';
import { JournalFollower, startJournalPruning, type JournalChange } from '../../src/store/journal.ts';
import { StoreError, SystemFlag, type Mailbox, type Store } from '../../src/store/store.ts';
import { eachBackend } from './backends.ts';

let n = 0;
const raw = (subject: string, size = 120) => {
  const head = `From: a@example.net\r\nSubject: ${subject} ${++n}\r\n\r\n`;
  return Buffer.from(head + 'x'.repeat(Math.max(0, size - head.length - 2)) + '\r\n');
};

async function add(store: Store, mailboxId: number, opts: { keywords?: string[]; origin?: string } = {}) {
  const body = raw('m');
  const st = await store.stageBlob(body);
  try {
    return await store.append(st, parseMessage(body), { mailboxId, keywords: opts.keywords ?? [] }, opts.origin ? { origin: opts.origin } : {});
  } finally {
    st.release();
  }
}

async function setup(store: Store, address = 'j@example.com', quota = 0) {
  if (!(await store.getDomain('example.com'))) await store.addDomain('example.com');
  const acct = await store.createAccount({ address, passwordHash: 'x', quota });
  const box = async (name: string): Promise<Mailbox> => (await store.getMailbox(acct.id, name))!;
  return { acct, inbox: await box('INBOX'), trash: await box('Trash') };
}

/** Every entry of the account, page by page. */
async function readAll(store: Store, accountId: number, since = 0, limit = 3): Promise<JournalChange[]> {
  const out: JournalChange[] = [];
  for (;;) {
    const r = await store.changesSince(accountId, since, limit);
    assert.equal(r.resync, false, `resync answered from ${since}`);
    if (r.resync) throw new Error('unreachable');
    out.push(...r.changes);
    if (r.changes.length === 0 || since >= r.head) return out;
    since = r.changes.at(-1)!.seq;
    if (since >= r.head) return out;
  }
}

/** What the journal keeps of a change: all but a message's flags and keywords (read from the store), with its seq. */
const view = (c: Change | JournalChange): Record<string, unknown> => {
  const { at: _a, ...r } = c as Record<string, unknown>;
  if (r.kind === 'message-added' || r.kind === 'flags-changed') {
    delete r.keywords;
    delete r.systemFlags;
  }
  return r;
};

eachBackend('change journal', (run, backend) => {
  run('every kind of change is recorded in commit order, seq 1, 2, 3… with no gap, as the bus published it', async ({ store }) => {
    const { acct, inbox, trash } = await setup(store);
    const published: Change[] = [];
    const off = store.bus.subscribe(acct.id, (cs) => published.push(...cs));
    const before = await store.journalHead(acct.id);
    const o = { origin: 'sess-1' };
    const work = await store.createMailbox(acct.id, 'Work', o);
    const a = await add(store, inbox.id, { keywords: ['$Label1'], ...o });
    const b = await add(store, inbox.id);
    await store.storeFlags(inbox.id, [a.uid, b.uid], 'add', { systemFlags: SystemFlag.Deleted, keywords: [] }, o);
    await store.copyMessages(inbox.id, [a.uid], work.id, o);
    await store.moveMessages(work.id, [1], trash.id, o);
    await store.expunge(inbox.id, o);
    await store.renameMailbox(acct.id, 'Work', 'Play', o);
    await store.setSubscribed(acct.id, 'Play', true, o);
    await store.deleteMailbox(acct.id, 'Play', o);
    await store.updateAccount(acct.id, { quota: 10_000_000, passwordHash: 'y' });
    off();

    const all = await readAll(store, acct.id);
    assert.deepEqual(all.map((c) => c.seq), all.map((_, i) => i + 1), 'seqs 1..n, no gap');
    assert.equal(await store.journalHead(acct.id), all.length);
    const kinds = all.map((c) => c.kind);
    assert.equal(kinds[0], 'account-created');
    assert.equal(kinds.filter((k) => k === 'mailbox-created').length, before - 1 + 1, 'the default mailboxes and Work');
    assert.deepEqual(kinds.slice(before + 1), [
      'message-added', // a
      'message-added', // b
      'flags-changed',
      'flags-changed',
      'message-added', // copy into Work
      'message-added', // move: into Trash…
      'messages-expunged', // …out of Work
      'messages-expunged', // expunge INBOX
      'mailbox-renamed',
      'subscription-changed',
      'mailbox-deleted',
      'account-updated',
    ]);
    // What the journal gives back is what the bus carried, with the same seqs.
    assert.deepEqual(all.slice(before).map(view), published.map(view));
    const added = all.find((c) => c.kind === 'message-added' && c.uid === a.uid && c.mailboxId === inbox.id)!;
    assert.deepEqual(view(added), { kind: 'message-added', accountId: acct.id, mailboxId: inbox.id, uid: a.uid, modseq: a.modseq, origin: 'sess-1', seq: added.seq });
    const expunged = all.filter((c) => c.kind === 'messages-expunged').at(-1)!;
    assert.ok(expunged.kind === 'messages-expunged');
    assert.deepEqual(expunged.uids, [a.uid, b.uid]);
    const upd = all.at(-1)!;
    assert.deepEqual(upd.kind === 'account-updated' && upd.fields, ['password', 'quota']);
    assert.ok(all.every((c) => c.at > Date.now() - 60_000 && c.at <= Date.now()));

    // From the middle: only what came after.
    const mid = all[5]!.seq;
    assert.deepEqual((await readAll(store, acct.id, mid, 100)).map((c) => c.seq), all.slice(mid).map((c) => c.seq));
    const tail = await store.changesSince(acct.id, all.length);
    assert.deepEqual(tail, { resync: false, changes: [], head: all.length });

    // Removing the account is recorded too, and stays readable after the account is gone.
    await store.removeAccount(acct.id);
    const last = await store.changesSince(acct.id, all.length);
    assert.ok(!last.resync);
    assert.deepEqual(last.changes.map((c) => [c.seq, c.kind]), [[all.length + 1, 'account-removed']]);
  });

  run('a run of messages in one transaction reads back entry by entry, from any point and in pages of any size', async ({ store }) => {
    const { acct, inbox } = await setup(store, 'r@example.com');
    const bodies = Array.from({ length: 6 }, (_, i) => raw(`run${i}`));
    const items = [];
    for (const b of bodies) items.push({ blob: await store.stageBlob(b), meta: parseMessage(b), keywords: ['$Many'] });
    const head = await store.journalHead(acct.id);
    const r = await store.appendMessages(inbox.id, items, { origin: 'o' });
    for (const it of items) it.blob.release();
    await store.storeFlags(inbox.id, r.uids, 'add', { systemFlags: SystemFlag.Seen, keywords: [] });
    const want = [
      ...r.uids.map((uid, i) => ['message-added', uid, r.modseqs[i]]),
      ...(await store.listMessages(inbox.id)).map((m) => ['flags-changed', m.uid, m.modseq]),
    ];
    for (const limit of [1, 4, 5, 100]) {
      for (const from of [head, head + 2, head + 6, head + 7]) {
        const got = (await readAll(store, acct.id, from, limit)).map((c) => [c.kind, 'uid' in c ? c.uid : 0, 'modseq' in c ? c.modseq : 0, c.seq]);
        assert.deepEqual(got, want.slice(from - head).map((w, i) => [...w, from + i + 1]), `from ${from}, pages of ${limit}`);
      }
    }
    const one = await store.changesSince(acct.id, head + 3, 2);
    assert.ok(!one.resync);
    assert.deepEqual(one.changes.map((c) => c.seq), [head + 4, head + 5]);
    assert.equal(one.head, head + 12);
  });

  run('accounts have their own sequences; concurrent writes get distinct consecutive seqs', async ({ store }) => {
    const one = await setup(store, 'one@example.com');
    const two = await setup(store, 'two@example.com');
    const h1 = await store.journalHead(one.acct.id);
    const h2 = await store.journalHead(two.acct.id);
    assert.equal(h1, h2, 'both start with the same account creation entries');
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 12; i++) {
      writes.push(add(store, one.inbox.id));
      if (i % 3 === 0) writes.push(add(store, two.inbox.id));
    }
    await Promise.all(writes);
    const a = await readAll(store, one.acct.id, h1, 100);
    const b = await readAll(store, two.acct.id, h2, 100);
    assert.deepEqual(a.map((c) => c.seq), Array.from({ length: 12 }, (_, i) => h1 + i + 1));
    assert.deepEqual(b.map((c) => c.seq), Array.from({ length: 4 }, (_, i) => h2 + i + 1));
    // Commit order: within a mailbox, UIDs (given out in commit order) ascend with the seq.
    const uids = a.map((c) => (c.kind === 'message-added' ? c.uid : -1));
    assert.deepEqual(uids, [...uids].sort((x, y) => x - y));
    assert.ok(a.every((c) => c.accountId === one.acct.id) && b.every((c) => c.accountId === two.acct.id));
  });

  run('a failed write leaves no journal entry, and a write batched with it keeps its own', async ({ store }) => {
    const { acct, inbox } = await setup(store, 'q@example.com', 400);
    const head = await store.journalHead(acct.id);
    await assert.rejects(store.createMailbox(acct.id, 'INBOX'), (e: unknown) => e instanceof StoreError && e.code === 'exists');
    await assert.rejects(store.renameMailbox(acct.id, 'Nope', 'Other'), (e: unknown) => e instanceof StoreError && e.code === 'not-found');
    assert.equal(await store.journalHead(acct.id), head);
    // Two appends in the same turn (one group commit in SQLite): the one over quota fails alone.
    const big = raw('big', 1000);
    const st = await store.stageBlob(big);
    const r = await Promise.allSettled([add(store, inbox.id), store.append(st, parseMessage(big), { mailboxId: inbox.id })]);
    st.release();
    assert.equal(r[0].status, 'fulfilled');
    assert.equal(r[1].status, 'rejected');
    const after = await readAll(store, acct.id, head);
    assert.deepEqual(after.map((c) => [c.seq, c.kind]), [[head + 1, 'message-added']]);
    assert.equal(await store.journalHead(acct.id), head + 1);
    const st2 = await store.stageBlob(big);
    await assert.rejects(store.appendMessages(inbox.id, [{ blob: st2, meta: parseMessage(big) }]), (e: unknown) => e instanceof StoreError && e.code === 'quota');
    st2.release();
    assert.equal(await store.journalHead(acct.id), head + 1, 'over quota: nothing committed, nothing journaled');
  });

  run('pruning keeps a gap-free tail; asking from before it answers resync', async ({ store }) => {
    const { acct, inbox } = await setup(store, 'p@example.com');
    for (let i = 0; i < 9; i++) await add(store, inbox.id);
    const head = await store.journalHead(acct.id);
    assert.ok(head >= 16);
    // Keep 5 entries, removed 2 per transaction.
    const removed = await store.pruneJournal({ maxAgeMs: 7 * 86_400_000, maxEntries: 5, chunk: 2 });
    assert.equal(removed, head - 5);
    const r = await store.changesSince(acct.id, 0);
    assert.deepEqual(r, { resync: true, head, floor: head - 5 });
    const edge = await store.changesSince(acct.id, head - 6);
    assert.equal(edge.resync, true, 'the last pruned entry is gone: resync');
    const kept = await readAll(store, acct.id, head - 5);
    assert.deepEqual(kept.map((c) => c.seq), [head - 4, head - 3, head - 2, head - 1, head]);
    assert.equal(await store.pruneJournal({ maxAgeMs: 7 * 86_400_000, maxEntries: 5 }), 0, 'nothing more to drop');
    // Past the age horizon: everything goes, the head stays, and following from the head works.
    assert.equal(await store.pruneJournal({ maxAgeMs: 1000, maxEntries: 1000, now: Date.now() + 10_000, budget: 3 }), 3, 'a budget bounds a pass');
    await store.pruneJournal({ maxAgeMs: 1000, maxEntries: 1000, now: Date.now() + 10_000 });
    assert.deepEqual(await store.changesSince(acct.id, head), { resync: false, changes: [], head });
    assert.equal((await store.changesSince(acct.id, head - 1)).resync, true);
    await add(store, inbox.id);
    const next = await store.changesSince(acct.id, head);
    assert.ok(!next.resync);
    assert.deepEqual(next.changes.map((c) => c.seq), [head + 1], 'seqs go on after pruning');
    assert.equal((await store.changesSince(acct.id, head + 5)).resync, true, 'a seq past the head: resync');
  });

  run('a second store on the same data follows by pulling after a notification, and loses nothing when pings are missed', async ({ store, other }) => {
    const { acct, inbox } = await setup(store, 'f@example.com');
    const second = await other();
    const from = await second.journalHead(acct.id);
    const got: Array<Change | JournalChange> = [];
    const follower = new JournalFollower(second, acct.id, from, (cs) => got.push(...cs)).attach(second.bus);
    // The relay between the two "processes": a ping with the new head only, no Change objects.
    let relay = true;
    const published: Change[] = [];
    store.bus.subscribe(acct.id, (cs, head) => {
      published.push(...cs);
      assert.equal(head, cs.at(-1)!.seq, 'a publication carries the new head');
      if (relay) second.bus.notify(acct.id, head!);
    });
    const x = await add(store, inbox.id, { keywords: ['k1'] });
    await store.storeFlags(inbox.id, [x.uid], 'add', { systemFlags: SystemFlag.Seen, keywords: [] });
    await follower.poke();
    assert.deepEqual(got.map(view), published.map(view));
    // Pings lost: the next one brings everything that was missed.
    relay = false;
    await store.createMailbox(acct.id, 'Missed');
    await add(store, inbox.id);
    // (PostgreSQL pings by itself at COMMIT: see the next test.)
    if (backend.name === 'sqlite') assert.equal(got.length, 2, 'nothing arrives without a ping');
    relay = true;
    await store.expunge(inbox.id, { uids: [x.uid], onlyDeleted: false });
    await follower.poke();
    assert.deepEqual(got.map(view), published.map(view), 'each change once, in seq order');
    assert.equal(follower.seq, await store.journalHead(acct.id));
    follower.detach();
  });

  run('in process the follower takes the bus changes as they are (no read) and pulls only across a gap', async ({ store }) => {
    const { acct, inbox } = await setup(store, 'g@example.com');
    const head = await store.journalHead(acct.id);
    const got: Array<Change | JournalChange> = [];
    const fast = new JournalFollower(store, acct.id, head, (cs) => got.push(...cs)).attach(store.bus);
    // Started two entries behind: its first publication shows a gap, so it pulls.
    const behind: Array<Change | JournalChange> = [];
    const slow = new JournalFollower(store, acct.id, head - 2, (cs) => behind.push(...cs)).attach(store.bus);
    for (let i = 0; i < 4; i++) await add(store, inbox.id);
    await slow.poke();
    assert.equal(fast.pulled, 0, 'the fast path read nothing');
    assert.deepEqual(got.map((c) => c.seq), [head + 1, head + 2, head + 3, head + 4]);
    assert.ok(slow.pulled >= 2);
    assert.deepEqual(behind.map((c) => c.seq), [head - 1, head, head + 1, head + 2, head + 3, head + 4]);
    fast.detach();
    slow.detach();
  });

  run('the pruning timer (limits.journalPruneInterval) applies the horizon by itself', async ({ store }) => {
    const { acct, inbox } = await setup(store, 't@example.com');
    for (let i = 0; i < 3; i++) await add(store, inbox.id);
    const head = await store.journalHead(acct.id);
    const pruned: number[] = [];
    const p = startJournalPruning(store, { maxAgeMs: 86_400_000, maxEntries: 2, intervalMs: 20, onPruned: (n) => pruned.push(n) });
    try {
      for (let i = 0; i < 500 && pruned.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    } finally {
      await p.stop();
    }
    assert.deepEqual(pruned, [head - 2]);
    assert.deepEqual(await store.changesSince(acct.id, 0), { resync: true, head, floor: head - 2 });
  });

  if (backend.name === 'postgres') {
    run('PostgreSQL: another store on the database hears each commit (pg_notify at COMMIT) and pulls it, with no relay of ours', async ({ store, other }) => {
      const { acct, inbox } = await setup(store, 'n@example.com');
      const second = await other();
      const from = await second.journalHead(acct.id);
      const got: Array<Change | JournalChange> = [];
      const follower = new JournalFollower(second, acct.id, from, (cs) => got.push(...cs));
      // Notifications only: second.bus's subscribers get pulled Changes too (its FollowingBus,
      // test/store/follow-bus.test.ts); here the pings alone must bring everything.
      const stopPings = second.bus.onNotify(acct.id, () => void follower.poke());
      const published: Change[] = [];
      store.bus.subscribe(acct.id, (cs) => published.push(...cs));
      await add(store, inbox.id);
      await store.createMailbox(acct.id, 'Heard');
      await assert.rejects(store.createMailbox(acct.id, 'Heard'));
      await store.renameMailbox(acct.id, 'Heard', 'Heard2');
      for (let i = 0; i < 500 && got.length < published.length; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(got.map(view), published.map(view));
      assert.ok(follower.pulled >= published.length, 'all of it pulled from the journal');
      stopPings();
    });
  }
});
