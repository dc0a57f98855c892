// Domains, accounts (their password hashes, quotas and settings) and aliases in the PostgreSQL
// store, each change one transaction (changes.ts). The domain row lock serialises the creation of
// accounts and aliases within a domain; removing an account takes its namespace lock, then its
// mailboxes and its row (the lock order in postgres-store.ts).

import { changedFields } from '../journal.ts';
import { DEFAULT_MAILBOXES, StoreError, type Account, type AccountSettings, type Alias, type Domain } from '../store.ts';
import type { PgContext, PgQuery } from './context.ts';
import type { PgWrites } from './writes.ts';

type Row = Record<string, any>;

function toAccount(r: Row): Account {
  return {
    id: r.id,
    address: r.address,
    domain: r.domain,
    passwordHash: r.password_hash,
    quota: r.quota,
    usedBytes: r.used_bytes,
    messageCount: r.message_count,
    settings: (r.settings ?? {}) as AccountSettings,
    createdAt: r.created_at as Date,
  };
}

function toAlias(r: Row): Alias {
  return { address: r.address, targets: r.targets as string[], createdAt: r.created_at as Date };
}

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1);
}

function validateQuota(q: number | undefined): number {
  if (q === undefined) return 0;
  if (!Number.isSafeInteger(q) || q < 0) throw new StoreError('invalid', 'quota must be a non-negative integer');
  return q;
}

function noNul(s: string, what: string): string {
  if (s.includes('\0')) throw new StoreError('invalid', `${what} contains a NUL character`);
  return s;
}

export class PgAccounts {
  readonly #q: PgQuery;
  readonly #tx: PgContext['tx'];
  readonly #lockAccountNamespace: PgContext['lockAccountNamespace'];
  readonly #wr: PgWrites;
  readonly #insertMailbox: PgContext['insertMailbox'];

  constructor(ctx: PgContext) {
    this.#q = ctx.q;
    this.#tx = ctx.tx;
    this.#lockAccountNamespace = ctx.lockAccountNamespace;
    this.#wr = ctx.wr;
    this.#insertMailbox = ctx.insertMailbox;
  }

