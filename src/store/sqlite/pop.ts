// The POP3 side of the SQLite store (RFC 1939): the UPDATE state's deletions and \Seen marks in one
// call, applied in steps like the other bulk commands (bulk.ts, `popUpdate`), and the retained
// messages (table pop_retained) a `recent:` login still lists (src/pop3/snapshot.ts).

import type { Mailbox, PopRetainedMessage, PopUpdate, WriteOptions } from '../store.ts';
import type { SqliteContext } from './context.ts';
import type { SqliteBulk } from './bulk.ts';
import type { Query } from './writes.ts';

type Row = Record<string, any>;

export class SqlitePop {
  readonly #q: Query;
  readonly #bulk: SqliteBulk;

  constructor(ctx: SqliteContext) {
    this.#q = ctx.q;
    this.#bulk = ctx.bulk;
  }

  async popUpdate(inboxId: number, u: PopUpdate, opts: WriteOptions = {}): Promise<{ removed: number[]; mailbox: Mailbox | null }> {
    return this.#bulk.popUpdate(inboxId, u, opts);
  }

  async popRetained(inboxId: number, since: number): Promise<PopRetainedMessage[]> {
    return (
      this.#q('SELECT * FROM pop_retained WHERE inbox_id = CAST(? AS INTEGER) AND saved_at >= ? ORDER BY saved_at, uid').all(inboxId, since) as Row[]
    ).map((r) => ({ uidValidity: r.uid_validity, uid: r.uid, size: r.size, blobId: r.blob_id, savedAt: r.saved_at }));
  }
}
