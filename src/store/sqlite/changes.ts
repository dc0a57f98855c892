// The write paths of the SQLite store and the publication of their Changes. better-sqlite3 is
// synchronous, so each write is one IMMEDIATE transaction that no other JS code can interleave
// with; after it is durable the listing cache follows it (summaries.ts), the blob files whose last
// reference went are removed and its Changes are published on the bus, in commit order.
//
// `writeBatched` is the group commit of every hot write (deliver, append, flags, expunge, copy,
// move, POP3 update, every step of a bulk command, mailbox create/rename/subscribe, the queue's,
// the login-failure counts): the writes queued within one turn of the event loop share one
// transaction, each inside its own savepoint so one failure harms no other. A write to a mailbox a bulk operation holds throws
// `Held` (writes.ts): its savepoint is undone and it runs again once the hold is released.
//
// Durability off the event loop (issue 12): a batch commits with synchronous=NORMAL (no fsync in
// COMMIT) and is made durable by an fdatasync of the WAL on the thread pool (wal-sync.ts). Until
// that returned the batch is "unsettled":
// - nobody is told: its callers' promises resolve, its Changes are published and its dead blob
//   files removed only after the fdatasync (a failed one rejects them, logged);
// - nobody reads it: the rows are visible to this connection at once, so a read of the store
//   waits while a batch it could see is unsettled (`settled()`: null, i.e. no cost, when none is;
//   the store's read entry points and the resume points of its multi-turn reads await it, and the
//   statement cache reports a read that did not, see statements.ts), else a crash could lose
//   UID N that a client was shown and hand it to another message. A read of one mailbox's rows, or
//   of one account's list of mailboxes, (`settled(scope)`) waits only for the batches that changed
//   it: a batch is known to touch the mailboxes and accounts its Changes name when every write in
//   it published some; one that did not, and a read of anything else, wait as if for everything;
// - nobody commits behind it: a batch waits while an fdatasync runs (or the checkpointer restarts
//   the WAL, `pause`) and commits once it ended (what arrives meanwhile joins it), so readers get
//   a turn after every fdatasync and one fsync covers many writes under load.
// `write` is one FULL transaction of its own (domains, accounts, aliases, the queue's admin
// commands: the admin CLI's, none a client can repeat), durable when it returns; committed while a
// batch is unsettled, its after-commit work waits for that batch (commit order), and readers wait
// as above. Mailbox CREATE/RENAME/SUBSCRIBE, which any logged-in client can loop, are batched.

import type Database from 'better-sqlite3';
import type { FsBlobStore } from '../blob/fs-blob-store.ts';
import type { ChangeBus } from '../bus.ts';
import { StoreError } from '../store.ts';
import type { Logger } from '../../obs/log.ts';
import type { SummaryCache } from './summaries.ts';
import type { WalSync } from './wal-sync.ts';
import { Held, newTx, type Tx } from './writes.ts';
import type { ForeignCommits } from './peers.ts';

type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

interface BatchItem {
  fn: (tx: Tx) => unknown;
  /** The bulk operation the write belongs to (0: none). */
  op: number;
  resolve: (v: any) => void;
  reject: (e: unknown) => void;
}

/** A commit whose after-commit work and answers wait: for its fdatasync, or (durable) for those before it. */
interface Unsettled {
  items: BatchItem[];
  tx: Tx;
  outcomes: Outcome[];
  durable: boolean;
  /** What the commit changed (see Touched); null: not known, it holds back every read. */
  touched: Touched | null;
}

/**
 * The mailboxes and accounts a commit's Changes name. `wide`: some Change is of an account as a
 * whole (subscriptions, settings, removal), which may touch any of its mailboxes' rows.
 */
interface Touched {
  mailboxes: Set<number>;
  accounts: Set<number>;
  wide: boolean;
}

/** What a read can see: one mailbox's rows (and its messages'), one account's mailbox list, or anything (null). */
export type ReadScope = { mailbox: number } | { account: number } | null;

/** Whether a read of `scope` could see what commit `u` wrote. */
function reaches(u: Unsettled, scope: ReadScope): boolean {
  const t = u.touched;
  if (scope === null || t === null) return true;
  if ('account' in scope) return t.accounts.has(scope.account);
  return t.wide || t.mailboxes.has(scope.mailbox);
}

