// Conversation threads kept by the stores (OBJECTID THREADID, RFC 8474 §5.2; the webmail uses the
// same ids) and the object ids themselves (RFC 8474 §4, §5.1). Pure.
//
// A thread is assigned to a body once per account, when it is first delivered there, and never
// changes (RFC 8474 §5.2: "MUST NOT change the THREADID of a message once reported"):
// - every Message-ID a message names (its own and its references, sort-keys.ts) is mapped to its
//   thread in the account (table thread_ids);
// - a new message joins the oldest thread any of its ids is already mapped to, else starts one;
// - its ids not mapped yet are mapped to that thread, so a reply that arrives before its parent,
//   or a parent that arrives after, still meets the others;
// - two threads one message would connect are not merged (ids already reported stay).
// Copies and moves keep the body, hence the thread. Stores upgraded from before threads existed
// list their accounts in thread_backfill and assign the existing messages on first use.

import type { SortKeys } from '../protocol/imap/sort-keys.ts';

/** Ids per message mapped to its thread: its own and its references' (the first and the last ones). */
export const MAX_THREAD_IDS = 64;

/** The Message-IDs a message is known by for threading, at most MAX_THREAD_IDS, no repeats. */
export function threadIds(k: Pick<SortKeys, 'messageId' | 'refs'>): string[] {
  const refs = k.refs.length > MAX_THREAD_IDS - 2 ? [k.refs[0]!, ...k.refs.slice(k.refs.length - (MAX_THREAD_IDS - 2))] : k.refs;
  const ids = k.messageId === null ? refs : [k.messageId, ...refs];
  return [...new Set(ids)];
}

export interface ThreadAssignment {
  blobId: string;
  threadId: number;
  /** Ids to map to threadId (those not mapped yet). */
  newIds: string[];
}

/**
 * Threads for messages in arrival order: `known(id)` is the thread an id is mapped to (including
 * those assigned earlier in this batch, which the function adds), `alloc()` a new thread number.
 */
export function assignThreads(
  items: ReadonlyArray<{ blobId: string; ids: readonly string[] }>,
  known: Map<string, number>,
  alloc: () => number,
  existing: (blobId: string) => number | undefined = () => undefined,
): ThreadAssignment[] {
  const out: ThreadAssignment[] = [];
  const done = new Map<string, number>();
  for (const it of items) {
    let tid = done.get(it.blobId) ?? existing(it.blobId);
    if (tid === undefined) {
      for (const id of it.ids) {
        const t = known.get(id);
        if (t !== undefined && (tid === undefined || t < tid)) tid = t;
      }
      tid ??= alloc();
    }
    const newIds = it.ids.filter((id) => !known.has(id));
    for (const id of newIds) known.set(id, tid);
    if (!done.has(it.blobId)) out.push({ blobId: it.blobId, threadId: tid, newIds });
    done.set(it.blobId, tid);
  }
  return out;
}

// ------------------------------------------------------------------ object ids (RFC 8474)

/**
 * MAILBOXID (RFC 8474 §4): the mailbox's row id and UIDVALIDITY, neither of which a RENAME changes;
 * UIDVALIDITY is never given out twice in a store, so the id is never reused.
 */
export function mailboxObjectId(mb: { id: number; uidValidity: number }): string {
  return `F${mb.id}-${mb.uidValidity}`;
}

/**
 * EMAILID (RFC 8474 §5.1): the body (its SHA-256) and INTERNALDATE — everything immutable of a
 * message — so COPY and MOVE keep it and two messages share it only when identical.
 */
export function emailObjectId(blobId: string, internalDate: number): string {
  return `M${blobId.slice(0, 24)}${Math.max(0, Math.trunc(internalDate)).toString(36)}`;
}

/** THREADID (RFC 8474 §5.2); "T" keeps it apart from EMAILIDs. */
export function threadObjectId(threadId: number): string {
  return `T${threadId.toString(36).padStart(6, '0')}`;
}

/** The thread number of a THREADID, or null when it is not one of ours. */
export function parseThreadObjectId(id: string): number | null {
  if (!/^T[0-9a-z]{6,12}$/.test(id)) return null; // linear: anchored, bounded
  const n = parseInt(id.slice(1), 36);
  return Number.isSafeInteger(n) && threadObjectId(n) === id ? n : null;
}
