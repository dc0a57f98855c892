// Mailboxes of the PostgreSQL store: create, rename (RFC 9051 §6.3.6 for INBOX), delete, list,
// STATUS, subscriptions (a list of names of their own), the \Recent boundary (RFC 3501 §2.3.2) and
// the name rules (INBOX case-insensitive, RFC 9051 §5.1). Namespace changes take the account's
// advisory lock first, then the mailbox rows (the lock order in postgres-store.ts).

import type pg from 'pg';
import { MAILBOX_SEPARATOR, MAX_SUBSCRIPTIONS, StoreError, SystemFlag, type Mailbox, type MailboxStatus, type SpecialUse, type WriteOptions } from '../store.ts';
import { checkMailboxCount, checkMailboxName, normalizeName, validateName, type MailboxLimits } from '../mailbox-limits.ts';
import type { PgContext, PgQuery } from './context.ts';
import type { PgWrites, Tx } from './writes.ts';

type Row = Record<string, any>;

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

export class PgMailboxes {
  readonly #q: PgQuery;
  readonly #tx: PgContext['tx'];
  readonly #lockAccountNamespace: PgContext['lockAccountNamespace'];
  readonly #wr: PgWrites;
  readonly #limits: MailboxLimits;

  constructor(ctx: PgContext) {
    this.#q = ctx.q;
    this.#tx = ctx.tx;
    this.#lockAccountNamespace = ctx.lockAccountNamespace;
    this.#wr = ctx.wr;
    this.#limits = ctx.limits;
  }

