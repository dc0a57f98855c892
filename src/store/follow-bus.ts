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
// that lagged past the horizon), the follower goes on from the head and this bus reads the
// account's state instead (`resyncChanges`: per mailbox its expunged UIDs, every message as
// message-added and flags-changed) and delivers that as Changes, holding back what the follower
// delivers meanwhile until it is out: sessions apply what they did not have (an arrival or an
// expunge of a UID they know nothing of is a no-op; flags are announced again).
//
// `interest(account, on)` (optional) hears when the account gets its first local subscriber and
// when its last one goes: a relay that hands pings only to the processes that want them (the
// SQLite workers' primary, src/cluster/primary.ts) learns it from there. A ping that reaches this
// process with no follower for the account is a no-op, so a relay that is told late loses nothing
// as long as it pulls once after it was told (src/cluster/worker.ts 'wanted').

import type { Change, ChangeBus, ChangeListener } from './bus.ts';
import { JournalFollower, type ChangesSince, type JournalChange, type JournalSource } from './journal.ts';
import type { Store } from './store.ts';

/** What a resync reads. */
export type ResyncSource = Pick<Store, 'listMailboxes' | 'listMessages' | 'expungedSince'>;

/**
 * The account's state as Changes a session can apply whatever it has (after the journal lost
 * what it missed): per mailbox the UIDs ever expunged (RFC 7162 §3.2.5.2 keeps them for
 * VANISHED), then each message as an arrival and as its current flags.
 */
export async function resyncChanges(store: ResyncSource, accountId: number): Promise<Change[]> {
  const out: Change[] = [];
  for (const mb of await store.listMailboxes(accountId)) {
    const gone = await store.expungedSince(mb.id, 0);
    if (gone.length) out.push({ kind: 'messages-expunged', accountId, mailboxId: mb.id, uids: gone, modseq: mb.highestModseq });
    for (const m of await store.listMessages(mb.id)) {
      out.push({ kind: 'message-added', accountId, mailboxId: mb.id, uid: m.uid, modseq: m.modseq, keywords: m.keywords });
      out.push({ kind: 'flags-changed', accountId, mailboxId: mb.id, uid: m.uid, modseq: m.modseq, systemFlags: m.systemFlags, keywords: m.keywords });
    }
  }
  return out;
}

/** Current flags of messages, by mailbox and UID (absent: expunged meanwhile). */
export type ReadFlags = (keys: ReadonlyArray<{ mailboxId: number; uid: number }>) => Promise<Map<string, { systemFlags: number; keywords: string[] }>>;

export const flagKey = (mailboxId: number, uid: number): string => `${mailboxId}:${uid}`;

interface Follow {
  listeners: Set<ChangeListener>;
  follower: JournalFollower | null;
  /** Until the head is read: the temporary fast-path subscription, and whether a ping came. */
  early: (() => void) | null;
  /** Ends the follower's subscriptions. */
  detach: (() => void) | null;
  lastSeq: number;
  poked: boolean;
  /** While a resync's state is read: what the follower delivers meanwhile (sent after it). */
  holding: Array<readonly Change[]> | null;
}

export class FollowingBus implements ChangeBus {
  readonly #inner: ChangeBus;
  readonly #source: JournalSource & { journalHead(accountId: number): Promise<number> };
  readonly #readFlags: ReadFlags;
  readonly #onResync: (accountId: number, head: number) => void;
  readonly #resync: ResyncSource | null;
  readonly #interest: (accountId: number, on: boolean) => void;
  readonly #follows = new Map<number, Follow>();

  constructor(
    inner: ChangeBus,
    source: JournalSource & { journalHead(accountId: number): Promise<number> },
    readFlags: ReadFlags,
    opts: { onResync?: (accountId: number, head: number) => void; resync?: ResyncSource; interest?: (accountId: number, on: boolean) => void } = {},
  ) {
    this.#inner = inner;
    this.#source = source;
    this.#readFlags = readFlags;
    this.#onResync = opts.onResync ?? (() => {});
    this.#resync = opts.resync ?? null;
    this.#interest = opts.interest ?? (() => {});
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
    if (!f) {
      this.#follows.set(accountId, (f = this.#start(accountId)));
      this.#tell(accountId, true);
    }
    f.listeners.add(listener);
    return () => {
      const cur = this.#follows.get(accountId);
      if (cur !== f || !cur.listeners.delete(listener) || cur.listeners.size) return;
      this.#follows.delete(accountId);
      cur.early?.();
      cur.detach?.();
      this.#tell(accountId, false);
    };
  }

  #tell(accountId: number, on: boolean): void {
    try {
      this.#interest(accountId, on);
    } catch (err) {
      console.error('change follower: interest relay failed:', err);
    }
  }

  /** Pulled entries read so far (0 while everything came in-process). */
  pulled(accountId: number): number {
    return this.#follows.get(accountId)?.follower?.pulled ?? 0;
  }

  #start(accountId: number): Follow {
    const f: Follow = { listeners: new Set(), follower: null, early: null, detach: null, lastSeq: 0, poked: false, holding: null };
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
      const from = Math.max(head, f.lastSeq);
      const early = f.lastSeq;
      const follower = (f.follower = new JournalFollower(source, accountId, from, (changes) => deliver(f, dropGone(changes as readonly Change[])), (h) =>
        this.#resynced(f, accountId, h),
      ));
      const poke = () => void follower.poke().catch((err) => console.error('change follower: journal read failed:', err));
      const c = this.#inner.subscribe(accountId, (changes) => {
        // Committed here before the head was read but published after it: the follower starts
        // past them, yet no one delivered them (a second delivery of the same state is harmless).
        const first = changes[0]?.seq;
        const last = changes[changes.length - 1]?.seq;
        if (first !== undefined && last !== undefined && last <= from && first > early) deliver(f, changes);
        else follower.offer(changes);
      });
      const d = this.#inner.onNotify(accountId, poke);
      f.detach = () => (c(), d());
      if (f.poked) poke();
    };
    // A failed read is tried again each second (the fast path meanwhile goes straight through):
    // starting from 0 would hand sessions the account's whole history.
    const readHead = () =>
      this.#source.journalHead(accountId).then(begin, (err) => {
        console.error('change follower: journal head read failed (again in 1 s):', err);
        if (this.#follows.get(accountId) === f) setTimeout(readHead, 1000).unref();
      });
    readHead();
    return f;
  }

  #resynced(f: Follow, accountId: number, head: number): void {
    this.#onResync(accountId, head);
    if (!this.#resync || f.holding) return;
    f.holding = [];
    const release = (state: Change[]) => {
      const held = f.holding ?? [];
      f.holding = null;
      if (this.#follows.get(accountId) !== f) return;
      deliver(f, state);
      for (const changes of held) deliver(f, changes);
    };
    resyncChanges(this.#resync, accountId).then(release, (err) => {
      console.error('change follower: resync read failed:', err);
      release([]);
    });
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
  if (f.holding) return void f.holding.push(changes);
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
