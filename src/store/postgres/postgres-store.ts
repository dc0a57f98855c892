// The PostgreSQL store: metadata and bodies in one database (pg Pool), so several server processes
// can share it. Every write is one READ COMMITTED transaction whose invariants rest on row locks,
// always taken in the same order so concurrent writers queue instead of deadlocking:
//
//   account advisory lock (mailbox namespace: create/rename/delete/remove account)
//   → mailbox rows (FOR NO KEY UPDATE, ascending id)  — serialises UID/MODSEQ allocation
//   → account rows (ascending id)                      — serialises quota accounting
//   → blob rows (ascending id)                         — serialises reference counting
//
// UID/MODSEQ: `UPDATE mailboxes SET uid_next = uid_next + n … RETURNING` under the mailbox lock.
// Quota: `UPDATE accounts SET used_bytes = used_bytes + $n WHERE … used_bytes + $n <= quota`: the
// row lock makes the check-and-add atomic, so usage is exact and never passes the quota.
// Blobs: `INSERT … ON CONFLICT (id) DO UPDATE SET refcount = blobs.refcount + n` in the delivery
// transaction; decremented on expunge and deleted at 0 in the same transaction. A blob's refcount
// counts its messages plus its POP3 retained rows (pop_retained, migration 3: outside the quota).
// Delivery and APPEND run those steps inside one server-side function (pb_deliver, migration 2),
// so a busy mailbox stays locked for one statement plus COMMIT.
//
// Changes are published on the bus after COMMIT, in commit order: each transaction takes a ticket
// just before sending COMMIT and tickets are published strictly in order, so two commits that
// touched the same rows (the second waited for the first's locks, hence took a later ticket)
// can't be published the other way round. Each call resolves after its changes were published.
// Deadlocks or serialisation failures (which the lock order should prevent) are retried.

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import pg from 'pg';
import { LocalChangeBus, type Change, type ChangeBus } from '../bus.ts';
import { PG_MIGRATIONS } from './schema.ts';
import { PgLoginFailures } from './login-failures.ts';
import { PgQueue } from './queue.ts';
import type { LoginFailureStore } from '../login-failures.ts';
import type { QueueStore } from '../queue.ts';
import { PgDkimKeys } from './dkim-keys.ts';
import type { DkimKeyStore } from '../dkim-keys.ts';
import {
  DEFAULT_MAILBOXES,
  MAILBOX_SEPARATOR,
  MAX_SUBSCRIPTIONS,
  POP_DELETED_KEYWORD,
  StoreError,
  SystemFlag,
  normalizeKeywords,
  type Account,
  type AccountSettings,
  type AppendItem,
  type Alias,
  type BlobRef,
  type CopyResult,
  type DeliveryResult,
  type Domain,
  type FlagOp,
  type Mailbox,
  type MailboxStatus,
  type MessageRecord,
  type MessageSummary,
  type NewMessage,
  type PopRetainedMessage,
  type PopUpdate,
  type SearchData,
  type SearchHeaderField,
  type SortData,
  type MessageTextPlan,
  type SpecialUse,
  type StagedBlob,
  type Store,
  type StoreFlagsResult,
  type WriteOptions,
  storedSentDay,
} from '../store.ts';
import type { MessageMeta, MimeNode } from '../../protocol/mime/types.ts';
import { textPlan } from '../../protocol/mime/text-plan.ts';
import { scanBodies } from '../body-search.ts';
import { checkMailboxCount, checkMailboxName, mailboxLimits, type MailboxLimits } from '../mailbox-limits.ts';
import { sortedUnique, type ChunkOptions } from '../chunks.ts';
import { nextTurn } from '../../obs/loop-lag.ts';
import { PgWrites, type Tx } from './writes.ts';
import { appendRowsPg } from './append-many.ts';
import { PgSortKeys, deliverWithSortKeys, sortKeysParams } from './sort.ts';
import { PgThreads } from './threads.ts';

export interface PostgresStoreOptions {
  /** postgres://user@host:port/db */
  url: string;
  /** Schema to keep the tables in (created if missing); default: the connection's search_path (public). */
  schema?: string;
  bus?: ChangeBus;
  /** Pool size (default 10). */
  maxConnections?: number;
  /** Mailbox tree limits (defaults: src/store/mailbox-limits.ts). */
  mailboxLimits?: Partial<MailboxLimits>;
  /**
   * Upper bound for a body staged without `maxBytes`. Staged bodies are held in memory until the
   * delivery transaction writes them, so this bounds memory per staging (default 64 MiB).
   */
  defaultMaxBlobBytes?: number;
  /** Rows per statement of a bulk command (default 2,000; tests use small ones). */
  bulk?: ChunkOptions;
  /** Keep queued messages whose recipients are all final (tests inspect the final states). */
  queueKeepFinal?: boolean;
}

type Row = Record<string, any>;
type Client = pg.PoolClient;

const DEFAULT_MAX_BLOB = 64 * 1024 * 1024;
const STREAM_CHUNK = 256 * 1024;
const MAX_RETRIES = 8;
const RETRYABLE = new Set(['40001', '40P01']); // serialization_failure, deadlock_detected

// int8 → number (our counters stay far below 2^53).
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === 20) return (v: string | Buffer) => Number(typeof v === 'string' ? v : v.readBigInt64BE(0));
    return pg.types.getTypeParser(oid, format);
  }) as pg.CustomTypesConfig['getTypeParser'],
};

export async function openPostgresStore(opts: PostgresStoreOptions): Promise<Store> {
  const schema = opts.schema;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new StoreError('invalid', `bad schema name ${schema}`);
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.maxConnections ?? 10,
    types: TYPES,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  pool.on('error', (err) => console.error('postgres pool: idle client error:', err.message));
  try {
    await migrate(pool, schema);
  } catch (err) {
    await pool.end().catch(() => {});
    throw err;
  }
  return new PostgresStore(pool, opts, lockSpace(schema ?? 'public'));
}

