// Per-account counts of authenticated connections (IMAP connection limit, POP3 IN-USE) in this
// process: the registry of a single-process server on the embedded store.

import type { ConnectionRegistry } from './types.ts';

export function createConnectionRegistry(): ConnectionRegistry {
  const counts = new Map<string, number>();
  const key = (p: string, id: number) => `${p}:${id}`;
  return {
    async acquire(protocol, accountId, limit) {
      const k = key(protocol, accountId);
      const n = counts.get(k) ?? 0;
      if (n >= limit) return null;
      counts.set(k, n + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const m = (counts.get(k) ?? 1) - 1;
        if (m <= 0) counts.delete(k);
        else counts.set(k, m);
      };
    },
    count(protocol, accountId) {
      return counts.get(key(protocol, accountId)) ?? 0;
    },
  };
}