  // ---------------------------------------------------------------- domains
  async addDomain(name: string): Promise<Domain> {
    const n = noNul(name.toLowerCase(), 'domain');
    if (n === '') throw new StoreError('invalid', 'empty domain name');
    return this.#tx(undefined, async ({ c }) => {
      const r = await c.query('INSERT INTO domains (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING name, created_at', [n]);
      if (r.rowCount === 0) throw new StoreError('exists', `domain ${n} already exists`);
      return { name: r.rows[0].name, createdAt: r.rows[0].created_at };
    });
  }

  async removeDomain(name: string): Promise<void> {
    const n = name.toLowerCase();
    await this.#tx(undefined, async ({ c }) => {
      const d = await c.query('SELECT name FROM domains WHERE name = $1 FOR UPDATE', [n]);
      if (d.rowCount === 0) throw new StoreError('not-found', `no such domain ${n}`);
      const users = (await c.query('SELECT count(*) AS n FROM accounts WHERE domain = $1', [n])).rows[0].n as number;
      if (users > 0) throw new StoreError('invalid', `domain ${n} still has ${users} account(s); remove them first`);
      await c.query('DELETE FROM aliases WHERE domain = $1', [n]);
      await c.query('DELETE FROM domains WHERE name = $1', [n]);
    });
  }

  async listDomains(): Promise<Domain[]> {
    return (await this.#q('SELECT name, created_at FROM domains ORDER BY name COLLATE "C"')).map((r) => ({ name: r.name, createdAt: r.created_at }));
  }

  async getDomain(name: string): Promise<Domain | null> {
    const r = (await this.#q('SELECT name, created_at FROM domains WHERE name = $1', [name.toLowerCase()]))[0];
    return r ? { name: r.name, createdAt: r.created_at } : null;
  }

  // ---------------------------------------------------------------- accounts
  async createAccount(a: { address: string; passwordHash: string; quota?: number; settings?: AccountSettings }): Promise<Account> {
    const address = noNul(a.address.toLowerCase(), 'address');
    const domain = domainOf(address);
    const quota = validateQuota(a.quota);
    return this.#tx(undefined, async (tx) => {
      const { c } = tx;
      // The domain row lock serialises account/alias creation within the domain (address clash).
      const d = await c.query('SELECT name FROM domains WHERE name = $1 FOR UPDATE', [domain]);
      if (d.rowCount === 0) throw new StoreError('not-found', `unknown domain ${domain}`);
      if ((await c.query('SELECT 1 FROM accounts WHERE address = $1', [address])).rowCount) throw new StoreError('exists', `account ${address} already exists`);
      const r = await c.query('INSERT INTO accounts (address, domain, password_hash, quota, settings) VALUES ($1, $2, $3, $4, $5) RETURNING *', [
        address,
        domain,
        a.passwordHash,
        quota,
        JSON.stringify(a.settings ?? {}),
      ]);
      const account = toAccount(r.rows[0]);
      tx.changes.push({ kind: 'account-created', accountId: account.id, address });
      for (const m of DEFAULT_MAILBOXES) await this.#insertMailbox(tx, account.id, m.name, m.specialUse, true);
      return account;
    });
  }

  async getAccount(address: string): Promise<Account | null> {
    const r = (await this.#q('SELECT * FROM accounts WHERE address = $1', [address.toLowerCase()]))[0];
    return r ? toAccount(r) : null;
  }

  async getAccountById(id: number): Promise<Account | null> {
    const r = (await this.#q('SELECT * FROM accounts WHERE id = $1', [id]))[0];
    return r ? toAccount(r) : null;
  }

  async listAccounts(domain?: string): Promise<Account[]> {
    const rows =
      domain !== undefined
        ? await this.#q('SELECT * FROM accounts WHERE domain = $1 ORDER BY address COLLATE "C"', [domain.toLowerCase()])
        : await this.#q('SELECT * FROM accounts ORDER BY address COLLATE "C"');
    return rows.map(toAccount);
  }

  async updateAccount(id: number, patch: { passwordHash?: string; quota?: number; settings?: AccountSettings }): Promise<Account> {
    if (patch.quota !== undefined) validateQuota(patch.quota);
    return this.#tx(undefined, async ({ c, changes }) => {
      const r = await c.query(
        `UPDATE accounts SET password_hash = coalesce($2, password_hash), quota = coalesce($3, quota), settings = coalesce($4::jsonb, settings)
         WHERE id = $1 RETURNING *`,
        [id, patch.passwordHash ?? null, patch.quota ?? null, patch.settings !== undefined ? JSON.stringify(patch.settings) : null],
      );
      if (r.rowCount === 0) throw new StoreError('not-found', `no account ${id}`);
      const fields = changedFields(patch);
      if (fields.length) changes.push({ kind: 'account-updated', accountId: id, fields });
      return toAccount(r.rows[0]);
    });
  }

  async removeAccount(id: number): Promise<void> {
    await this.#tx(undefined, async (tx) => {
      const { c } = tx;
      await this.#lockAccountNamespace(c, id);
      const boxes = (await c.query('SELECT id FROM mailboxes WHERE account_id = $1 ORDER BY id FOR NO KEY UPDATE', [id])).rows.map((r: Row) => r.id as number);
      const acc = await c.query('SELECT id FROM accounts WHERE id = $1 FOR UPDATE', [id]);
      if (acc.rowCount === 0) throw new StoreError('not-found', `no account ${id}`);
      // Counted per blob in SQL: a 131,072-message account is one row per distinct body here.
      const del = await c.query(
        'WITH d AS (DELETE FROM messages WHERE mailbox_id = ANY($1::bigint[]) RETURNING blob_id) SELECT blob_id, count(*)::bigint AS n FROM d GROUP BY blob_id',
        [boxes],
      );
      // POP3 retained copies hold references too (and would block the mailbox cascade).
      const kept = await c.query('WITH d AS (DELETE FROM pop_retained WHERE account_id = $1 RETURNING blob_id) SELECT blob_id, count(*)::bigint AS n FROM d GROUP BY blob_id', [id]);
      const deltas = new Map<string, number>();
      for (const r of [...del.rows, ...kept.rows] as Row[]) deltas.set(r.blob_id, (deltas.get(r.blob_id) ?? 0) - (r.n as number));
      await this.#wr.adjustBlobs(c, deltas);
      await c.query('DELETE FROM subscriptions WHERE account_id = $1', [id]);
      await c.query('DELETE FROM accounts WHERE id = $1', [id]); // cascades to mailboxes and the expunge log
      tx.changes.push({ kind: 'account-removed', accountId: id });
    });
  }

  // ---------------------------------------------------------------- aliases
  async setAlias(address: string, targets: string[]): Promise<Alias> {
    const a = noNul(address.toLowerCase(), 'alias');
    const domain = a.startsWith('@') ? a.slice(1) : domainOf(a);
    const ts = [...new Set(targets.map((t) => noNul(t.toLowerCase(), 'alias target')))];
    return this.#tx(undefined, async ({ c }) => {
      const d = await c.query('SELECT name FROM domains WHERE name = $1 FOR UPDATE', [domain]);
      if (d.rowCount === 0) throw new StoreError('not-found', `unknown domain ${domain}`);
      if (ts.length === 0) throw new StoreError('invalid', 'an alias needs at least one target');
      const r = await c.query(
        `INSERT INTO aliases (address, domain, targets) VALUES ($1, $2, $3::jsonb)
         ON CONFLICT (address) DO UPDATE SET targets = EXCLUDED.targets RETURNING *`,
        [a, domain, JSON.stringify(ts)],
      );
      return toAlias(r.rows[0]);
    });
  }

  async removeAlias(address: string): Promise<void> {
    await this.#tx(undefined, async ({ c }) => {
      const r = await c.query('DELETE FROM aliases WHERE address = $1', [address.toLowerCase()]);
      if (r.rowCount === 0) throw new StoreError('not-found', `no alias ${address}`);
    });
  }

  async getAlias(address: string): Promise<Alias | null> {
    const r = (await this.#q('SELECT * FROM aliases WHERE address = $1', [address.toLowerCase()]))[0];
    return r ? toAlias(r) : null;
  }

  async listAliases(domain?: string): Promise<Alias[]> {
    const rows =
      domain !== undefined
        ? await this.#q('SELECT * FROM aliases WHERE domain = $1 ORDER BY address COLLATE "C"', [domain.toLowerCase()])
        : await this.#q('SELECT * FROM aliases ORDER BY address COLLATE "C"');
    return rows.map(toAlias);
  }
}
