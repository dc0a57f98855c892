// The POP3 side of the PostgreSQL store (RFC 1939): the UPDATE state's deletions and \Seen marks in
// one transaction (keep, expunge, or move to Trash/Archive, which it may create), and the retained
// messages (table pop_retained, migration 3) a `recent:` login still lists (src/pop3/snapshot.ts).

import { POP_DELETED_KEYWORD, StoreError, SystemFlag, type Mailbox, type PopRetainedMessage, type PopUpdate, type SpecialUse, type WriteOptions } from '../store.ts';
import { sortedUnique } from '../chunks.ts';
import type { PgContext, PgQuery } from './context.ts';
import { toMailbox } from './mailboxes.ts';
import type { PgWrites } from './writes.ts';

type Row = Record<string, any>;

export class PgPop {
  readonly #q: PgQuery;
  readonly #tx: PgContext['tx'];
  readonly #lockAccountNamespace: PgContext['lockAccountNamespace'];
  readonly #wr: PgWrites;
  readonly #insertMailbox: PgContext['insertMailbox'];

  constructor(ctx: PgContext) {
    this.#q = ctx.q;
    this.#tx = ctx.tx;
    this.#lockAccountNamespace = ctx.lockAccountNamespace;
    this.#wr = ctx.wr;
    this.#insertMailbox = ctx.insertMailbox;
  }

  async popUpdate(inboxId: number, u: PopUpdate, opts: WriteOptions = {}): Promise<{ removed: number[]; mailbox: Mailbox | null }> {
    const moveTo: SpecialUse | null = u.action === 'trash' ? '\\Trash' : u.action === 'archive' ? '\\Archive' : null;
    return this.#tx(opts.origin, async (tx) => {
      const { c } = tx;
      // Lock order: the account's namespace lock (the target may have to be created, and must not
      // be renamed or deleted under us), then the mailboxes in ascending id, then the account row
      // (expunge), then the blobs (one pass at the end).
      let target: Row | undefined;
      if (moveTo && u.remove.length > 0) {
        const owner = (await c.query('SELECT account_id FROM mailboxes WHERE id = $1', [inboxId])).rows[0] as Row | undefined;
        if (!owner) throw new StoreError('not-found', `no mailbox ${inboxId}`);
        await this.#lockAccountNamespace(c, owner.account_id);
        target = (await c.query('SELECT * FROM mailboxes WHERE account_id = $1 AND special_use = $2 ORDER BY id LIMIT 1', [owner.account_id, moveTo])).rows[0];
        // A mailbox of the usual name without the special use is used as it is.
        target ??= (await c.query('SELECT * FROM mailboxes WHERE account_id = $1 AND name = $2', [owner.account_id, u.action === 'trash' ? 'Trash' : 'Archive']))
          .rows[0];
      }
      const inbox = (await this.#wr.lockMailboxes(c, target ? [inboxId, target.id as number] : [inboxId])).get(inboxId);
      if (!inbox) throw new StoreError('not-found', `no mailbox ${inboxId}`);
      const accountId = inbox.account_id as number;
      const present = async (uids: number[]): Promise<number[]> => {
        const want = sortedUnique(uids);
        if (want.length === 0) return [];
        const r = await c.query('SELECT uid FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid', [inboxId, want]);
        return r.rows.map((x: Row) => x.uid as number);
      };
      const remove = await present(u.remove);
      const removeSet = new Set(remove);
      // RFC 1939 §6: the UPDATE state. Retrieved messages are \Seen also where a delete moves
      // them (trash/archive); for an expunge the flag change would be pointless.
      const seen = (await present(u.seen)).filter((x) => u.action !== 'expunge' || !removeSet.has(x));
      if (seen.length) await this.#wr.flagsIn(tx, inbox, seen, 'add', { systemFlags: SystemFlag.Seen, keywords: [] });
      const blobs = new Map<string, number>();
      const ref = (id: string, n: number) => blobs.set(id, (blobs.get(id) ?? 0) + n);
      let removed: number[] = [];
      let mailbox: Mailbox | null = null;
      if (u.action === 'keep') {
        await this.#wr.flagsIn(tx, inbox, remove, 'add', { systemFlags: SystemFlag.Seen, keywords: [POP_DELETED_KEYWORD] });
      } else if (remove.length > 0) {
        if (u.retainSince !== null) {
          // Retained rows hold a blob reference each (outside the quota) until dropped below.
          const kept = await c.query(
            `INSERT INTO pop_retained (inbox_id, account_id, uid_validity, uid, blob_id, size, saved_at)
             SELECT mailbox_id, $2, $3, uid, blob_id, size, saved_at FROM messages
             WHERE mailbox_id = $1 AND uid = ANY($4::bigint[]) AND saved_at >= $5
             ON CONFLICT DO NOTHING RETURNING blob_id`,
            [inboxId, accountId, inbox.uid_validity, remove, u.retainSince],
          );
          for (const r of kept.rows as Row[]) ref(r.blob_id, 1);
        }
        if (u.action === 'expunge') {
          await this.#wr.expungeIn(tx, inbox, { uids: remove, onlyDeleted: false }, true, blobs);
        } else {
          if (!target) target = { id: (await this.#insertMailbox(tx, accountId, u.action === 'trash' ? 'Trash' : 'Archive', moveTo, true)).id };
          await this.#wr.copyIn(tx, inboxId, remove, target.id as number, true);
          mailbox = toMailbox((await c.query('SELECT * FROM mailboxes WHERE id = $1', [target.id])).rows[0]);
        }
        removed = remove;
      }
      if (u.retainSince !== null) {
        const dropped = await c.query('DELETE FROM pop_retained WHERE inbox_id = $1 AND saved_at < $2 RETURNING blob_id', [inboxId, u.retainSince]);
        for (const r of dropped.rows as Row[]) ref(r.blob_id, -1);
      }
      await this.#wr.adjustBlobs(c, blobs);
      return { removed, mailbox };
    });
  }

  async popRetained(inboxId: number, since: number): Promise<PopRetainedMessage[]> {
    const rows = await this.#q('SELECT uid_validity, uid, size, blob_id, saved_at FROM pop_retained WHERE inbox_id = $1 AND saved_at >= $2 ORDER BY saved_at, uid', [
      inboxId,
      since,
    ]);
    return rows.map((r) => ({ uidValidity: r.uid_validity, uid: r.uid, size: r.size, blobId: r.blob_id, savedAt: r.saved_at }));
  }
}
