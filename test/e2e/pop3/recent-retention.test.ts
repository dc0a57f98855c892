// Recent mode over the proposed store extension (src/pop3/store-ext.ts): a POP session that
// expunges or moves mail leaves it readable for `recent:` sessions. The store here is the real
// SQLite store plus a stand-in for the two proposed methods (built from the current Store calls,
// with retained bodies kept in memory), so the session's side of the contract is exercised until
// the store implements it for real.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import type { Store } from '../../../src/store/store.ts';
import { SystemFlag } from '../../../src/store/store.ts';
import type { PopStoreExtension, PopRetainedMessage } from '../../../src/pop3/store-ext.ts';
import { POP_DELETED_KEYWORD } from '../../../src/pop3/session.ts';
import { startHarness, addAccount, deliverMessages, makeMessage, LineClient, type Harness } from './harness.ts';

const calls: string[] = [];

function withPopExtension(store: Store): Store {
  const retained = new Map<number, Array<PopRetainedMessage & { body: Buffer }>>();
  const ext: PopStoreExtension = {
    async popUpdate(inboxId, u, opts) {
      calls.push(`popUpdate ${u.action} seen=${u.seen.length} remove=${u.remove.length}`);
      const inbox = (await store.getMailboxById(inboxId))!;
      if (u.seen.length) await store.storeFlags(inboxId, u.seen, 'add', { systemFlags: SystemFlag.Seen, keywords: [] }, opts);
      if (u.action === 'keep') {
        if (u.remove.length) await store.storeFlags(inboxId, u.remove, 'add', { systemFlags: SystemFlag.Seen, keywords: [POP_DELETED_KEYWORD] }, opts);
        return { removed: [], mailbox: null };
      }
      const present = (await store.listMessages(inboxId)).filter((m) => u.remove.includes(m.uid));
      if (u.retainSince !== null) {
        const list = retained.get(inboxId) ?? [];
        for (const m of present) {
          if (m.savedAt >= u.retainSince) {
            list.push({ uidValidity: inbox.uidValidity, uid: m.uid, size: m.size, blobId: m.blobId, savedAt: m.savedAt, body: await store.readBlob(m.blobId) });
          }
        }
        retained.set(inboxId, list);
      }
      const uids = present.map((m) => m.uid);
      if (u.action === 'expunge') return { removed: await store.expunge(inboxId, { uids, onlyDeleted: false, ...opts }), mailbox: null };
      const use = u.action === 'trash' ? '\\Trash' : '\\Archive';
      const dst = (await store.listMailboxes(inbox.accountId)).find((b) => b.specialUse === use)!;
      await store.moveMessages(inboxId, uids, dst.id, opts);
      return { removed: uids, mailbox: dst };
    },
    async popRetained(inboxId, since) {
      return (retained.get(inboxId) ?? []).filter((r) => r.savedAt >= since).map(({ body: _b, ...r }) => r);
    },
  };
  const bodyOf = (blobId: string) => {
    for (const list of retained.values()) for (const r of list) if (r.blobId === blobId) return r.body;
    return null;
  };
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'popUpdate' || prop === 'popRetained') return ext[prop];
      if (prop === 'streamBlob') {
        return (blobId: string, start?: number, end?: number) => {
          const b = bodyOf(blobId);
          return b ? Readable.from([b.subarray(start ?? 0, end ?? b.length)]) : target.streamBlob(blobId, start, end);
        };
      }
      if (prop === 'readBlob') {
        return async (blobId: string, start?: number, end?: number) => {
          const b = bodyOf(blobId);
          return b ? b.subarray(start ?? 0, end ?? b.length) : target.readBlob(blobId, start, end);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

let h: Harness;
before(async () => {
  h = await startHarness({ wrapStore: withPopExtension });
});
after(async () => {
  await h.close();
});

async function uidlsAndBodies(address: string): Promise<Map<string, Buffer>> {
  const c = await LineClient.connect(h.tlsPort, true);
  assert.match(await c.login(address, 'pw'), /^\+OK/);
  const [, uidl] = await c.multiCmd('UIDL');
  const out = new Map<string, Buffer>();
  for (const l of uidl) {
    const [num, id] = l.split(' ') as [string, string];
    assert.match(await c.cmd(`RETR ${num}`), /^\+OK/);
    out.set(id, await c.multi());
    assert.match(await c.cmd(`DELE ${num}`), /^\+OK/);
  }
  assert.match(await c.cmd('QUIT'), /^\+OK/);
  await c.waitClosed();
  return out;
}

for (const action of ['expunge', 'trash'] as const) {
  test(`recent mode: two recent: clients each get every message after a normal client removed them (${action})`, async () => {
    calls.length = 0;
    const address = `recent-${action}@example.com`;
    const acc = await addAccount(h.store, address, 'pw', { pop: { deleteAction: action } });
    const bodies = Array.from({ length: 20 }, (_, i) => makeMessage(i));
    await deliverMessages(h.store, acc.id, bodies);
    const first = await uidlsAndBodies(address);
    assert.equal(first.size, 20);
    assert.deepEqual(calls, [`popUpdate ${action} seen=${action === 'expunge' ? 0 : 20} remove=20`], 'one store call at QUIT');
    const inbox = (await h.store.getMailbox(acc.id, 'INBOX'))!;
    assert.equal((await h.store.listMessages(inbox.id)).length, 0);
    for (const round of [1, 2]) {
      const got = await uidlsAndBodies(`recent:${address}`);
      assert.deepEqual([...got.keys()], [...first.keys()], `round ${round}: same UIDLs`);
      for (const [id, b] of got) assert.ok(b.equals(first.get(id)!), `round ${round}: ${id} byte-exact`);
    }
    // A normal session sees nothing.
    const c = await LineClient.connect(h.tlsPort, true);
    assert.match(await c.login(address, 'pw'), /^\+OK Logged in; 0 messages/);
    await c.cmd('QUIT');
  });
}
