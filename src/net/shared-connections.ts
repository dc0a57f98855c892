// Per-account connection limits that hold across every process and node on one store (issue 15):
// the sixth IMAP login of an account is refused whichever nodes the five are on, and a second
// POP3 session gets IN-USE (RFC 2449 §8.1.2) on any node. Each authenticated session is a row in
// the store (src/store/live-sessions.ts); this node beats every `heartbeatMs` and a session counts
// only while its node's last beat is younger than `ttlMs`, so a node killed with SIGKILL frees its
// sessions' slots within ttlMs, with no one to clean up after it.
//
// The local count is checked first: a login that is over the limit on this node alone is refused
// without a store round trip. A release is applied locally at once and in the store in the
// background; if the store cannot be reached, the row stops counting when this node's beats stop.

import type { Logger } from '../obs/log.ts';
import type { LiveProtocol, LiveSessionStore } from '../store/live-sessions.ts';
import type { ConnectionRegistry } from './types.ts';

export interface SharedRegistryOptions {
  /** This node's name in the store; unique per running process (src/main.ts adds pid and a nonce). */
  node: string;
  heartbeatMs: number;
  /** A node whose last beat is older than this is presumed dead (> heartbeatMs, a few beats). */
  ttlMs: number;
  log: Logger;
  now?: () => number;
}

interface Held {
  protocol: LiveProtocol;
  accountId: number;
  /** The row in the store; replaced when the node registers its sessions again. */
  id: number;
}

export async function createSharedConnectionRegistry(store: LiveSessionStore, o: SharedRegistryOptions): Promise<ConnectionRegistry> {
  const now = o.now ?? Date.now;
  const local = new Map<string, number>();
  const held = new Set<Held>();
  const key = (p: string, id: number) => `${p}:${id}`;
  let closed = false;
  let beating: Promise<void> | null = null;

  const beat = async () => {
    const t = now();
    const known = await store.heartbeat(o.node, t, t - o.ttlMs);
    if (known || held.size === 0) return;
    // Presumed dead by another node (no beat for ttlMs: a paused process, a lost database) and
    // removed: this node's sessions are still open, so they count again.
    const list = [...held];
    const ids = await store.restore(o.node, list, t);
    list.forEach((h, i) => {
      h.id = ids[i]!;
      // Released while the rows were being added: the new row goes too.
      if (!held.has(h)) void store.release(h.id).catch(() => {});
    });
    o.log.warn('sessions.restored', { node: o.node, sessions: list.length });
  };
  await beat();
  const timer = setInterval(() => {
    if (beating) return;
    beating = beat()
      .catch((err) => o.log.warn('sessions.heartbeat-failed', { node: o.node, error: err instanceof Error ? err : String(err) }))
      .finally(() => (beating = null));
  }, o.heartbeatMs);
  timer.unref();

  return {
    async acquire(protocol, accountId, limit) {
      const k = key(protocol, accountId);
      const n = local.get(k) ?? 0;
      if (n >= limit || closed) return null;
      local.set(k, n + 1); // reserved while the claim runs: concurrent local logins see it
      let id: number | null = null;
      try {
        const t = now();
        id = await store.claim(o.node, protocol, accountId, limit, t, t - o.ttlMs);
      } finally {
        if (id === null) {
          const m = (local.get(k) ?? 1) - 1;
          if (m <= 0) local.delete(k);
          else local.set(k, m);
        }
      }
      if (id === null) return null;
      const h: Held = { protocol, accountId, id };
      held.add(h);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        held.delete(h);
        const m = (local.get(k) ?? 1) - 1;
        if (m <= 0) local.delete(k);
        else local.set(k, m);
        store.release(h.id).catch((err) => o.log.warn('sessions.release-failed', { node: o.node, error: err instanceof Error ? err : String(err) }));
      };
    },
    count(protocol, accountId) {
      return local.get(key(protocol, accountId)) ?? 0;
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await beating;
      await store.dropNode(o.node).catch((err) => o.log.warn('sessions.drop-failed', { node: o.node, error: err instanceof Error ? err : String(err) }));
    },
  };
}
