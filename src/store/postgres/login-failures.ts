// LoginFailureStore on PostgreSQL (table login_failures, migration 4): `record` is one upsert, so
// several server processes and the admin CLI can write at once without losing a failure.

import type pg from 'pg';
import type { LoginFailureFilter, LoginFailureRow, LoginFailureStore } from '../login-failures.ts';

type Row = Record<string, any>;

function toRow(r: Row): LoginFailureRow {
  return {
    ip: r.ip,
    username: r.username,
    score: Number(r.score),
    failures: Number(r.failures),
    firstFailureAt: Number(r.first_failure_at),
    lastFailureAt: Number(r.last_failure_at),
  };
}

function where(f: LoginFailureFilter | undefined): { sql: string; args: string[] } {
  const parts: string[] = [];
  const args: string[] = [];
  for (const col of ['ip', 'username'] as const) {
    const v = f?.[col];
    if (v === undefined) continue;
    args.push(v);
    parts.push(`${col} = $${args.length}`);
  }
  return { sql: parts.length ? ` WHERE ${parts.join(' AND ')}` : '', args };
}

export class PgLoginFailures implements LoginFailureStore {
  readonly #pool: pg.Pool;
  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async list(filter?: LoginFailureFilter): Promise<LoginFailureRow[]> {
    const w = where(filter);
    return (await this.#pool.query(`SELECT * FROM login_failures${w.sql} ORDER BY ip COLLATE "C", username COLLATE "C"`, w.args)).rows.map(toRow);
  }

  async record(ip: string, username: string, at: number, halfLifeMs: number): Promise<LoginFailureRow> {
    const r = await this.#pool.query(
      `INSERT INTO login_failures AS t (ip, username, score, failures, first_failure_at, last_failure_at) VALUES ($1, $2, 1, 1, $3, $3)
       ON CONFLICT (ip, username) DO UPDATE SET
         score = t.score * power(0.5, greatest(0, excluded.last_failure_at - t.last_failure_at)::float8 / $4::float8) + 1,
         failures = t.failures + 1,
         last_failure_at = greatest(t.last_failure_at, excluded.last_failure_at)
       RETURNING *`,
      [ip, username, at, Math.max(1, halfLifeMs)],
    );
    return toRow(r.rows[0]!);
  }

  async clear(filter?: LoginFailureFilter): Promise<number> {
    const w = where(filter);
    return (await this.#pool.query(`DELETE FROM login_failures${w.sql}`, w.args)).rowCount ?? 0;
  }

  async prune(before: number): Promise<number> {
    return (await this.#pool.query('DELETE FROM login_failures WHERE last_failure_at < $1', [before])).rowCount ?? 0;
  }
}
