// Conversation threads in the PostgreSQL store (tables thread_ids, message_threads, thread_backfill,
// sequence thread_seq; migration 8). The rules are in src/store/threads.ts; delivery assigns them
// in its own statement (src/store/postgres/sort.ts). This file reads them (FETCH / SEARCH
// THREADID) and assigns the messages of an account stored before migration 8 on first use: its
// known ids read once, then a slice of messages per transaction, in mailbox and UID order.

import type { Tx } from './writes.ts';
import { assignThreads, threadIds } from '../threads.ts';
import type { SortKeys } from '../../protocol/imap/sort-keys.ts';
import { sortKeysFromMeta } from './sort.ts';

type Row = Record<string, any>;
type Query = (text: string, values?: unknown[]) => Promise<Row[]>;

/** Messages per backfill transaction. */
const SLICE = 500;

export class PgThreads {
  readonly #query: Query;
  readonly #tx: <T>(fn: (tx: Tx) => Promise<T>) => Promise<T>;
  readonly #done = new Set<number>();
  readonly #running = new Map<number, Promise<void>>();

  constructor(query: Query, tx: <T>(fn: (tx: Tx) => Promise<T>) => Promise<T>) {
    this.#query = query;
    this.#tx = tx;
  }

  async idsOf(mailboxId: number, uids: readonly number[]): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    const accountId = await this.#ready(mailboxId);
    if (accountId === null || uids.length === 0) return out;
    const sorted = [...new Set(uids)].sort((a, b) => a - b);
    for (let i = 0; i < sorted.length; i += 2000) {
      const rows = await this.#query(
        `SELECT m.uid, t.thread_id FROM messages m JOIN message_threads t ON t.account_id = $1 AND t.blob_id = m.blob_id
         WHERE m.mailbox_id = $2 AND m.uid = ANY($3::bigint[])`,
        [accountId, mailboxId, sorted.slice(i, i + 2000)],
      );
      for (const r of rows) out.set(r.uid as number, r.thread_id as number);
    }
    return out;
  }

  async members(mailboxId: number, threadId: number): Promise<number[]> {
    const accountId = await this.#ready(mailboxId);
    if (accountId === null) return [];
    const rows = await this.#query(
      `SELECT m.uid FROM message_threads t JOIN messages m ON m.blob_id = t.blob_id
       WHERE t.account_id = $1 AND t.thread_id = $2 AND m.mailbox_id = $3 ORDER BY m.uid`,
      [accountId, threadId, mailboxId],
    );
    return rows.map((r) => r.uid as number);
  }

  async #ready(mailboxId: number): Promise<number | null> {
    const r = await this.#query('SELECT account_id FROM mailboxes WHERE id = $1', [mailboxId]);
    if (r.length === 0) return null;
    const accountId = r[0]!.account_id as number;
    if (this.#done.has(accountId)) return accountId;
    let run = this.#running.get(accountId);
    if (!run) {
      run = this.#backfill(accountId).finally(() => this.#running.delete(accountId));
      this.#running.set(accountId, run);
    }
    await run;
    return accountId;
  }

  async #backfill(accountId: number): Promise<void> {
    if ((await this.#query('SELECT 1 FROM thread_backfill WHERE account_id = $1', [accountId])).length === 0) {
      this.#done.add(accountId);
      return;
    }
    const known = new Map<string, number>();
    for (const r of await this.#query('SELECT msgid, thread_id FROM thread_ids WHERE account_id = $1', [accountId])) known.set(r.msgid as string, r.thread_id as number);
    const boxes = (await this.#query('SELECT id FROM mailboxes WHERE account_id = $1 ORDER BY id', [accountId])).map((r) => r.id as number);
    for (const mb of boxes) {
      for (let after = 0; ; ) {
        const rows = await this.#query(
          `SELECT m.uid, m.blob_id, k.subject IS NULL AS nokeys, k.message_id, k.refs
           FROM messages m LEFT JOIN blob_sort k ON k.blob_id = m.blob_id
           LEFT JOIN message_threads t ON t.account_id = $1 AND t.blob_id = m.blob_id
           WHERE m.mailbox_id = $2 AND m.uid > $3 AND t.blob_id IS NULL ORDER BY m.uid LIMIT $4`,
          [accountId, mb, after, SLICE],
        );
        if (rows.length === 0) break;
        await this.#assignSlice(accountId, rows, known);
        after = rows[rows.length - 1]!.uid as number;
        if (rows.length < SLICE) break;
      }
    }
    await this.#query('DELETE FROM thread_backfill WHERE account_id = $1', [accountId]);
    this.#done.add(accountId);
  }

  async #assignSlice(accountId: number, rows: Row[], known: Map<string, number>): Promise<void> {
    const computed = await sortKeysFromMeta(this.#query, rows.filter((r) => r.nokeys).map((r) => r.blob_id as string));
    const items: Array<{ blobId: string; ids: string[] }> = [];
    for (const r of rows) {
      const k: Pick<SortKeys, 'messageId' | 'refs'> | undefined = r.nokeys
        ? computed.get(r.blob_id as string)
        : { messageId: (r.message_id as string | null) ?? null, refs: r.refs ? (r.refs as string).split('\n') : [] };
      if (k) items.push({ blobId: r.blob_id as string, ids: threadIds(k) });
    }
    if (items.length === 0) return;
    const fresh = (await this.#query('SELECT nextval(\'thread_seq\') AS n FROM generate_series(1, $1)', [items.length])).map((r) => r.n as number);
    const assigned = assignThreads(items, known, () => fresh.shift()!);
    const threads = assigned.map((a) => ({ blob_id: a.blobId, thread_id: a.threadId }));
    const ids = assigned.flatMap((a) => a.newIds.map((msgid) => ({ msgid, thread_id: a.threadId }))).sort((x, y) => (x.msgid < y.msgid ? -1 : x.msgid > y.msgid ? 1 : 0));
    await this.#tx(async ({ c }) => {
      await c.query(
        `INSERT INTO message_threads (account_id, blob_id, thread_id) SELECT $1, r.blob_id, r.thread_id FROM jsonb_to_recordset($2::jsonb) AS r(blob_id text, thread_id bigint)
         ON CONFLICT DO NOTHING`,
        [accountId, JSON.stringify(threads)],
      );
      await c.query(
        `INSERT INTO thread_ids (account_id, msgid, thread_id) SELECT $1, r.msgid, r.thread_id FROM jsonb_to_recordset($2::jsonb) AS r(msgid text, thread_id bigint)
         ON CONFLICT DO NOTHING`,
        [accountId, JSON.stringify(ids)],
      );
    });
  }
}
