// Store.appendMessages for SQLite: MULTIAPPEND (RFC 3502) and REPLACE (RFC 8508) in one write of
// the group commit (changes.ts `writeBatched`), so all of it commits or none does. The bodies
// were staged durably (fsync'd, FsBlobStore) before; this only adds the rows.
//
// REPLACE: the old message goes first (logged for VANISHED like a UID EXPUNGE, RFC 8508 §4.5),
// then the new ones are inserted; the quota check before either counts the net change (§3.4).

import { StoreError, type AppendItem } from '../store.ts';
import type { MessageWrites, PreparedMeta, Query, Tx } from './writes.ts';
import type { SortKeys } from '../../protocol/imap/sort-keys.ts';

type Row = Record<string, any>;

export function appendRows(
  q: Query,
  w: MessageWrites,
  tx: Tx,
  mailboxId: number,
  items: readonly AppendItem[],
  /** prepareMeta of each item, made before the write joined the group commit. */
  prepared: readonly PreparedMeta[],
  /** SORT/THREAD keys of each item (sortKeysOf), made before the write too. */
  keys: readonly SortKeys[],
  /** Puts a body in its account's thread (SqliteThreads.assign), inside this transaction. */
  assignThread: (accountId: number, blobId: string, keys: SortKeys) => void,
  replace: { mailboxId: number; uid: number } | undefined,
): { uids: number[]; modseqs: number[]; uidValidity: number } {
  const mb = q('SELECT account_id, uid_validity FROM mailboxes WHERE id = ?').get(mailboxId) as Row | undefined;
  if (!mb) throw new StoreError('not-found', `no mailbox ${mailboxId}`);
  const accountId = mb.account_id as number;
  let freed = 0;
  if (replace) {
    const old = q('SELECT m.size, b.account_id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE m.mailbox_id = ? AND m.uid = ?').get(
      replace.mailboxId,
      replace.uid,
    ) as Row | undefined;
    if (!old) throw new StoreError('not-found', `message ${replace.uid} to replace is gone`);
    if (old.account_id !== accountId) throw new StoreError('invalid', 'REPLACE across accounts');
    freed = old.size as number;
  }
  const bytes = items.reduce((n, it) => n + it.blob.size, 0);
  if (!w.fits(accountId, bytes - freed)) throw new StoreError('quota', 'mailbox is full: quota exceeded');
  if (replace) w.expunge(tx, accountId, replace.mailboxId, [replace.uid]);
  const now = Date.now();
  const uids: number[] = [];
  const modseqs: number[] = [];
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    w.refBlob(it.blob, prepared[i]!, keys[i]!, 1);
    const r = w.insertMessage(tx, accountId, mailboxId, it.blob, prepared[i]!, {
      systemFlags: it.systemFlags ?? 0,
      keywords: it.keywords ?? [],
      internalDate: it.internalDate ?? now,
    });
    assignThread(accountId, it.blob.id, keys[i]!);
    uids.push(r.uid);
    modseqs.push(r.modseq);
  }
  return { uids, modseqs, uidValidity: mb.uid_validity as number };
}
