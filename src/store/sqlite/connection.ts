// The server's SQLite connection: WAL, the pragmas the durability rules rely on
// (docs/architecture.md "Durability (SQLite)") and the SQL functions the schema uses.

import Database from 'better-sqlite3';
import type { MessageMeta } from '../../protocol/mime/types.ts';
import { textPlan } from '../../protocol/mime/text-plan.ts';
import { foldForSearch } from './writes.ts';
import { PEER_BUSY_MS } from './peers.ts';

/** Opens the database file; `peers`: other server processes share it (peers.ts). */
export function openConnection(path: string, peers: boolean): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  // Alone, a lock is the admin CLI's (rare, short); with peers, batches never wait for it on the
  // loop (changes.ts retries them) and what else waits is bounded by a peer's one commit.
  db.pragma(`busy_timeout = ${peers ? PEER_BUSY_MS : 10000}`);
  db.pragma('foreign_keys = ON');
  // Savepoints (one per write of a batch) keep a statement journal: a temp file by default,
  // written on the event loop (strace under disk load: single writes blocked 50-150 ms).
  db.pragma('temp_store = MEMORY');
  // Case folding for header search, the same in migrations and at delivery (see message_search).
  db.function('pb_fold', { deterministic: true }, (v: unknown) => (typeof v === 'string' ? foldForSearch(v) : v));
  // A body's text plan from its cached parse (message_search.text_plan).
  db.function('pb_text_plan', { deterministic: true }, (meta: unknown) => JSON.stringify(textPlan((JSON.parse(meta as string) as MessageMeta).root)));
  return db;
}
