// The SQLite store's statement cache and its check of the read gate (changes.ts): every query of
// the store is prepared once per SQL text (prepare was ~4% of CPU under load), and a read made
// outside a transaction while a commit it could see waits for its fdatasync is one the gate let
// through by mistake: logged once per SQL text, or thrown (tests, `readCheck: 'throw'`).

import type Database from 'better-sqlite3';
import type { Logger } from '../../obs/log.ts';
import type { ReadScope } from './changes.ts';

export class Statements {
  readonly #db: Database.Database;
  readonly #readCheck: 'log' | 'throw';
  readonly #log: Logger | undefined;
  readonly #stmts = new Map<string, Database.Statement>();
  readonly #reported = new Set<string>();
  /** Whether a commit a read of this scope could see is not durable yet (set once the commit path exists). */
  unsettledFor: (scope: ReadScope) => boolean = () => false;
  /** What the read running now may see (SqliteStore #readIn); null: anything. */
  scope: ReadScope = null;

  constructor(db: Database.Database, readCheck: 'log' | 'throw', log: Logger | undefined) {
    this.#db = db;
    this.#readCheck = readCheck;
    this.#log = log;
  }

  q(sql: string): Database.Statement {
    let st = this.#stmts.get(sql);
    if (!st) {
      st = this.#db.prepare(sql);
      this.#stmts.set(sql, st);
    } else if (st.reader) {
      // pluck()/raw() are modes set on the statement object: reset them for each use.
      st.pluck(false);
      st.raw(false);
    }
    // Outside a transaction while a commit waits for its fdatasync: a read the gate let through.
    if (st.reader && !this.#db.inTransaction && this.unsettledFor(this.scope)) this.#notGated(sql);
    return st;
  }

  /** fn with `scope` as the read's scope up to fn's first await. */
  within<T>(scope: ReadScope, fn: () => T): T {
    const outer = this.scope;
    this.scope = scope;
    try {
      return fn();
    } finally {
      this.scope = outer;
    }
  }

  #notGated(sql: string): void {
    if (this.#readCheck === 'throw') throw new Error(`store read before the commits are durable (read gate not awaited): ${sql.slice(0, 120)}`);
    if (this.#reported.has(sql)) return;
    this.#reported.add(sql);
    this.#log?.warn('store.read-not-gated', { sql: sql.replace(/\s+/g, ' ').slice(0, 160) }); // linear: one class, our own SQL text
  }
}