/** What a batch's Changes name; null when a write that went through published none (its rows are not known). */
function touchedBy(tx: Tx, everyWriteChanged: boolean): Touched | null {
  if (!everyWriteChanged) return null;
  const t: Touched = { mailboxes: new Set(), accounts: new Set(), wide: false };
  for (const c of tx.changes) {
    t.accounts.add(c.accountId);
    if ('mailboxId' in c) t.mailboxes.add(c.mailboxId);
    else t.wide = true;
  }
  return t;
}

/** Readers waiting: a promise and what resolves it. */
interface Gate {
  promise: Promise<void>;
  open: () => void;
}

function newGate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** A key per scope for the waiting readers (mailbox ids positive, account ids negative). */
function scopeKey(scope: { mailbox: number } | { account: number }): number {
  return 'account' in scope ? -scope.account : scope.mailbox;
}

export class SqliteCommit {
  readonly #db: Database.Database;
  readonly #summaries: SummaryCache;
  readonly #blobs: FsBlobStore;
  readonly #bus: ChangeBus;
  readonly #walSync: WalSync;
  readonly #log: Logger | undefined;
  /** PRAGMA synchronous = NORMAL / FULL, prepared once (db.pragma() prepares on every call). */
  readonly #syncStmt: Record<'NORMAL' | 'FULL', Database.Statement>;
  #closed = false;
  /** Runs inside each write transaction after its last write, before COMMIT (the change journal: sqlite/journal.ts). */
  finalize: (tx: Tx) => void = () => {};
  /**
   * Other processes on the file (peers.ts): their commits made durable before a read, and the
   * write lock taken without waiting on the loop (a busy batch is tried again a little later).
   */
  #foreign: ForeignCommits | null = null;
  #busyTimeout: Record<'none' | 'some', Database.Statement> | null = null;
  /** Batches tried again because another process held the write lock (tests, metrics). */
  busyRetries = 0;

