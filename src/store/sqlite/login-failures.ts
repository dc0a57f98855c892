// LoginFailureStore on SQLite (table login_failures, migration 5). better-sqlite3 is synchronous,
// so each statement is atomic with respect to this process; the upsert makes `record` atomic
// with respect to the admin CLI too. Anyone can fail a login: the writes go through the store's
// group commit (changes.ts, no fsync on the event loop) and the reads through its read gate.

import type Database from 'better-sqlite3';
import type { LoginFailureFilter, LoginFailureRow, LoginFailureStore } from '../login-failures.ts';
import type { Tx } from './writes.ts';

type Row = Record<string, any>;

function toRow(r: Row): LoginFailureRow {
  return {
    ip: r.ip,
    username: r.username,
    score: r.score,
    failures: r.failures,
    firstFailureAt: r.first_failure_at,
    lastFailureAt: r.last_failure_at,
  };
}

function where(f: LoginFailureFilter | undefined): { sql: string; args: string[] } {
  const parts: string[] = [];
  const args: string[] = [];
  for (const col of ['ip', 'username'] as const) {
    const v = f?.[col];
    if (v === undefined) continue;
    parts.push(`${col} = ?`);
    args.push(v);
  }
  return { sql: parts.length ? ` WHERE ${parts.join(' AND ')}` : '', args };
}

export class SqliteLoginFailures implements LoginFailureStore {
  readonly #db: Database.Database;
  readonly #record: Database.Statement;
  readonly #batched: <T>(fn: (tx: Tx) => T) => Promise<T>;
  readonly #read: <T>(fn: () => Promise<T>) => Promise<T>;
  constructor(db: Database.Database, batched: <T>(fn: (tx: Tx) => T) => Promise<T>, read: <T>(fn: () => Promise<T>) => Promise<T>) {
    this.#db = db;
    this.#batched = batched;
    this.#read = read;
    this.#record = db.prepare(`
INSERT INTO login_failures (ip, username, score, failures, first_failure_at, last_failure_at) VALUES (?, ?, 1, 1, ?, ?)
ON CONFLICT (ip, username) DO UPDATE SET
  score = score * power(0.5, max(0, excluded.last_failure_at - last_failure_at) / CAST(? AS REAL)) + 1,
  failures = failures + 1,
  last_failure_at = max(last_failure_at, excluded.last_failure_at)
RETURNING *`);
  }

  async list(filter?: LoginFailureFilter): Promise<LoginFailureRow[]> {
    const w = where(filter);
    return this.#read(async () => (this.#db.prepare(`SELECT * FROM login_failures${w.sql} ORDER BY ip, username`).all(...w.args) as Row[]).map(toRow));
  }

  async record(ip: string, username: string, at: number, halfLifeMs: number): Promise<LoginFailureRow> {
    return this.#batched(() => toRow(this.#record.get(ip, username, at, at, Math.max(1, halfLifeMs)) as Row));
  }

  async clear(filter?: LoginFailureFilter): Promise<number> {
    const w = where(filter);
    return this.#batched(() => this.#db.prepare(`DELETE FROM login_failures${w.sql}`).run(...w.args).changes);
  }

  async prune(before: number): Promise<number> {
    return this.#batched(() => this.#db.prepare('DELETE FROM login_failures WHERE last_failure_at < ?').run(before).changes);
  }
}
