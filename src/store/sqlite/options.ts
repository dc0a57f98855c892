// What openSqliteStore (sqlite-store.ts) takes: where the database and blobs are, and the knobs
// the server, the admin CLI and the tests set differently.

import type { ChangeBus } from '../bus.ts';
import type { Logger } from '../../obs/log.ts';
import type { MailboxLimits } from '../mailbox-limits.ts';
import type { ChunkOptions } from '../chunks.ts';
import type { WalSync } from './wal-sync.ts';
import type { SqlitePeers } from './peers.ts';

export interface SqliteStoreOptions {
  /** SQLite database file. */
  path: string;
  /** Folder of blob files. */
  blobDir: string;
  bus?: ChangeBus;
  /** Remove orphaned blob files at open (the server does; the admin CLI doesn't). */
  collectGarbage?: boolean;
  /** Where the store reports trouble it works around (a SEARCH worker that failed). */
  log?: Logger;
  /** Mailbox tree limits (defaults: src/store/mailbox-limits.ts). */
  mailboxLimits?: Partial<MailboxLimits>;
  /** Step sizes of bulk operations (tests use small ones to cross step boundaries). */
  bulk?: ChunkOptions;
  /** Keep queued messages whose recipients are all final (tests inspect the final states). */
  queueKeepFinal?: boolean;
  /**
   * A read that did not wait for the read gate (changes.ts) while a commit was not durable:
   * 'log' (default) logs `store.read-not-gated` once per statement, 'throw' throws (tests).
   */
  readCheck?: 'log' | 'throw';
  /** The WAL fdatasync (tests inject a slow one to watch what waits for it). */
  walSync?: WalSync;
  /**
   * Checkpoint the WAL on a worker thread this often, ms, and never in a COMMIT on the event loop
   * (checkpointer.ts; the server). 0 or absent: SQLite's automatic checkpoint (the admin CLI, tests).
   */
  checkpointMs?: number;
  /**
   * Other server processes on the same file and blobs (`--workers`, peers.ts): commits are relayed
   * to them, their pings followed, their commits made durable before they are read, the write lock
   * taken without waiting on the loop. The server's worker processes pass it; absent: alone.
   */
  peers?: SqlitePeers;
  /** No automatic checkpoints in a COMMIT either, without a checkpointer here (another worker runs it). */
  noAutoCheckpoint?: boolean;
}
