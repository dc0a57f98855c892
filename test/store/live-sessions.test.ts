// store.liveSessions (per-account sessions counted across processes and nodes, issue 15), the
// same tests against every backend. Two store handles on one database stand for two nodes.

import assert from 'node:assert/strict';
import { eachBackend } from './backends.ts';
import { createSharedConnectionRegistry } from '../../src/net/shared-connections.ts';
import { silentLogger } from '../../src/obs/log.ts';

const T = 1_700_000_000_000;
const TTL = 6000;

eachBackend('liveSessions', (run) => {
  run('a claim counts the sessions of every node: the limit holds across two handles', async ({ store, other }) => {
    const a = store.liveSessions;
    const b = (await other()).liveSessions;
    assert.equal(await a.heartbeat('A', T, T - TTL), false, 'first beat: the node was unknown');
    assert.equal(await b.heartbeat('B', T, T - TTL), false);
    assert.equal(await a.heartbeat('A', T + 1, T + 1 - TTL), true);
    const ids = [await a.claim('A', 'imap', 7, 3, T, T - TTL), await b.claim('B', 'imap', 7, 3, T, T - TTL), await b.claim('B', 'imap', 7, 3, T, T - TTL)];
    assert.ok(ids.every((id) => typeof id === 'number'));
    assert.equal(new Set(ids).size, 3);
    assert.equal(await a.claim('A', 'imap', 7, 3, T, T - TTL), null, 'fourth of a limit of three, on either node');
    assert.equal(await b.claim('B', 'imap', 7, 3, T, T - TTL), null);
    // Other accounts and other protocols have their own counts.
    assert.notEqual(await a.claim('A', 'imap', 8, 3, T, T - TTL), null);
    assert.notEqual(await a.claim('A', 'pop3', 7, 1, T, T - TTL), null);
    assert.equal(await b.claim('B', 'pop3', 7, 1, T, T - TTL), null, 'POP3 lock: one per account');
    assert.equal(await a.count('imap', 7, T - TTL), 3);
    await b.release(ids[1]!);
    assert.equal(await a.count('imap', 7, T - TTL), 2);
    assert.notEqual(await a.claim('A', 'imap', 7, 3, T, T - TTL), null, 'a released slot is free again');
  });

  run('claims racing for the last slot: exactly one wins', async ({ store, other }) => {
    const a = store.liveSessions;
    const b = (await other()).liveSessions;
    await a.heartbeat('A', T, T - TTL);
    await b.heartbeat('B', T, T - TTL);
    const got = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).claim(i % 2 ? 'A' : 'B', 'imap', 1, 5, T, T - TTL)));
    assert.equal(got.filter((x) => x !== null).length, 5);
    assert.equal(await a.count('imap', 1, T - TTL), 5);
  });

  run("a node that stops beating: its sessions stop counting after the time to live and are removed by another node's beat", async ({ store, other }) => {
    const a = store.liveSessions;
    const b = (await other()).liveSessions;
    await a.heartbeat('A', T, T - TTL);
    await b.heartbeat('B', T, T - TTL);
    for (let i = 0; i < 2; i++) assert.notEqual(await b.claim('B', 'imap', 3, 2, T, T - TTL), null);
    const later = T + TTL + 1;
    await a.heartbeat('A', later, later - TTL); // B silent since T
    assert.equal(await a.count('imap', 3, later - TTL), 0);
    assert.notEqual(await a.claim('A', 'imap', 3, 2, later, later - TTL), null);
    // B comes back (it was only paused): unknown now, so it must register its sessions again.
    assert.equal(await b.heartbeat('B', later, later - TTL), false);
    const ids = await b.restore('B', [{ protocol: 'imap', accountId: 3 }], later);
    assert.equal(ids.length, 1);
    assert.equal(await a.count('imap', 3, later - TTL), 2);
    await b.dropNode('B');
    assert.equal(await a.count('imap', 3, later - TTL), 1, 'a clean stop gives its sessions up at once');
  });

  run('the shared registry: local reservation, release, and close giving up the node', async ({ store, other }) => {
    const r1 = await createSharedConnectionRegistry(store.liveSessions, { node: 'n1', heartbeatMs: 1000, ttlMs: 5000, log: silentLogger });
    const r2 = await createSharedConnectionRegistry((await other()).liveSessions, { node: 'n2', heartbeatMs: 1000, ttlMs: 5000, log: silentLogger });
    try {
      const held = await Promise.all([r1.acquire('imap', 5, 2), r1.acquire('imap', 5, 2), r2.acquire('imap', 5, 2)]);
      assert.equal(held.filter(Boolean).length, 2, 'two of three concurrent logins within a limit of two');
      assert.equal(r1.count('imap', 5) + r2.count('imap', 5), 2);
      for (const rel of held) rel?.();
      // The store release runs in the background; a new login waits for nothing but sees the slot free soon.
      let ok: (() => void) | null = null;
      for (let i = 0; i < 100 && !ok; i++) {
        ok = await r2.acquire('imap', 5, 1);
        if (!ok) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(ok, 'after the releases the slot is free on the other node');
      await r2.close!();
      assert.notEqual(await r1.acquire('imap', 5, 1), null, "closing n2 gave up its session");
      assert.equal(await r2.acquire('imap', 5, 9), null, 'a closed registry admits nobody');
    } finally {
      await r1.close!();
      await r2.close!();
    }
  });
});
