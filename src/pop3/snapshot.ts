// The POP3 maildrop (RFC 1939 §3: "the maildrop"): a snapshot of INBOX taken at login, numbered
// 1..n for the whole session, what the account's POP policy shows, and recent mode.
//
// DELE only marks a message here; UPDATE (src/pop3/update.ts) applies the marks. Messages another
// client expunges meanwhile keep their number but are reported as gone: from the change bus for
// this process, from the store's expunge log for other processes (refreshExpunged).

import type { Account, Mailbox, MessageSummary, PopDeleteAction, Store } from '../store/store.ts';
import { POP_DELETED_KEYWORD } from '../store/store.ts';
import type { Change } from '../store/bus.ts';

/** Login prefix that selects recent mode: the last RECENT_DAYS days of INBOX, nothing deleted. */
export const RECENT_PREFIX = 'recent:';
export const RECENT_DAYS = 30;
export const DAY_MS = 24 * 60 * 60 * 1000;
/** How often RETR/TOP re-read the store's expunge log. */
const EXPUNGE_CHECK_MS = 1000;

export interface SnapMessage {
  /** Message number, 1-based (RFC 1939 §4). */
  num: number;
  /** RFC 1939 §7 unique-id: `<uidValidity>.<uid>` of INBOX, stable for the message's life. */
  uidl: string;
  uid: number;
  /** Not in INBOX any more: a POP-removed message the store retains for recent mode. */
  retained: boolean;
  savedAt: number;
  size: number;
  blobId: string;
  deleted: boolean;
  /** Expunged or moved away by another client during this session. */
  gone: boolean;
  retrieved: boolean;
}

/** A logged-in session's maildrop: account, INBOX, mode, POP policy, lock and bus subscription. */
export interface Login {
  account: Account;
  inbox: Mailbox;
  recent: boolean;
  deleteAction: PopDeleteAction;
  markSeen: boolean;
  release: (() => void) | null;
  unsubscribe: () => void;
  /** INBOX HIGHESTMODSEQ at login: expunges after it come from other clients. */
  modseqAtLogin: number;
}

/** What POP shows: INBOX since `since`; hidden: what a POP client deleted under `keep` (except in recent mode). */
function visible(m: MessageSummary, since: number, recent: boolean): boolean {
  if (m.savedAt < since) return false;
  if (!recent && m.keywords.some((k) => k.toLowerCase() === POP_DELETED_KEYWORD.toLowerCase())) return false;
  return true;
}

function snapMessage(uidValidity: number, m: { uid: number; size: number; blobId: string; savedAt: number }, retained: boolean): SnapMessage {
  return {
    num: 0,
    uidl: `${uidValidity}.${m.uid}`,
    uid: m.uid,
    retained,
    savedAt: m.savedAt,
    size: m.size,
    blobId: m.blobId,
    deleted: false,
    gone: false,
    retrieved: false,
  };
}

export class Maildrop {
  /** By message number - 1; never renumbered during the session. */
  messages: SnapMessage[] = [];
  readonly #byUid = new Map<number, SnapMessage>();
  /** When the store's expunge log was last read (see refreshExpunged). */
  #expungeCheckedAt = 0;

  /**
   * Takes the snapshot: INBOX since the policy's showSince (recent mode: at most RECENT_DAYS back,
   * plus what other POP sessions removed from INBOX in that window).
   */
  async load(store: Store, inbox: Mailbox, showSince: number | null, recent: boolean): Promise<void> {
    const list = await store.listMessages(inbox.id);
    const now = Date.now();
    let since = showSince ?? -Infinity;
    if (recent) since = Math.max(since, now - RECENT_DAYS * DAY_MS);
    const snap: SnapMessage[] = [];
    this.#byUid.clear();
    for (const m of list) {
      if (!visible(m, since, recent)) continue;
      const sm = snapMessage(inbox.uidValidity, m, false);
      snap.push(sm);
      this.#byUid.set(m.uid, sm);
    }
    if (recent) {
      // Recent mode also shows what other POP sessions removed from INBOX in the window.
      const present = new Set(snap.map((m) => m.uidl));
      for (const r of await store.popRetained(inbox.id, since)) {
        const sm = snapMessage(r.uidValidity, r, true);
        if (!present.has(sm.uidl)) snap.push(sm);
      }
      snap.sort((a, b) => a.savedAt - b.savedAt || (a.retained === b.retained ? a.uid - b.uid : a.retained ? -1 : 1));
    }
    snap.forEach((m, i) => (m.num = i + 1));
    this.messages = snap;
  }

  /** Changes from the bus (this process): messages expunged, INBOX or the account gone. */
  applyChanges(changes: readonly Change[], inboxId: number): void {
    for (const c of changes) {
      if (c.kind === 'messages-expunged' && c.mailboxId === inboxId) {
        for (const uid of c.uids) {
          const m = this.#byUid.get(uid);
          if (m) m.gone = true;
        }
      } else if ((c.kind === 'mailbox-deleted' || c.kind === 'mailbox-renamed') && c.mailboxId === inboxId) {
        for (const m of this.messages) m.gone = true;
      } else if (c.kind === 'account-removed') {
        for (const m of this.messages) m.gone = true;
      }
    }
  }

  /**
   * Expunges by other server processes (which the in-process change bus does not carry) are read
   * from the store's expunge log, at most once a second.
   */
  async refreshExpunged(store: Store, login: Login): Promise<void> {
    const now = Date.now();
    if (now - this.#expungeCheckedAt < EXPUNGE_CHECK_MS) return;
    this.#expungeCheckedAt = now;
    for (const uid of await store.expungedSince(login.inbox.id, login.modseqAtLogin)) {
      const m = this.#byUid.get(uid);
      if (m) m.gone = true;
    }
  }

  /** Messages neither marked deleted nor gone. */
  live(): SnapMessage[] {
    return this.messages.filter((m) => !m.deleted && !m.gone);
  }

  /** RFC 1939 §5 drop listing figures: live messages and their octets. */
  totals(): { count: number; size: number } {
    let count = 0;
    let size = 0;
    for (const m of this.messages) {
      if (m.deleted || m.gone) continue;
      count++;
      size += m.size;
    }
    return { count, size };
  }
}
