// Domains, accounts (their password hashes, quotas and settings) and aliases in the SQLite store.
// Each change is one IMMEDIATE transaction of its own (changes.ts `write`); removing an account
// removes its messages in steps (bulk.ts).

import type Database from 'better-sqlite3';
import { DEFAULT_MAILBOXES, StoreError, type Account, type AccountSettings, type Alias, type Domain } from '../store.ts';
import type { SqliteContext } from './context.ts';
import type { SqliteBulk } from './bulk.ts';
import { dropThreadRows } from './threads.ts';
import type { Query } from './writes.ts';
import { changedFields } from '../journal.ts';

type Row = Record<string, any>;

const now = () => Date.now();

function toAccount(r: Row): Account {
  return {
    id: r.id,
    address: r.address,
    domain: r.domain,
    passwordHash: r.password_hash,
    quota: r.quota,
    usedBytes: r.used_bytes,
    messageCount: r.message_count,
    settings: JSON.parse(r.settings) as AccountSettings,
    createdAt: new Date(r.created_at),
  };
}

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1);
}

export class SqliteAccounts {
  readonly #db: Database.Database;
  readonly #q: Query;
  readonly #write: SqliteContext['write'];
  readonly #bulk: SqliteBulk;
  readonly #insertMailbox: SqliteContext['insertMailbox'];

  constructor(ctx: SqliteContext) {
    this.#db = ctx.db;
    this.#q = ctx.q;
    this.#write = ctx.write;
    this.#bulk = ctx.bulk;
    this.#insertMailbox = ctx.insertMailbox;
  }