  async #countMailboxes(c: pg.PoolClient, accountId: number): Promise<number> {
    return Number((await c.query('SELECT count(*) AS n FROM mailboxes WHERE account_id = $1', [accountId])).rows[0].n);
  }

  async insertMailbox(
    tx: Tx,
    accountId: number,
    name: string,
    specialUse: SpecialUse | null,
    subscribed: boolean,
    init: { uidNext?: number; highestModseq?: number } = {},
  ): Promise<Mailbox> {
    const r = await tx.c.query(
      `INSERT INTO mailboxes (account_id, name, special_use, subscribed, uid_validity, uid_next, highest_modseq)
       VALUES ($1, $2, $3, false, nextval('uidvalidity_seq'), $4, $5) RETURNING *`,
      [accountId, name, specialUse, init.uidNext ?? 1, init.highestModseq ?? 1],
    );
    if (subscribed) await tx.c.query('INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING', [accountId, name]);
    const mb = toMailbox(r.rows[0]);
    tx.changes.push({ kind: 'mailbox-created', accountId, mailboxId: mb.id, name });
    return mb;
  }

  async listMailboxes(accountId: number): Promise<Mailbox[]> {
    return (await this.#q(`SELECT * FROM mailboxes WHERE account_id = $1 ORDER BY name <> 'INBOX', name COLLATE "C"`, [accountId])).map(toMailbox);
  }

  async getMailbox(accountId: number, name: string): Promise<Mailbox | null> {
    const r = (await this.#q('SELECT * FROM mailboxes WHERE account_id = $1 AND name = $2', [accountId, normalizeName(name)]))[0];
    return r ? toMailbox(r) : null;
  }

  async getMailboxById(mailboxId: number): Promise<Mailbox | null> {
    const r = (await this.#q('SELECT * FROM mailboxes WHERE id = $1', [mailboxId]))[0];
    return r ? toMailbox(r) : null;
  }

  async createMailbox(accountId: number, name: string, opts: { specialUse?: SpecialUse | null; subscribed?: boolean } & WriteOptions = {}): Promise<Mailbox> {
    const n = validateName(name);
    checkMailboxName(n, this.#limits);
    return this.#tx(opts.origin, async (tx) => {
      const { c } = tx;
      await this.#lockAccountNamespace(c, accountId);
      if (!(await c.query('SELECT 1 FROM accounts WHERE id = $1', [accountId])).rowCount) throw new StoreError('not-found', `no account ${accountId}`);
      if ((await c.query('SELECT 1 FROM mailboxes WHERE account_id = $1 AND name = $2', [accountId, n])).rowCount)
        throw new StoreError('exists', `mailbox ${n} already exists`);
      checkMailboxCount(await this.#countMailboxes(c, accountId), 1, this.#limits);
      return this.insertMailbox(tx, accountId, n, opts.specialUse ?? null, opts.subscribed ?? false);
    });
  }

  async renameMailbox(accountId: number, oldName: string, newName: string, opts: WriteOptions = {}): Promise<void> {
    const from = normalizeName(oldName);
    const to = validateName(newName);
    checkMailboxName(to, this.#limits);
    await this.#tx(opts.origin, async (tx) => {
      const { c } = tx;
      await this.#lockAccountNamespace(c, accountId);
      const src = (await c.query('SELECT * FROM mailboxes WHERE account_id = $1 AND name = $2 FOR NO KEY UPDATE', [accountId, from])).rows[0] as Row | undefined;
      if (!src) throw new StoreError('not-found', `no mailbox ${from}`);
      if ((await c.query('SELECT 1 FROM mailboxes WHERE account_id = $1 AND name = $2', [accountId, to])).rowCount)
        throw new StoreError('exists', `mailbox ${to} already exists`);
      if (to === from || to.startsWith(from + MAILBOX_SEPARATOR)) throw new StoreError('invalid', 'cannot rename a mailbox into itself');
      if (from === 'INBOX') {
        // RFC 9051 §6.3.6: renaming INBOX moves all its messages into a new mailbox with the new
        // name and leaves INBOX empty; INBOX's inferiors are unaffected. The messages keep their
        // UIDs (the new mailbox has its own UIDVALIDITY); INBOX logs them as expunged.
        const modseq = (await c.query('UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = $1 RETURNING highest_modseq', [src.id])).rows[0]
          .highest_modseq as number;
        checkMailboxCount(await this.#countMailboxes(c, accountId), 1, this.#limits);
        const dst = await this.insertMailbox(tx, accountId, to, null, false, { uidNext: src.uid_next, highestModseq: modseq });
        // One statement moves the rows and logs them expunged; the UIDs come back in order.
        const moved = await c.query(
          `WITH m AS (UPDATE messages SET mailbox_id = $2, modseq = $3 WHERE mailbox_id = $1 RETURNING uid),
                l AS (INSERT INTO expunged (mailbox_id, uid, modseq) SELECT $1, uid, $3 FROM m ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq)
           SELECT uid FROM m ORDER BY uid`,
          [src.id, dst.id, modseq],
        );
        // One Change per chunk of UIDs, so a listening session applies a bounded list at a time.
        const uids = moved.rows.map((r: Row) => r.uid as number);
        for (let i = 0; i < uids.length; i += this.#wr.chunk)
          tx.changes.push({ kind: 'messages-expunged', accountId, mailboxId: src.id, uids: uids.slice(i, i + this.#wr.chunk), modseq });
        return;
      }
      // The mailbox and its inferiors (`from/…`) move under `to`.
      const rows = (
        await c.query(
          `SELECT id, name FROM mailboxes WHERE account_id = $1 AND (name = $2 OR left(name, $3) = $4) ORDER BY length(name), name COLLATE "C"`,
          [accountId, from, from.length + 1, from + MAILBOX_SEPARATOR],
        )
      ).rows as Row[];
      const renames = rows.map((r) => ({ id: r.id as number, oldName: r.name as string, newName: to + (r.name as string).slice(from.length) }));
      for (const r of renames) checkMailboxName(r.newName, this.#limits); // the inferiors move deeper too
      const clash = await c.query('SELECT name FROM mailboxes WHERE account_id = $1 AND name = ANY($2::text[]) AND NOT (id = ANY($3::bigint[])) LIMIT 1', [
        accountId,
        renames.map((r) => r.newName),
        renames.map((r) => r.id),
      ]);
      if (clash.rowCount) throw new StoreError('exists', `mailbox ${clash.rows[0].name} already exists`);
      const spec = JSON.stringify(renames.map((r) => ({ id: r.id, name: r.newName })));
      // Two steps so no intermediate state collides with (account_id, name) uniqueness.
      await c.query(`UPDATE mailboxes SET name = chr(1) || id::text WHERE id = ANY($1::bigint[])`, [renames.map((r) => r.id)]);
      await c.query(`UPDATE mailboxes m SET name = u.name FROM jsonb_to_recordset($1::jsonb) AS u(id bigint, name text) WHERE m.id = u.id`, [spec]);
      for (const r of renames) tx.changes.push({ kind: 'mailbox-renamed', accountId, mailboxId: r.id, oldName: r.oldName, newName: r.newName });
    });
  }

  async deleteMailbox(accountId: number, name: string, opts: WriteOptions = {}): Promise<void> {
    const n = normalizeName(name);
    if (n === 'INBOX') throw new StoreError('inbox', 'INBOX cannot be deleted');
    await this.#tx(opts.origin, async (tx) => {
      const { c } = tx;
      await this.#lockAccountNamespace(c, accountId);
      const mb = (await c.query('SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2 FOR NO KEY UPDATE', [accountId, n])).rows[0] as Row | undefined;
      if (!mb) throw new StoreError('not-found', `no mailbox ${n}`);
      // Counted per blob in SQL: a 131,072-message mailbox comes back as one row per distinct body.
      const del = await c.query(
        `WITH d AS (DELETE FROM messages WHERE mailbox_id = $1 RETURNING size, blob_id)
         SELECT blob_id, count(*)::bigint AS n, sum(size)::bigint AS bytes FROM d GROUP BY blob_id`,
        [mb.id],
      );
      if (del.rowCount) {
        const deltas = new Map<string, number>();
        let bytes = 0;
        let count = 0;
        for (const r of del.rows as Row[]) {
          deltas.set(r.blob_id, -(r.n as number));
          bytes += r.bytes as number;
          count += r.n as number;
        }
        await c.query('UPDATE accounts SET used_bytes = used_bytes - $2, message_count = message_count - $3 WHERE id = $1', [accountId, bytes, count]);
        await this.#wr.adjustBlobs(c, deltas);
      }
      await c.query('DELETE FROM mailboxes WHERE id = $1', [mb.id]);
      tx.changes.push({ kind: 'mailbox-deleted', accountId, mailboxId: mb.id, name: n });
    });
  }

  async setSubscribed(accountId: number, name: string, subscribed: boolean, opts: WriteOptions = {}): Promise<void> {
    const n = validateName(name);
    await this.#tx(opts.origin, async (tx) => {
      const { c } = tx;
      // Published only when the list changed (IMAP NOTIFY SubscriptionChange, RFC 5465 §5.5).
      const changed = () => tx.changes.push({ kind: 'subscription-changed', accountId, name: n, subscribed });
      if (!subscribed) {
        if ((await c.query('DELETE FROM subscriptions WHERE account_id = $1 AND name = $2', [accountId, n])).rowCount) changed();
        return;
      }
      // The account row lock orders concurrent SUBSCRIBEs of one account, so the cap holds.
      if ((await c.query('SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE', [accountId])).rowCount === 0) throw new StoreError('not-found', `no account ${accountId}`);
      const r = await c.query(
        `INSERT INTO subscriptions (account_id, name) SELECT $1, $2
         WHERE (SELECT count(*) FROM subscriptions WHERE account_id = $1) < $3 ON CONFLICT DO NOTHING`,
        [accountId, n, MAX_SUBSCRIPTIONS],
      );
      if (r.rowCount) changed();
      else if ((await c.query('SELECT 1 FROM subscriptions WHERE account_id = $1 AND name = $2', [accountId, n])).rowCount === 0)
        throw new StoreError('limit', `at most ${MAX_SUBSCRIPTIONS} subscriptions`);
    });
  }

  async claimRecent(mailboxId: number, uidBelow: number, claim: boolean): Promise<number> {
    // The row lock of the UPDATE orders two claims: the second reads the first one's boundary.
    const r = claim
      ? await this.#q(
          `UPDATE mailboxes m SET recent_uid = greatest(o.recent_uid, $2) FROM (SELECT id, recent_uid FROM mailboxes WHERE id = $1 FOR UPDATE) o
           WHERE m.id = o.id RETURNING o.recent_uid AS b`,
          [mailboxId, uidBelow],
        )
      : await this.#q('SELECT recent_uid AS b FROM mailboxes WHERE id = $1', [mailboxId]);
    if (!r[0]) throw new StoreError('not-found', `no mailbox ${mailboxId}`);
    return Number(r[0].b);
  }

  async listSubscriptions(accountId: number): Promise<string[]> {
    return (await this.#q('SELECT name FROM subscriptions WHERE account_id = $1', [accountId])).map((r) => r.name as string);
  }

  async mailboxStatus(mailboxId: number): Promise<MailboxStatus> {
    const r = (
      await this.#q(
        `SELECT mb.uid_next, mb.uid_validity, mb.highest_modseq, s.*
         FROM mailboxes mb CROSS JOIN LATERAL (
           SELECT count(*) AS messages,
                  count(*) FILTER (WHERE system_flags & ${SystemFlag.Seen} = 0) AS unseen,
                  count(*) FILTER (WHERE system_flags & ${SystemFlag.Deleted} <> 0) AS deleted,
                  coalesce(sum(size), 0)::bigint AS size,
                  count(*) FILTER (WHERE uid >= mb.recent_uid) AS recent
           FROM messages WHERE mailbox_id = mb.id) s
         WHERE mb.id = $1`,
        [mailboxId],
      )
    )[0];
    if (!r) throw new StoreError('not-found', `no mailbox ${mailboxId}`);
    return {
      messages: r.messages,
      unseen: r.unseen,
      deleted: r.deleted,
      size: r.size,
      uidNext: r.uid_next,
      uidValidity: r.uid_validity,
      highestModseq: r.highest_modseq,
      recent: r.recent,
    };
  }
}
