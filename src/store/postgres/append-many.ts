// Store.appendMessages for PostgreSQL: MULTIAPPEND (RFC 3502) and REPLACE (RFC 8508) inside one
// transaction (changes.ts `PgCommit.tx`), so all of it commits or none does; each message goes through
// pb_deliver (schema.ts migration 2) like an APPEND, which checks the quota message by message.
//
// REPLACE: the mailboxes are locked first (ascending id), the old message is removed (logged for
// VANISHED like a UID EXPUNGE, RFC 8508 §4.5) before the inserts, so their quota checks count the
// net change (§3.4); its blob reference is dropped at the end, after the new blobs' rows.

import type pg from 'pg';
import { StoreError, normalizeKeywords, type AppendItem, type BlobRef, type NewMessage } from '../store.ts';
import type { MessageMeta } from '../../protocol/mime/types.ts';
import type { PgWrites, Tx } from './writes.ts';

type Row = Record<string, any>;

export interface AppendDeps {
  wr: PgWrites;
  /** One pb_deliver call (messages.ts #deliverRows): a row per target, in target order. */
  deliverRows(c: pg.PoolClient, blob: BlobRef, meta: MessageMeta, targets: NewMessage[]): Promise<Row[]>;
}

export async function appendRowsPg(
  tx: Tx,
  deps: AppendDeps,
  mailboxId: number,
  items: readonly AppendItem[],
  replace: { mailboxId: number; uid: number } | undefined,
): Promise<{ uids: number[]; modseqs: number[]; uidValidity: number }> {
  const boxes = await deps.wr.lockMailboxes(tx.c, replace ? [mailboxId, replace.mailboxId] : [mailboxId]);
  const mb = boxes.get(mailboxId);
  if (!mb) throw new StoreError('not-found', `no mailbox ${mailboxId}`);
  const oldBlobs = new Map<string, number>();
  if (replace) {
    const src = boxes.get(replace.mailboxId);
    if (!src) throw new StoreError('not-found', `no mailbox ${replace.mailboxId}`);
    if (src.account_id !== mb.account_id) throw new StoreError('invalid', 'REPLACE across accounts');
    const removed = await deps.wr.expungeIn(tx, src, { uids: [replace.uid], onlyDeleted: false }, true, oldBlobs);
    if (removed.length === 0) throw new StoreError('not-found', `message ${replace.uid} to replace is gone`);
  }
  const uids: number[] = [];
  const modseqs: number[] = [];
  const now = Date.now();
  for (const it of items) {
    const target: NewMessage = { mailboxId, systemFlags: it.systemFlags ?? 0, keywords: it.keywords ?? [], internalDate: it.internalDate ?? now };
    const r = (await deps.deliverRows(tx.c, it.blob, it.meta, [target]))[0]!;
    if (r.res === 'no-mailbox') throw new StoreError('not-found', `no mailbox ${mailboxId}`);
    if (r.res === 'quota') throw new StoreError('quota', 'mailbox is full: quota exceeded');
    tx.changes.push({ kind: 'message-added', accountId: r.acc, mailboxId, uid: r.new_uid, modseq: r.new_modseq, keywords: normalizeKeywords(target.keywords!) });
    uids.push(r.new_uid as number);
    modseqs.push(r.new_modseq as number);
  }
  await deps.wr.adjustBlobs(tx.c, oldBlobs);
  return { uids, modseqs, uidValidity: mb.uid_validity as number };
}
