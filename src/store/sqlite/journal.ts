// The change journal of the SQLite store (src/store/journal.ts). `record` runs inside the write
// transaction, from SqliteCommit's finalize hook (changes.ts: after the last write of a group
// commit, before COMMIT), so an entry commits exactly with its change and a rolled-back savepoint
// (whose Changes were dropped) leaves none. Per account in the transaction: one UPSERT of its
// head (RETURNING the new head) and one INSERT per Change; the seq is also set on the Change
// objects, which the bus then publishes. SQLite writers are serialised (IMMEDIATE transactions,
// another process included), so seqs follow commit order.

import type Database from 'better-sqlite3';
import type { Change } from '../bus.ts';
import {
  DEFAULT_PRUNE_CHUNK,
  byAccount,
  clampPage,
  journalPage,
  journalRows,
  prunePrefix,
  type ChangesSince,
  type JournalPruneOptions,
} from '../journal.ts';
import { nextTurn } from '../../obs/loop-lag.ts';
import type { Query } from './writes.ts';

type Row = Record<string, any>;

export class SqliteJournal {
  readonly #db: Database.Database;
  readonly #q: Query;

  constructor(db: Database.Database, q: Query) {
    this.#db = db;
    this.#q = q;
  }

  /** Inside the write transaction: the entries of changes[from..], and their seqs on them. */
  record(changes: readonly Change[], from = 0): void {
    if (changes.length <= from) return;
    const at = Date.now();
    const head = this.#q(
      'INSERT INTO change_heads (account_id, seq) VALUES (?, ?) ON CONFLICT (account_id) DO UPDATE SET seq = seq + excluded.seq RETURNING seq',
    ).pluck();
    const ins = this.#q('INSERT INTO change_journal (account_id, seq, n, kind, mailbox_id, uid, modseq, data, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    for (const [accountId, list] of byAccount(changes, from)) {
      const first = (head.get(accountId, list.length) as number) - list.length + 1;
      for (const r of journalRows(list, first)) ins.run(accountId, r.seq, r.n, r.kind, r.mailboxId, r.uid, r.modseq, r.data, at);
    }
  }

  journalHead(accountId: number): number {
    return (this.#q('SELECT seq FROM change_heads WHERE account_id = ?').pluck().get(accountId) as number | undefined) ?? 0;
  }

  changesSince(accountId: number, since: number, limit?: number): ChangesSince {
    // One read transaction: the head and the entries from the same snapshot (another process may write).
    return this.#db.transaction((): ChangesSince => {
      const h = this.#q('SELECT seq, floor FROM change_heads WHERE account_id = ?').get(accountId) as Row | undefined;
      const head = (h?.seq as number | undefined) ?? 0;
      const floor = (h?.floor as number | undefined) ?? 0;
      if (!Number.isSafeInteger(since) || since < floor || since > head) return { resync: true, head, floor };
      const max = clampPage(limit);
      const rows = this.#q('SELECT seq, n, kind, mailbox_id, uid, modseq, data, at FROM change_journal WHERE account_id = ? AND seq > ? ORDER BY seq LIMIT ?').all(
        accountId,
        since,
        max,
      ) as Row[];
      return journalPage(accountId, since, head, floor, max, rows);
    })();
  }

  /**
   * Drops entries past the horizon, a chunk per transaction (through `write`, the store's own
   * transaction), yielding to the event loop between chunks. The floor moves first, in the same
   * transaction as the chunk's deletes, so a reader never gets a list with a hole.
   */
  async prune(opts: JournalPruneOptions, write: (fn: () => number) => number | Promise<number>): Promise<number> {
    const chunk = Math.max(1, opts.chunk ?? DEFAULT_PRUNE_CHUNK);
    const budget = opts.budget ?? Number.POSITIVE_INFINITY;
    const cutoff = (opts.now ?? Date.now()) - opts.maxAgeMs;
    let removed = 0;
    let after = -1;
    while (removed < budget && !opts.stop?.()) {
      const accounts = this.#q('SELECT account_id, seq FROM change_heads WHERE account_id > ? ORDER BY account_id LIMIT 100').all(after) as Row[];
      if (accounts.length === 0) break;
      for (const a of accounts) {
        after = a.account_id as number;
        // Most accounts have nothing to drop: one indexed read of the oldest entry, outside any write.
        if (!this.#due(after, cutoff, opts.maxEntries)) continue;
        for (;;) {
          const n = await write(() => this.#pruneStep(after, cutoff, opts.maxEntries, Math.min(chunk, budget - removed)));
          removed += n;
          if (n === 0 || removed >= budget || opts.stop?.()) break;
          await nextTurn();
        }
        if (removed >= budget) break;
      }
      await nextTurn();
    }
    return removed;
  }

  #due(accountId: number, cutoffAt: number, maxEntries: number): boolean {
    const oldest = this.#q('SELECT seq, at FROM change_journal WHERE account_id = ? ORDER BY seq LIMIT 1').all(accountId) as Array<{ seq: number; at: number }>;
    return prunePrefix(oldest, this.journalHead(accountId), cutoffAt, maxEntries) > 0;
  }

  #pruneStep(accountId: number, cutoffAt: number, maxEntries: number, chunk: number): number {
    const head = this.journalHead(accountId);
    const rows = this.#q('SELECT seq, at FROM change_journal WHERE account_id = ? ORDER BY seq LIMIT ?').all(accountId, chunk) as Array<{ seq: number; at: number }>;
    const last = prunePrefix(rows, head, cutoffAt, maxEntries);
    if (last === 0) return 0;
    this.#q('UPDATE change_heads SET floor = max(floor, ?) WHERE account_id = ?').run(last, accountId);
    // Entries, not rows (a row holds a run of n).
    const entries = this.#q('SELECT coalesce(sum(n), 0) FROM change_journal WHERE account_id = ? AND seq <= ?').pluck().get(accountId, last) as number;
    this.#q('DELETE FROM change_journal WHERE account_id = ? AND seq <= ?').run(accountId, last);
    return entries;
  }
}
