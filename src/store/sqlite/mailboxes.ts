// Mailboxes of the SQLite store: create, rename (RFC 9051 §6.3.6 for INBOX, in steps: bulk.ts),
// delete (in steps), list, STATUS, subscriptions (a list of names of their own), the \Recent
// boundary (RFC 3501 §2.3.2) and the name rules (INBOX case-insensitive, RFC 9051 §5.1). A COPY
// being staged into a mailbox does not show in what these return (`mailbox` / `below`, the store's
// view of a staged COPY, context.ts). CREATE, RENAME and (UN)SUBSCRIBE are a client's to send as
// often as it likes: they go through the group commit (no fsync on the event loop, changes.ts).

import type Database from 'better-sqlite3';
import { MAILBOX_SEPARATOR, MAX_SUBSCRIPTIONS, StoreError, SystemFlag, type Mailbox, type MailboxStatus, type SpecialUse, type WriteOptions } from '../store.ts';
import { checkMailboxCount, checkMailboxName, normalizeName, validateName, type MailboxLimits } from '../mailbox-limits.ts';
import type { SqliteContext } from './context.ts';
import type { SqliteBulk } from './bulk.ts';
import { stamp, type Query, type Tx } from './writes.ts';

type Row = Record<string, any>;

const now = () => Date.now();

export function toMailbox(r: Row): Mailbox {
  return {
    id: r.id,
    accountId: r.account_id,
    name: r.name,
    specialUse: (r.special_use ?? null) as SpecialUse | null,
    uidValidity: r.uid_validity,
    uidNext: r.uid_next,
    highestModseq: r.highest_modseq,
  };
}

/**
 * A mailbox row with the COPY staging into it, if any, in the same statement (`staged_from`,
 * `staged_hms`: NULL when none), so that reading a mailbox costs one statement, not two (LIST,
 * STATUS and SELECT each read one or more; the second lookup was ~10% of a LIST's CPU).
 */
/** The COPY staging into mailbox `m`, if any (bulk_ops, SqliteBulk): `SELECT b.<column> ${STAGED_COPY}`. */
export const STAGED_COPY = "FROM bulk_ops b WHERE b.kind = 'copy' AND b.mailbox_id = m.id ORDER BY b.id LIMIT 1";

export const MAILBOX_ROW = `SELECT m.*,
  (SELECT b.uid_from ${STAGED_COPY}) AS staged_from,
  (SELECT b.hms ${STAGED_COPY}) AS staged_hms
  FROM mailboxes m`;

// The statements built from MAILBOX_ROW, made once: the statement cache is keyed by the SQL text,
// and a template literal per call is a new string to hash and compare (LIST, STATUS, SELECT, APPEND).
const MAILBOXES_OF = `${MAILBOX_ROW} WHERE m.account_id = CAST(? AS INTEGER) ORDER BY m.name != 'INBOX', m.name`;
const MAILBOX_NAMED = `${MAILBOX_ROW} WHERE m.account_id = ? AND m.name = ?`;
const MAILBOX_BY_ID = `${MAILBOX_ROW} WHERE m.id = ?`;

export class SqliteMailboxes {
  readonly #db: Database.Database;
  readonly #q: Query;
  readonly #writeBatched: SqliteContext['writeBatched'];
  readonly #bulk: SqliteBulk;
  readonly #limits: MailboxLimits;
  readonly #mailbox: SqliteContext['mailbox'];
  readonly #below: SqliteContext['below'];
  readonly #summaries: SqliteContext['summaries'];

  constructor(ctx: SqliteContext) {
    this.#db = ctx.db;
    this.#q = ctx.q;
    this.#writeBatched = ctx.writeBatched;
    this.#bulk = ctx.bulk;
    this.#limits = ctx.limits;
    this.#mailbox = ctx.mailbox;
    this.#below = ctx.below;
    this.#summaries = ctx.summaries;
  }

  /** UIDVALIDITY never repeats within this store: max(clock seconds, last + 1). */
  #nextUidValidity(): number {
    const last = (this.#q("SELECT value FROM settings WHERE key = 'last_uidvalidity'").pluck().get() as string | undefined) ?? '0';
    const v = Math.max(Math.floor(now() / 1000) % 0x7fffffff, Number(last) + 1);
    this.#q("INSERT INTO settings (key, value) VALUES ('last_uidvalidity', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(String(v));
    return v;
  }

