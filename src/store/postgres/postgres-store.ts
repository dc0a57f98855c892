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
//
// This class is the Store the server sees: it opens the pool, migrates the schema, keeps the
// staged bodies (shared with the queue) and the account namespace lock, and hands each call to
// the part for its concern — the same files as in ../sqlite/:
//
//   accounts.ts   domains, accounts, aliases      mailboxes.ts  mailboxes, subscriptions, STATUS
//   messages.ts   listings, records, bodies and   pop.ts        POP3 UPDATE, retained messages
//                 the message writes              search.ts     what SEARCH/SORT/THREAD read
//   changes.ts    the write transaction and the publication of its Changes (commit order)
//   context.ts    what each part gets from this class

import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import pg from 'pg';
import { LocalChangeBus, type ChangeBus } from '../bus.ts';
import { PgCommit } from './changes.ts';
import type { PgContext } from './context.ts';
import { PgAccounts } from './accounts.ts';
import { PgMailboxes } from './mailboxes.ts';
import { PgMessages } from './messages.ts';
import { PgPop } from './pop.ts';
import { PgSearch } from './search.ts';
import { PG_MIGRATIONS } from './schema.ts';
import { PgLoginFailures } from './login-failures.ts';
import { PgLiveSessions } from './live-sessions.ts';
import type { LiveSessionStore } from '../live-sessions.ts';
import { PgQueue } from './queue.ts';
import type { LoginFailureStore } from '../login-failures.ts';
import type { QueueStore } from '../queue.ts';
import { PgDkimKeys } from './dkim-keys.ts';
import type { DkimKeyStore } from '../dkim-keys.ts';
import {
  StoreError,
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
} from '../store.ts';
import type { MessageMeta } from '../../protocol/mime/types.ts';
import { PgJournal } from './journal.ts';
import { PgJournalListener } from './journal-notify.ts';
import { FollowingBus, flagKey, type ReadFlags } from '../follow-bus.ts';
import type { ChangesSince, JournalPruneOptions } from '../journal.ts';
import { mailboxLimits, type MailboxLimits } from '../mailbox-limits.ts';
import type { ChunkOptions } from '../chunks.ts';
import { PgWrites } from './writes.ts';

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
  /**
   * Ping other processes on the database at each commit (pg_notify) and listen for theirs, handed
   * to the bus as `notify(account, head)` (postgres/journal-notify.ts). Default true.
   */
  notify?: boolean;
}

type Row = Record<string, any>;
type Client = pg.PoolClient;

const DEFAULT_MAX_BLOB = 64 * 1024 * 1024;

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
  let listener: PgJournalListener | null = null;
  if (opts.notify !== false) {
    listener = new PgJournalListener({ connectionString: opts.url, ...(schema ? { options: `-c search_path=${schema}` } : {}) }, schema, opts.bus ?? new LocalChangeBus());
    try {
      await listener.start();
    } catch (err) {
      await pool.end().catch(() => {});
      throw err;
    }
  }
  return new PostgresStore(pool, opts, lockSpace(schema ?? 'public'), listener);
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

