// Store methods POP3 uses when the store has them: the proposed additions to `Store`
// (src/store/store.ts) for issue #5. Until a store implements them, the session falls back to
// the current interface (several calls at QUIT; recent mode cannot see POP-expunged mail).

import type { Mailbox, PopDeleteAction, Store, WriteOptions } from '../store/store.ts';

/** A message a POP3 session removed from INBOX, still readable by recent-mode sessions. */
export interface PopRetainedMessage {
  /** UIDVALIDITY and UID it had in INBOX: its POP3 UIDL stays `<uidValidity>.<uid>`. */
  uidValidity: number;
  uid: number;
  size: number;
  blobId: string;
  savedAt: number;
}

export interface PopUpdate {
  /** UIDs (of the INBOX) to get \Seen. */
  seen: number[];
  /** UIDs the POP client deleted. */
  remove: number[];
  /**
   * What happens to `remove`: 'expunge' expunges; 'trash' / 'archive' move to the account's
   * \Trash / \Archive mailbox (created with that special use when missing); 'keep' adds \Seen
   * and sets `popHidden` (not visible to IMAP).
   */
  action: PopDeleteAction;
  /**
   * For expunge/trash/archive: every removed message with savedAt >= this is recorded for recent
   * mode, holding a reference on its blob (not counted in the account's usedBytes). The same call
   * drops older records (savedAt < retainSince) of this INBOX and releases their blobs.
   * null = retain nothing (the session passes now − 30 days).
   */
  retainSince: number | null;
}

export interface PopStoreExtension {
  /**
   * The POP3 UPDATE state (RFC 1939 §6) in ONE transaction; publishes the same Changes as
   * storeFlags / expunge / moveMessages would. Returns the UIDs removed from INBOX (all of
   * `remove` still present, none for 'keep') and the mailbox they went to.
   */
  popUpdate(inboxId: number, u: PopUpdate, opts?: WriteOptions): Promise<{ removed: number[]; mailbox: Mailbox | null }>;
  /** Retained messages of this INBOX with savedAt >= since, oldest first. */
  popRetained(inboxId: number, since: number): Promise<PopRetainedMessage[]>;
}

/** The store's POP3 extension, when it has one. */
export function popExtension(store: Store): PopStoreExtension | null {
  const s = store as Store & Partial<PopStoreExtension>;
  if (typeof s.popUpdate === 'function' && typeof s.popRetained === 'function') {
    return { popUpdate: s.popUpdate.bind(store), popRetained: s.popRetained.bind(store) };
  }
  return null;
}

/** `MessageSummary.popHidden` (proposed): set by popUpdate 'keep'; hidden from non-recent POP sessions. */
export function isPopHidden(m: object): boolean {
  return (m as { popHidden?: unknown }).popHidden === true;
}
