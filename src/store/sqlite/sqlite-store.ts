// The embedded store: metadata in SQLite (better-sqlite3, WAL, synchronous=FULL so a commit is
// durable when it returns), bodies in FsBlobStore. better-sqlite3 is synchronous, so each write is
// one IMMEDIATE transaction that no other JS code can interleave with; changes are published on
// the bus right after its commit, in commit order. Because a transaction holds the event loop,
// commands over many messages run in bounded steps (bulk.ts); the row-level SQL is in writes.ts,
// the listing cache in summaries.ts.

import Database from 'better-sqlite3';
import { dirname } from 'node:path';
import { existsSync, mkdirSync } from 'node:fs';
import { Readable } from 'node:stream';
import { FsBlobStore, fsyncDir } from '../blob/fs-blob-store.ts';
import { WalSync } from './wal-sync.ts';
import { BodyScanPool } from '../blob/body-scan.ts';
import type { BodyScanItem } from '../body-search.ts';
import type { Logger } from '../../obs/log.ts';
import { LocalChangeBus, type ChangeBus } from '../bus.ts';
import { MIGRATIONS } from './schema.ts';
import { SqliteLoginFailures } from './login-failures.ts';
import { SqliteQueue } from './queue.ts';
import type { LoginFailureStore } from '../login-failures.ts';
import type { QueueStore } from '../queue.ts';
import { SqliteDkimKeys } from './dkim-keys.ts';
import type { DkimKeyStore } from '../dkim-keys.ts';
import { Held, Holds, MessageWrites, foldForSearch, newTx, prepareMeta, stamp, type Tx } from './writes.ts';
import { SummaryCache } from './summaries.ts';
import { MetaCache } from './meta-cache.ts';
import { SqliteBulk } from './bulk.ts';
import { appendRows } from './append-many.ts';
import type { ChunkOptions } from '../chunks.ts';
import {
  DEFAULT_MAILBOXES,
  MAILBOX_SEPARATOR,
  MAX_SUBSCRIPTIONS,
  StoreError,
  SystemFlag,
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
  type MessageTextPlan,
  type SpecialUse,
  type StagedBlob,
  type Store,
  type StoreFlagsResult,
  type WriteOptions,
  storedSentDay,
} from '../store.ts';
import type { MessageMeta, TextLeaf } from '../../protocol/mime/types.ts';
import { textPlan } from '../../protocol/mime/text-plan.ts';
import { checkMailboxCount, checkMailboxName, mailboxLimits, type MailboxLimits } from '../mailbox-limits.ts';

type Row = Record<string, any>;

export interface SqliteStoreOptions {
  /** SQLite database file. */
  path: string;
  /** Folder of blob files. */
  blobDir: string;
  bus?: ChangeBus;
  /** Remove orphaned blob files at open (the server does; the admin CLI doesn't). */
  collectGarbage?: boolean;
  /** Where the store reports trouble it works around (a SEARCH worker that failed). */
  log?: Logger;
  /** Mailbox tree limits (defaults: src/store/mailbox-limits.ts). */
  mailboxLimits?: Partial<MailboxLimits>;
  /** Step sizes of bulk operations (tests use small ones to cross step boundaries). */
  bulk?: ChunkOptions;
  /** Keep queued messages whose recipients are all final (tests inspect the final states). */
  queueKeepFinal?: boolean;
}

export async function openSqliteStore(opts: SqliteStoreOptions): Promise<Store> {
  mkdirSync(dirname(opts.path), { recursive: true });
  const store = new SqliteStore(opts);
  if (opts.collectGarbage) {
    // Server start (the admin CLI leaves the running server's bulk operations alone): undo staged
    // COPYs and finish drops a crash interrupted, then remove the blob files nothing references.
    store.recover();
    store.collectGarbage();
  }
  return store;
}

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

function toSummary(r: Row): MessageSummary {
  return {
    uid: r.uid,
    modseq: r.modseq,
    systemFlags: r.system_flags,
    keywords: r.keywords === '[]' ? [] : (JSON.parse(r.keywords) as string[]),
    internalDate: r.internal_date,
    savedAt: r.saved_at,
    size: r.size,
    blobId: r.blob_id,
  };
}

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1);
}

