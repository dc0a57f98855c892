// The write transactions of the PostgreSQL store and the publication of their Changes. Every write
// is one READ COMMITTED transaction (`PgCommit.tx`), retried on deadlock or serialisation failure
// (which the lock order in postgres-store.ts should prevent). Its Changes are published on the bus
// after COMMIT, in commit order: each transaction takes a ticket just before sending COMMIT and
// tickets are published strictly in order (`Publisher`), so two commits that touched the same rows
// (the second waited for the first's locks, hence took a later ticket) can't be published the
// other way round. Each call resolves after its changes were published.

import type pg from 'pg';
import type { Change, ChangeBus } from '../bus.ts';
import { StoreError } from '../store.ts';
import { nextTurn } from '../../obs/loop-lag.ts';
import type { Tx } from './writes.ts';

const MAX_RETRIES = 8;
const RETRYABLE = new Set(['40001', '40P01']); // serialization_failure, deadlock_detected

/**
 * Publishes each transaction's changes in ticket order (tickets are taken just before COMMIT). A
 * big transaction's changes (a 131,072-message COPY) go out in slices with an event-loop turn
 * between them; later tickets wait, so the order stays the commit order.
 */
class Publisher {
  #next = 0;
  #head = 0;
  #draining = false;
  readonly #settled = new Map<number, { changes: readonly Change[] | null; done: () => void }>();
  private readonly bus: ChangeBus;
  constructor(bus: ChangeBus) {
    this.bus = bus;
  }

  take(): number {
    return this.#next++;
  }

  /** `changes` null: the commit failed, nothing to publish. Resolves once published. */
  settle(ticket: number, changes: readonly Change[] | null): Promise<void> {
    return new Promise((done) => {
      this.#settled.set(ticket, { changes, done });
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#settled.has(this.#head)) {
        const s = this.#settled.get(this.#head)!;
        this.#settled.delete(this.#head);
        this.#head++;
        const list = s.changes ?? [];
        for (let i = 0; i < list.length; ) {
          // About PUBLISH_SLICE messages per turn (an expunge change counts its UIDs).
          let j = i;
          for (let w = 0; j < list.length && w < PUBLISH_SLICE; j++) {
            const c = list[j]!;
            w += c.kind === 'messages-expunged' ? c.uids.length : 1;
          }
          if (i > 0) await nextTurn();
          try {
            this.bus.publish(i === 0 && j === list.length ? list : list.slice(i, j));
          } catch (err) {
            console.error('change bus publish failed:', err);
          }
          i = j;
        }
        s.done();
      }
    } finally {
      this.#draining = false;
    }
  }
}

const PUBLISH_SLICE = 2000;

function stamp(changes: Change[], origin: string | undefined): void {
  if (origin === undefined) return;
  for (const c of changes) c.origin = origin;
}

export function pgCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class PgCommit {
  readonly #pool: pg.Pool;
  readonly #publisher: Publisher;
  #closed = false;
  /** Runs in each write transaction after its last statement, before COMMIT (the change journal: postgres/journal.ts). */
  finalize: (tx: Tx) => Promise<void> = async () => {};

  constructor(pool: pg.Pool, bus: ChangeBus) {
    this.#pool = pool;
    this.#publisher = new Publisher(bus);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Every later call is refused ('store is closed'). */
  close(): void {
    this.#closed = true;
  }

  check(): void {
    if (this.#closed) throw new StoreError('invalid', 'store is closed');
  }

  /** One write transaction, retried on deadlock/serialisation failure; publishes after COMMIT. */
  async tx<T>(origin: string | undefined, fn: (tx: Tx) => Promise<T>): Promise<T> {
    this.check();
    for (let attempt = 0; ; attempt++) {
      const c = await this.#pool.connect();
      const tx: Tx = { c, changes: [] };
      let ticket: number | null = null;
      let broken: Error | undefined;
      try {
        await c.query('BEGIN');
        const result = await fn(tx);
        stamp(tx.changes, origin);
        await this.finalize(tx);
        ticket = this.#publisher.take();
        await c.query('COMMIT');
        const t = ticket;
        ticket = null;
        c.release();
        await this.#publisher.settle(t, tx.changes);
        return result;
      } catch (err) {
        if (ticket !== null) void this.#publisher.settle(ticket, null);
        try {
          await c.query('ROLLBACK');
        } catch (e) {
          broken = e as Error;
        }
        c.release(broken);
        if (RETRYABLE.has(pgCode(err) ?? '') && attempt < MAX_RETRIES) {
          await sleep(Math.random() * 5 * (attempt + 1));
          continue;
        }
        throw err;
      }
    }
  }
}