/** A 31-bit number from the schema name: the first key of this store's advisory locks. */
function lockSpace(schema: string): number {
  return createHash('sha256').update(`pillarbox:${schema}`).digest().readInt32BE(0) & 0x7fffffff;
}

async function migrate(pool: pg.Pool, schema: string | undefined): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock($1, 0)', [lockSpace(schema ?? 'public')]);
    if (schema) await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await c.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    const done = new Set((await c.query('SELECT version FROM schema_migrations')).rows.map((r: Row) => r.version as number));
    for (const m of PG_MIGRATIONS) {
      if (done.has(m.version)) continue;
      await c.query(m.sql(Date.now() / 1000));
      await c.query('INSERT INTO schema_migrations (version) VALUES ($1)', [m.version]);
    }
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    c.release();
  }
}

/**
 * Publishes each transaction's changes in ticket order (tickets are taken just before COMMIT). A
 * big transaction's changes (a 131,072-message COPY) go out in slices with an event-loop turn
 * between them; later tickets wait, so the order stays the commit order.
 */
class Publisher {
  #next = 0;
  #head = 0;
  #draining = false;
  readonly #settled = new Map<number, { changes: readonly Change[] | null; done: () => void }>();
  private readonly bus: ChangeBus;
  constructor(bus: ChangeBus) {
    this.bus = bus;
  }

  take(): number {
    return this.#next++;
  }

  /** `changes` null: the commit failed, nothing to publish. Resolves once published. */
  settle(ticket: number, changes: readonly Change[] | null): Promise<void> {
    return new Promise((done) => {
      this.#settled.set(ticket, { changes, done });
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#settled.has(this.#head)) {
        const s = this.#settled.get(this.#head)!;
        this.#settled.delete(this.#head);
        this.#head++;
        const list = s.changes ?? [];
        for (let i = 0; i < list.length; ) {
          // About PUBLISH_SLICE messages per turn (an expunge change counts its UIDs).
          let j = i;
          for (let w = 0; j < list.length && w < PUBLISH_SLICE; j++) {
            const c = list[j]!;
            w += c.kind === 'messages-expunged' ? c.uids.length : 1;
          }
          if (i > 0) await nextTurn();
          try {
            this.bus.publish(i === 0 && j === list.length ? list : list.slice(i, j));
          } catch (err) {
            console.error('change bus publish failed:', err);
          }
          i = j;
        }
        s.done();
      }
    } finally {
      this.#draining = false;
    }
  }
}

const PUBLISH_SLICE = 2000;

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

function toMailbox(r: Row): Mailbox {
  return {
    id: r.id,
    accountId: r.account_id,
    name: r.name,
    specialUse: (r.special_use ?? null) as SpecialUse | null,
    uidValidity: r.uid_validity,
    uidNext: r.uid_next,
    highestModseq: r.highest_modseq,
  };
}

function toAlias(r: Row): Alias {
  return { address: r.address, targets: r.targets as string[], createdAt: r.created_at as Date };
}

function toSummary(r: Row): MessageSummary {
  return {
    uid: r.uid,
    modseq: r.modseq,
    systemFlags: r.system_flags,
    keywords: r.keywords as string[],
    internalDate: r.internal_date,
    savedAt: r.saved_at,
    size: r.size,
    blobId: r.blob_id,
  };
}

const SUMMARY_COLS = 'uid, modseq, system_flags, keywords, internal_date, saved_at, size, blob_id';
const LIST_PAGE = 2048;

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1);
}

/** INBOX is case-insensitive (RFC 9051 §5.1), also as the first level of a hierarchical name. */
export function normalizeName(name: string): string {
  if (name.toUpperCase() === 'INBOX') return 'INBOX';
  if (name.toUpperCase().startsWith('INBOX' + MAILBOX_SEPARATOR)) return 'INBOX' + name.slice(5);
  return name;
}

function validateName(name: string): string {
  const n = normalizeName(name);
  if (n === '' || n.length > 1000) throw new StoreError('invalid', 'mailbox name must be 1–1000 characters');
  if (n.startsWith(MAILBOX_SEPARATOR) || n.endsWith(MAILBOX_SEPARATOR) || n.includes(MAILBOX_SEPARATOR + MAILBOX_SEPARATOR))
    throw new StoreError('invalid', 'mailbox name has an empty hierarchy level');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(n)) throw new StoreError('invalid', 'mailbox name contains control characters');
  return n;
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

function stamp(changes: Change[], origin: string | undefined): void {
  if (origin === undefined) return;
  for (const c of changes) c.origin = origin;
}

function pgCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly bus: ChangeBus;
  readonly loginFailures: LoginFailureStore;
  readonly queue: QueueStore;
  readonly dkimKeys: DkimKeyStore;
  readonly #pool: pg.Pool;
  readonly #publisher: Publisher;
  readonly #lockSpace: number;
  readonly #defaultMaxBlob: number;
  readonly #wr: PgWrites;
  /** Staged bodies waiting for their delivery transaction: id → bytes + pin count. */
  readonly #staged = new Map<string, { data: Buffer; pins: number }>();
  #closed = false;

  constructor(pool: pg.Pool, opts: PostgresStoreOptions, lockSpace: number) {
    this.#pool = pool;
    this.loginFailures = new PgLoginFailures(pool);
    this.queue = new PgQueue(pool, { staged: (id) => this.#staged.get(id)?.data, keepFinal: opts.queueKeepFinal ?? false });
    this.dkimKeys = new PgDkimKeys(pool);
    this.bus = opts.bus ?? new LocalChangeBus();
    this.#publisher = new Publisher(this.bus);
    this.#lockSpace = lockSpace;
    this.#defaultMaxBlob = opts.defaultMaxBlobBytes ?? DEFAULT_MAX_BLOB;
    this.#wr = new PgWrites(opts.bulk?.maxRows ?? 2000);
    this.#limits = mailboxLimits(opts.mailboxLimits);
  }

  readonly #limits: MailboxLimits;

  async #countMailboxes(c: pg.PoolClient, accountId: number): Promise<number> {
    return Number((await c.query('SELECT count(*) AS n FROM mailboxes WHERE account_id = $1', [accountId])).rows[0].n);
  }

  #check(): void {
    if (this.#closed) throw new StoreError('invalid', 'store is closed');
  }

  async #q(text: string, values?: unknown[]): Promise<Row[]> {
    this.#check();
    return (await this.#pool.query(text, values)).rows;
  }

  /** One write transaction, retried on deadlock/serialisation failure; publishes after COMMIT. */
  async #tx<T>(origin: string | undefined, fn: (tx: Tx) => Promise<T>): Promise<T> {
    this.#check();
    for (let attempt = 0; ; attempt++) {
      const c = await this.#pool.connect();
      const tx: Tx = { c, changes: [] };
      let ticket: number | null = null;
      let broken: Error | undefined;
      try {
        await c.query('BEGIN');
        const result = await fn(tx);
        stamp(tx.changes, origin);
        ticket = this.#publisher.take();
        await c.query('COMMIT');
        const t = ticket;
        ticket = null;
        c.release();
        await this.#publisher.settle(t, tx.changes);
        return result;
      } catch (err) {
        if (ticket !== null) void this.#publisher.settle(ticket, null);
        try {
          await c.query('ROLLBACK');
        } catch (e) {
          broken = e as Error;
        }
        c.release(broken);
        if (RETRYABLE.has(pgCode(err) ?? '') && attempt < MAX_RETRIES) {
          await sleep(Math.random() * 5 * (attempt + 1));
          continue;
        }
        throw err;
      }
    }
  }

  /** Serialises mailbox-namespace changes of one account (create/rename/delete/remove). */
  async #lockAccountNamespace(c: Client, accountId: number): Promise<void> {
    await c.query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [this.#lockSpace, accountId % 2147483647]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#staged.clear();
    await this.#pool.end();
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
    return this.#tx(undefined, async ({ c }) => {
      const r = await c.query(
        `UPDATE accounts SET password_hash = coalesce($2, password_hash), quota = coalesce($3, quota), settings = coalesce($4::jsonb, settings)
         WHERE id = $1 RETURNING *`,
        [id, patch.passwordHash ?? null, patch.quota ?? null, patch.settings !== undefined ? JSON.stringify(patch.settings) : null],
      );
      if (r.rowCount === 0) throw new StoreError('not-found', `no account ${id}`);
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

  // ---------------------------------------------------------------- mailboxes
  async #insertMailbox(
    tx: Tx,
    accountId: number,
    name: string,
    specialUse: SpecialUse | null,
    subscribed: boolean,
    init: { uidNext?: number; highestModseq?: number } = {},
  ): Promise<Mailbox> {
    const r = await tx.c.query(
      `INSERT INTO mailboxes (account_id, name, special_use, subscribed, uid_validity, uid_next, highest_modseq)
       VALUES ($1, $2, $3, false, nextval('uidvalidity_seq'), $4, $5) RETURNING *`,
      [accountId, name, specialUse, init.uidNext ?? 1, init.highestModseq ?? 1],
    );
    if (subscribed) await tx.c.query('INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING', [accountId, name]);
    const mb = toMailbox(r.rows[0]);
    tx.changes.push({ kind: 'mailbox-created', accountId, mailboxId: mb.id, name });
    return mb;
  }

  async listMailboxes(accountId: number): Promise<Mailbox[]> {
    return (await this.#q(`SELECT * FROM mailboxes WHERE account_id = $1 ORDER BY name <> 'INBOX', name COLLATE "C"`, [accountId])).map(toMailbox);
  }

  async getMailbox(accountId: number, name: string): Promise<Mailbox | null> {
    const r = (await this.#q('SELECT * FROM mailboxes WHERE account_id = $1 AND name = $2', [accountId, normalizeName(name)]))[0];
    return r ? toMailbox(r) : null;
  }

  async getMailboxById(mailboxId: number): Promise<Mailbox | null> {
    const r = (await this.#q('SELECT * FROM mailboxes WHERE id = $1', [mailboxId]))[0];
    return r ? toMailbox(r) : null;
  }

  async createMailbox(accountId: number, name: string, opts: { specialUse?: SpecialUse | null; subscribed?: boolean } & WriteOptions = {}): Promise<Mailbox> {
    const n = validateName(name);
    checkMailboxName(n, this.#limits);
    return this.#tx(opts.origin, async (tx) => {
      const { c } = tx;
      await this.#lockAccountNamespace(c, accountId);
      if (!(await c.query('SELECT 1 FROM accounts WHERE id = $1', [accountId])).rowCount) throw new StoreError('not-found', `no account ${accountId}`);
      if ((await c.query('SELECT 1 FROM mailboxes WHERE account_id = $1 AND name = $2', [accountId, n])).rowCount)
        throw new StoreError('exists', `mailbox ${n} already exists`);
      checkMailboxCount(await this.#countMailboxes(c, accountId), 1, this.#limits);
      return this.#insertMailbox(tx, accountId, n, opts.specialUse ?? null, opts.subscribed ?? false);
    });
  }

  async renameMailbox(accountId: number, oldName: string, newName: string, opts: WriteOptions = {}): Promise<void> {
    const from = normalizeName(oldName);
    const to = validateName(newName);
    checkMailboxName(to, this.#limits);
    await this.#tx(opts.origin, async (tx) => {
      const { c } = tx;
      await this.#lockAccountNamespace(c, accountId);
      const src = (await c.query('SELECT * FROM mailboxes WHERE account_id = $1 AND name = $2 FOR NO KEY UPDATE', [accountId, from])).rows[0] as Row | undefined;
      if (!src) throw new StoreError('not-found', `no mailbox ${from}`);
      if ((await c.query('SELECT 1 FROM mailboxes WHERE account_id = $1 AND name = $2', [accountId, to])).rowCount)
        throw new StoreError('exists', `mailbox ${to} already exists`);
      if (to === from || to.startsWith(from + MAILBOX_SEPARATOR)) throw new StoreError('invalid', 'cannot rename a mailbox into itself');
      if (from === 'INBOX') {
        // RFC 9051 §6.3.6: renaming INBOX moves all its messages into a new mailbox with the new
        // name and leaves INBOX empty; INBOX's inferiors are unaffected. The messages keep their
        // UIDs (the new mailbox has its own UIDVALIDITY); INBOX logs them as expunged.
        const modseq = (await c.query('UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = $1 RETURNING highest_modseq', [src.id])).rows[0]
          .highest_modseq as number;
        checkMailboxCount(await this.#countMailboxes(c, accountId), 1, this.#limits);
        const dst = await this.#insertMailbox(tx, accountId, to, null, false, { uidNext: src.uid_next, highestModseq: modseq });
        // One statement moves the rows and logs them expunged; the UIDs come back in order.
        const moved = await c.query(
          `WITH m AS (UPDATE messages SET mailbox_id = $2, modseq = $3 WHERE mailbox_id = $1 RETURNING uid),
                l AS (INSERT INTO expunged (mailbox_id, uid, modseq) SELECT $1, uid, $3 FROM m ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq)
           SELECT uid FROM m ORDER BY uid`,
          [src.id, dst.id, modseq],
        );
        // One Change per chunk of UIDs, so a listening session applies a bounded list at a time.
        const uids = moved.rows.map((r: Row) => r.uid as number);
        for (let i = 0; i < uids.length; i += this.#wr.chunk)
          tx.changes.push({ kind: 'messages-expunged', accountId, mailboxId: src.id, uids: uids.slice(i, i + this.#wr.chunk), modseq });
        return;
      }
      // The mailbox and its inferiors (`from/…`) move under `to`.
      const rows = (
        await c.query(
          `SELECT id, name FROM mailboxes WHERE account_id = $1 AND (name = $2 OR left(name, $3) = $4) ORDER BY length(name), name COLLATE "C"`,
          [accountId, from, from.length + 1, from + MAILBOX_SEPARATOR],
        )
      ).rows as Row[];
      const renames = rows.map((r) => ({ id: r.id as number, oldName: r.name as string, newName: to + (r.name as string).slice(from.length) }));
      for (const r of renames) checkMailboxName(r.newName, this.#limits); // the inferiors move deeper too
      const clash = await c.query('SELECT name FROM mailboxes WHERE account_id = $1 AND name = ANY($2::text[]) AND NOT (id = ANY($3::bigint[])) LIMIT 1', [
        accountId,
        renames.map((r) => r.newName),
        renames.map((r) => r.id),
      ]);
      if (clash.rowCount) throw new StoreError('exists', `mailbox ${clash.rows[0].name} already exists`);
      const spec = JSON.stringify(renames.map((r) => ({ id: r.id, name: r.newName })));
      // Two steps so no intermediate state collides with (account_id, name) uniqueness.
      await c.query(`UPDATE mailboxes SET name = chr(1) || id::text WHERE id = ANY($1::bigint[])`, [renames.map((r) => r.id)]);
      await c.query(`UPDATE mailboxes m SET name = u.name FROM jsonb_to_recordset($1::jsonb) AS u(id bigint, name text) WHERE m.id = u.id`, [spec]);
      for (const r of renames) tx.changes.push({ kind: 'mailbox-renamed', accountId, mailboxId: r.id, oldName: r.oldName, newName: r.newName });
    });
  }

  async deleteMailbox(accountId: number, name: string, opts: WriteOptions = {}): Promise<void> {
    const n = normalizeName(name);
    if (n === 'INBOX') throw new StoreError('inbox', 'INBOX cannot be deleted');
    await this.#tx(opts.origin, async (tx) => {
      const { c } = tx;
      await this.#lockAccountNamespace(c, accountId);
      const mb = (await c.query('SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2 FOR NO KEY UPDATE', [accountId, n])).rows[0] as Row | undefined;
      if (!mb) throw new StoreError('not-found', `no mailbox ${n}`);
      // Counted per blob in SQL: a 131,072-message mailbox comes back as one row per distinct body.
      const del = await c.query(
        `WITH d AS (DELETE FROM messages WHERE mailbox_id = $1 RETURNING size, blob_id)
         SELECT blob_id, count(*)::bigint AS n, sum(size)::bigint AS bytes FROM d GROUP BY blob_id`,
        [mb.id],
      );
      if (del.rowCount) {
        const deltas = new Map<string, number>();
        let bytes = 0;
        let count = 0;
        for (const r of del.rows as Row[]) {
          deltas.set(r.blob_id, -(r.n as number));
          bytes += r.bytes as number;
          count += r.n as number;
        }
        await c.query('UPDATE accounts SET used_bytes = used_bytes - $2, message_count = message_count - $3 WHERE id = $1', [accountId, bytes, count]);
        await this.#wr.adjustBlobs(c, deltas);
      }
      await c.query('DELETE FROM mailboxes WHERE id = $1', [mb.id]);
      tx.changes.push({ kind: 'mailbox-deleted', accountId, mailboxId: mb.id, name: n });
    });
  }

  async setSubscribed(accountId: number, name: string, subscribed: boolean, opts: WriteOptions = {}): Promise<void> {
    const n = validateName(name);
    await this.#tx(opts.origin, async (tx) => {
      const { c } = tx;
      // Published only when the list changed (IMAP NOTIFY SubscriptionChange, RFC 5465 §5.5).
      const changed = () => tx.changes.push({ kind: 'subscription-changed', accountId, name: n, subscribed });
      if (!subscribed) {
        if ((await c.query('DELETE FROM subscriptions WHERE account_id = $1 AND name = $2', [accountId, n])).rowCount) changed();
        return;
      }
      // The account row lock orders concurrent SUBSCRIBEs of one account, so the cap holds.
      if ((await c.query('SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE', [accountId])).rowCount === 0) throw new StoreError('not-found', `no account ${accountId}`);
      const r = await c.query(
        `INSERT INTO subscriptions (account_id, name) SELECT $1, $2
         WHERE (SELECT count(*) FROM subscriptions WHERE account_id = $1) < $3 ON CONFLICT DO NOTHING`,
        [accountId, n, MAX_SUBSCRIPTIONS],
      );
      if (r.rowCount) changed();
      else if ((await c.query('SELECT 1 FROM subscriptions WHERE account_id = $1 AND name = $2', [accountId, n])).rowCount === 0)
        throw new StoreError('limit', `at most ${MAX_SUBSCRIPTIONS} subscriptions`);
    });
  }

  async claimRecent(mailboxId: number, uidBelow: number, claim: boolean): Promise<number> {
    // The row lock of the UPDATE orders two claims: the second reads the first one's boundary.
    const r = claim
      ? await this.#q(
          `UPDATE mailboxes m SET recent_uid = greatest(o.recent_uid, $2) FROM (SELECT id, recent_uid FROM mailboxes WHERE id = $1 FOR UPDATE) o
           WHERE m.id = o.id RETURNING o.recent_uid AS b`,
          [mailboxId, uidBelow],
        )
      : await this.#q('SELECT recent_uid AS b FROM mailboxes WHERE id = $1', [mailboxId]);
    if (!r[0]) throw new StoreError('not-found', `no mailbox ${mailboxId}`);
    return Number(r[0].b);
  }

  async listSubscriptions(accountId: number): Promise<string[]> {
    return (await this.#q('SELECT name FROM subscriptions WHERE account_id = $1', [accountId])).map((r) => r.name as string);
  }

  async mailboxStatus(mailboxId: number): Promise<MailboxStatus> {
    const r = (
      await this.#q(
        `SELECT mb.uid_next, mb.uid_validity, mb.highest_modseq, s.*
         FROM mailboxes mb CROSS JOIN LATERAL (
           SELECT count(*) AS messages,
                  count(*) FILTER (WHERE system_flags & ${SystemFlag.Seen} = 0) AS unseen,
                  count(*) FILTER (WHERE system_flags & ${SystemFlag.Deleted} <> 0) AS deleted,
                  coalesce(sum(size), 0)::bigint AS size,
                  count(*) FILTER (WHERE uid >= mb.recent_uid) AS recent
           FROM messages WHERE mailbox_id = mb.id) s
         WHERE mb.id = $1`,
        [mailboxId],
      )
    )[0];
    if (!r) throw new StoreError('not-found', `no mailbox ${mailboxId}`);
    return {
      messages: r.messages,
      unseen: r.unseen,
      deleted: r.deleted,
      size: r.size,
      uidNext: r.uid_next,
      uidValidity: r.uid_validity,
      highestModseq: r.highest_modseq,
      recent: r.recent,
    };
  }

  // ---------------------------------------------------------------- messages
  async listMessages(mailboxId: number, opts: { changedSince?: number } = {}): Promise<MessageSummary[]> {
    // One query read through a cursor, LIST_PAGE rows per FETCH: each page is turned into
    // summaries on its own (a 131,072-message mailbox is 64 short steps, not one long one).
    this.#check();
    const c = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await c.query('BEGIN READ ONLY');
      await c.query(
        `DECLARE pb_list NO SCROLL CURSOR FOR SELECT ${SUMMARY_COLS} FROM messages WHERE mailbox_id = $1 ${opts.changedSince !== undefined ? 'AND modseq > $2' : ''} ORDER BY uid`,
        opts.changedSince !== undefined ? [mailboxId, opts.changedSince] : [mailboxId],
      );
      const out: MessageSummary[] = [];
      for (;;) {
        const rows = (await c.query(`FETCH ${LIST_PAGE} FROM pb_list`)).rows as Row[];
        for (const r of rows) out.push(toSummary(r));
        if (rows.length < LIST_PAGE) break;
        await nextTurn();
      }
      await c.query('COMMIT');
      return out;
    } catch (err) {
      broken = err as Error;
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      c.release(broken);
    }
  }

  async getMessages(mailboxId: number, uids: number[]): Promise<MessageRecord[]> {
    if (uids.length === 0) return [];
    const rows = await this.#q(
      `SELECT m.uid, m.modseq, m.system_flags, m.keywords, m.internal_date, m.saved_at, m.size, m.blob_id, b.meta
       FROM messages m JOIN blobs b ON b.id = m.blob_id
       WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[]) ORDER BY m.uid`,
      [mailboxId, sortedUnique(uids)],
    );
    return rows.map((r) => ({ ...toSummary(r), meta: JSON.parse(r.meta as string) as MessageMeta }));
  }

  async getSearchData(mailboxId: number, uids: number[], opts: { fields?: boolean } = {}): Promise<SearchData[]> {
    if (uids.length === 0) return [];
    const search = (opts.fields ?? true)
      ? "(b.meta::json -> 'search')::text"
      : "json_build_object('subject', b.meta::json #> '{search,subject}', 'from', b.meta::json #> '{search,from}', 'to', b.meta::json #> '{search,to}', 'cc', b.meta::json #> '{search,cc}', 'bcc', b.meta::json #> '{search,bcc}', 'fields', json_build_array())::text";
    const rows = await this.#q(
      `SELECT m.uid, (b.meta::json ->> 'sentDate') AS sent, (b.meta::json ->> 'sentDay') AS day, (b.meta::json #>> '{envelope,date}') AS edate, ${search} AS search
       FROM messages m JOIN blobs b ON b.id = m.blob_id
       WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[]) ORDER BY m.uid`,
      [mailboxId, sortedUnique(uids)],
    );
    return rows.map((r) => {
      const sentDate = r.sent == null ? null : Number(r.sent);
      return {
        uid: r.uid as number,
        sentDate,
        // sentDay absent in metas cached before it existed: from the stored Date: (RFC 3501 §6.4.4).
        sentDay: storedSentDay(r.day == null ? undefined : Number(r.day), r.edate, sentDate),
        search: JSON.parse(r.search as string) as SearchData['search'],
      };
    });
  }

  readonly #sort = new PgSortKeys((text, values) => this.#q(text, values));

  async getSortData(mailboxId: number, uids: number[], opts: { thread?: boolean } = {}): Promise<SortData[]> {
    return this.#sort.read(mailboxId, uids, opts.thread ?? false);
  }

  readonly #threads = new PgThreads((text, values) => this.#q(text, values), (fn) => this.#tx(undefined, fn));

  async getThreadIds(mailboxId: number, uids: number[]): Promise<Map<number, number>> {
    return this.#threads.idsOf(mailboxId, uids);
  }

  async threadMembers(mailboxId: number, threadId: number): Promise<number[]> {
    return this.#threads.members(mailboxId, threadId);
  }

  async getTextPlans(mailboxId: number, uids: number[]): Promise<MessageTextPlan[]> {
    if (uids.length === 0) return [];
    const rows = await this.#q(
      `SELECT m.uid, m.size, m.blob_id, (b.meta::json -> 'root')::text AS root
       FROM messages m JOIN blobs b ON b.id = m.blob_id
       WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[]) ORDER BY m.uid`,
      [mailboxId, sortedUnique(uids)],
    );
    return rows.map((r) => ({ uid: r.uid as number, size: Number(r.size), blobId: r.blob_id as string, plan: textPlan(JSON.parse(r.root as string) as MimeNode) }));
  }

  async matchBody(mailboxId: number, uids: number[], needles: string[]): Promise<number[][]> {
    if (needles.length === 0) return [];
    // Bodies live in the database: read by range with several queries in flight.
    return scanBodies((id, start, end) => this.readBlob(id, start, end), await this.getTextPlans(mailboxId, uids), needles);
  }

  async matchHeader(mailboxId: number, field: SearchHeaderField, value: string): Promise<number[]> {
    if (!['subject', 'from', 'to', 'cc', 'bcc'].includes(field)) throw new StoreError('invalid', `no search field ${field}`);
    // Compared here, not with SQL lower(): its case folding depends on the database's locale.
    const needle = value.toLowerCase();
    const rows = await this.#q(
      `SELECT m.uid, b.meta::json #>> $2::text[] AS v
       FROM messages m JOIN blobs b ON b.id = m.blob_id
       WHERE m.mailbox_id = $1 ORDER BY m.uid`,
      [mailboxId, ['search', field]],
    );
    return rows.filter((r) => typeof r.v === 'string' && (r.v as string).toLowerCase().includes(needle)).map((r) => r.uid as number);
  }

  async expungedSince(mailboxId: number, sinceModseq: number): Promise<number[]> {
    return (await this.#q('SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid', [mailboxId, sinceModseq])).map((r) => r.uid as number);
  }

  // ---------------------------------------------------------------- blobs
  /**
   * Buffers the body in memory (bounded by maxBytes, default `defaultMaxBlobBytes`): it is written
   * to the database by the delivery transaction that references it, so it is durable exactly when
   * that commit is. A too-big stream is drained to its end (so the peer's protocol stays in step)
   * and refused with 'invalid'.
   */
  async stageBlob(input: Readable | Buffer, opts: { maxBytes?: number } = {}): Promise<StagedBlob> {
    this.#check();
    const max = Math.min(opts.maxBytes ?? this.#defaultMaxBlob, 1024 * 1024 * 1024 - 1);
    let data: Buffer;
    if (Buffer.isBuffer(input)) {
      if (input.length > max) throw new StoreError('invalid', `message larger than ${max} bytes`);
      data = Buffer.from(input); // our own copy: the caller may reuse its buffer
    } else {
      const chunks: Buffer[] = [];
      let size = 0;
      let tooBig = false;
      for await (const chunk of input) {
        const buf: Buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
        if (tooBig) continue;
        if (size + buf.length > max) {
          tooBig = true;
          chunks.length = 0;
          continue;
        }
        chunks.push(buf);
        size += buf.length;
      }
      if (tooBig) throw new StoreError('invalid', `message larger than ${max} bytes`);
      data = Buffer.concat(chunks, size);
    }
    const id = createHash('sha256').update(data).digest('hex');
    const entry = this.#staged.get(id);
    if (entry) entry.pins++;
    else this.#staged.set(id, { data, pins: 1 });
    let released = false;
    return {
      id,
      size: data.length,
      release: () => {
        if (released) return;
        released = true;
        const e = this.#staged.get(id);
        if (!e) return;
        if (--e.pins <= 0) this.#staged.delete(id);
      },
    };
  }

  async readBlob(blobId: string, start?: number, end?: number): Promise<Buffer> {
    const staged = this.#staged.get(blobId);
    if (staged) return sliceRange(staged.data, start, end);
    this.#check();
    const s = Math.max(0, start ?? 0);
    const len = end === undefined ? null : Math.max(0, end - s);
    // Text result format (hex): pg's per-query `binary` option decodes bytea through a UTF-8
    // string in pg 8, which corrupts non-text bytes.
    const r =
      len === null
        ? await this.#pool.query('SELECT substring(data FROM $2::int) AS d FROM blobs WHERE id = $1', [blobId, s + 1])
        : await this.#pool.query('SELECT substring(data FROM $2::int FOR $3::int) AS d FROM blobs WHERE id = $1', [blobId, s + 1, len]);
    if (r.rowCount === 0) throw new StoreError('not-found', `blob ${blobId} not found`);
    return r.rows[0].d as Buffer;
  }

  streamBlob(blobId: string, start?: number, end?: number): Readable {
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      const staged = self.#staged.get(blobId);
      let size: number;
      if (staged) size = staged.data.length;
      else {
        const r = await self.#q('SELECT size FROM blobs WHERE id = $1', [blobId]);
        if (r.length === 0) throw new StoreError('not-found', `blob ${blobId} not found`);
        size = r[0].size as number;
      }
      const stop = Math.min(end ?? size, size);
      for (let pos = Math.max(0, start ?? 0); pos < stop; ) {
        const n = Math.min(STREAM_CHUNK, stop - pos);
        const buf = await self.readBlob(blobId, pos, pos + n);
        if (buf.length === 0) break;
        yield buf;
        pos += buf.length;
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }


  // ---------------------------------------------------------------- writes



  /** Runs pb_deliver (migration 2): quota, blob reference and message rows in one statement. */
  async #deliverRows(c: Client, blob: BlobRef, meta: MessageMeta, targets: NewMessage[]): Promise<Row[]> {
    const staged = this.#staged.get(blob.id);
    const now = Date.now();
    const spec = targets.map((t) => ({
      mailbox_id: t.mailboxId,
      system_flags: (t.systemFlags ?? 0) & 0x1f,
      keywords: normalizeKeywords(t.keywords ?? []),
      internal_date: Math.trunc(t.internalDate ?? now),
    }));
    try {
      // pb_deliver and the body's SORT/THREAD keys (src/store/postgres/sort.ts) in one statement.
      const r = await c.query(deliverWithSortKeys(), [
        blob.id,
        staged ? staged.data.length : blob.size,
        JSON.stringify(meta),
        staged ? staged.data : null,
        JSON.stringify(spec),
        now,
        ...sortKeysParams(blob.id, meta),
      ]);
      return (r.rows as Row[]).sort((a, b) => a.idx - b.idx);
    } catch (err) {
      if (pgCode(err) === 'P0002') throw new StoreError('not-found', `blob ${blob.id} is neither staged nor stored`);
      throw err;
    }
  }

  async deliver(blob: BlobRef, meta: MessageMeta, targets: NewMessage[], opts: WriteOptions = {}): Promise<DeliveryResult[]> {
    if (targets.length === 0) return [];
    return this.#tx(opts.origin, async (tx) => {
      const rows = await this.#deliverRows(tx.c, blob, meta, targets);
      return rows.map((r): DeliveryResult => {
        if (r.res === 'ok') {
          tx.changes.push({ kind: 'message-added', accountId: r.acc, mailboxId: r.mbox, uid: r.new_uid, modseq: r.new_modseq, keywords: normalizeKeywords(targets[r.idx as number]!.keywords ?? []) });
          return { ok: true, accountId: r.acc, mailboxId: r.mbox, uid: r.new_uid, modseq: r.new_modseq };
        }
        return { ok: false, reason: r.res === 'quota' ? 'quota' : 'no-mailbox', accountId: r.acc, mailboxId: r.mbox };
      });
    });
  }

  async append(blob: BlobRef, meta: MessageMeta, target: NewMessage, opts: WriteOptions = {}): Promise<{ uid: number; modseq: number; uidValidity: number }> {
    return this.#tx(opts.origin, async (tx) => {
      const r = (await this.#deliverRows(tx.c, blob, meta, [target]))[0]!;
      if (r.res === 'no-mailbox') throw new StoreError('not-found', `no mailbox ${target.mailboxId}`);
      if (r.res === 'quota') throw new StoreError('quota', 'mailbox is full: quota exceeded');
      tx.changes.push({ kind: 'message-added', accountId: r.acc, mailboxId: r.mbox, uid: r.new_uid, modseq: r.new_modseq, keywords: normalizeKeywords(target.keywords ?? []) });
      return { uid: r.new_uid, modseq: r.new_modseq, uidValidity: r.uidv };
    });
  }

  async appendMessages(mailboxId: number, items: AppendItem[], opts: { replace?: { mailboxId: number; uid: number } } & WriteOptions = {}) {
    const deps = { wr: this.#wr, deliverRows: (c: Client, b: BlobRef, m: MessageMeta, t: NewMessage[]) => this.#deliverRows(c, b, m, t) };
    return this.#tx(opts.origin, (tx) => appendRowsPg(tx, deps, mailboxId, items, opts.replace));
  }

  async storeFlags(
    mailboxId: number,
    uids: number[],
    op: FlagOp,
    flags: { systemFlags: number; keywords: string[] },
    opts: { unchangedSince?: number } & WriteOptions = {},
  ): Promise<StoreFlagsResult> {
    return this.#tx(opts.origin, async (tx) => {
      const mb = (await this.#wr.lockMailboxes(tx.c, [mailboxId])).get(mailboxId);
      if (!mb) throw new StoreError('not-found', `no mailbox ${mailboxId}`);
      return this.#wr.flagsIn(tx, mb, uids, op, flags, opts.unchangedSince);
    });
  }


  // ---------------------------------------------------------------- POP3
  async popUpdate(inboxId: number, u: PopUpdate, opts: WriteOptions = {}): Promise<{ removed: number[]; mailbox: Mailbox | null }> {
    const moveTo: SpecialUse | null = u.action === 'trash' ? '\\Trash' : u.action === 'archive' ? '\\Archive' : null;
    return this.#tx(opts.origin, async (tx) => {
      const { c } = tx;
      // Lock order: the account's namespace lock (the target may have to be created, and must not
      // be renamed or deleted under us), then the mailboxes in ascending id, then the account row
      // (expunge), then the blobs (one pass at the end).
      let target: Row | undefined;
      if (moveTo && u.remove.length > 0) {
        const owner = (await c.query('SELECT account_id FROM mailboxes WHERE id = $1', [inboxId])).rows[0] as Row | undefined;
        if (!owner) throw new StoreError('not-found', `no mailbox ${inboxId}`);
        await this.#lockAccountNamespace(c, owner.account_id);
        target = (await c.query('SELECT * FROM mailboxes WHERE account_id = $1 AND special_use = $2 ORDER BY id LIMIT 1', [owner.account_id, moveTo])).rows[0];
        // A mailbox of the usual name without the special use is used as it is.
        target ??= (await c.query('SELECT * FROM mailboxes WHERE account_id = $1 AND name = $2', [owner.account_id, u.action === 'trash' ? 'Trash' : 'Archive']))
          .rows[0];
      }
      const inbox = (await this.#wr.lockMailboxes(c, target ? [inboxId, target.id as number] : [inboxId])).get(inboxId);
      if (!inbox) throw new StoreError('not-found', `no mailbox ${inboxId}`);
      const accountId = inbox.account_id as number;
      const present = async (uids: number[]): Promise<number[]> => {
        const want = sortedUnique(uids);
        if (want.length === 0) return [];
        const r = await c.query('SELECT uid FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid', [inboxId, want]);
        return r.rows.map((x: Row) => x.uid as number);
      };
      const remove = await present(u.remove);
      const removeSet = new Set(remove);
      // RFC 1939 §6: the UPDATE state. Retrieved messages are \Seen also where a delete moves
      // them (trash/archive); for an expunge the flag change would be pointless.
      const seen = (await present(u.seen)).filter((x) => u.action !== 'expunge' || !removeSet.has(x));
      if (seen.length) await this.#wr.flagsIn(tx, inbox, seen, 'add', { systemFlags: SystemFlag.Seen, keywords: [] });
      const blobs = new Map<string, number>();
      const ref = (id: string, n: number) => blobs.set(id, (blobs.get(id) ?? 0) + n);
      let removed: number[] = [];
      let mailbox: Mailbox | null = null;
      if (u.action === 'keep') {
        await this.#wr.flagsIn(tx, inbox, remove, 'add', { systemFlags: SystemFlag.Seen, keywords: [POP_DELETED_KEYWORD] });
      } else if (remove.length > 0) {
        if (u.retainSince !== null) {
          // Retained rows hold a blob reference each (outside the quota) until dropped below.
          const kept = await c.query(
            `INSERT INTO pop_retained (inbox_id, account_id, uid_validity, uid, blob_id, size, saved_at)
             SELECT mailbox_id, $2, $3, uid, blob_id, size, saved_at FROM messages
             WHERE mailbox_id = $1 AND uid = ANY($4::bigint[]) AND saved_at >= $5
             ON CONFLICT DO NOTHING RETURNING blob_id`,
            [inboxId, accountId, inbox.uid_validity, remove, u.retainSince],
          );
          for (const r of kept.rows as Row[]) ref(r.blob_id, 1);
        }
        if (u.action === 'expunge') {
          await this.#wr.expungeIn(tx, inbox, { uids: remove, onlyDeleted: false }, true, blobs);
        } else {
          if (!target) target = { id: (await this.#insertMailbox(tx, accountId, u.action === 'trash' ? 'Trash' : 'Archive', moveTo, true)).id };
          await this.#wr.copyIn(tx, inboxId, remove, target.id as number, true);
          mailbox = toMailbox((await c.query('SELECT * FROM mailboxes WHERE id = $1', [target.id])).rows[0]);
        }
        removed = remove;
      }
      if (u.retainSince !== null) {
        const dropped = await c.query('DELETE FROM pop_retained WHERE inbox_id = $1 AND saved_at < $2 RETURNING blob_id', [inboxId, u.retainSince]);
        for (const r of dropped.rows as Row[]) ref(r.blob_id, -1);
      }
      await this.#wr.adjustBlobs(c, blobs);
      return { removed, mailbox };
    });
  }

  async popRetained(inboxId: number, since: number): Promise<PopRetainedMessage[]> {
    const rows = await this.#q('SELECT uid_validity, uid, size, blob_id, saved_at FROM pop_retained WHERE inbox_id = $1 AND saved_at >= $2 ORDER BY saved_at, uid', [
      inboxId,
      since,
    ]);
    return rows.map((r) => ({ uidValidity: r.uid_validity, uid: r.uid, size: r.size, blobId: r.blob_id, savedAt: r.saved_at }));
  }


  async expunge(mailboxId: number, opts: { uids?: number[]; onlyDeleted?: boolean } & WriteOptions = {}): Promise<number[]> {
    const onlyDeleted = opts.onlyDeleted ?? true;
    return this.#tx(opts.origin, async (tx) => {
      const mb = (await this.#wr.lockMailboxes(tx.c, [mailboxId])).get(mailboxId);
      if (!mb) throw new StoreError('not-found', `no mailbox ${mailboxId}`);
      return this.#wr.expungeIn(tx, mb, { ...(opts.uids ? { uids: opts.uids } : {}), onlyDeleted }, true);
    });
  }


  async copyMessages(srcMailboxId: number, uids: number[], dstMailboxId: number, opts: WriteOptions = {}): Promise<CopyResult> {
    return this.#tx(opts.origin, (tx) => this.#wr.copyIn(tx, srcMailboxId, uids, dstMailboxId, false));
  }

  async moveMessages(srcMailboxId: number, uids: number[], dstMailboxId: number, opts: WriteOptions = {}): Promise<CopyResult> {
    return this.#tx(opts.origin, (tx) => this.#wr.copyIn(tx, srcMailboxId, uids, dstMailboxId, true));
  }
}

function sliceRange(data: Buffer, start?: number, end?: number): Buffer {
  const e = Math.min(end ?? data.length, data.length);
  const s = Math.min(Math.max(0, start ?? 0), e);
  return Buffer.from(data.subarray(s, e));
}