class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly bus: ChangeBus;
  readonly loginFailures: LoginFailureStore;
  readonly queue: QueueStore;
  readonly dkimKeys: DkimKeyStore;
  readonly #db: Database.Database;
  readonly #blobs: FsBlobStore;
  readonly #bodyScan: BodyScanPool;
  readonly #limits: MailboxLimits;
  readonly #holds = new Holds();
  readonly #w: MessageWrites;
  readonly #summaries: SummaryCache;
  readonly #bulk: SqliteBulk;
  readonly #log: Logger | undefined;
  #closed = false;
  readonly #walSync: WalSync;

  constructor(opts: SqliteStoreOptions) {
    this.bus = opts.bus ?? new LocalChangeBus();
    this.#limits = mailboxLimits(opts.mailboxLimits);
    this.#blobs = new FsBlobStore(opts.blobDir);
    this.#bodyScan = new BodyScanPool(opts.blobDir, (id, start, end) => this.#blobs.read(id, start, end), {
      onWorkerError: (err) => opts.log?.warn('store.body-scan-worker-failed', { err }),
    });
    const db = new Database(opts.path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 10000');
    db.pragma('foreign_keys = ON');
    // Case folding for header search, the same in migrations and at delivery (see message_search).
    db.function('pb_fold', { deterministic: true }, (v: unknown) => (typeof v === 'string' ? foldForSearch(v) : v));
    // A body's text plan from its cached parse (message_search.text_plan).
    db.function('pb_text_plan', { deterministic: true }, (meta: unknown) => JSON.stringify(textPlan((JSON.parse(meta as string) as MessageMeta).root)));
    this.#db = db;
    this.#migrate();
    this.#walSync = new WalSync(opts.path);
    // The WAL file exists now (migrations read the database): its directory entry is made durable,
    // as WalSync's fsyncs of the file's contents rely on the file being there after a crash.
    fsyncDir(dirname(opts.path));
    this.loginFailures = new SqliteLoginFailures(db);
    this.dkimKeys = new SqliteDkimKeys(db);
    this.#log = opts.log;
    const q = (sql: string) => this.#q(sql);
    this.#w = new MessageWrites(q, this.#holds);
    this.#summaries = new SummaryCache(db, q, {
      hms: (id) => {
        const h = this.#staged(id);
        return h ? h.hms : (this.#q('SELECT highest_modseq FROM mailboxes WHERE id = ?').pluck().get(id) as number | undefined);
      },
      below: (id) => this.#below(id),
    });
    this.#bulk = new SqliteBulk({
      db,
      q,
      w: this.#w,
      summaries: this.#summaries,
      bus: this.bus,
      batched: (fn, op) => this.#writeBatched(fn, op),
      insertMailbox: (tx, accountId, name, specialUse, subscribed) => this.#insertMailbox(tx, accountId, name, specialUse, subscribed),
      mailbox: (row) => this.#mailbox(row),
      chunks: opts.bulk ?? {},
    });
    this.queue = new SqliteQueue({
      q,
      write: (fn) => this.#write(fn),
      batched: (fn) => this.#writeBatched(fn, 0, true),
      unrefBlob: (tx, id, n) => this.#w.unrefBlob(tx, id, n),
      hasBlobFile: (id) => /^[0-9a-f]{64}$/.test(id) && existsSync(this.#blobs.path(id)),
      keepFinal: opts.queueKeepFinal ?? false,
    });
  }

  /** See SqliteBulk.recover. */
  recover(): void {
    const tx = newTx();
    const r = this.#db.transaction(() => this.#bulk.recover(tx)).immediate();
    // The files of blobs left unreferenced go in collectGarbage(), which runs next.
    tx.deadBlobs.length = 0;
    this.#afterCommit(tx);
    if (r.copies || r.drops) this.#log?.warn('store.bulk-recovered', { copies: r.copies, drops: r.drops });
  }

  /** A COPY staging rows in the mailbox (not part of it yet): from which UID, and the HIGHESTMODSEQ shown. */
  #staged(mailboxId: number): { uidFrom: number; hms: number } | undefined {
    // bulk_ops is empty but for a COPY or DELETE in progress: this costs a lookup in an empty table.
    return this.#q("SELECT uid_from AS uidFrom, hms FROM bulk_ops WHERE kind = 'copy' AND mailbox_id = ? ORDER BY id LIMIT 1").get(mailboxId) as
      | { uidFrom: number; hms: number }
      | undefined;
  }

  /** Rows with this UID or above are staged, not part of the mailbox. */
  #below(mailboxId: number): number {
    return this.#staged(mailboxId)?.uidFrom ?? Number.MAX_SAFE_INTEGER;
  }

  /** A mailbox row as clients see it: a COPY being staged into it does not show yet (UIDNEXT, HIGHESTMODSEQ). */
  #mailbox(r: Row): Mailbox {
    const mb = toMailbox(r);
    const hide = this.#staged(mb.id);
    if (hide) {
      mb.uidNext = hide.uidFrom;
      mb.highestModseq = hide.hms;
    }
    return mb;
  }

  #migrate(): void {
    const db = this.#db;
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    const done = new Set((db.prepare('SELECT version FROM schema_migrations').all() as Row[]).map((r) => r.version as number));
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      db.transaction(() => {
        db.exec(m.sql);
        db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(m.version, now());
      }).immediate();
    }
  }

  /** Prepared statements, compiled once per SQL text (prepare was ~4% of CPU under load). */
  readonly #stmts = new Map<string, Database.Statement>();

  #q(sql: string): Database.Statement {
    let st = this.#stmts.get(sql);
    if (!st) {
      st = this.#db.prepare(sql);
      this.#stmts.set(sql, st);
    } else if (st.reader) {
      // pluck()/raw() are modes set on the statement object: reset them for each use.
      st.pluck(false);
      st.raw(false);
    }
    return st;
  }

  collectGarbage(): void {
    const has = this.#q('SELECT 1 FROM blobs WHERE id = ?').pluck();
    this.#blobs.collectGarbage((id) => has.get(id) !== undefined);
  }

  /** Runs fn in one IMMEDIATE transaction, then removes dead blobs and publishes the changes. */
  #write<T>(fn: (tx: Tx) => T): T {
    if (this.#closed) throw new StoreError('invalid', 'store is closed');
    const tx: Tx = newTx();
    const result = this.#db.transaction(() => fn(tx)).immediate();
    this.#afterCommit(tx);
    return result;
  }

  #afterCommit(tx: Tx): void {
    this.#summaries.update(tx);
    for (const id of tx.deadBlobs) {
      try {
        this.#blobs.removeIfUnpinned(id);
      } catch (err) {
        console.error('blob removal failed', id, err);
      }
    }
    this.bus.publish(tx.changes);
  }

  // Group commit for message writes (deliver, append, flags, expunge, copy, move, POP3 update):
  // writes queued within one turn of the event loop
  // share one transaction (one fsync), each inside its own savepoint so one failure harms no
  // other. Every caller still resolves only after the shared commit is durable.
  // A batch of queue writes only (`walSync`) commits with synchronous=NORMAL and is made durable by
  // an fsync of the WAL on the thread pool (wal-sync.ts) before its callers resolve; any other write
  // in the batch makes it an ordinary FULL commit (mailbox changes are never visible before durable).
  #batch: BatchItem[] = [];
  #batchScheduled = false;
  readonly #pendingSyncs = new Set<Promise<void>>();

  #writeBatched<T>(fn: (tx: Tx) => T, op = 0, walSync = false): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreError('invalid', 'store is closed'));
    return new Promise<T>((resolve, reject) => this.#enqueue({ fn, op, walSync, resolve, reject }));
  }

  /** A batch of queue writes only is waiting for the running fdatasync (see #flushSoon). */
  #deferred = false;

  #enqueue(item: BatchItem): void {
    this.#batch.push(item);
    // Scheduled already; but a write that needs a FULL commit does not wait behind a deferral.
    if (this.#batchScheduled && !(this.#deferred && !item.walSync)) return;
    this.#batchScheduled = true;
    this.#deferred = false;
    setImmediate(() => this.#flushSoon());
  }

  // A batch of queue writes only, while an fdatasync of the WAL runs, waits for it to end: its
  // callers could only be answered after the next fdatasync anyway (WalSync.sync), so nothing is
  // answered later, and what arrives meanwhile joins the same commit (fewer commits, WAL frames and
  // fdatasyncs per message under load). Any other write flushes at once (FULL, as always).
  #flushSoon(): void {
    if (!this.#batchScheduled) return; // flushed meanwhile (close)
    const running = this.#walSync.running;
    if (running && !this.#closed && this.#batch.every((it) => it.walSync)) {
      this.#deferred = true;
      void running.then(() => {
        if (!this.#deferred) return;
        this.#deferred = false;
        setImmediate(() => this.#flushSoon());
      });
      return;
    }
    this.#flush();
  }

  #flush(): void {
    this.#batchScheduled = false;
    this.#deferred = false;
    const items = this.#batch;
    this.#batch = [];
    if (this.#closed) {
      for (const it of items) it.reject(new StoreError('invalid', 'store is closed'));
      return;
    }
    const tx: Tx = newTx();
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; err: unknown }> = [];
    const lazy = items.every((it) => it.walSync);
    try {
      if (lazy) this.#sync('NORMAL');
      this.#db
        .transaction(() => {
          for (const it of items) {
            const marks = [tx.changes.length, tx.deadBlobs.length] as const;
            tx.start = marks[0];
            tx.op = it.op;
            try {
              outcomes.push({ ok: true, value: this.#db.transaction(() => it.fn(tx))() });
            } catch (err) {
              tx.changes.length = marks[0];
              tx.deadBlobs.length = marks[1];
              outcomes.push({ ok: false, err });
            }
          }
        })
        .immediate();
    } catch (err) {
      for (const it of items) it.reject(err);
      return;
    } finally {
      if (lazy) this.#sync('FULL');
    }
    if (lazy) {
      const p = this.#walSync.sync().then(
        () => this.#settleBatch(items, tx, outcomes),
        (err) => {
          // Committed, but not known to be on disk: nobody is told it is.
          this.#log?.error('store.wal-sync-failed', { error: err instanceof Error ? err : String(err) });
          for (const it of items) it.reject(new StoreError('invalid', `commit not made durable: ${(err as Error).message}`));
        },
      );
      this.#pendingSyncs.add(p);
      void p.finally(() => this.#pendingSyncs.delete(p));
      return;
    }
    this.#settleBatch(items, tx, outcomes);
  }

  /** PRAGMA synchronous through cached statements (db.pragma() prepares one on every call). */
  #sync(level: 'NORMAL' | 'FULL'): void {
    this.#q(`PRAGMA synchronous = ${level}`).run();
  }

  /** After the commit is durable: after-commit work, then each caller's outcome. */
  #settleBatch(items: BatchItem[], tx: Tx, outcomes: Array<{ ok: true; value: unknown } | { ok: false; err: unknown }>): void {
    this.#afterCommit(tx);
    items.forEach((it, i) => {
      const o = outcomes[i]!;
      if (o.ok) it.resolve(o.value);
      // A mailbox held by a bulk operation: its savepoint undid it; run it again once released.
      else if (o.err instanceof Held) void o.err.wait.then(() => (this.#closed ? it.reject(new StoreError('invalid', 'store is closed')) : this.#enqueue(it)));
      else it.reject(o.err);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#batch.length) this.#flush();
    this.#closed = true;
    await Promise.allSettled([...this.#pendingSyncs]);
    this.#walSync.close();
    await this.#bodyScan.close();
    this.#db.close();
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
    return this.#write(() => {
      const r = this.#q('SELECT * FROM accounts WHERE id = ?').get(id) as Row | undefined;
      if (!r) throw new StoreError('not-found', `no account ${id}`);
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

  // ---------------------------------------------------------------- mailboxes
  /** UIDVALIDITY never repeats within this store: max(clock seconds, last + 1). */
  #nextUidValidity(): number {
    const last = (this.#q("SELECT value FROM settings WHERE key = 'last_uidvalidity'").pluck().get() as string | undefined) ?? '0';
    const v = Math.max(Math.floor(now() / 1000) % 0x7fffffff, Number(last) + 1);
    this.#q("INSERT INTO settings (key, value) VALUES ('last_uidvalidity', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(String(v));
    return v;
  }

  #insertMailbox(tx: Tx, accountId: number, name: string, specialUse: SpecialUse | null, subscribed: boolean, uidNext = 1): Mailbox {
    // Never the id of a deleted mailbox whose messages are still being dropped (bulk_ops).
    const id = this.#q("SELECT max(coalesce((SELECT max(id) FROM mailboxes), 0), coalesce((SELECT max(mailbox_id) FROM bulk_ops WHERE kind = 'drop'), 0)) + 1").pluck().get() as number;
    const info = this.#db
      .prepare('INSERT INTO mailboxes (id, account_id, name, special_use, subscribed, uid_validity, uid_next, highest_modseq) VALUES (?, ?, ?, ?, ?, ?, ?, 1)')
      .run(id, accountId, name, specialUse, 0, this.#nextUidValidity(), uidNext);
    if (subscribed) this.#q('INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)').run(accountId, name);
    const mb = toMailbox(this.#q('SELECT * FROM mailboxes WHERE id = ?').get(Number(info.lastInsertRowid)) as Row);
    tx.changes.push({ kind: 'mailbox-created', accountId, mailboxId: mb.id, name });
    return mb;
  }

  async listMailboxes(accountId: number): Promise<Mailbox[]> {
    return (this.#q("SELECT * FROM mailboxes WHERE account_id = ? ORDER BY name != 'INBOX', name").all(accountId) as Row[]).map((r) => this.#mailbox(r));
  }

  async getMailbox(accountId: number, name: string): Promise<Mailbox | null> {
    const r = this.#q('SELECT * FROM mailboxes WHERE account_id = ? AND name = ?').get(accountId, normalizeName(name)) as Row | undefined;
    return r ? this.#mailbox(r) : null;
  }

  async getMailboxById(mailboxId: number): Promise<Mailbox | null> {
    const r = this.#q('SELECT * FROM mailboxes WHERE id = ?').get(mailboxId) as Row | undefined;
    return r ? this.#mailbox(r) : null;
  }

  async createMailbox(accountId: number, name: string, opts: { specialUse?: SpecialUse | null; subscribed?: boolean } & WriteOptions = {}): Promise<Mailbox> {
    const n = validateName(name);
    checkMailboxName(n, this.#limits);
    return this.#write((tx) => {
      if (!this.#q('SELECT 1 FROM accounts WHERE id = ?').get(accountId)) throw new StoreError('not-found', `no account ${accountId}`);
      if (this.#q('SELECT 1 FROM mailboxes WHERE account_id = ? AND name = ?').get(accountId, n)) throw new StoreError('exists', `mailbox ${n} already exists`);
      checkMailboxCount(this.#q('SELECT count(*) FROM mailboxes WHERE account_id = ?').pluck().get(accountId) as number, 1, this.#limits);
      const mb = this.#insertMailbox(tx, accountId, n, opts.specialUse ?? null, opts.subscribed ?? false);
      stamp(tx, opts.origin);
      return mb;
    });
  }

  async renameMailbox(accountId: number, oldName: string, newName: string, opts: WriteOptions = {}): Promise<void> {
    const from = normalizeName(oldName);
    const to = validateName(newName);
    checkMailboxName(to, this.#limits);
    // RFC 9051 §6.3.6: renaming INBOX moves its messages (in steps: src/store/sqlite/bulk.ts).
    if (from === 'INBOX' && !to.startsWith(from + MAILBOX_SEPARATOR) && to !== from) {
      checkMailboxCount(this.#q('SELECT count(*) FROM mailboxes WHERE account_id = ?').pluck().get(accountId) as number, 1, this.#limits);
      return this.#bulk.renameInbox(accountId, to, opts);
    }
    this.#write((tx) => {
      const src = this.#q('SELECT * FROM mailboxes WHERE account_id = ? AND name = ?').get(accountId, from) as Row | undefined;
      if (!src) throw new StoreError('not-found', `no mailbox ${from}`);
      if (this.#q('SELECT 1 FROM mailboxes WHERE account_id = ? AND name = ?').get(accountId, to)) throw new StoreError('exists', `mailbox ${to} already exists`);
      if (to === from || to.startsWith(from + MAILBOX_SEPARATOR)) throw new StoreError('invalid', 'cannot rename a mailbox into itself');
      const rows = this.#db
        .prepare("SELECT id, name FROM mailboxes WHERE account_id = ? AND (name = ? OR substr(name, 1, ?) = ?)")
        .all(accountId, from, from.length + 1, from + MAILBOX_SEPARATOR) as Row[];
      const upd = this.#q('UPDATE mailboxes SET name = ? WHERE id = ?');
      for (const r of rows) {
        const nn = to + (r.name as string).slice(from.length);
        checkMailboxName(nn, this.#limits); // the inferiors move deeper too
        if (r.id !== src.id && this.#q('SELECT 1 FROM mailboxes WHERE account_id = ? AND name = ?').get(accountId, nn))
          throw new StoreError('exists', `mailbox ${nn} already exists`);
        upd.run(nn, r.id);
        tx.changes.push({ kind: 'mailbox-renamed', accountId, mailboxId: r.id, oldName: r.name, newName: nn });
      }
      stamp(tx, opts.origin);
    });
  }

  async deleteMailbox(accountId: number, name: string, opts: WriteOptions = {}): Promise<void> {
    const n = normalizeName(name);
    if (n === 'INBOX') throw new StoreError('inbox', 'INBOX cannot be deleted');
    // Gone at the first commit; its messages are removed in steps (src/store/sqlite/bulk.ts).
    await this.#bulk.deleteMailbox(accountId, n, opts);
  }

  async setSubscribed(accountId: number, name: string, subscribed: boolean): Promise<void> {
    const n = validateName(name);
    this.#write(() => {
      if (!subscribed) {
        this.#q('DELETE FROM subscriptions WHERE account_id = ? AND name = ?').run(accountId, n);
        return;
      }
      if (!this.#q('SELECT 1 FROM accounts WHERE id = ?').get(accountId)) throw new StoreError('not-found', `no account ${accountId}`);
      const count = this.#q('SELECT count(*) FROM subscriptions WHERE account_id = ?').pluck().get(accountId) as number;
      if (count >= MAX_SUBSCRIPTIONS && !this.#q('SELECT 1 FROM subscriptions WHERE account_id = ? AND name = ?').get(accountId, n))
        throw new StoreError('limit', `at most ${MAX_SUBSCRIPTIONS} subscriptions`);
      this.#q('INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)').run(accountId, n);
    });
  }

  async claimRecent(mailboxId: number, uidBelow: number, claim: boolean): Promise<number> {
    const read = () => {
      const b = this.#q('SELECT recent_uid FROM mailboxes WHERE id = ?').pluck().get(mailboxId) as number | undefined;
      if (b === undefined) throw new StoreError('not-found', `no mailbox ${mailboxId}`);
      return b;
    };
    if (!claim) return read();
    // One write transaction (SQLite serialises them): read and move the boundary together.
    return this.#writeBatched(() => {
      const b = read();
      if (uidBelow > b) this.#q('UPDATE mailboxes SET recent_uid = ? WHERE id = ?').run(uidBelow, mailboxId);
      return b;
    });
  }

  async listSubscriptions(accountId: number): Promise<string[]> {
    return this.#q('SELECT name FROM subscriptions WHERE account_id = ?').pluck().all(accountId) as string[];
  }

  async mailboxStatus(mailboxId: number): Promise<MailboxStatus> {
    const mb = this.#q('SELECT * FROM mailboxes WHERE id = ?').get(mailboxId) as Row | undefined;
    if (!mb) throw new StoreError('not-found', `no mailbox ${mailboxId}`);
    const v = this.#mailbox(mb);
    // Rows a COPY is staging (uid >= the UIDNEXT shown) are not part of the mailbox yet.
    const r = this.#q(
      `SELECT count(*) AS messages,
              coalesce(sum(CASE WHEN system_flags & ${SystemFlag.Seen} = 0 THEN 1 ELSE 0 END), 0) AS unseen,
              coalesce(sum(CASE WHEN system_flags & ${SystemFlag.Deleted} != 0 THEN 1 ELSE 0 END), 0) AS deleted,
              coalesce(sum(size), 0) AS size,
              coalesce(sum(CASE WHEN uid >= ? THEN 1 ELSE 0 END), 0) AS recent
       FROM messages WHERE mailbox_id = ? AND uid < ?`,
    ).get(mb.recent_uid, mailboxId, this.#below(mailboxId)) as Row;
    return {
      messages: r.messages,
      unseen: r.unseen,
      deleted: r.deleted,
      size: r.size,
      uidNext: v.uidNext,
      uidValidity: v.uidValidity,
      highestModseq: v.highestModseq,
      recent: r.recent,
    };
  }

  // ---------------------------------------------------------------- messages
  async listMessages(mailboxId: number, opts: { changedSince?: number } = {}): Promise<MessageSummary[]> {
    // Cached per mailbox, loaded in pages with event-loop turns between (src/store/sqlite/summaries.ts).
    const all = await this.#summaries.list(mailboxId);
    const since = opts.changedSince;
    if (since === undefined) return all.slice();
    const out: MessageSummary[] = [];
    for (const m of all) if (m.modseq > since) out.push(m);
    return out;
  }

  async getMessages(mailboxId: number, uids: number[]): Promise<MessageRecord[]> {
    if (uids.length === 0) return [];
    const out: MessageRecord[] = [];
    const stmt = this.#q(
      `SELECT uid, modseq, system_flags, keywords, internal_date, saved_at, size, blob_id
       FROM messages WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid`,
    );
    const sorted = [...new Set(uids)].sort((a, b) => a - b);
    for (let i = 0; i < sorted.length; i += 500) {
      for (const r of stmt.all(mailboxId, JSON.stringify(sorted.slice(i, i + 500))) as Row[]) {
        out.push({ ...toSummary(r), meta: this.#meta(r.blob_id) });
      }
    }
    return out;
  }

  async getSearchData(mailboxId: number, uids: number[], opts: { fields?: boolean } = {}): Promise<SearchData[]> {
    if (uids.length === 0) return [];
    // One json_extract with several paths parses each cached meta once, in C, and returns a small
    // JSON array; the MIME tree is never parsed here.
    const withFields = opts.fields ?? true;
    // sentDay: metas cached before it existed have none; their day comes from the stored Date: (envelope.date).
    const dates = "'$.sentDate', '$.sentDay', '$.envelope.date'";
    const paths = withFields ? `${dates}, '$.search'` : `${dates}, '$.search.subject', '$.search.from', '$.search.to', '$.search.cc', '$.search.bcc'`;
    const stmt = this.#q(
      `SELECT m.uid, json_extract(b.meta, ${paths})
       FROM messages m JOIN blobs b ON b.id = m.blob_id
       WHERE m.mailbox_id = ? AND m.uid IN (SELECT value FROM json_each(?)) ORDER BY m.uid`,
    );
    const out: SearchData[] = [];
    const sorted = [...new Set(uids)].sort((a, b) => a - b);
    for (let i = 0; i < sorted.length; i += 1000) {
      for (const r of stmt.raw().all(mailboxId, JSON.stringify(sorted.slice(i, i + 1000))) as unknown[][]) {
        const v = JSON.parse(r[1] as string) as unknown[];
        const search: SearchData['search'] = withFields
          ? (v[3] as SearchData['search'])
          : { subject: (v[3] as string) ?? '', from: (v[4] as string) ?? '', to: (v[5] as string) ?? '', cc: (v[6] as string) ?? '', bcc: (v[7] as string) ?? '', fields: [] };
        const sentDate = (v[0] as number | null) ?? null;
        out.push({ uid: r[0] as number, sentDate, sentDay: storedSentDay(v[1], v[2], sentDate), search });
      }
    }
    return out;
  }

  async matchHeader(mailboxId: number, field: SearchHeaderField, value: string): Promise<number[]> {
    // message_search (migration 4) holds the fields case-folded: instr() on the folded needle is
    // the case-insensitive substring match of RFC 9051 §6.4.4, evaluated inside SQLite.
    const column = { subject: 'subject', from: 'from_addr', to: 'to_addr', cc: 'cc_addr', bcc: 'bcc_addr' }[field];
    if (!column) throw new StoreError('invalid', `no search column for ${field}`);
    return this.#q(`SELECT uid FROM message_search WHERE mailbox_id = ? AND uid < ? AND instr(${column}, ?) > 0 ORDER BY uid`)
      .pluck()
      .all(mailboxId, this.#below(mailboxId), foldForSearch(value)) as number[];
  }

  /**
   * [uid, size, blob id, text plan JSON] of the given UIDs (ascending, distinct). From
   * message_search, stored in mailbox order next to messages: no per-message parse read. Dense
   * UIDs (a SEARCH over most of a mailbox): one range scan filtered here; sparse ones: a lookup each.
   */
  #textPlanRows(mailboxId: number, sorted: readonly number[]): Array<[number, number, string, string]> {
    if (sorted.length === 0) return [];
    const sql = `SELECT m.uid, m.size, m.blob_id, s.text_plan
       FROM messages m JOIN message_search s ON s.mailbox_id = m.mailbox_id AND s.uid = m.uid
       WHERE m.mailbox_id = ?`;
    const lo = sorted[0]!;
    const hi = sorted[sorted.length - 1]!;
    if (hi - lo < 4 * sorted.length) {
      const rows = this.#q(`${sql} AND m.uid BETWEEN ? AND ? ORDER BY m.uid`).raw().all(mailboxId, lo, hi) as Array<[number, number, string, string]>;
      const out: Array<[number, number, string, string]> = [];
      let k = 0;
      for (const r of rows) {
        while (k < sorted.length && sorted[k]! < r[0]) k++;
        if (sorted[k] === r[0]) out.push(r);
      }
      return out;
    }
    return this.#q(`${sql} AND m.uid IN (SELECT value FROM json_each(?)) ORDER BY m.uid`).raw().all(mailboxId, JSON.stringify(sorted)) as Array<[number, number, string, string]>;
  }

  async getTextPlans(mailboxId: number, uids: number[]): Promise<MessageTextPlan[]> {
    const sorted = [...new Set(uids)].sort((a, b) => a - b);
    const out: MessageTextPlan[] = [];
    for (let i = 0; i < sorted.length; i += 1000) {
      for (const r of this.#textPlanRows(mailboxId, sorted.slice(i, i + 1000))) out.push({ uid: r[0], size: r[1], blobId: r[2], plan: JSON.parse(r[3]) as TextLeaf[] });
    }
    return out;
  }

  async matchBody(mailboxId: number, uids: number[], needles: string[]): Promise<number[][]> {
    if (needles.length === 0) return [];
    const sorted = [...new Set(uids)].sort((a, b) => a - b);
    // The plans are read in slices with an event-loop turn between (other sessions go on), and go
    // to the workers as stored (JSON): the workers parse them.
    const self = this;
    async function* slices(): AsyncGenerator<BodyScanItem[]> {
      for (let i = 0; i < sorted.length; i += 1000) {
        if (i > 0) await new Promise((r) => setImmediate(r));
        yield self.#textPlanRows(mailboxId, sorted.slice(i, i + 1000)).map((r) => ({ uid: r[0], size: r[1], blobId: r[2], plan: r[3] }));
      }
    }
    return this.#bodyScan.scan(slices(), needles, sorted.length);
  }

  /** Parsed MessageMeta by blob id, bounded by entries and bytes (meta-cache.ts). */
  readonly #metaCache = new MetaCache();

  #meta(blobId: string): MessageMeta {
    return this.#metaCache.get(blobId, () => {
      const text = this.#q('SELECT meta FROM blobs WHERE id = ?').pluck().get(blobId) as string | undefined;
      if (text === undefined) throw new StoreError('not-found', `blob ${blobId} has no metadata`);
      return text;
    });
  }

  async expungedSince(mailboxId: number, sinceModseq: number): Promise<number[]> {
    return this.#q('SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid').pluck().all(mailboxId, sinceModseq) as number[];
  }

  async stageBlob(input: Readable | Buffer, opts: { maxBytes?: number } = {}): Promise<StagedBlob> {
    return this.#blobs.stage(input, opts.maxBytes);
  }

  async readBlob(blobId: string, start?: number, end?: number): Promise<Buffer> {
    try {
      return await this.#blobs.read(blobId, start, end);
    } catch (err) {
      const data = err instanceof StoreError && err.code === 'not-found' ? this.#blobData(blobId) : null;
      if (!data) throw err;
      return data.subarray(start ?? 0, end ?? data.length);
    }
  }

  streamBlob(blobId: string, start?: number, end?: number): Readable {
    const data = existsSync(this.#blobs.path(blobId)) ? null : this.#blobData(blobId);
    if (data) return Readable.from([data.subarray(start ?? 0, end ?? data.length)], { objectMode: false });
    return this.#blobs.stream(blobId, start, end);
  }

  /** A body kept in the database instead of a file (blobs.data, a queued message's: migration 13). */
  #blobData(blobId: string): Buffer | null {
    return (this.#q('SELECT data FROM blobs WHERE id = ?').pluck().get(blobId) as Buffer | null | undefined) ?? null;
  }


  async deliver(blob: BlobRef, meta: MessageMeta, targets: NewMessage[], opts: WriteOptions = {}): Promise<DeliveryResult[]> {
    // A body held in memory (memoryBlob) is durable nowhere: a mailbox takes staged files only.
    if ((blob as StagedBlob).data) throw new StoreError('invalid', 'deliver needs a staged blob, not one held in memory');
    const prepared = prepareMeta(meta);
    return this.#writeBatched((tx) => {
      const results: DeliveryResult[] = [];
      let refs = 0;
      for (const t of targets) {
        const mb = this.#q('SELECT account_id FROM mailboxes WHERE id = ?').get(t.mailboxId) as Row | undefined;
        if (!mb) {
          results.push({ ok: false, reason: 'no-mailbox', accountId: 0, mailboxId: t.mailboxId });
          continue;
        }
        if (!this.#w.fits(mb.account_id, blob.size)) {
          results.push({ ok: false, reason: 'quota', accountId: mb.account_id, mailboxId: t.mailboxId });
          continue;
        }
        if (refs === 0) this.#w.refBlob(blob, prepared, 0);
        refs++;
        const r = this.#w.insertMessage(tx, mb.account_id, t.mailboxId, blob, prepared, {
          systemFlags: t.systemFlags ?? 0,
          keywords: t.keywords ?? [],
          internalDate: t.internalDate ?? now(),
        });
        results.push({ ok: true, accountId: mb.account_id, mailboxId: t.mailboxId, uid: r.uid, modseq: r.modseq });
      }
      if (refs > 0) this.#q('UPDATE blobs SET refcount = refcount + ? WHERE id = ?').run(refs, blob.id);
      stamp(tx, opts.origin);
      return results;
    });
  }

  async append(blob: BlobRef, meta: MessageMeta, target: NewMessage, opts: WriteOptions = {}): Promise<{ uid: number; modseq: number; uidValidity: number }> {
    const prepared = prepareMeta(meta);
    return this.#writeBatched((tx) => {
      const mb = this.#q('SELECT account_id, uid_validity FROM mailboxes WHERE id = ?').get(target.mailboxId) as Row | undefined;
      if (!mb) throw new StoreError('not-found', `no mailbox ${target.mailboxId}`);
      if (!this.#w.fits(mb.account_id, blob.size)) throw new StoreError('quota', 'mailbox is full: quota exceeded');
      this.#w.refBlob(blob, prepared, 1);
      const r = this.#w.insertMessage(tx, mb.account_id, target.mailboxId, blob, prepared, {
        systemFlags: target.systemFlags ?? 0,
        keywords: target.keywords ?? [],
        internalDate: target.internalDate ?? now(),
      });
      stamp(tx, opts.origin);
      return { ...r, uidValidity: mb.uid_validity };
    });
  }

  async appendMessages(mailboxId: number, items: AppendItem[], opts: { replace?: { mailboxId: number; uid: number } } & WriteOptions = {}) {
    const prepared = items.map((it) => prepareMeta(it.meta));
    return this.#writeBatched((tx) => {
      const r = appendRows((sql) => this.#q(sql), this.#w, tx, mailboxId, items, prepared, opts.replace);
      stamp(tx, opts.origin);
      return r;
    });
  }

  async storeFlags(
    mailboxId: number,
    uids: number[],
    op: FlagOp,
    flags: { systemFlags: number; keywords: string[] },
    opts: { unchangedSince?: number } & WriteOptions = {},
  ): Promise<StoreFlagsResult> {
    return this.#bulk.storeFlags(mailboxId, uids, op, flags, opts);
  }

  // ---------------------------------------------------------------- POP3
  async popUpdate(inboxId: number, u: PopUpdate, opts: WriteOptions = {}): Promise<{ removed: number[]; mailbox: Mailbox | null }> {
    return this.#bulk.popUpdate(inboxId, u, opts);
  }

  async popRetained(inboxId: number, since: number): Promise<PopRetainedMessage[]> {
    return (
      this.#q('SELECT * FROM pop_retained WHERE inbox_id = ? AND saved_at >= ? ORDER BY saved_at, uid').all(inboxId, since) as Row[]
    ).map((r) => ({ uidValidity: r.uid_validity, uid: r.uid, size: r.size, blobId: r.blob_id, savedAt: r.saved_at }));
  }

  async expunge(mailboxId: number, opts: { uids?: number[]; onlyDeleted?: boolean } & WriteOptions = {}): Promise<number[]> {
    return this.#bulk.expunge(mailboxId, opts);
  }

  async copyMessages(srcMailboxId: number, uids: number[], dstMailboxId: number, opts: WriteOptions = {}): Promise<CopyResult> {
    return this.#bulk.copy(srcMailboxId, uids, dstMailboxId, opts);
  }

  async moveMessages(srcMailboxId: number, uids: number[], dstMailboxId: number, opts: WriteOptions = {}): Promise<CopyResult> {
    return this.#bulk.move(srcMailboxId, uids, dstMailboxId, opts);
  }
}

interface BatchItem {
  fn: (tx: Tx) => unknown;
  /** The bulk operation the write belongs to (0: none). */
  op: number;
  /** A queue write: may be made durable by WalSync instead of inside COMMIT (see #flush). */
  walSync: boolean;
  resolve: (v: any) => void;
  reject: (e: unknown) => void;
}

/** INBOX is case-insensitive (RFC 9051 §5.1); other names are kept as given. */
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

