// Recent mode over the store's POP3 methods (popUpdate / popRetained): a POP session that
// expunges or moves mail leaves it readable for `recent:` sessions, and its whole UPDATE is one
// store transaction (one batch of changes on the bus).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Change } from '../../../src/store/bus.ts';
import { startHarness, addAccount, deliverMessages, makeMessage, LineClient, type Harness } from './harness.ts';

let h: Harness;
before(async () => {
  h = await startHarness();
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
    const address = `recent-${action}@example.com`;
    const acc = await addAccount(h.store, address, 'pw', { pop: { deleteAction: action } });
    const bodies = Array.from({ length: 20 }, (_, i) => makeMessage(i));
    await deliverMessages(h.store, acc.id, bodies);
    const batches: Change[][] = [];
    const off = h.store.bus.subscribe(acc.id, (cs) => batches.push([...cs]));
    const first = await uidlsAndBodies(address);
    off();
    assert.equal(first.size, 20);
    assert.equal(batches.length, 1, 'the UPDATE at QUIT is one transaction: one batch of changes');
    assert.ok(batches[0]!.some((c) => c.kind === 'messages-expunged'));
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
