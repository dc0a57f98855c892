// Changes of other processes for local subscribers (issue 15, multi-node on one PostgreSQL
// database). A store that shares its data with other processes wraps its in-process bus in a
// `FollowingBus`: the store publishes its own Changes (after COMMIT) and its ping relay calls
// `notify(account, head)` on the inner bus as before; what sessions subscribe to is this bus,
// which keeps one `JournalFollower` per account with local subscribers. The follower passes
// in-process publications on as they are (the fast path: no read), and on a ping — or a
// publication past the next seq, a gap — pulls the missing entries from the journal. Pulled
// message entries name the message and its MODSEQ only, so before they are handed on this bus
// reads their current flags and keywords in one query per page (`readFlags`): sessions get
// ordinary Changes, in seq order, each once (the follower drops what it delivered already: an
// in-process publication and a pulled entry of the same seq are never both delivered).
//
// A follower starts at the account's journal head, read when the account's first local session
// subscribes (at login, before it has any mailbox state of its own: whatever committed before is
// in what it reads afterwards). When the journal was pruned past where a follower is (a process
// that lagged past the horizon), `onResync` reports it; sessions keep what they have and read
// afresh at their next SELECT or login (Changes have no "re-read" kind that sessions act on).

import type { Change, ChangeBus, ChangeListener } from './bus.ts';
import { JournalFollower, type ChangesSince, type JournalChange, type JournalSource } from './journal.ts';

/** Current flags of messages, by mailbox and UID (absent: expunged meanwhile). */
export type ReadFlags = (keys: ReadonlyArray<{ mailboxId: number; uid: number }>) => Promise<Map<string, { systemFlags: number; keywords: string[] }>>;

export const flagKey = (mailboxId: number, uid: number): string => `${mailboxId}:${uid}`;

interface Follow {
  listeners: Set<ChangeListener>;
  follower: JournalFollower | null;
  /** Until the head is read: the temporary fast-path subscription, and whether a ping came. */
  early: (() => void) | null;
  lastSeq: number;
  poked: boolean;
}

export class FollowingBus implements ChangeBus {
  readonly #inner: ChangeBus;
  readonly #source: JournalSource & { journalHead(accountId: number): Promise<number> };
  readonly #readFlags: ReadFlags;
  readonly #onResync: (accountId: number, head: number) => void;
  readonly #follows = new Map<number, Follow>();

  constructor(
    inner: ChangeBus,
    source: JournalSource & { journalHead(accountId: number): Promise<number> },
    readFlags: ReadFlags,
    onResync: (accountId: number, head: number) => void = () => {},
  ) {
    this.#inner = inner;
    this.#source = source;
    this.#readFlags = readFlags;
    this.#onResync = onResync;
  }

  publish(changes: readonly Change[]): void {
    this.#inner.publish(changes);
  }

  notify(accountId: number, head: number): void {
    this.#inner.notify(accountId, head);
  }

  onNotify(accountId: number, listener: (head: number) => void): () => void {
    return this.#inner.onNotify(accountId, listener);
  }

  subscribe(accountId: number, listener: ChangeListener): () => void {
    let f = this.#follows.get(accountId);
    if (!f) this.#follows.set(accountId, (f = this.#start(accountId)));
    f.listeners.add(listener);
    return () => {
      const cur = this.#follows.get(accountId);
      if (cur !== f || !cur.listeners.delete(listener) || cur.listeners.size) return;
      this.#follows.delete(accountId);
      cur.early?.();
      cur.follower?.detach();
    };
  }

  /** Pulled entries read so far (0 while everything came in-process). */
  pulled(accountId: number): number {
    return this.#follows.get(accountId)?.follower?.pulled ?? 0;
  }

  #start(accountId: number): Follow {
    const f: Follow = { listeners: new Set(), follower: null, early: null, lastSeq: 0, poked: false };
    // Until the head is known, in-process publications go straight through (as without a journal).
    const a = this.#inner.subscribe(accountId, (changes, head) => {
      if (head !== undefined && head > f.lastSeq) f.lastSeq = head;
      deliver(f, changes);
    });
    const b = this.#inner.onNotify(accountId, () => void (f.poked = true));
    f.early = () => (a(), b());
    const begin = (head: number) => {
      if (this.#follows.get(accountId) !== f) return;
      f.early?.();
      f.early = null;
      const source: JournalSource = { changesSince: (acc, since, limit) => this.#filled(acc, since, limit) };
      f.follower = new JournalFollower(source, accountId, Math.max(head, f.lastSeq), (changes) => deliver(f, dropGone(changes as readonly Change[])), (h) =>
        this.#onResync(accountId, h),
      ).attach(this.#inner);
      if (f.poked) void f.follower.poke().catch((err) => console.error('change follower: journal read failed:', err));
    };
    this.#source.journalHead(accountId).then(begin, (err) => {
      console.error('change follower: journal head read failed:', err);
      begin(f.lastSeq);
    });
    return f;
  }

  /** A journal page with the message entries' flags and keywords filled in (one read per page). */
  async #filled(accountId: number, since: number, limit?: number): Promise<ChangesSince> {
    const r = await this.#source.changesSince(accountId, since, limit);
    if (r.resync) return r;
    const keys: Array<{ mailboxId: number; uid: number }> = [];
    for (const c of r.changes) if (c.kind === 'message-added' || c.kind === 'flags-changed') keys.push({ mailboxId: c.mailboxId, uid: c.uid });
    if (keys.length === 0) return r;
    const flags = await this.#readFlags(keys);
    const changes: JournalChange[] = r.changes.map((c) => {
      if (c.kind !== 'message-added' && c.kind !== 'flags-changed') return c;
      const f = flags.get(flagKey(c.mailboxId, c.uid));
      // Expunged since: a flag change of a message that is gone says nothing (its expunge follows;
      // the entry keeps its place for the follower's seq and is left out when delivered). An
      // arrival still counts: sessions announce it, then its expunge.
      if (c.kind === 'flags-changed') return (f ? { ...c, systemFlags: f.systemFlags, keywords: f.keywords } : { ...c, [GONE]: true }) as unknown as JournalChange;
      return { ...c, keywords: f?.keywords ?? [] } as JournalChange;
    });
    return { ...r, changes };
  }
}

const GONE = Symbol('gone');

function deliver(f: Follow, changes: readonly Change[]): void {
  if (changes.length === 0) return;
  const head = changes[changes.length - 1]!.seq;
  for (const l of [...f.listeners]) {
    try {
      l(changes, head);
    } catch (err) {
      console.error('change listener failed:', err);
    }
  }
}

function dropGone(changes: readonly Change[]): readonly Change[] {
  // Only pulled entries (they carry `at`) can be marked: the fast path costs one check.
  if (changes.length === 0 || !('at' in changes[0]!)) return changes;
  return changes.some((c) => GONE in c) ? changes.filter((c) => !(GONE in c)) : changes;
}
