// The change bus. Stores publish here after every commit, in commit order (never callers), so a
// live session (IMAP IDLE, POP3, webmail) can't miss a change. Every Change also has a place in the
// account's change journal (src/store/journal.ts): its `seq`, set in the transaction that
// committed it. In-process the bus carries the Change objects themselves (the fast path sessions
// use); between processes it is a notifier — `notify(account, head)`, "account A moved to N" —
// and a follower pulls what it has not seen from the journal (`JournalFollower`), so a process
// that missed a ping loses nothing: the next one, or any later read, brings it all.

export type Change = ChangeBody & {
  /** The change's sequence number in its account's journal (set before COMMIT). */
  seq?: number;
};

type ChangeBody =
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
  | { kind: 'account-removed'; accountId: number; origin?: string }
  | { kind: 'account-created'; accountId: number; address: string; origin?: string }
  /** Which of the account's settings changed (never their values: a password hash stays out of the journal). */
  | { kind: 'account-updated'; accountId: number; fields: Array<'password' | 'quota' | 'settings'>; origin?: string };

/**
 * One account's changes of one publication, in commit order, and the account's journal head after
 * them (their last seq; undefined for Changes no journal numbered).
 */
export type ChangeListener = (changes: readonly Change[], head: number | undefined) => void;

export interface ChangeBus {
  /** Listen to every change of one account. Returns the unsubscribe function. */
  subscribe(accountId: number, listener: ChangeListener): () => void;
  /** Called by stores only, after commit. */
  publish(changes: readonly Change[]): void;
  /**
   * The account's journal head is now `head`, from a commit whose Changes this process does not
   * have (another process or node; a relay calls it). Listeners pull from the journal.
   */
  notify(accountId: number, head: number): void;
  /** Listen to the account's notifications. Returns the unsubscribe function. */
  onNotify(accountId: number, listener: (head: number) => void): () => void;
}

/** The in-process bus: synchronous fan-out in publish order; a throwing listener harms no one else. */
export class LocalChangeBus implements ChangeBus {
  readonly #listeners = new Map<number, Set<ChangeListener>>();
  readonly #notified = new Map<number, Set<(head: number) => void>>();

  subscribe(accountId: number, listener: ChangeListener): () => void {
    return add(this.#listeners, accountId, listener);
  }

  onNotify(accountId: number, listener: (head: number) => void): () => void {
    return add(this.#notified, accountId, listener);
  }

  notify(accountId: number, head: number): void {
    for (const l of [...(this.#notified.get(accountId) ?? [])]) {
      try {
        l(head);
      } catch (err) {
        console.error('change notification listener failed:', err);
      }
    }
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
      const head = list[list.length - 1]!.seq;
      for (const l of [...set]) {
        try {
          l(list, head);
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

function add<L>(m: Map<number, Set<L>>, accountId: number, listener: L): () => void {
  let set = m.get(accountId);
  if (!set) m.set(accountId, (set = new Set()));
  set.add(listener);
  return () => {
    const s = m.get(accountId);
    if (!s) return;
    s.delete(listener);
    if (s.size === 0) m.delete(accountId);
  };
}
