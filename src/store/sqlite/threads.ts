// Conversation threads in the SQLite store (tables thread_ids, message_threads, thread_backfill;
// migration 10). The rules are in src/store/threads.ts. `assign` runs inside each delivery's
// transaction (deliver, append); `idsOf` / `members` read them (FETCH / SEARCH THREADID). An
// account listed in thread_backfill (mail stored before migration 10) gets its existing messages
// assigned on first use, a slice per write, in mailbox and UID order.

import type { Query, Tx } from './writes.ts';
import { assignThreads, threadIds } from '../threads.ts';
import type { SortKeys } from '../../protocol/imap/sort-keys.ts';
import { sortKeysFromMeta } from './sort.ts';
import { LoopBudget } from '../../obs/loop-lag.ts';

type Row = Record<string, any>;

/** Messages per backfill write. */
const SLICE = 500;

/** Deletes up to `limit` thread rows of an account (its removal; a reused id starts clean). Returns how many. */
export function dropThreadRows(q: Query, accountId: number, limit: number): number {
  let n = q('DELETE FROM thread_ids WHERE account_id = ? AND msgid IN (SELECT msgid FROM thread_ids WHERE account_id = ? LIMIT CAST(? AS INTEGER))').run(accountId, accountId, limit).changes;
  if (n < limit) n += q('DELETE FROM message_threads WHERE account_id = ? AND blob_id IN (SELECT blob_id FROM message_threads WHERE account_id = ? LIMIT CAST(? AS INTEGER))').run(accountId, accountId, limit - n).changes;
  if (n < limit) q('DELETE FROM thread_backfill WHERE account_id = ?').run(accountId);
  return n;
}

export class SqliteThreads {
  readonly #q: Query;
  readonly #write: <T>(fn: (tx: Tx) => T) => Promise<T>;
  /** Accounts known to have no backfill pending. */
  readonly #done = new Set<number>();
  readonly #running = new Map<number, Promise<void>>();
  /** The read gate (changes.ts), awaited after every turn a read yields. */
  readonly #settled: () => Promise<void> | null;

  constructor(q: Query, write: <T>(fn: (tx: Tx) => T) => Promise<T>, settled: () => Promise<void> | null) {
    this.#q = q;
    this.#write = write;
    this.#settled = settled;
  }

  /** The thread of a body newly in the account (inside the delivery's transaction); see src/store/threads.ts. */
  assign(accountId: number, blobId: string, keys: Pick<SortKeys, 'messageId' | 'refs'>): number {
    const q = this.#q;
    const ids = threadIds(keys);
    const existing = q('SELECT thread_id FROM message_threads WHERE account_id = ? AND blob_id = ?').pluck().get(accountId, blobId) as number | undefined;
    const list = JSON.stringify(ids);
    const known = new Map<string, number>();
    if (ids.length) {
      const rows = q('SELECT msgid, thread_id FROM thread_ids WHERE account_id = ? AND msgid IN (SELECT value FROM json_each(?))').raw().all(accountId, list) as Array<[string, number]>;
      for (const [id, t] of rows) known.set(id, t);
    }
    const [a] = assignThreads([{ blobId, ids }], known, () => this.#alloc(), () => existing);
    if (existing === undefined) q('INSERT INTO message_threads (account_id, blob_id, thread_id) VALUES (?, ?, ?)').run(accountId, blobId, a!.threadId);
    if (a!.newIds.length) q('INSERT OR IGNORE INTO thread_ids (account_id, msgid, thread_id) SELECT ?, value, ? FROM json_each(?)').run(accountId, a!.threadId, JSON.stringify(a!.newIds));
    return a!.threadId;
  }

  #alloc(): number {
    // The row is made by migration 10.
    return this.#q("UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE key = 'last_thread_id' RETURNING CAST(value AS INTEGER)").pluck().get() as number;
  }