class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly bus: ChangeBus;
  readonly loginFailures: LoginFailureStore;
  readonly liveSessions: LiveSessionStore;
  readonly queue: QueueStore;
  readonly dkimKeys: DkimKeyStore;
  readonly #pool: pg.Pool;
  readonly #commit: PgCommit;
  readonly #journal: PgJournal;
  readonly #listener: PgJournalListener | null;
  readonly #accounts: PgAccounts;
  readonly #mailboxes: PgMailboxes;
  readonly #messages: PgMessages;
  readonly #pop: PgPop;
  readonly #search: PgSearch;
  readonly #lockSpace: number;
  readonly #defaultMaxBlob: number;
  readonly #wr: PgWrites;
  readonly #limits: MailboxLimits;
  /** Staged bodies waiting for their delivery transaction: id → bytes + pin count. */
  readonly #staged = new Map<string, { data: Buffer; pins: number }>();

  constructor(pool: pg.Pool, opts: PostgresStoreOptions, lockSpace: number, listener: PgJournalListener | null) {
    this.#pool = pool;
    this.loginFailures = new PgLoginFailures(pool);
    this.liveSessions = new PgLiveSessions(pool);
    this.queue = new PgQueue(pool, { staged: (id) => this.#staged.get(id)?.data, keepFinal: opts.queueKeepFinal ?? false });
    this.dkimKeys = new PgDkimKeys(pool);
    // Commits publish and pings notify on the inner bus; with pings (other processes on the
    // database), sessions subscribe to a FollowingBus over it, which turns other processes'
    // journal entries into Changes for them (src/store/follow-bus.ts).
    const inner = listener?.bus ?? opts.bus ?? new LocalChangeBus();
    this.#listener = listener;
    this.#commit = new PgCommit(pool, inner);
    const journal = (this.#journal = new PgJournal(pool, listener && { channel: listener.channel, node: listener.node }));
    this.bus = listener
      ? new FollowingBus(inner, { changesSince: (a, s, l) => this.changesSince(a, s, l), journalHead: (a) => this.journalHead(a) }, (keys) => readFlags(pool, keys), {
          resync: this,
          onResync: (a, head) => console.error(`change follower: account ${a}: journal pruned past this process's position (head ${head}); delivering the account's state instead`),
        })
      : inner;
    this.#commit.finalize = (tx) => journal.record(tx.c, tx.changes);
    this.#lockSpace = lockSpace;
    this.#defaultMaxBlob = opts.defaultMaxBlobBytes ?? DEFAULT_MAX_BLOB;
    this.#wr = new PgWrites(opts.bulk?.maxRows ?? 2000);
    this.#limits = mailboxLimits(opts.mailboxLimits);
    const ctx = this.#context();
    this.#accounts = new PgAccounts(ctx);
    this.#mailboxes = new PgMailboxes(ctx);
    this.#messages = new PgMessages(ctx);
    this.#pop = new PgPop(ctx);
    this.#search = new PgSearch(ctx);
  }

  /** What the per-concern parts get (context.ts). */
  #context(): PgContext {
    return {
      pool: this.#pool,
      q: (text, values) => this.#q(text, values),
      check: () => this.#check(),
      tx: (origin, fn) => this.#commit.tx(origin, fn),
      lockAccountNamespace: (c, accountId) => this.#lockAccountNamespace(c, accountId),
      wr: this.#wr,
      insertMailbox: (tx, accountId, name, specialUse, subscribed, init) => this.#mailboxes.insertMailbox(tx, accountId, name, specialUse, subscribed, init),
      limits: this.#limits,
      staged: this.#staged,
      defaultMaxBlob: this.#defaultMaxBlob,
      readBlob: (blobId, start, end) => this.#messages.readBlob(blobId, start, end),
    };
  }

  #check(): void {
    this.#commit.check();
  }

  async #q(text: string, values?: unknown[]): Promise<Row[]> {
    this.#check();
    return (await this.#pool.query(text, values)).rows;
  }

  /** Serialises mailbox-namespace changes of one account (create/rename/delete/remove). */
  async #lockAccountNamespace(c: Client, accountId: number): Promise<void> {
    await c.query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [this.#lockSpace, accountId % 2147483647]);
  }

  async close(): Promise<void> {
    if (this.#commit.closed) return;
    this.#commit.close();
    this.#staged.clear();
    await this.#listener?.close();
    await this.#pool.end();
  }

  // ---------------------------------------------------------------- domains, accounts, aliases (accounts.ts)
  addDomain(name: string): Promise<Domain> {
    return this.#accounts.addDomain(name);
  }

  removeDomain(name: string): Promise<void> {
    return this.#accounts.removeDomain(name);
  }

  listDomains(): Promise<Domain[]> {
    return this.#accounts.listDomains();
  }

  getDomain(name: string): Promise<Domain | null> {
    return this.#accounts.getDomain(name);
  }

  createAccount(a: { address: string; passwordHash: string; quota?: number; settings?: AccountSettings }): Promise<Account> {
    return this.#accounts.createAccount(a);
  }

  getAccount(address: string): Promise<Account | null> {
    return this.#accounts.getAccount(address);
  }

  getAccountById(id: number): Promise<Account | null> {
    return this.#accounts.getAccountById(id);
  }

  listAccounts(domain?: string): Promise<Account[]> {
    return this.#accounts.listAccounts(domain);
  }

  updateAccount(id: number, patch: { passwordHash?: string; quota?: number; settings?: AccountSettings }): Promise<Account> {
    return this.#accounts.updateAccount(id, patch);
  }

  removeAccount(id: number): Promise<void> {
    return this.#accounts.removeAccount(id);
  }

  setAlias(address: string, targets: string[]): Promise<Alias> {
    return this.#accounts.setAlias(address, targets);
  }

  removeAlias(address: string): Promise<void> {
    return this.#accounts.removeAlias(address);
  }

  getAlias(address: string): Promise<Alias | null> {
    return this.#accounts.getAlias(address);
  }

  listAliases(domain?: string): Promise<Alias[]> {
    return this.#accounts.listAliases(domain);
  }

  // ---------------------------------------------------------------- mailboxes (mailboxes.ts)
  listMailboxes(accountId: number): Promise<Mailbox[]> {
    return this.#mailboxes.listMailboxes(accountId);
  }

  getMailbox(accountId: number, name: string): Promise<Mailbox | null> {
    return this.#mailboxes.getMailbox(accountId, name);
  }

  getMailboxById(mailboxId: number): Promise<Mailbox | null> {
    return this.#mailboxes.getMailboxById(mailboxId);
  }

  createMailbox(accountId: number, name: string, opts: { specialUse?: SpecialUse | null; subscribed?: boolean } & WriteOptions = {}): Promise<Mailbox> {
    return this.#mailboxes.createMailbox(accountId, name, opts);
  }

  renameMailbox(accountId: number, oldName: string, newName: string, opts: WriteOptions = {}): Promise<void> {
    return this.#mailboxes.renameMailbox(accountId, oldName, newName, opts);
  }

  deleteMailbox(accountId: number, name: string, opts: WriteOptions = {}): Promise<void> {
    return this.#mailboxes.deleteMailbox(accountId, name, opts);
  }

  setSubscribed(accountId: number, name: string, subscribed: boolean, opts: WriteOptions = {}): Promise<void> {
    return this.#mailboxes.setSubscribed(accountId, name, subscribed, opts);
  }

  claimRecent(mailboxId: number, uidBelow: number, claim: boolean): Promise<number> {
    return this.#mailboxes.claimRecent(mailboxId, uidBelow, claim);
  }

  listSubscriptions(accountId: number): Promise<string[]> {
    return this.#mailboxes.listSubscriptions(accountId);
  }

  mailboxStatus(mailboxId: number): Promise<MailboxStatus> {
    return this.#mailboxes.mailboxStatus(mailboxId);
  }

  // ---------------------------------------------------------------- messages and blobs (messages.ts)
  listMessages(mailboxId: number, opts: { changedSince?: number } = {}): Promise<MessageSummary[]> {
    return this.#messages.listMessages(mailboxId, opts);
  }

  getMessages(mailboxId: number, uids: number[]): Promise<MessageRecord[]> {
    return this.#messages.getMessages(mailboxId, uids);
  }

  expungedSince(mailboxId: number, sinceModseq: number): Promise<number[]> {
    return this.#messages.expungedSince(mailboxId, sinceModseq);
  }

  stageBlob(input: Readable | Buffer, opts: { maxBytes?: number } = {}): Promise<StagedBlob> {
    return this.#messages.stageBlob(input, opts);
  }

  readBlob(blobId: string, start?: number, end?: number): Promise<Buffer> {
    return this.#messages.readBlob(blobId, start, end);
  }

  streamBlob(blobId: string, start?: number, end?: number): Readable {
    return this.#messages.streamBlob(blobId, start, end);
  }

  deliver(blob: BlobRef, meta: MessageMeta, targets: NewMessage[], opts: WriteOptions = {}): Promise<DeliveryResult[]> {
    return this.#messages.deliver(blob, meta, targets, opts);
  }

  append(blob: BlobRef, meta: MessageMeta, target: NewMessage, opts: WriteOptions = {}): Promise<{ uid: number; modseq: number; uidValidity: number }> {
    return this.#messages.append(blob, meta, target, opts);
  }

  appendMessages(mailboxId: number, items: AppendItem[], opts: { replace?: { mailboxId: number; uid: number } } & WriteOptions = {}) {
    return this.#messages.appendMessages(mailboxId, items, opts);
  }

  storeFlags(
    mailboxId: number,
    uids: number[],
    op: FlagOp,
    flags: { systemFlags: number; keywords: string[] },
    opts: { unchangedSince?: number } & WriteOptions = {},
  ): Promise<StoreFlagsResult> {
    return this.#messages.storeFlags(mailboxId, uids, op, flags, opts);
  }

  expunge(mailboxId: number, opts: { uids?: number[]; onlyDeleted?: boolean } & WriteOptions = {}): Promise<number[]> {
    return this.#messages.expunge(mailboxId, opts);
  }

  copyMessages(srcMailboxId: number, uids: number[], dstMailboxId: number, opts: WriteOptions = {}): Promise<CopyResult> {
    return this.#messages.copyMessages(srcMailboxId, uids, dstMailboxId, opts);
  }

  moveMessages(srcMailboxId: number, uids: number[], dstMailboxId: number, opts: WriteOptions = {}): Promise<CopyResult> {
    return this.#messages.moveMessages(srcMailboxId, uids, dstMailboxId, opts);
  }

  // ---------------------------------------------------------------- SEARCH, SORT, THREAD (search.ts)
  getSearchData(mailboxId: number, uids: number[], opts: { fields?: boolean } = {}): Promise<SearchData[]> {
    return this.#search.getSearchData(mailboxId, uids, opts);
  }

  getSortData(mailboxId: number, uids: number[], opts: { thread?: boolean } = {}): Promise<SortData[]> {
    return this.#search.getSortData(mailboxId, uids, opts);
  }

  getThreadIds(mailboxId: number, uids: number[]): Promise<Map<number, number>> {
    return this.#search.getThreadIds(mailboxId, uids);
  }

  threadMembers(mailboxId: number, threadId: number): Promise<number[]> {
    return this.#search.threadMembers(mailboxId, threadId);
  }

  getTextPlans(mailboxId: number, uids: number[]): Promise<MessageTextPlan[]> {
    return this.#search.getTextPlans(mailboxId, uids);
  }

  matchBody(mailboxId: number, uids: number[], needles: string[]): Promise<number[][]> {
    return this.#search.matchBody(mailboxId, uids, needles);
  }

  matchHeader(mailboxId: number, field: SearchHeaderField, value: string): Promise<number[]> {
    return this.#search.matchHeader(mailboxId, field, value);
  }
  // ---------------------------------------------------------------- POP3 (pop.ts)
  popUpdate(inboxId: number, u: PopUpdate, opts: WriteOptions = {}): Promise<{ removed: number[]; mailbox: Mailbox | null }> {
    return this.#pop.popUpdate(inboxId, u, opts);
  }

  popRetained(inboxId: number, since: number): Promise<PopRetainedMessage[]> {
    return this.#pop.popRetained(inboxId, since);
  }

  // ---------------------------------------------------------------- change journal (journal.ts)
  async changesSince(accountId: number, since: number, limit?: number): Promise<ChangesSince> {
    this.#check();
    return this.#journal.changesSince(accountId, since, limit);
  }

  async journalHead(accountId: number): Promise<number> {
    this.#check();
    return this.#journal.journalHead(accountId);
  }

  pruneJournal(opts: JournalPruneOptions): Promise<number> {
    return this.#journal.prune(opts, (fn) => this.#commit.tx(undefined, ({ c }) => fn(c)));
  }
}

/** Current flags and keywords of messages by (mailbox, UID), one query (FollowingBus, pulled entries). */
async function readFlags(pool: pg.Pool, keys: Parameters<ReadFlags>[0]): ReturnType<ReadFlags> {
  const rows = (
    await pool.query(
      `SELECT m.mailbox_id, m.uid, m.system_flags, m.keywords FROM messages m
       JOIN unnest($1::bigint[], $2::bigint[]) AS k(mailbox_id, uid) ON m.mailbox_id = k.mailbox_id AND m.uid = k.uid`,
      [keys.map((k) => k.mailboxId), keys.map((k) => k.uid)],
    )
  ).rows as Row[];
  const out = new Map<string, { systemFlags: number; keywords: string[] }>();
  for (const r of rows) out.set(flagKey(Number(r.mailbox_id), Number(r.uid)), { systemFlags: Number(r.system_flags), keywords: r.keywords as string[] });
  return out;
}
