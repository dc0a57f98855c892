// Store.appendMessages (MULTIAPPEND RFC 3502, REPLACE RFC 8508) and the save date (SAVEDATE
// RFC 8514: MessageSummary.savedAt), against both backends.

import assert from 'node:assert/strict';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import type { Change } from '../../src/store/bus.ts';
import { StoreError, SystemFlag, type AppendItem, type Mailbox, type StagedBlob, type Store } from '../../src/store/store.ts';
import { eachBackend } from './backends.ts';

let n = 0;
const raw = (subject: string, size = 100) => {
  const head = `Subject: ${subject} ${++n}\r\n\r\n`;
  return Buffer.from(head + 'x'.repeat(Math.max(0, size - head.length - 2)) + '\r\n');
};

async function staged(store: Store, bodies: Buffer[]): Promise<{ items: AppendItem[]; blobs: StagedBlob[] }> {
  const blobs: StagedBlob[] = [];
  for (const b of bodies) blobs.push(await store.stageBlob(b));
  return { blobs, items: blobs.map((blob, i) => ({ blob, meta: parseMessage(bodies[i]!), systemFlags: i === 0 ? SystemFlag.Seen : 0, keywords: i === 1 ? ['$Label1'] : [] })) };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setup(store: Store, quota = 0) {
  await store.addDomain('example.com');
  const acct = await store.createAccount({ address: 'multi@example.com', passwordHash: 'x', quota });
  const box = async (name: string): Promise<Mailbox> => (await store.getMailbox(acct.id, name))!;
  return { acct, inbox: await box('INBOX'), drafts: await box('Drafts'), sent: await box('Sent') };
}

eachBackend('appendMessages and save dates', (run) => {
  run('adds every message with consecutive UIDs in order, flags kept, one change each, exact usage', async ({ store }) => {
    const { acct, inbox } = await setup(store);
    const seen: Change[] = [];
    const off = store.bus.subscribe(acct.id, (cs) => seen.push(...cs));
    const bodies = [raw('a'), raw('b', 300), raw('c')];
    const { items, blobs } = await staged(store, bodies);
    const r = await store.appendMessages(inbox.id, items, { origin: 'me' });
    blobs.forEach((x) => x.release());
    off();
    assert.deepEqual(r.uids, [1, 2, 3]);
    assert.equal(r.uidValidity, inbox.uidValidity);
    const list = await store.listMessages(inbox.id);
    assert.deepEqual(list.map((m) => [m.uid, m.modseq, m.systemFlags, m.keywords, m.size]), [
      [1, r.modseqs[0], SystemFlag.Seen, [], bodies[0]!.length],
      [2, r.modseqs[1], 0, ['$Label1'], bodies[1]!.length],
      [3, r.modseqs[2], 0, [], bodies[2]!.length],
    ]);
    assert.deepEqual(seen.map((c) => [c.kind, 'uid' in c ? c.uid : 0, c.origin]), [['message-added', 1, 'me'], ['message-added', 2, 'me'], ['message-added', 3, 'me']]);
    const a = (await store.getAccountById(acct.id))!;
    assert.deepEqual([a.usedBytes, a.messageCount], [bodies.reduce((s, x) => s + x.length, 0), 3]);
    assert.ok((await store.readBlob(list[1]!.blobId)).equals(bodies[1]!));
  });

  run('all or nothing: one message over the quota and none is added (UIDNEXT, usage, listing unchanged)', async ({ store }) => {
    const { acct, inbox } = await setup(store, 1000);
    const first = await staged(store, [raw('keep', 200)]);
    await store.appendMessages(inbox.id, first.items);
    first.blobs.forEach((x) => x.release());
    const before = (await store.getMailboxById(inbox.id))!;
    const { items, blobs } = await staged(store, [raw('a', 300), raw('b', 300), raw('c', 300)]);
    await assert.rejects(store.appendMessages(inbox.id, items), (e: unknown) => e instanceof StoreError && e.code === 'quota');
    blobs.forEach((x) => x.release());
    assert.deepEqual((await store.listMessages(inbox.id)).map((m) => m.uid), [1]);
    const after = (await store.getMailboxById(inbox.id))!;
    assert.deepEqual([after.uidNext, after.highestModseq], [before.uidNext, before.highestModseq]);
    assert.equal((await store.getAccountById(acct.id))!.usedBytes, 200);
    // Two of them fit.
    const two = await staged(store, [raw('a', 300), raw('b', 300)]);
    assert.deepEqual((await store.appendMessages(inbox.id, two.items)).uids, [2, 3]);
    two.blobs.forEach((x) => x.release());
  });

  run('replace: the old message is expunged (VANISHED log) and the new one added in one commit; quota is net', async ({ store }) => {
    const { acct, drafts, sent } = await setup(store, 500);
    const first = await staged(store, [raw('draft v1', 400)]);
    await store.appendMessages(drafts.id, first.items);
    first.blobs.forEach((x) => x.release());
    const hms = (await store.getMailboxById(drafts.id))!.highestModseq;
    const seen: Change[] = [];
    const off = store.bus.subscribe(acct.id, (cs) => seen.push(...cs));
    // 400 used of 500: a 450-byte version fits only because the old one goes (RFC 8508 §3.4).
    const v2 = await staged(store, [raw('draft v2', 450)]);
    const r = await store.appendMessages(drafts.id, v2.items, { replace: { mailboxId: drafts.id, uid: 1 } });
    v2.blobs.forEach((x) => x.release());
    assert.deepEqual(r.uids, [2]);
    assert.deepEqual((await store.listMessages(drafts.id)).map((m) => m.uid), [2]);
    assert.deepEqual(await store.expungedSince(drafts.id, hms), [1]);
    assert.deepEqual(seen.map((c) => c.kind), ['messages-expunged', 'message-added']);
    assert.equal((await store.getAccountById(acct.id))!.usedBytes, 450);
    // Into another mailbox (Drafts → Sent after submission, RFC 8508 §3.4).
    const v3 = await staged(store, [raw('sent', 420)]);
    assert.deepEqual((await store.appendMessages(sent.id, v3.items, { replace: { mailboxId: drafts.id, uid: 2 } })).uids, [1]);
    v3.blobs.forEach((x) => x.release());
    assert.deepEqual((await store.listMessages(drafts.id)).length, 0);
    // Too big even net of the old one; or the old one is gone: nothing changes.
    const v4 = await staged(store, [raw('huge', 600)]);
    await assert.rejects(store.appendMessages(drafts.id, v4.items, { replace: { mailboxId: sent.id, uid: 1 } }), (e: unknown) => e instanceof StoreError && e.code === 'quota');
    await assert.rejects(store.appendMessages(drafts.id, [{ ...v4.items[0]!, blob: v3.blobs[0]! }], { replace: { mailboxId: sent.id, uid: 99 } }), (e: unknown) => e instanceof StoreError && e.code === 'not-found');
    v4.blobs.forEach((x) => x.release());
    off();
    assert.deepEqual((await store.listMessages(sent.id)).map((m) => m.uid), [1]);
    assert.deepEqual((await store.listMessages(drafts.id)).length, 0);
    assert.equal((await store.getAccountById(acct.id))!.usedBytes, 420);
  });

  run('RFC 8514 §3: savedAt is when the message came into its mailbox: kept in place, new for a COPY or MOVE', async ({ store }) => {
    const { inbox, drafts, sent } = await setup(store);
    const t0 = Date.now();
    const { items, blobs } = await staged(store, [raw('a'), raw('b')]);
    await store.appendMessages(inbox.id, items.map((it) => ({ ...it, internalDate: Date.UTC(2015, 0, 1) })));
    blobs.forEach((x) => x.release());
    const [a, bb] = await store.listMessages(inbox.id);
    assert.ok(a!.savedAt >= t0 && a!.savedAt <= Date.now());
    assert.equal(a!.internalDate, Date.UTC(2015, 0, 1));
    await pause(20);
    await store.storeFlags(inbox.id, [1], 'add', { systemFlags: SystemFlag.Flagged, keywords: [] });
    const t1 = Date.now();
    await store.copyMessages(inbox.id, [1], drafts.id);
    await store.moveMessages(inbox.id, [2], sent.id);
    const [a2] = await store.listMessages(inbox.id);
    assert.equal(a2!.savedAt, a!.savedAt, 'a flag change and a COPY leave the source alone');
    const [copy] = await store.listMessages(drafts.id);
    const [moved] = await store.listMessages(sent.id);
    for (const m of [copy!, moved!]) {
      assert.ok(m.savedAt >= t1, 'a new save date');
      assert.equal(m.internalDate, Date.UTC(2015, 0, 1), 'INTERNALDATE is kept');
    }
    assert.notEqual(moved!.savedAt, bb!.savedAt);
  });
});
