// What the PostgreSQL store (postgres-store.ts) hands each of its per-concern parts (accounts.ts,
// mailboxes.ts, messages.ts, pop.ts, search.ts): the pool, reads, the write transaction of
// changes.ts, the account namespace lock and the shared helpers. Each part keeps the members it
// uses as private fields named as the store named them, so a method reads the same in its part
// as it did in the store. The SQLite store's parts get the same from sqlite/context.ts.

import type pg from 'pg';
import type { Mailbox, SpecialUse } from '../store.ts';
import type { MailboxLimits } from '../mailbox-limits.ts';
import type { PgWrites, Tx } from './writes.ts';

type Row = Record<string, any>;

/** One query outside a transaction (refused once the store is closed): its rows. */
export type PgQuery = (text: string, values?: unknown[]) => Promise<Row[]>;

export interface PgContext {
  pool: pg.Pool;
  q: PgQuery;
  /** Throws 'invalid' once the store is closed. */
  check(): void;
  /** One write transaction, retried on deadlock/serialisation failure; its Changes published after COMMIT (changes.ts). */
  tx<T>(origin: string | undefined, fn: (tx: Tx) => Promise<T>): Promise<T>;
  /** Serialises mailbox-namespace changes of one account (create/rename/delete/remove): first in the lock order. */
  lockAccountNamespace(c: pg.PoolClient, accountId: number): Promise<void>;
  /** The message writes inside a transaction, a chunk at a time. */
  wr: PgWrites;
  /** A new mailbox row (and its subscription), with its mailbox-created Change. */
  insertMailbox(
    tx: Tx,
    accountId: number,
    name: string,
    specialUse: SpecialUse | null,
    subscribed: boolean,
    init?: { uidNext?: number; highestModseq?: number },
  ): Promise<Mailbox>;
  /** Mailbox tree limits (src/store/mailbox-limits.ts). */
  limits: MailboxLimits;
  /** Staged bodies waiting for their delivery transaction: id → bytes + pin count (shared with the queue). */
  staged: Map<string, { data: Buffer; pins: number }>;
  /** Upper bound for a body staged without `maxBytes`. */
  defaultMaxBlob: number;
  /** A byte range of a body, staged or stored (messages.ts). */
  readBlob(blobId: string, start?: number, end?: number): Promise<Buffer>;
}