  constructor(db: Database.Database, summaries: SummaryCache, blobs: FsBlobStore, bus: ChangeBus, walSync: WalSync, log?: Logger) {
    this.#db = db;
    this.#summaries = summaries;
    this.#blobs = blobs;
    this.#bus = bus;
    this.#walSync = walSync;
    this.#log = log;
    this.#syncStmt = { NORMAL: db.prepare('PRAGMA synchronous = NORMAL'), FULL: db.prepare('PRAGMA synchronous = FULL') };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Shares the file with other processes (peers.ts); `busyMs`: the connection's busy_timeout otherwise. */
  sharedWith(foreign: ForeignCommits, busyMs: number): void {
    this.#foreign = foreign;
    this.#busyTimeout = { none: this.#db.prepare('PRAGMA busy_timeout = 0'), some: this.#db.prepare(`PRAGMA busy_timeout = ${Math.floor(busyMs)}`) };
  }

  /** Commits the writes queued so far and waits for their WAL fsyncs; every later one is refused ('store is closed'). */
  async close(): Promise<void> {
    if (this.#batch.length) this.#flush();
    this.#closed = true;
    await Promise.allSettled([...this.#pendingSyncs]);
  }

  // ---------------------------------------------------------------- the read gate
  /** Commits in commit order whose after-commit work has not run yet (see the header). */
  readonly #unsettled: Unsettled[] = [];
  /** Readers of anything waiting for every commit to settle. */
  #gate: Gate | null = null;
  /** Readers of one mailbox or account waiting for the commits that changed it (scopeKey). */
  readonly #scoped = new Map<number, Gate & { scope: ReadScope }>();

  /** Whether some commit a read of `scope` could see is not settled yet: a read now could see what is not durable. */
  unsettledFor(scope: ReadScope): boolean {
    for (const u of this.#unsettled) if (reaches(u, scope)) return true;
    return false;
  }

  /**
   * Null when every commit a read of `scope` (a mailbox, an account; null: anything) could see is settled (it
   * may go on at once); else a promise that resolves once they are (every reader waiting then goes
   * on before the next batch commits).
   */
  settled(scope: ReadScope = null): Promise<void> | null {
    const own = this.#ownSettled(scope);
    const f = this.#foreign;
    if (!f) return own;
    return own ? own.then(() => f.check() ?? undefined) : f.check();
  }

  #ownSettled(scope: ReadScope): Promise<void> | null {
    if (this.#unsettled.length === 0) return null;
    if (scope === null) return (this.#gate ??= newGate()).promise;
    if (!this.unsettledFor(scope)) return null;
    const key = scopeKey(scope);
    let w = this.#scoped.get(key);
    if (!w) this.#scoped.set(key, (w = { ...newGate(), scope }));
    return w.promise;
  }

  /** fn at once when every commit a read of `scope` could see is settled, else once they are: how every read of the store starts. */
  read<T>(fn: () => Promise<T>, scope: ReadScope = null): Promise<T> {
    const g = this.settled(scope);
    return g ? g.then(fn) : fn();
  }

  /** Runs the after-commit work of the durable commits at the front, in commit order; opens the gate when none is left. */
  #drain(): void {
    while (this.#unsettled.length && this.#unsettled[0]!.durable) {
      const u = this.#unsettled.shift()!;
      this.#settleBatch(u.items, u.tx, u.outcomes);
    }
    for (const [k, w] of this.#scoped) {
      if (this.unsettledFor(w.scope)) continue;
      this.#scoped.delete(k);
      w.open();
    }
    if (this.#unsettled.length === 0 && this.#gate) {
      const g = this.#gate;
      this.#gate = null;
      g.open();
    }
  }

  // ---------------------------------------------------------------- write: one FULL transaction
  /** Runs fn in one IMMEDIATE transaction (durable when it returns), then removes dead blobs and publishes the changes. */
  write<T>(fn: (tx: Tx) => T): T {
    if (this.#closed) throw new StoreError('invalid', 'store is closed');
    // With other processes on the file this waits for their write lock up to the connection's
    // busy_timeout, on the loop: these writes are the rare ones (admin, account settings).
    const tx: Tx = newTx();
    const result = this.#db
      .transaction(() => {
        const r = fn(tx);
        this.finalize(tx);
        return r;
      })
      .immediate();
    // After a batch still waiting for its fdatasync: its after-commit work goes first.
    if (this.#unsettled.length) this.#unsettled.push({ items: [], tx, outcomes: [], durable: true, touched: null });
    else this.afterCommit(tx);
    return result;
  }

  afterCommit(tx: Tx): void {
    this.#summaries.update(tx);
    for (const id of tx.deadBlobs) {
      try {
        this.#blobs.removeIfUnpinned(id);
      } catch (err) {
        console.error('blob removal failed', id, err);
      }
    }
    this.#bus.publish(tx.changes);
  }

  /** Another connection's short write the batches wait for (checkpointer.ts: the WAL restart). */
  #paused: Promise<void> | null = null;

  /** Batches commit only after fn's promise settled (the checkpointer's WAL restart, checkpointer.ts). */
  pause(fn: () => Promise<void>): void {
    if (this.#closed) return;
    const p: Promise<void> = fn().then(
      () => {},
      () => {},
    );
    this.#paused = p;
    void p.then(() => {
      if (this.#paused === p) this.#paused = null;
    });
  }

  // ---------------------------------------------------------------- writeBatched: the group commit
  #batch: BatchItem[] = [];
  #batchScheduled = false;
  readonly #pendingSyncs = new Set<Promise<void>>();

  writeBatched<T>(fn: (tx: Tx) => T, op = 0): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreError('invalid', 'store is closed'));
    return new Promise<T>((resolve, reject) => this.#enqueue({ fn, op, resolve, reject }));
  }

  #enqueue(item: BatchItem): void {
    this.#batch.push(item);
    if (this.#batchScheduled) return;
    this.#batchScheduled = true;
    setImmediate(() => this.#flushSoon());
  }

  // While an fdatasync of the WAL runs, the batch waits for it to end: its callers could only be
  // answered after the next fdatasync anyway (WalSync.sync), so nothing is answered later; what
  // arrives meanwhile joins the same commit (fewer commits, WAL frames and fdatasyncs per write
  // under load); and the readers the running one holds back go on before this batch commits.
  #flushSoon(): void {
    if (!this.#batchScheduled) return; // flushed meanwhile (close)
    const running = this.#walSync.running ?? this.#paused;
    if (running && !this.#closed) {
      void running.then(() => setImmediate(() => this.#flushSoon()));
      return;
    }
    this.#flush();
  }

  #flush(): void {
    this.#batchScheduled = false;
    const items = this.#batch;
    this.#batch = [];
    if (this.#closed) {
      for (const it of items) it.reject(new StoreError('invalid', 'store is closed'));
      return;
    }
    const tx: Tx = newTx();
    let done: { outcomes: Outcome[]; everyWriteChanged: boolean };
    try {
      this.#syncStmt.NORMAL.run();
      this.#busyTimeout?.none.run();
      done = this.#commitBatch(items, tx);
      this.#busyRun = 0;
    } catch (err) {
      // Another process holds the write lock (BEGIN IMMEDIATE failed: nothing ran): again shortly.
      if (this.#busyTimeout && (err as { code?: string }).code === 'SQLITE_BUSY') return this.#retryBusy(items);
      for (const it of items) it.reject(err);
      return;
    } finally {
      this.#busyTimeout?.some.run();
      this.#syncStmt.FULL.run();
    }
    const outcomes = done.outcomes;
    const u: Unsettled = { items, tx, outcomes, durable: false, touched: touchedBy(tx, done.everyWriteChanged) };
    this.#unsettled.push(u);
    // Other processes' commits before this point are covered by this fdatasync too (peers.ts).
    const seen = this.#foreign?.version();
    const p = this.#walSync.sync().then(
      () => {
        if (seen !== undefined) this.#foreign!.covered(seen);
        // One fdatasync covers every frame written before it started: every commit up to this one.
        for (const x of this.#unsettled) {
          x.durable = true;
          if (x === u) break;
        }
        this.#drain();
      },
      (err) => {
        // Committed, but not known to be on disk: nobody is told it is.
        this.#log?.error('store.wal-sync-failed', { error: err instanceof Error ? err : String(err) });
        const i = this.#unsettled.indexOf(u);
        if (i >= 0) this.#unsettled.splice(i, 1);
        for (const it of items) it.reject(new StoreError('invalid', `commit not made durable: ${(err as Error).message}`));
        this.#drain();
      },
    );
    this.#pendingSyncs.add(p);
    void p.finally(() => this.#pendingSyncs.delete(p));
  }

  #busyRun = 0;

  /** The batch again (before what came meanwhile) after 1, 2, 4 … 16 ms: the loop serves others meanwhile. */
  #retryBusy(items: BatchItem[]): void {
    this.busyRetries++;
    this.#batch = [...items, ...this.#batch];
    this.#batchScheduled = true;
    const ms = Math.min(16, 1 << Math.min(this.#busyRun++, 4));
    setTimeout(() => this.#flushSoon(), ms);
  }

  // better-sqlite3's db.transaction() builds four wrapper functions and their properties on every
  // call: both made once, not twice per batch plus once per item.
  #savepointTx: ((fn: (tx: Tx) => unknown, tx: Tx) => unknown) | null = null;
  #batchTx: ((items: BatchItem[], tx: Tx) => { outcomes: Outcome[]; everyWriteChanged: boolean }) | null = null;

  /** One IMMEDIATE transaction, each item in its own savepoint. */
  #commitBatch(items: BatchItem[], tx: Tx): { outcomes: Outcome[]; everyWriteChanged: boolean } {
    const savepoint = (this.#savepointTx ??= this.#db.transaction((fn: (tx: Tx) => unknown, t: Tx) => fn(t)));
    this.#batchTx ??= this.#db.transaction((batch: BatchItem[], t: Tx) => {
      const outcomes: Outcome[] = [];
      let everyWriteChanged = true;
      for (const it of batch) {
        const marks = [t.changes.length, t.deadBlobs.length] as const;
        t.start = marks[0];
        t.op = it.op;
        try {
          outcomes.push({ ok: true, value: savepoint(it.fn, t) });
          if (t.changes.length === marks[0]) everyWriteChanged = false;
        } catch (err) {
          t.changes.length = marks[0];
          t.deadBlobs.length = marks[1];
          outcomes.push({ ok: false, err });
        }
      }
      this.finalize(t);
      return { outcomes, everyWriteChanged };
    }).immediate;
    return this.#batchTx(items, tx);
  }

  /** After the commit is durable: after-commit work, then each caller's outcome. */
  #settleBatch(items: BatchItem[], tx: Tx, outcomes: Outcome[]): void {
    this.afterCommit(tx);
    items.forEach((it, i) => {
      const o = outcomes[i]!;
      if (o.ok) it.resolve(o.value);
      // A mailbox held by a bulk operation: its savepoint undid it; run it again once released.
      else if (o.err instanceof Held) void o.err.wait.then(() => (this.#closed ? it.reject(new StoreError('invalid', 'store is closed')) : this.#enqueue(it)));
      else it.reject(o.err);
    });
  }
}