  // ---------------------------------------------------------------- domains
  async addDomain(name: string): Promise<Domain> {
    const n = name.toLowerCase();
    return this.#write(() => {
      if (this.#q('SELECT 1 FROM domains WHERE name = ?').get(n)) throw new StoreError('exists', `domain ${n} already exists`);
      const t = now();
      this.#q('INSERT INTO domains (name, created_at) VALUES (?, ?)').run(n, t);
      return { name: n, createdAt: new Date(t) };
    });
  }

  async removeDomain(name: string): Promise<void> {
    const n = name.toLowerCase();
    this.#write(() => {
      if (!this.#q('SELECT 1 FROM domains WHERE name = ?').get(n)) throw new StoreError('not-found', `no such domain ${n}`);
      const users = this.#q('SELECT count(*) FROM accounts WHERE domain = ?').pluck().get(n) as number;
      if (users > 0) throw new StoreError('invalid', `domain ${n} still has ${users} account(s); remove them first`);
      this.#q('DELETE FROM aliases WHERE domain = ?').run(n);
      this.#q('DELETE FROM domains WHERE name = ?').run(n);
    });
  }

  async listDomains(): Promise<Domain[]> {
    return (this.#q('SELECT * FROM domains ORDER BY name').all() as Row[]).map((r) => ({ name: r.name, createdAt: new Date(r.created_at) }));
  }

  async getDomain(name: string): Promise<Domain | null> {
    const r = this.#q('SELECT * FROM domains WHERE name = ?').get(name.toLowerCase()) as Row | undefined;
    return r ? { name: r.name, createdAt: new Date(r.created_at) } : null;
  }

  // ---------------------------------------------------------------- accounts
  async createAccount(a: { address: string; passwordHash: string; quota?: number; settings?: AccountSettings }): Promise<Account> {
    const address = a.address.toLowerCase();
    const domain = domainOf(address);
    return this.#write((tx) => {
      if (!this.#q('SELECT 1 FROM domains WHERE name = ?').get(domain)) throw new StoreError('not-found', `unknown domain ${domain}`);
      if (this.#q('SELECT 1 FROM accounts WHERE address = ?').get(address)) throw new StoreError('exists', `account ${address} already exists`);
      const t = now();
      const info = this.#db
        .prepare('INSERT INTO accounts (address, domain, password_hash, quota, settings, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(address, domain, a.passwordHash, a.quota ?? 0, JSON.stringify(a.settings ?? {}), t);
      const accountId = Number(info.lastInsertRowid);
      // Account ids may be given out again: no thread rows of an earlier account with this id.
      while (dropThreadRows((sql) => this.#q(sql), accountId, 10_000) === 10_000);
      tx.changes.push({ kind: 'account-created', accountId, address });
      for (const m of DEFAULT_MAILBOXES) this.#insertMailbox(tx, accountId, m.name, m.specialUse, true);
      return toAccount(this.#q('SELECT * FROM accounts WHERE id = ?').get(accountId) as Row);
    });
  }

  async getAccount(address: string): Promise<Account | null> {
    const r = this.#q('SELECT * FROM accounts WHERE address = ?').get(address.toLowerCase()) as Row | undefined;
    return r ? toAccount(r) : null;
  }

  async getAccountById(id: number): Promise<Account | null> {
    const r = this.#q('SELECT * FROM accounts WHERE id = ?').get(id) as Row | undefined;
    return r ? toAccount(r) : null;
  }

  async listAccounts(domain?: string): Promise<Account[]> {
    const rows = domain
      ? (this.#q('SELECT * FROM accounts WHERE domain = ? ORDER BY address').all(domain.toLowerCase()) as Row[])
      : (this.#q('SELECT * FROM accounts ORDER BY address').all() as Row[]);
    return rows.map(toAccount);
  }

  async updateAccount(id: number, patch: { passwordHash?: string; quota?: number; settings?: AccountSettings }): Promise<Account> {
    return this.#write((tx) => {
      const r = this.#q('SELECT * FROM accounts WHERE id = ?').get(id) as Row | undefined;
      if (!r) throw new StoreError('not-found', `no account ${id}`);
      const fields = changedFields(patch);
      if (fields.length) tx.changes.push({ kind: 'account-updated', accountId: id, fields });
      if (patch.passwordHash !== undefined) this.#q('UPDATE accounts SET password_hash = ? WHERE id = ?').run(patch.passwordHash, id);
      if (patch.quota !== undefined) {
        if (!Number.isSafeInteger(patch.quota) || patch.quota < 0) throw new StoreError('invalid', 'quota must be a non-negative integer');
        this.#q('UPDATE accounts SET quota = ? WHERE id = ?').run(patch.quota, id);
      }
      if (patch.settings !== undefined) this.#q('UPDATE accounts SET settings = ? WHERE id = ?').run(JSON.stringify(patch.settings), id);
      return toAccount(this.#q('SELECT * FROM accounts WHERE id = ?').get(id) as Row);
    });
  }

  async removeAccount(id: number): Promise<void> {
    // The account at the first commit; its messages in steps (src/store/sqlite/bulk.ts).
    await this.#bulk.removeAccount(id);
  }

  // ---------------------------------------------------------------- aliases
  async setAlias(address: string, targets: string[]): Promise<Alias> {
    const a = address.toLowerCase();
    const domain = a.startsWith('@') ? a.slice(1) : domainOf(a);
    const ts = [...new Set(targets.map((t) => t.toLowerCase()))];
    return this.#write(() => {
      if (!this.#q('SELECT 1 FROM domains WHERE name = ?').get(domain)) throw new StoreError('not-found', `unknown domain ${domain}`);
      if (ts.length === 0) throw new StoreError('invalid', 'an alias needs at least one target');
      const t = now();
      this.#db
        .prepare('INSERT INTO aliases (address, domain, targets, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET targets = excluded.targets')
        .run(a, domain, JSON.stringify(ts), t);
      const r = this.#q('SELECT * FROM aliases WHERE address = ?').get(a) as Row;
      return { address: r.address, targets: JSON.parse(r.targets), createdAt: new Date(r.created_at) };
    });
  }

  async removeAlias(address: string): Promise<void> {
    this.#write(() => {
      const info = this.#q('DELETE FROM aliases WHERE address = ?').run(address.toLowerCase());
      if (info.changes === 0) throw new StoreError('not-found', `no alias ${address}`);
    });
  }

  async getAlias(address: string): Promise<Alias | null> {
    const r = this.#q('SELECT * FROM aliases WHERE address = ?').get(address.toLowerCase()) as Row | undefined;
    return r ? { address: r.address, targets: JSON.parse(r.targets), createdAt: new Date(r.created_at) } : null;
  }

  async listAliases(domain?: string): Promise<Alias[]> {
    const rows = domain
      ? (this.#q('SELECT * FROM aliases WHERE domain = ? ORDER BY address').all(domain.toLowerCase()) as Row[])
      : (this.#q('SELECT * FROM aliases ORDER BY address').all() as Row[]);
    return rows.map((r) => ({ address: r.address, targets: JSON.parse(r.targets), createdAt: new Date(r.created_at) }));
  }
}
