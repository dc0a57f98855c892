// The POP3 side of the SQLite store (RFC 1939): the UPDATE state's deletions and \Seen marks in one
// call, applied in steps like the other bulk commands (bulk.ts `step`: each a write of the group
// commit, sized by its chunker; keep, expunge, or move to Trash/Archive, which it may create), and
// the retained messages (table pop_retained) a `recent:` login still lists (src/pop3/snapshot.ts).

import { POP_DELETED_KEYWORD, StoreError, SystemFlag, type Mailbox, type PopRetainedMessage, type PopUpdate, type SpecialUse, type WriteOptions } from '../store.ts';
import { sortedUnique } from '../chunks.ts';
import type { SqliteContext } from './context.ts';
import type { SqliteBulk } from './bulk.ts';
import { SOURCE_COLUMNS, stamp, type MessageWrites, type Query, type SourceRow, type Tx } from './writes.ts';

type Row = Record<string, any>;

export class SqlitePop {
  readonly #q: Query;
  readonly #w: MessageWrites;
  readonly #bulk: SqliteBulk;
  readonly #mailbox: SqliteContext['mailbox'];
  readonly #insertMailbox: SqliteContext['insertMailbox'];

  constructor(ctx: SqliteContext) {
    this.#q = ctx.q;
    this.#w = ctx.w;
    this.#bulk = ctx.bulk;
    this.#mailbox = ctx.mailbox;
    this.#insertMailbox = ctx.insertMailbox;
  }

  async popUpdate(inboxId: number, u: PopUpdate, opts: WriteOptions = {}): Promise<{ removed: number[]; mailbox: Mailbox | null }> {
    const q = this.#q;
    const seenAll = sortedUnique(u.seen);
    const removeAll = sortedUnique(u.remove);
    const all = sortedUnique([...seenAll, ...removeAll]);
    const removed: number[] = [];
    let target: number | null = null;
    const ch = this.#bulk.chunker();
    let si = 0;
    let ri = 0;
    for (let i = 0; ; ) {
      const slice = all.slice(i, i + ch.size);
      const hi = slice.length ? slice[slice.length - 1]! : 0;
      let sj = si;
      while (sj < seenAll.length && seenAll[sj]! <= hi) sj++;
      let rj = ri;
      while (rj < removeAll.length && removeAll[rj]! <= hi) rj++;
      const last = i + slice.length >= all.length;
      const part = { seen: seenAll.slice(si, sj), remove: removeAll.slice(ri, rj) };
      const r = await this.#bulk.step(ch, () => slice.length, (tx) => {
        const v = this.#popStep(tx, inboxId, u, part, target, last);
        stamp(tx, opts.origin);
        return v;
      });
      for (const x of r.removed) removed.push(x);
      target = r.target;
      si = sj;
      ri = rj;
      i += slice.length;
      if (last) break;
    }
    const mailbox = target !== null ? this.#mailbox(q('SELECT * FROM mailboxes WHERE id = ?').get(target) as Row) : null;
    return { removed, mailbox };
  }

  #popStep(tx: Tx, inboxId: number, u: PopUpdate, part: { seen: number[]; remove: number[] }, target: number | null, last: boolean): { removed: number[]; target: number | null } {
    const w = this.#w;
    const q = this.#q;
    const inbox = q('SELECT * FROM mailboxes WHERE id = ?').get(inboxId) as Row | undefined;
    if (!inbox) throw new StoreError('not-found', `no mailbox ${inboxId}`);
    const accountId = inbox.account_id as number;
    const present = (uids: number[]) => w.rowsOf('uid', inboxId, uids).map((r) => r.uid as number);
    const remove = present(part.remove);
    const removeSet = new Set(remove);
    // RFC 1939 §6: the UPDATE state. Retrieved messages are \Seen also where a delete moves them
    // (trash/archive); for an expunge the flag change would be pointless.
    const seen = present(part.seen).filter((x) => u.action !== 'expunge' || !removeSet.has(x));
    if (seen.length) w.flags(tx, accountId, inboxId, seen, 'add', { systemFlags: SystemFlag.Seen, keywords: [] });
    let tgt = target;
    let removed: number[] = [];
    if (u.action === 'keep') {
      if (remove.length) w.flags(tx, accountId, inboxId, remove, 'add', { systemFlags: SystemFlag.Seen, keywords: [POP_DELETED_KEYWORD] });
    } else if (remove.length) {
      if (u.retainSince !== null) {
        const ins = q(
          `INSERT OR IGNORE INTO pop_retained (inbox_id, account_id, uid_validity, uid, blob_id, size, saved_at)
           SELECT mailbox_id, ?, ?, uid, blob_id, size, saved_at FROM messages WHERE mailbox_id = ? AND uid = ? AND saved_at >= ?`,
        );
        const ref = q('UPDATE blobs SET refcount = refcount + 1 WHERE id = (SELECT blob_id FROM messages WHERE mailbox_id = ? AND uid = ?)');
        for (const uid of remove) if (ins.run(accountId, inbox.uid_validity, inboxId, uid, u.retainSince).changes) ref.run(inboxId, uid);
      }
      if (u.action === 'expunge') {
        w.expunge(tx, accountId, inboxId, remove);
      } else {
        tgt ??= this.#popTarget(tx, accountId, u.action);
        w.moveRows(tx, { id: inboxId, accountId }, { id: tgt }, w.rowsOf<SourceRow>(SOURCE_COLUMNS, inboxId, remove));
      }
      removed = remove;
    }
    if (last && u.retainSince !== null) w.dropRetained(tx, 'inbox_id = ? AND saved_at < ?', [inboxId, u.retainSince]);
    return { removed, target: tgt };
  }

  /** The account's \Trash / \Archive mailbox, created when missing. */
  #popTarget(tx: Tx, accountId: number, action: 'trash' | 'archive'): number {
    const q = this.#q;
    const use: SpecialUse = action === 'trash' ? '\\Trash' : '\\Archive';
    const row = q('SELECT id FROM mailboxes WHERE account_id = CAST(? AS INTEGER) AND special_use = ? ORDER BY id LIMIT 1').get(accountId, use) as Row | undefined;
    if (row) return row.id;
    const base = action === 'trash' ? 'Trash' : 'Archive';
    const taken = q('SELECT id FROM mailboxes WHERE account_id = ? AND name = ?').get(accountId, base) as Row | undefined;
    return taken ? taken.id : this.#insertMailbox(tx, accountId, base, use, true).id;
  }

  async popRetained(inboxId: number, since: number): Promise<PopRetainedMessage[]> {
    return (
      this.#q('SELECT * FROM pop_retained WHERE inbox_id = CAST(? AS INTEGER) AND saved_at >= ? ORDER BY saved_at, uid').all(inboxId, since) as Row[]
    ).map((r) => ({ uidValidity: r.uid_validity, uid: r.uid, size: r.size, blobId: r.blob_id, savedAt: r.saved_at }));
  }
}
