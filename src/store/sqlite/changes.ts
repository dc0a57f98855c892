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

import type Database from 'better-sqlite3';
import type { FsBlobStore } from '../blob/fs-blob-store.ts';
import type { ChangeBus } from '../bus.ts';
import { StoreError } from '../store.ts';
import type { SummaryCache } from './summaries.ts';
import { Held, newTx, type Tx } from './writes.ts';

interface BatchItem {
  fn: (tx: Tx) => unknown;
  /** The bulk operation the write belongs to (0: none). */
  op: number;
  resolve: (v: any) => void;
  reject: (e: unknown) => void;
}

export class SqliteCommit {
  readonly #db: Database.Database;
  readonly #summaries: SummaryCache;
  readonly #blobs: FsBlobStore;
  readonly #bus: ChangeBus;
  #closed = false;

  constructor(db: Database.Database, summaries: SummaryCache, blobs: FsBlobStore, bus: ChangeBus) {
    this.#db = db;
    this.#summaries = summaries;
    this.#blobs = blobs;
    this.#bus = bus;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Commits the writes queued so far; every later one is refused ('store is closed'). */
  close(): void {
    if (this.#batch.length) this.#flush();
    this.#closed = true;
  }

  /** Runs fn in one IMMEDIATE transaction, then removes dead blobs and publishes the changes. */
  write<T>(fn: (tx: Tx) => T): T {
    if (this.#closed) throw new StoreError('invalid', 'store is closed');
    const tx: Tx = newTx();
    const result = this.#db.transaction(() => fn(tx)).immediate();
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

  writeBatched<T>(fn: (tx: Tx) => T, op = 0): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreError('invalid', 'store is closed'));
    return new Promise<T>((resolve, reject) => this.#enqueue({ fn, op, resolve, reject }));
  }

  #enqueue(item: BatchItem): void {
    this.#batch.push(item);
    if (!this.#batchScheduled) {
      this.#batchScheduled = true;
      setImmediate(() => this.#flush());
    }
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
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; err: unknown }> = [];
    try {
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
        })
        .immediate();
    } catch (err) {
      for (const it of items) it.reject(err);
      return;
    }
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
