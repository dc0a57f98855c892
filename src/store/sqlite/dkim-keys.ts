// DkimKeyStore on SQLite (table dkim_keys, migration 8).

import type Database from 'better-sqlite3';
import { StoreError } from '../store.ts';
import { dkimKeyFromRow, type DkimKey, type DkimKeyStore, type DkimAlgorithm } from '../dkim-keys.ts';

type Row = Record<string, any>;

export class SqliteDkimKeys implements DkimKeyStore {
  readonly #db: Database.Database;
  #activeStmt: Database.Statement | null = null;
  constructor(db: Database.Database) {
    this.#db = db;
  }

  async add(k: { domain: string; selector: string; algorithm: DkimAlgorithm; privateKeyPem: string; now: number }): Promise<DkimKey> {
    const domain = k.domain.toLowerCase();
    const selector = k.selector.toLowerCase();
    try {
      const r = this.#db
        .prepare('INSERT INTO dkim_keys (domain, selector, algorithm, private_key, created_at, active) VALUES (?, ?, ?, ?, ?, 1) RETURNING *')
        .get(domain, selector, k.algorithm, k.privateKeyPem, k.now) as Row;
      return dkimKeyFromRow(r);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new StoreError('exists', `DKIM selector ${selector} already exists for ${domain}`);
      }
      throw err;
    }
  }

  async list(domain?: string): Promise<DkimKey[]> {
    const rows = domain === undefined
      ? this.#db.prepare('SELECT * FROM dkim_keys ORDER BY domain, created_at, selector').all()
      : this.#db.prepare('SELECT * FROM dkim_keys WHERE domain = ? ORDER BY created_at, selector').all(domain.toLowerCase());
    return (rows as Row[]).map(dkimKeyFromRow);
  }

  async get(domain: string, selector: string): Promise<DkimKey | null> {
    const r = this.#db.prepare('SELECT * FROM dkim_keys WHERE domain = ? AND selector = ?').get(domain.toLowerCase(), selector.toLowerCase()) as Row | undefined;
    return r ? dkimKeyFromRow(r) : null;
  }

  async active(domain: string): Promise<DkimKey[]> {
    // Once per outgoing message: prepared once.
    this.#activeStmt ??= this.#db.prepare('SELECT * FROM dkim_keys WHERE domain = ? AND active = 1 ORDER BY created_at, selector');
    const rows = this.#activeStmt.all(domain.toLowerCase());
    return (rows as Row[]).map(dkimKeyFromRow);
  }

  async retire(domain: string, selector: string, now: number): Promise<DkimKey | null> {
    const r = this.#db
      .prepare('UPDATE dkim_keys SET active = 0, retired_at = coalesce(retired_at, ?) WHERE domain = ? AND selector = ? RETURNING *')
      .get(now, domain.toLowerCase(), selector.toLowerCase()) as Row | undefined;
    return r ? dkimKeyFromRow(r) : null;
  }

  async remove(domain: string, selector: string): Promise<boolean> {
    return this.#db.prepare('DELETE FROM dkim_keys WHERE domain = ? AND selector = ?').run(domain.toLowerCase(), selector.toLowerCase()).changes > 0;
  }
}
