// The change journal of the PostgreSQL store (src/store/journal.ts). `record` runs inside each
// write transaction from PgCommit's finalize hook (changes.ts: after the write's last statement,
// before its publication ticket and COMMIT): per account, one statement that bumps the account's
// head row (an UPSERT, which takes its row lock) and inserts the entries. The head row lock is the
// last lock a write takes (after the mailbox, account and blob rows of the lock order in
// postgres-store.ts; several accounts in ascending id), held to COMMIT: two writes of one account
// get their seqs in commit order, and a reader never sees seq N+1 committed without N. The same
// statement calls pg_notify (journal-notify.ts): other processes hear "account A moved to N" at COMMIT.

import type pg from 'pg';
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

type Row = Record<string, any>;
type Client = pg.PoolClient;

const RECORD = (notify: boolean) => `
WITH h AS (
  INSERT INTO change_heads (account_id, seq) VALUES ($1, $2)
  ON CONFLICT (account_id) DO UPDATE SET seq = change_heads.seq + EXCLUDED.seq
  RETURNING seq
), ins AS (
  INSERT INTO change_journal (account_id, seq, n, kind, mailbox_id, uid, modseq, data, at)
  SELECT $1, h.seq - $2 + u.last, u.n, u.kind, u.mailbox_id, u.uid, u.modseq, u.data, $10
  FROM h, unnest($3::int[], $4::int[], $5::smallint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[]) AS u(last, n, kind, mailbox_id, uid, modseq, data)
)
SELECT seq${notify ? ", pg_notify($11, $12 || ':' || $1 || ':' || seq)" : ''} FROM h`;

/** Entries per statement for a big transaction (a 131,072-message COPY), so no parameter is huge. */
const RECORD_SLICE = 5000;

export class PgJournal {
  readonly #pool: pg.Pool;
  readonly #sql: string;
  /** pg_notify at COMMIT: the channel and this store's node id (journal-notify.ts); null: none. */
  readonly #notify: [string, string] | null;

  constructor(pool: pg.Pool, notify: { channel: string; node: string } | null) {
    this.#pool = pool;
    this.#notify = notify ? [notify.channel, notify.node] : null;
    this.#sql = RECORD(notify !== null);
  }

  /** Inside the write transaction: the entries of `changes`, and their seqs set on them. */
  async record(c: Client, changes: readonly Change[]): Promise<void> {
    if (changes.length === 0) return;
    const at = Date.now();
    const accounts = [...byAccount(changes)].sort((a, b) => a[0] - b[0]);
    for (const [accountId, all] of accounts) {
      for (let i = 0; i < all.length; i += RECORD_SLICE) {
        const list = all.slice(i, i + RECORD_SLICE);
        // Numbered from 1 here; the statement adds the head it takes. Sets the Changes' seqs to
        // those offsets, corrected below.
        const rows = journalRows(list, 1);
        const r = await c.query(this.#sql, [
          accountId,
          list.length,
          rows.map((x) => x.seq),
          rows.map((x) => x.n),
          rows.map((x) => x.kind),
          rows.map((x) => x.mailboxId),
          rows.map((x) => x.uid),
          rows.map((x) => x.modseq),
          rows.map((x) => x.data),
          at,
          ...(this.#notify ?? []),
        ]);
        const base = Number(r.rows[0].seq) - list.length;
        for (const ch of list) ch.seq! += base;
      }
    }
  }

  async journalHead(accountId: number): Promise<number> {
    const r = await this.#pool.query('SELECT seq FROM change_heads WHERE account_id = $1', [accountId]);
    return r.rowCount ? Number(r.rows[0].seq) : 0;
  }

