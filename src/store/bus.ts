// The change bus. Stores publish here after every commit, in commit order (never callers), so a
// live session (IMAP IDLE, POP3, webmail) can't miss a change. In-process for one server process;
// a PostgreSQL deployment of several processes can relay the same Change values over
// LISTEN/NOTIFY by implementing `ChangeBus` (a ping, then subscribers pull).

export type Change =
  | {
      kind: 'message-added';
      accountId: number;
      mailboxId: number;
      uid: number;
      modseq: number;
      /** The message's keywords, so a session can announce new ones in FLAGS (RFC 3501 §7.2.6). */
      keywords: readonly string[];
      origin?: string;
    }
  | {
      kind: 'flags-changed';
      accountId: number;
      mailboxId: number;
      uid: number;
      modseq: number;
      systemFlags: number;
      keywords: string[];
      origin?: string;
    }
  | { kind: 'messages-expunged'; accountId: number; mailboxId: number; uids: number[]; modseq: number; origin?: string }
  | { kind: 'mailbox-created'; accountId: number; mailboxId: number; name: string; origin?: string }
  | { kind: 'mailbox-renamed'; accountId: number; mailboxId: number; oldName: string; newName: string; origin?: string }
  | { kind: 'mailbox-deleted'; accountId: number; mailboxId: number; name: string; origin?: string }
  /** A name added to or removed from the subscription list (IMAP NOTIFY SubscriptionChange, RFC 5465 §5.5). */
  | { kind: 'subscription-changed'; accountId: number; name: string; subscribed: boolean; origin?: string }
  | { kind: 'account-removed'; accountId: number; origin?: string };

export type ChangeListener = (changes: readonly Change[]) => void;

export interface ChangeBus {
  /** Listen to every change of one account. Returns the unsubscribe function. */
  subscribe(accountId: number, listener: ChangeListener): () => void;
  /** Called by stores only, after commit. */
  publish(changes: readonly Change[]): void;
}

/** The in-process bus: synchronous fan-out in publish order; a throwing listener harms no one else. */
export class LocalChangeBus implements ChangeBus {
  readonly #listeners = new Map<number, Set<ChangeListener>>();

  subscribe(accountId: number, listener: ChangeListener): () => void {
    let set = this.#listeners.get(accountId);
    if (!set) {
      set = new Set();
      this.#listeners.set(accountId, set);
    }
    set.add(listener);
    return () => {
      const s = this.#listeners.get(accountId);
      if (!s) return;
      s.delete(listener);
      if (s.size === 0) this.#listeners.delete(accountId);
    };
  }

  publish(changes: readonly Change[]): void {
    if (changes.length === 0) return;
    const byAccount = new Map<number, Change[]>();
    for (const c of changes) {
      let list = byAccount.get(c.accountId);
      if (!list) byAccount.set(c.accountId, (list = []));
      list.push(c);
    }
    for (const [accountId, list] of byAccount) {
      const set = this.#listeners.get(accountId);
      if (!set) continue;
      for (const l of [...set]) {
        try {
          l(list);
        } catch (err) {
          console.error('change listener failed:', err);
        }
      }
    }
  }

  listenerCount(accountId: number): number {
    return this.#listeners.get(accountId)?.size ?? 0;
  }
}
