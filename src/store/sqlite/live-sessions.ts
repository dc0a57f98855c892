// LiveSessionStore on SQLite (tables live_nodes, live_sessions: migration 14). better-sqlite3 is
// synchronous, so a claim (count, then insert) is atomic with respect to this process, and its
// IMMEDIATE transaction makes it atomic with respect to other processes on the same file.
// Commits use synchronous=NORMAL (the WAL is not fsync'd on the loop): these rows describe open
// connections, which a crash ends anyway, so losing the last ones to a power cut harms nothing.

import type Database from 'better-sqlite3';
import type { LiveProtocol, LiveSessionStore } from '../live-sessions.ts';

export class SqliteLiveSessions implements LiveSessionStore {
  readonly #db: Database.Database;
  readonly #s: Record<string, Database.Statement>;
  constructor(db: Database.Database) {
    this.#db = db;
    this.#s = {
      touch: db.prepare('UPDATE live_nodes SET heartbeat_at = ? WHERE node = ?'),
      addNode: db.prepare('INSERT INTO live_nodes (node, heartbeat_at) VALUES (?, ?)'),
      deadSessions: db.prepare('DELETE FROM live_sessions WHERE node IN (SELECT node FROM live_nodes WHERE heartbeat_at < ?)'),
      deadNodes: db.prepare('DELETE FROM live_nodes WHERE heartbeat_at < ?'),
      orphans: db.prepare('DELETE FROM live_sessions WHERE node NOT IN (SELECT node FROM live_nodes)'),
      count: db
        .prepare(
          `SELECT count(*) FROM live_sessions s JOIN live_nodes n ON n.node = s.node
           WHERE s.protocol = ? AND s.account_id = ? AND n.heartbeat_at >= ?`,
        )
        .pluck(),
      insert: db.prepare('INSERT INTO live_sessions (node, protocol, account_id, started_at) VALUES (?, ?, ?, ?) RETURNING id').pluck(),
      release: db.prepare('DELETE FROM live_sessions WHERE id = ?'),
      dropSessions: db.prepare('DELETE FROM live_sessions WHERE node = ?'),
      dropNode: db.prepare('DELETE FROM live_nodes WHERE node = ?'),
    };
  }

  /**
   * #lazy, tried again a few ms later while another process (a worker of `--workers`) holds the
   * write lock past busy_timeout: up to ~1 s, never waiting on the loop.
   */
  async #lazyRetry<T>(fn: () => T): Promise<T> {
    for (let i = 0; ; i++) {
      try {
        return this.#lazy(fn);
      } catch (err) {
        if ((err as { code?: string }).code !== 'SQLITE_BUSY' || i >= 40) throw err;
        await new Promise((r) => setTimeout(r, 5 + i));
      }
    }
  }

  /** fn in one IMMEDIATE transaction committed without an fsync (see the top of this file). */
  #lazy<T>(fn: () => T): T {
    const was = this.#db.pragma('synchronous', { simple: true }) as number;
    this.#db.pragma('synchronous = NORMAL');
    try {
      return this.#db.transaction(fn).immediate();
    } finally {
      this.#db.pragma(`synchronous = ${was}`);
    }
  }

  async heartbeat(node: string, now: number, staleBefore: number): Promise<boolean> {
    return this.#lazyRetry(() => {
      const known = this.#s.touch!.run(now, node).changes > 0;
      if (!known) this.#s.addNode!.run(node, now);
      this.#s.deadSessions!.run(staleBefore);
      this.#s.deadNodes!.run(staleBefore);
      this.#s.orphans!.run();
      return known;
    });
  }

  async claim(node: string, protocol: LiveProtocol, accountId: number, limit: number, now: number, staleBefore: number): Promise<number | null> {
    return this.#lazyRetry(() => {
      if ((this.#s.count!.get(protocol, accountId, staleBefore) as number) >= limit) return null;
      return Number(this.#s.insert!.get(node, protocol, accountId, now));
    });
  }

  async restore(node: string, sessions: ReadonlyArray<{ protocol: LiveProtocol; accountId: number }>, now: number): Promise<number[]> {
    return this.#lazyRetry(() => sessions.map((s) => Number(this.#s.insert!.get(node, s.protocol, s.accountId, now))));
  }

  async release(id: number): Promise<void> {
    await this.#lazyRetry(() => this.#s.release!.run(id));
  }

  async count(protocol: LiveProtocol, accountId: number, staleBefore: number): Promise<number> {
    return this.#s.count!.get(protocol, accountId, staleBefore) as number;
  }

  async dropNode(node: string): Promise<void> {
    await this.#lazyRetry(() => {
      this.#s.dropSessions!.run(node);
      this.#s.dropNode!.run(node);
    });
  }
}