  /** Thread numbers of the given UIDs, by UID (messages gone omitted). */
  async idsOf(mailboxId: number, uids: readonly number[]): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    const accountId = await this.#ready(mailboxId);
    if (accountId === null || uids.length === 0) return out;
    const sorted = [...new Set(uids)].sort((a, b) => a - b);
    const st = this.#q(
      `SELECT m.uid, t.thread_id FROM messages m JOIN message_threads t ON t.account_id = ? AND t.blob_id = m.blob_id
       WHERE m.mailbox_id = ? AND m.uid IN (SELECT value FROM json_each(?))`,
    ).raw();
    const budget = new LoopBudget(5);
    for (let i = 0; i < sorted.length; i += 1000) {
      if (i > 0) {
        await budget.pause();
        await this.#settled();
      }
      for (const [uid, t] of st.all(accountId, mailboxId, JSON.stringify(sorted.slice(i, i + 1000))) as Array<[number, number]>) out.set(uid, t);
    }
    return out;
  }

  /** UIDs (ascending) of the mailbox's messages in the thread. */
  async members(mailboxId: number, threadId: number): Promise<number[]> {
    const accountId = await this.#ready(mailboxId);
    if (accountId === null) return [];
    return this.#q(
      `SELECT m.uid FROM message_threads t JOIN messages m ON m.blob_id = t.blob_id
       WHERE t.account_id = CAST(? AS INTEGER) AND t.thread_id = ? AND m.mailbox_id = CAST(? AS INTEGER) ORDER BY m.uid`,
    )
      .pluck()
      .all(accountId, threadId, mailboxId) as number[];
  }

  /** The mailbox's account once its backfill (if any) is done; null without the mailbox. */
  async #ready(mailboxId: number): Promise<number | null> {
    const accountId = this.#q('SELECT account_id FROM mailboxes WHERE id = ?').pluck().get(mailboxId) as number | undefined;
    if (accountId === undefined) return null;
    if (this.#done.has(accountId)) return accountId;
    let run = this.#running.get(accountId);
    if (!run) {
      run = this.#backfill(accountId).finally(() => this.#running.delete(accountId));
      this.#running.set(accountId, run);
    }
    await run;
    await this.#settled();
    return accountId;
  }

  async #backfill(accountId: number): Promise<void> {
    const q = this.#q;
    if (!q('SELECT 1 FROM thread_backfill WHERE account_id = ?').get(accountId)) {
      this.#done.add(accountId);
      return;
    }
    const budget = new LoopBudget(5);
    const boxes = q('SELECT id FROM mailboxes WHERE account_id = CAST(? AS INTEGER) ORDER BY id').pluck().all(accountId) as number[];
    const page = q(
      `SELECT m.uid, m.blob_id, k.subject IS NULL AS nokeys, k.message_id, k.refs
       FROM messages m LEFT JOIN blob_sort k ON k.blob_id = m.blob_id
       LEFT JOIN message_threads t ON t.account_id = ? AND t.blob_id = m.blob_id
       WHERE m.mailbox_id = CAST(? AS INTEGER) AND m.uid > ? AND t.blob_id IS NULL ORDER BY m.uid LIMIT CAST(? AS INTEGER)`,
    );
    for (const mb of boxes) {
      for (let after = 0; ; ) {
        await budget.pause();
        await this.#settled();
        const rows = page.all(accountId, mb, after, SLICE) as Row[];
        if (rows.length === 0) break;
        const items: Array<{ blobId: string; keys: Pick<SortKeys, 'messageId' | 'refs'> }> = [];
        for (const r of rows) {
          const keys = r.nokeys ? sortKeysFromMeta(q, r.blob_id as string) : { messageId: (r.message_id as string | null) ?? null, refs: r.refs ? (r.refs as string).split('\n') : [] };
          if (keys) items.push({ blobId: r.blob_id as string, keys });
        }
        await this.#write(() => {
          for (const it of items) this.assign(accountId, it.blobId, it.keys);
        });
        after = rows[rows.length - 1]!.uid as number;
        if (rows.length < SLICE) break;
      }
    }
    await this.#write(() => q('DELETE FROM thread_backfill WHERE account_id = ?').run(accountId));
    this.#done.add(accountId);
  }
}
