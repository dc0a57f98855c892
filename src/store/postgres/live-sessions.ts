// LiveSessionStore on PostgreSQL (tables live_nodes, live_sessions: migration 11), shared by every
// node on the database. A claim is one transaction holding a transaction-level advisory lock on
// (protocol, account), so two nodes claiming the last free slot at once are serialised and one of
// them is refused. synchronous_commit is off for these transactions: the rows describe open
// connections, which a crash ends anyway, so a claim need not wait for the WAL flush.

import type pg from 'pg';
import type { LiveProtocol, LiveSessionStore } from '../live-sessions.ts';

/** Advisory lock key space of live-session claims (pg_advisory_xact_lock(int, int)). */
const LOCK_CLASS = 0x50424c53; // 'PBLS'

export class PgLiveSessions implements LiveSessionStore {
  readonly #pool: pg.Pool;
  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async #tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.#pool.connect();
    let broken = false;
    try {
      await c.query('BEGIN');
      await c.query('SET LOCAL synchronous_commit = off');
      const v = await fn(c);
      await c.query('COMMIT');
      return v;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => (broken = true));
      throw err;
    } finally {
      c.release(broken);
    }
  }

  async heartbeat(node: string, now: number, staleBefore: number): Promise<boolean> {
    return this.#tx(async (c) => {
      const known = ((await c.query('UPDATE live_nodes SET heartbeat_at = $1 WHERE node = $2', [now, node])).rowCount ?? 0) > 0;
      if (!known) await c.query('INSERT INTO live_nodes (node, heartbeat_at) VALUES ($1, $2) ON CONFLICT (node) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at', [node, now]);
      await c.query('DELETE FROM live_sessions WHERE node IN (SELECT node FROM live_nodes WHERE heartbeat_at < $1)', [staleBefore]);
      await c.query('DELETE FROM live_nodes WHERE heartbeat_at < $1', [staleBefore]);
      await c.query('DELETE FROM live_sessions s WHERE NOT EXISTS (SELECT 1 FROM live_nodes n WHERE n.node = s.node)');
      return known;
    });
  }

  async claim(node: string, protocol: LiveProtocol, accountId: number, limit: number, now: number, staleBefore: number): Promise<number | null> {
    return this.#tx(async (c) => {
      // One lock per (protocol, account): claims of other accounts never wait for each other.
      await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_CLASS, `${protocol}:${accountId}`]);
      const n = Number(
        (
          await c.query(
            `SELECT count(*) AS n FROM live_sessions s JOIN live_nodes l ON l.node = s.node
             WHERE s.protocol = $1 AND s.account_id = $2 AND l.heartbeat_at >= $3`,
            [protocol, accountId, staleBefore],
          )
        ).rows[0].n,
      );
      if (n >= limit) return null;
      const r = await c.query('INSERT INTO live_sessions (node, protocol, account_id, started_at) VALUES ($1, $2, $3, $4) RETURNING id', [node, protocol, accountId, now]);
      return Number(r.rows[0].id);
    });
  }

  async restore(node: string, sessions: ReadonlyArray<{ protocol: LiveProtocol; accountId: number }>, now: number): Promise<number[]> {
    return this.#tx(async (c) => {
      const ids: number[] = [];
      for (const s of sessions) {
        const r = await c.query('INSERT INTO live_sessions (node, protocol, account_id, started_at) VALUES ($1, $2, $3, $4) RETURNING id', [node, s.protocol, s.accountId, now]);
        ids.push(Number(r.rows[0].id));
      }
      return ids;
    });
  }

  async release(id: number): Promise<void> {
    await this.#pool.query('DELETE FROM live_sessions WHERE id = $1', [id]);
  }

  async count(protocol: LiveProtocol, accountId: number, staleBefore: number): Promise<number> {
    const r = await this.#pool.query(
      `SELECT count(*) AS n FROM live_sessions s JOIN live_nodes l ON l.node = s.node
       WHERE s.protocol = $1 AND s.account_id = $2 AND l.heartbeat_at >= $3`,
      [protocol, accountId, staleBefore],
    );
    return Number(r.rows[0].n);
  }

  async dropNode(node: string): Promise<void> {
    await this.#tx(async (c) => {
      await c.query('DELETE FROM live_sessions WHERE node = $1', [node]);
      await c.query('DELETE FROM live_nodes WHERE node = $1', [node]);
    });
  }
}
