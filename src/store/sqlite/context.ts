// What the SQLite store (sqlite-store.ts) hands each of its per-concern parts (accounts.ts,
// mailboxes.ts, messages.ts, pop.ts, search.ts): the database, the statement cache, the two write
// paths of changes.ts and the shared helpers. Each part keeps the members it uses as private
// fields named as the store named them, so a method reads the same in its part as it did in the
// store. The PostgreSQL store's parts get the same from postgres/context.ts.

import type Database from 'better-sqlite3';
import type { Mailbox, SpecialUse } from '../store.ts';
import type { MailboxLimits } from '../mailbox-limits.ts';
import type { FsBlobStore } from '../blob/fs-blob-store.ts';
import type { BodyScanPool } from '../blob/body-scan.ts';
import type { SqliteBulk } from './bulk.ts';
import type { SqliteSortKeys } from './sort.ts';
import type { SummaryCache } from './summaries.ts';
import type { SqliteThreads } from './threads.ts';
import type { MessageWrites, Query, Tx } from './writes.ts';

export interface SqliteContext {
  db: Database.Database;
  /** Prepared statements, compiled once per SQL text. */
  q: Query;
  /** One IMMEDIATE transaction of its own; dead blobs removed and Changes published after it (changes.ts). */
  write<T>(fn: (tx: Tx) => T): T;
  /** One write in the group commit (changes.ts); `op`: the bulk operation it belongs to. */
  writeBatched<T>(fn: (tx: Tx) => T, op?: number): Promise<T>;
  /** Commands over many messages, in steps. */
  bulk: SqliteBulk;
  /** A new mailbox row (and its subscription), with its mailbox-created Change. */
  insertMailbox(tx: Tx, accountId: number, name: string, specialUse: SpecialUse | null, subscribed: boolean, uidNext?: number): Mailbox;
  /** Mailbox tree limits (src/store/mailbox-limits.ts). */
  limits: MailboxLimits;
  /** A mailbox row as clients see it: a COPY being staged into it does not show yet (UIDNEXT, HIGHESTMODSEQ). */
  mailbox(r: Record<string, any>): Mailbox;
  /** Rows with this UID or above are a COPY being staged, not part of the mailbox. */
  below(mailboxId: number): number;
  /** The row-level SQL of every message write (writes.ts). */
  w: MessageWrites;
  /** Whole-mailbox listings, cached (summaries.ts). */
  summaries: SummaryCache;
  /** Conversation threads (threads.ts). */
  threads: SqliteThreads;
  /** The body files. */
  blobs: FsBlobStore;
  /** SORT/THREAD keys of the bodies (sort.ts). */
  sort: SqliteSortKeys;
  /** SEARCH BODY/TEXT scans on worker threads. */
  bodyScan: BodyScanPool;
  /**
   * Null, or what a read resuming after an event-loop turn awaits first: the read gate
   * (changes.ts; a read's first step passes it in sqlite-store.ts `#read`).
   */
  settled(): Promise<void> | null;
}