  async changesSince(accountId: number, since: number, limit?: number): Promise<ChangesSince> {
    // One statement, one snapshot: the head row and the entries after `since`.
    const r = await this.#pool.query(
      `SELECT h.seq AS head, h.floor, j.seq, j.n, j.kind, j.mailbox_id, j.uid, j.modseq, j.data, j.at
       FROM (SELECT 1) one
       LEFT JOIN change_heads h ON h.account_id = $1
       LEFT JOIN LATERAL (SELECT * FROM change_journal WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3) j ON true
       ORDER BY j.seq`,
      [accountId, Number.isSafeInteger(since) ? since : -1, clampPage(limit)],
    );
    const first = r.rows[0] as Row;
    const head = first.head === null ? 0 : Number(first.head);
    const floor = first.floor === null ? 0 : Number(first.floor);
    if (!Number.isSafeInteger(since) || since < floor || since > head) return { resync: true, head, floor };
    return journalPage(accountId, since, head, floor, clampPage(limit), (r.rows as Row[]).filter((x) => x.seq !== null));
  }

  /**
   * Drops entries past the horizon, a chunk per transaction (`tx`: the store's write transaction);
   * queries don't hold the event loop, so the pass simply goes on. The floor moves in the same
   * transaction as the chunk's deletes, so a reader never gets a list with a hole.
   */
  async prune(opts: JournalPruneOptions, tx: (fn: (c: Client) => Promise<number>) => Promise<number>): Promise<number> {
    const chunk = Math.max(1, opts.chunk ?? DEFAULT_PRUNE_CHUNK);
    const budget = opts.budget ?? Number.POSITIVE_INFINITY;
    const cutoff = (opts.now ?? Date.now()) - opts.maxAgeMs;
    let removed = 0;
    let after = -1;
    while (removed < budget && !opts.stop?.()) {
      const accounts = (await this.#pool.query('SELECT account_id FROM change_heads WHERE account_id > $1 ORDER BY account_id LIMIT 100', [after])).rows as Row[];
      if (accounts.length === 0) break;
      for (const a of accounts) {
        after = Number(a.account_id);
        // Most accounts have nothing to drop: one indexed read of the oldest entry, outside any write.
        if (!(await this.#due(after, cutoff, opts.maxEntries))) continue;
        for (;;) {
          const n = await tx((c) => this.#pruneStep(c, after, cutoff, opts.maxEntries, Math.min(chunk, budget - removed)));
          removed += n;
          if (n === 0 || removed >= budget || opts.stop?.()) break;
        }
        if (removed >= budget) break;
      }
    }
    return removed;
  }

  async #due(accountId: number, cutoffAt: number, maxEntries: number): Promise<boolean> {
    const r = await this.#pool.query(
      'SELECT j.seq, j.at, h.seq AS head FROM change_heads h JOIN LATERAL (SELECT seq, at FROM change_journal WHERE account_id = $1 ORDER BY seq LIMIT 1) j ON true WHERE h.account_id = $1',
      [accountId],
    );
    if (r.rowCount === 0) return false;
    const x = r.rows[0] as Row;
    return prunePrefix([{ seq: Number(x.seq), at: Number(x.at) }], Number(x.head), cutoffAt, maxEntries) > 0;
  }

  async #pruneStep(c: Client, accountId: number, cutoffAt: number, maxEntries: number, chunk: number): Promise<number> {
    // The head row lock: no write of the account commits meanwhile (its head is what we read).
    const h = await c.query('SELECT seq FROM change_heads WHERE account_id = $1 FOR UPDATE', [accountId]);
    if (h.rowCount === 0) return 0;
    const head = Number(h.rows[0].seq);
    const rows = (await c.query('SELECT seq, at FROM change_journal WHERE account_id = $1 ORDER BY seq LIMIT $2', [accountId, chunk])).rows.map((r: Row) => ({
      seq: Number(r.seq),
      at: Number(r.at),
    }));
    const last = prunePrefix(rows, head, cutoffAt, maxEntries);
    if (last === 0) return 0;
    await c.query('UPDATE change_heads SET floor = greatest(floor, $2) WHERE account_id = $1', [accountId, last]);
    // Entries, not rows (a row holds a run of n).
    const d = await c.query('WITH d AS (DELETE FROM change_journal WHERE account_id = $1 AND seq <= $2 RETURNING n) SELECT coalesce(sum(n), 0)::bigint AS n FROM d', [accountId, last]);
    return Number(d.rows[0].n);
  }
}
