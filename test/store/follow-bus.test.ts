// The FollowingBus (src/store/follow-bus.ts) on two PostgreSQL stores on one schema (two
// processes): a subscriber of the first store's bus gets the second store's changes as ordinary
// Changes (flags and keywords filled in), interleaved with its own store's publications, in seq
// order, each exactly once, with no gap; and a follower the journal was pruned past gets the
// account's state as Changes instead. Skipped when PostgreSQL is unreachable (CI=true: fails).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import { LocalChangeBus, type Change } from '../../src/store/bus.ts';
import { FollowingBus, flagKey } from '../../src/store/follow-bus.ts';
import { openPostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { SystemFlag, type Store } from '../../src/store/store.ts';
import { PG_URL, dropSchema, freshSchemaName, pgAvailability, probePostgres } from './pg-env.ts';

const avail = pgAvailability(await probePostgres());

async function add(store: Store, mailboxId: number, keywords: string[] = []): Promise<number> {
  const body = Buffer.from('From: a@example.net\r\nSubject: follow\r\n\r\nbody\r\n');
  const st = await store.stageBlob(body);
  try {
    return (await store.append(st, parseMessage(body), { mailboxId, keywords })).uid;
  } finally {
    st.release();
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('FollowingBus: another store’s changes reach local subscribers as Changes, in seq order, once each, with flags', { skip: avail.skip, timeout: 120_000 }, async () => {
  if (avail.fail) throw new Error(avail.fail);
  const schema = freshSchemaName();
  const one = await openPostgresStore({ url: PG_URL, schema });
  const two = await openPostgresStore({ url: PG_URL, schema });
  try {
    await one.addDomain('example.com');
    const acct = await one.createAccount({ address: 'f@example.com', passwordHash: 'x', quota: 0 });
    const inbox = (await one.getMailbox(acct.id, 'INBOX'))!;
    const got: Change[] = [];
    const unsubscribe = one.bus.subscribe(acct.id, (changes) => void got.push(...changes));
    await new Promise((r) => setTimeout(r, 200)); // the follower's head read

    // From the other store, one at a time: an arrival with a keyword, a flag change, an expunge.
    const uid = await add(two, inbox.id, ['$Work']);
    await until(() => got.length > 0, 'the arrival');
    assert.deepEqual(got.map((c) => [c.kind, 'uid' in c ? c.uid : 0, 'keywords' in c ? c.keywords : null]), [['message-added', uid, ['$Work']]]);
    await two.storeFlags(inbox.id, [uid], 'add', { systemFlags: SystemFlag.Flagged, keywords: ['$Later'] });
    await until(() => got.length > 1, 'the flag change');
    const f = got[1]!;
    assert.ok(f.kind === 'flags-changed' && f.uid === uid && (f.systemFlags & SystemFlag.Flagged) !== 0, JSON.stringify(f));
    assert.deepEqual([...f.keywords].sort(), ['$Later', '$Work']);
    await two.expunge(inbox.id, { uids: [uid], onlyDeleted: false });
    await until(() => got.length > 2, 'the expunge');
    assert.ok(got[2]!.kind === 'messages-expunged' && got[2]!.uids.includes(uid));
    assert.deepEqual(got.map((c) => c.seq), [got[0]!.seq!, got[0]!.seq! + 1, got[0]!.seq! + 2]);

    // Both stores write at once: every seq once, ascending, no gap.
    got.length = 0;
    const head0 = await one.journalHead(acct.id);
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) writes.push(add(i % 2 ? one : two, inbox.id));
    const uids = (await Promise.all(writes)) as number[];
    const head = await one.journalHead(acct.id);
    assert.equal(head, head0 + 20);
    await until(() => got.length >= 20, '20 arrivals');
    await new Promise((r) => setTimeout(r, 300)); // anything delivered twice would be here by now
    assert.deepEqual(got.map((c) => c.seq), Array.from({ length: 20 }, (_, i) => head0 + 1 + i));
    assert.deepEqual(got.map((c) => (c.kind === 'message-added' ? c.uid : -1)).sort((x, y) => x - y), [...uids].sort((x, y) => x - y));
    unsubscribe();
  } finally {
    await one.close();
    await two.close();
    await dropSchema(schema);
  }
});

test('FollowingBus: a follower the journal was pruned past (resync) gets the account state as Changes', { skip: avail.skip, timeout: 120_000 }, async () => {
  if (avail.fail) throw new Error(avail.fail);
  const schema = freshSchemaName();
  const one = await openPostgresStore({ url: PG_URL, schema });
  try {
    await one.addDomain('example.com');
    const acct = await one.createAccount({ address: 'r@example.com', passwordHash: 'x', quota: 0 });
    const inbox = (await one.getMailbox(acct.id, 'INBOX'))!;
    // A bus nothing publishes on (another process's view): only notify() and the journal reach it.
    const bus = new FollowingBus(new LocalChangeBus(), one, async (keys) => {
      const out = new Map<string, { systemFlags: number; keywords: string[] }>();
      for (const m of await one.listMessages(inbox.id)) out.set(flagKey(inbox.id, m.uid), m);
      return out;
    }, { resync: one });
    const got: Change[] = [];
    const unsubscribe = bus.subscribe(acct.id, (changes) => void got.push(...changes));
    await new Promise((r) => setTimeout(r, 300)); // the follower's head read
    const uids = [await add(one, inbox.id), await add(one, inbox.id, ['$Keep']), await add(one, inbox.id)];
    await one.storeFlags(inbox.id, [uids[1]!], 'add', { systemFlags: SystemFlag.Seen, keywords: [] });
    await one.expunge(inbox.id, { uids: [uids[0]!], onlyDeleted: false });
    const pruned = await one.pruneJournal({ maxAgeMs: 3_600_000, maxEntries: 1 });
    assert.ok(pruned >= 4, `pruned ${pruned}`);
    bus.notify(acct.id, await one.journalHead(acct.id));
    await until(() => got.some((c) => c.kind === 'flags-changed'), 'the resync state');
    const gone = got.find((c) => c.kind === 'messages-expunged');
    assert.ok(gone && gone.kind === 'messages-expunged' && gone.uids.includes(uids[0]!), JSON.stringify(got));
    const added = got.filter((c) => c.kind === 'message-added').map((c) => (c.kind === 'message-added' ? c.uid : 0));
    assert.deepEqual(added, [uids[1], uids[2]]);
    const f = got.find((c) => c.kind === 'flags-changed' && c.uid === uids[1]);
    assert.ok(f && f.kind === 'flags-changed' && (f.systemFlags & SystemFlag.Seen) !== 0 && f.keywords.includes('$Keep'), JSON.stringify(f));
    unsubscribe();
  } finally {
    await one.close();
    await dropSchema(schema);
  }
});
