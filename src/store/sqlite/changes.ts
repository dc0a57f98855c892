// The write paths of the SQLite store and the publication of their Changes. better-sqlite3 is
// synchronous, so each write is one IMMEDIATE transaction that no other JS code can interleave
// with; after its commit the listing cache follows it (summaries.ts), the blob files whose last
// reference went are removed and its Changes are published on the bus, in commit order.
//
// `write` is one transaction of its own (account and mailbox administration, the queue's
// bookkeeping); `writeBatched` is the group commit that message writes use (deliver, append,
// flags, expunge, copy, move, POP3 update, every step of a bulk command): the writes queued within
// one turn of the event loop share one transaction (one fsync), each inside its own savepoint so
// one failure harms no other. Every caller still resolves only after the shared commit is durable.
// A write to a mailbox a bulk operation holds throws `Held` (writes.ts): its savepoint is undone
// and it runs again once the hold is released.
// A batch of queue writes only (`walSync`) commits with synchronous=NORMAL and is made durable by
// an fsync of the WAL on the thread pool (wal-sync.ts) before its callers resolve; any other write
// in the batch makes it an ordinary FULL commit (mailbox changes are never visible before durable).

import type Database from 'better-sqlite3';
import type { FsBlobStore } from '../blob/fs-blob-store.ts';
import type { ChangeBus } from '../bus.ts';
import { StoreError } from '../store.ts';
import type { Logger } from '../../obs/log.ts';
import type { SummaryCache } from './summaries.ts';
import type { WalSync } from './wal-sync.ts';
import { Held, newTx, type Tx } from './writes.ts';

type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

interface BatchItem {
  fn: (tx: Tx) => unknown;
  /** The bulk operation the write belongs to (0: none). */
  op: number;
  /** A queue write: may be made durable by WalSync instead of inside COMMIT (see #flush). */
  walSync: boolean;
  resolve: (v: any) => void;
  reject: (e: unknown) => void;
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

  /** Commits the writes queued so far and waits for their WAL fsyncs; every later one is refused ('store is closed'). */
  async close(): Promise<void> {
    if (this.#batch.length) this.#flush();
    this.#closed = true;
    await Promise.allSettled([...this.#pendingSyncs]);
  }

  /** Runs fn in one IMMEDIATE transaction, then removes dead blobs and publishes the changes. */
  write<T>(fn: (tx: Tx) => T): T {
    if (this.#closed) throw new StoreError('invalid', 'store is closed');
    const tx: Tx = newTx();
    const result = this.#db
      .transaction(() => {
        const r = fn(tx);
        this.finalize(tx);
        return r;
      })
      .immediate();
    this.afterCommit(tx);
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

  // Group commit for message writes (deliver, append, flags, expunge, copy, move, POP3 update):
  // writes queued within one turn of the event loop
  // share one transaction (one fsync), each inside its own savepoint so one failure harms no
  // other. Every caller still resolves only after the shared commit is durable.
  #batch: BatchItem[] = [];
  #batchScheduled = false;
  readonly #pendingSyncs = new Set<Promise<void>>();
  /** A batch of queue writes only is waiting for the running fdatasync (see #flushSoon). */
  #deferred = false;

  writeBatched<T>(fn: (tx: Tx) => T, op = 0, walSync = false): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreError('invalid', 'store is closed'));
    return new Promise<T>((resolve, reject) => this.#enqueue({ fn, op, walSync, resolve, reject }));
  }

  #enqueue(item: BatchItem): void {
    this.#batch.push(item);
    // Scheduled already; but a write that needs a FULL commit does not wait behind a deferral.
    if (this.#batchScheduled && !(this.#deferred && !item.walSync)) return;
    this.#batchScheduled = true;
    this.#deferred = false;
    setImmediate(() => this.#flushSoon());
  }

  // A batch of queue writes only, while an fdatasync of the WAL runs, waits for it to end: its
  // callers could only be answered after the next fdatasync anyway (WalSync.sync), so nothing is
  // answered later, and what arrives meanwhile joins the same commit (fewer commits, WAL frames and
  // fdatasyncs per message under load). Any other write flushes at once (FULL, as always).
  #flushSoon(): void {
    if (!this.#batchScheduled) return; // flushed meanwhile (close)
    const running = this.#walSync.running;
    if (running && !this.#closed && this.#batch.every((it) => it.walSync)) {
      this.#deferred = true;
      void running.then(() => {
        if (!this.#deferred) return;
        this.#deferred = false;
        setImmediate(() => this.#flushSoon());
      });
      return;
    }
    this.#flush();
  }

  #flush(): void {
    this.#batchScheduled = false;
    this.#deferred = false;
    const items = this.#batch;
    this.#batch = [];
    if (this.#closed) {
      for (const it of items) it.reject(new StoreError('invalid', 'store is closed'));
      return;
    }
    const tx: Tx = newTx();
    const lazy = items.every((it) => it.walSync);
    let outcomes: Outcome[];
    try {
      if (lazy) this.#syncStmt.NORMAL.run();
      outcomes = this.#commitBatch(items, tx);
    } catch (err) {
      for (const it of items) it.reject(err);
      return;
    } finally {
      if (lazy) this.#syncStmt.FULL.run();
    }
    if (!lazy) return this.#settleBatch(items, tx, outcomes);
    const p = this.#walSync.sync().then(
      () => this.#settleBatch(items, tx, outcomes),
      (err) => {
        // Committed, but not known to be on disk: nobody is told it is.
        this.#log?.error('store.wal-sync-failed', { error: err instanceof Error ? err : String(err) });
        for (const it of items) it.reject(new StoreError('invalid', `commit not made durable: ${(err as Error).message}`));
      },
    );
    this.#pendingSyncs.add(p);
    void p.finally(() => this.#pendingSyncs.delete(p));
  }

  /** One IMMEDIATE transaction, each item in its own savepoint. */
  #commitBatch(items: BatchItem[], tx: Tx): Outcome[] {
    const outcomes: Outcome[] = [];
    this.#db
      .transaction(() => {
        for (const it of items) {
          const marks = [tx.changes.length, tx.deadBlobs.length] as const;
          tx.start = marks[0];
          tx.op = it.op;
          try {
            outcomes.push({ ok: true, value: this.#db.transaction(() => it.fn(tx))() });
          } catch (err) {
            tx.changes.length = marks[0];
            tx.deadBlobs.length = marks[1];
            outcomes.push({ ok: false, err });
          }
        }
        this.finalize(tx);
      })
      .immediate();
    return outcomes;
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