  insertMailbox(tx: Tx, accountId: number, name: string, specialUse: SpecialUse | null, subscribed: boolean, uidNext = 1): Mailbox {
    // Never the id of a deleted mailbox whose messages are still being dropped (bulk_ops).
    const id = this.#q("SELECT max(coalesce((SELECT max(id) FROM mailboxes), 0), coalesce((SELECT max(mailbox_id) FROM bulk_ops WHERE kind = 'drop'), 0)) + 1").pluck().get() as number;
    const info = this.#db
      .prepare('INSERT INTO mailboxes (id, account_id, name, special_use, subscribed, uid_validity, uid_next, highest_modseq) VALUES (?, ?, ?, ?, ?, ?, ?, 1)')
      .run(id, accountId, name, specialUse, 0, this.#nextUidValidity(), uidNext);
    if (subscribed) this.#q('INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)').run(accountId, name);
    const mb = toMailbox(this.#q('SELECT * FROM mailboxes WHERE id = ?').get(Number(info.lastInsertRowid)) as Row);
    tx.changes.push({ kind: 'mailbox-created', accountId, mailboxId: mb.id, name });
    return mb;
  }

  async listMailboxes(accountId: number): Promise<Mailbox[]> {
    return (this.#q(MAILBOXES_OF).all(accountId) as Row[]).map((r) => this.#mailbox(r));
  }

  async getMailbox(accountId: number, name: string): Promise<Mailbox | null> {
    const r = this.#q(MAILBOX_NAMED).get(accountId, normalizeName(name)) as Row | undefined;
    return r ? this.#mailbox(r) : null;
  }

  async getMailboxById(mailboxId: number): Promise<Mailbox | null> {
    const r = this.#q(MAILBOX_BY_ID).get(mailboxId) as Row | undefined;
    return r ? this.#mailbox(r) : null;
  }

  async createMailbox(accountId: number, name: string, opts: { specialUse?: SpecialUse | null; subscribed?: boolean } & WriteOptions = {}): Promise<Mailbox> {
    const n = validateName(name);
    checkMailboxName(n, this.#limits);
    return this.#writeBatched((tx) => {
      if (!this.#q('SELECT 1 FROM accounts WHERE id = ?').get(accountId)) throw new StoreError('not-found', `no account ${accountId}`);
      if (this.#q('SELECT 1 FROM mailboxes WHERE account_id = ? AND name = ?').get(accountId, n)) throw new StoreError('exists', `mailbox ${n} already exists`);
      checkMailboxCount(this.#q('SELECT count(*) FROM mailboxes WHERE account_id = ?').pluck().get(accountId) as number, 1, this.#limits);
      const mb = this.insertMailbox(tx, accountId, n, opts.specialUse ?? null, opts.subscribed ?? false);
      stamp(tx, opts.origin);
      return mb;
    });
  }

  async renameMailbox(accountId: number, oldName: string, newName: string, opts: WriteOptions = {}): Promise<void> {
    const from = normalizeName(oldName);
    const to = validateName(newName);
    checkMailboxName(to, this.#limits);
    // RFC 9051 §6.3.6: renaming INBOX moves its messages (in steps: src/store/sqlite/bulk.ts).
    if (from === 'INBOX' && !to.startsWith(from + MAILBOX_SEPARATOR) && to !== from) {
      checkMailboxCount(this.#q('SELECT count(*) FROM mailboxes WHERE account_id = ?').pluck().get(accountId) as number, 1, this.#limits);
      return this.#bulk.renameInbox(accountId, to, opts);
    }
    await this.#writeBatched((tx) => {
      const src = this.#q(MAILBOX_NAMED).get(accountId, from) as Row | undefined;
      if (!src) throw new StoreError('not-found', `no mailbox ${from}`);
      if (this.#q('SELECT 1 FROM mailboxes WHERE account_id = ? AND name = ?').get(accountId, to)) throw new StoreError('exists', `mailbox ${to} already exists`);
      if (to === from || to.startsWith(from + MAILBOX_SEPARATOR)) throw new StoreError('invalid', 'cannot rename a mailbox into itself');
      const rows = this.#db
        .prepare("SELECT id, name FROM mailboxes WHERE account_id = ? AND (name = ? OR substr(name, 1, ?) = ?)")
        .all(accountId, from, from.length + 1, from + MAILBOX_SEPARATOR) as Row[];
      const upd = this.#q('UPDATE mailboxes SET name = ? WHERE id = ?');
      for (const r of rows) {
        const nn = to + (r.name as string).slice(from.length);
        checkMailboxName(nn, this.#limits); // the inferiors move deeper too
        if (r.id !== src.id && this.#q('SELECT 1 FROM mailboxes WHERE account_id = ? AND name = ?').get(accountId, nn))
          throw new StoreError('exists', `mailbox ${nn} already exists`);
        upd.run(nn, r.id);
        tx.changes.push({ kind: 'mailbox-renamed', accountId, mailboxId: r.id, oldName: r.name, newName: nn });
      }
      stamp(tx, opts.origin);
    });
  }

  async deleteMailbox(accountId: number, name: string, opts: WriteOptions = {}): Promise<void> {
    const n = normalizeName(name);
    if (n === 'INBOX') throw new StoreError('inbox', 'INBOX cannot be deleted');
    // Gone at the first commit; its messages are removed in steps (src/store/sqlite/bulk.ts).
    await this.#bulk.deleteMailbox(accountId, n, opts);
  }

  async setSubscribed(accountId: number, name: string, subscribed: boolean, opts: WriteOptions = {}): Promise<void> {
    const n = validateName(name);
    await this.#writeBatched((tx) => {
      // Published only when the list changed (IMAP NOTIFY SubscriptionChange, RFC 5465 §5.5).
      const changed = () => {
        tx.changes.push({ kind: 'subscription-changed', accountId, name: n, subscribed });
        stamp(tx, opts.origin);
      };
      if (!subscribed) {
        if (this.#q('DELETE FROM subscriptions WHERE account_id = ? AND name = ?').run(accountId, n).changes) changed();
        return;
      }
      if (!this.#q('SELECT 1 FROM accounts WHERE id = ?').get(accountId)) throw new StoreError('not-found', `no account ${accountId}`);
      const count = this.#q('SELECT count(*) FROM subscriptions WHERE account_id = ?').pluck().get(accountId) as number;
      if (count >= MAX_SUBSCRIPTIONS && !this.#q('SELECT 1 FROM subscriptions WHERE account_id = ? AND name = ?').get(accountId, n))
        throw new StoreError('limit', `at most ${MAX_SUBSCRIPTIONS} subscriptions`);
      if (this.#q('INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)').run(accountId, n).changes) changed();
    });
  }

  async claimRecent(mailboxId: number, uidBelow: number, claim: boolean): Promise<number> {
    const read = () => {
      const b = this.#q('SELECT recent_uid FROM mailboxes WHERE id = ?').pluck().get(mailboxId) as number | undefined;
      if (b === undefined) throw new StoreError('not-found', `no mailbox ${mailboxId}`);
      return b;
    };
    const seen = read();
    // Nothing above the boundary to claim (a re-SELECT with no new mail): no write, so no
    // fdatasync to wait for. Claims only ever move the boundary up, so a later one cannot make any
    // of these messages recent again.
    if (!claim || uidBelow <= seen) return seen;
    // One write transaction (SQLite serialises them): read and move the boundary together.
    return this.#writeBatched(() => {
      const b = read();
      if (uidBelow > b) this.#q('UPDATE mailboxes SET recent_uid = ? WHERE id = ?').run(uidBelow, mailboxId);
      return b;
    });
  }

  async listSubscriptions(accountId: number): Promise<string[]> {
    return this.#q('SELECT name FROM subscriptions WHERE account_id = ?').pluck().all(accountId) as string[];
  }

  async mailboxStatus(mailboxId: number): Promise<MailboxStatus> {
    const mb = this.#q(MAILBOX_BY_ID).get(mailboxId) as Row | undefined;
    if (!mb) throw new StoreError('not-found', `no mailbox ${mailboxId}`);
    const v = this.#mailbox(mb);
    const counts = this.#countsCached(mailboxId, v.highestModseq, mb.recent_uid as number) ?? this.#countsRead(mailboxId, mb);
    return { ...counts, uidNext: v.uidNext, uidValidity: v.uidValidity, highestModseq: v.highestModseq };
  }

  /**
   * The counts from the mailbox's cached listing when it is at the HIGHESTMODSEQ shown (a selected
   * or recently listed mailbox: STATUS of INBOX while it is selected): a pass over the entries
   * instead of an aggregate over the rows. The listing holds exactly the rows a client sees (not
   * those of a COPY being staged), as the read below counts them.
   */
  #countsCached(mailboxId: number, hms: number, recentUid: number): Omit<MailboxStatus, 'uidNext' | 'uidValidity' | 'highestModseq'> | null {
    const list = this.#summaries.peek(mailboxId, hms);
    if (!list) return null;
    let unseen = 0;
    let deleted = 0;
    let size = 0;
    let recent = 0;
    for (const m of list) {
      if ((m.systemFlags & SystemFlag.Seen) === 0) unseen++;
      if ((m.systemFlags & SystemFlag.Deleted) !== 0) deleted++;
      if (m.uid >= recentUid) recent++;
      size += m.size;
    }
    return { messages: list.length, unseen, deleted, size, recent };
  }

  #countsRead(mailboxId: number, mb: Row): Omit<MailboxStatus, 'uidNext' | 'uidValidity' | 'highestModseq'> {
    // Rows a COPY is staging (uid >= the UIDNEXT shown) are not part of the mailbox yet.
    const r = this.#q(
      `SELECT count(*) AS messages,
              coalesce(sum(CASE WHEN system_flags & ${SystemFlag.Seen} = 0 THEN 1 ELSE 0 END), 0) AS unseen,
              coalesce(sum(CASE WHEN system_flags & ${SystemFlag.Deleted} != 0 THEN 1 ELSE 0 END), 0) AS deleted,
              coalesce(sum(size), 0) AS size,
              coalesce(sum(CASE WHEN uid >= ? THEN 1 ELSE 0 END), 0) AS recent
       FROM messages WHERE mailbox_id = ? AND uid < ?`,
    ).get(mb.recent_uid, mailboxId, mb.staged_from ?? Number.MAX_SAFE_INTEGER) as Row;
    return { messages: r.messages, unseen: r.unseen, deleted: r.deleted, size: r.size, recent: r.recent };
  }

}
