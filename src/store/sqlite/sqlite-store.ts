// The embedded store: metadata in SQLite (better-sqlite3, WAL), bodies in FsBlobStore.
// better-sqlite3 is synchronous, so each write is one IMMEDIATE transaction that no other JS code
// can interleave with. The hot writes commit without an fsync on the event loop and are made
// durable by an fdatasync on the thread pool; until then nobody is answered, no Change is published
// and every read of the store waits (changes.ts: the read gate, entered in `#read` below). WAL
// checkpoints run on a worker thread (checkpointer.ts), not in a COMMIT on the loop. Because a
// transaction holds the event loop, commands over many messages run in bounded steps (bulk.ts);
// the row-level SQL is in writes.ts, the listing cache in summaries.ts.
//
// This class is the Store the server sees: it opens and migrates the database, keeps the statement
// cache (statements.ts) and the view of a COPY being staged (#staged, #below, #mailbox), and hands each call to the
// part for its concern — the same files as in ../postgres/:
//
//   accounts.ts   domains, accounts, aliases      mailboxes.ts  mailboxes, subscriptions, STATUS
//   messages.ts   listings, records, bodies and   pop.ts        POP3 UPDATE, retained messages
//                 the message writes              search.ts     what SEARCH/SORT/THREAD read
//   changes.ts    the write paths (group commit) and the publication of their Changes
//   context.ts    what each part gets from this class
//
// `col = CAST(? AS INTEGER)` in a query with ORDER BY (mailbox_id, account_id, inbox_id): with a
// bare `col = ?` on the index column before the ORDER BY's, SQLite (built with STAT4, as
// better-sqlite3 is) marks the parameter as one that may change the plan, so every new binding
// re-prepared the statement (sqlite3Reprepare: ~5% of the server's CPU under the persistent-session
// load; a listing of 10 rows cost 2-4x what it does with the CAST). Same plan, same index.
// `LIMIT CAST(? AS INTEGER)` likewise: a bare `LIMIT ?` is re-prepared whenever its value changes.

import type Database from 'better-sqlite3';
import { dirname } from 'node:path';
import { existsSync, mkdirSync } from 'node:fs';
import { Readable } from 'node:stream';
import { FsBlobStore, fsyncDir } from '../blob/fs-blob-store.ts';
import { WalSync } from './wal-sync.ts';
import { Checkpointer } from './checkpointer.ts';
import { BodyScanPool } from '../blob/body-scan.ts';
import type { Logger } from '../../obs/log.ts';
import { LocalChangeBus, type ChangeBus } from '../bus.ts';
import { MIGRATIONS } from './schema.ts';
import { SqliteLoginFailures } from './login-failures.ts';
import { SqliteLiveSessions } from './live-sessions.ts';
import type { LiveSessionStore } from '../live-sessions.ts';
import { SqliteQueue } from './queue.ts';
import type { LoginFailureStore } from '../login-failures.ts';
import type { QueueStore } from '../queue.ts';
import { SqliteDkimKeys } from './dkim-keys.ts';
import type { DkimKeyStore } from '../dkim-keys.ts';
import { Holds, MessageWrites, newTx, type Tx } from './writes.ts';
import { SqliteCommit, type ReadScope } from './changes.ts';
import { Statements } from './statements.ts';
import { DeadBlobSweeper, ForeignCommits, PEER_BUSY_MS, RelayBus, deferDeadBlobs, followPeers } from './peers.ts';
import { openConnection } from './connection.ts';
import type { SqliteContext } from './context.ts';
import { SqliteAccounts } from './accounts.ts';
import { STAGED_COPY, SqliteMailboxes, toMailbox } from './mailboxes.ts';
import { SqliteMessages } from './messages.ts';
import { SqlitePop } from './pop.ts';
import { SqliteSearch } from './search.ts';
import { SummaryCache } from './summaries.ts';
import { SqliteBulk } from './bulk.ts';
import { SqliteSortKeys } from './sort.ts';
import { SqliteThreads } from './threads.ts';
import type { ChunkOptions } from '../chunks.ts';
import {
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
  StoreError,
  type StagedBlob,
  type Store,
  type StoreFlagsResult,
  type WriteOptions,
} from '../store.ts';
import type { MessageMeta } from '../../protocol/mime/types.ts';
import { SqliteJournal } from './journal.ts';
import type { ChangesSince, JournalPruneOptions } from '../journal.ts';
import { mailboxLimits, type MailboxLimits } from '../mailbox-limits.ts';
import type { SqliteStoreOptions } from './options.ts';

type Row = Record<string, any>;

export type { SqliteStoreOptions } from './options.ts';

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

/** The HIGHESTMODSEQ a mailbox shows: a COPY staging into it hides its rows' (bulk_ops, SqliteBulk). */
const SHOWN_HMS = `SELECT coalesce((SELECT b.hms ${STAGED_COPY}), m.highest_modseq) FROM mailboxes m WHERE m.id = CAST(? AS INTEGER)`;

class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly bus: ChangeBus;
  readonly loginFailures: LoginFailureStore;
  readonly liveSessions: LiveSessionStore;
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
  readonly #sort: SqliteSortKeys;
  readonly #threads: SqliteThreads;
  readonly #log: Logger | undefined;
  readonly #stmts: Statements;
  readonly #commit: SqliteCommit;
  readonly #journal: SqliteJournal;
  readonly #walSync: WalSync;
  /** With peers: the sweep of dead body files (peers.ts). */
  readonly deadBlobs: DeadBlobSweeper | null = null;
  /** The WAL checkpoints' worker, if checkpointMs was given. */
  readonly checkpointer: Checkpointer | null = null;
  readonly #accounts: SqliteAccounts;
  readonly #mailboxes: SqliteMailboxes;
  readonly #messages: SqliteMessages;
  readonly #pop: SqlitePop;
  readonly #search: SqliteSearch;

  constructor(opts: SqliteStoreOptions) {
    // With peers (other worker processes, peers.ts): commits publish on the inner bus and relay the
    // heads; sessions subscribe to a FollowingBus over it, which pulls the peers' changes.
    const inner = opts.bus ?? new LocalChangeBus();
    const publishing = opts.peers ? new RelayBus(inner, opts.peers.relay) : inner;
    this.bus = opts.peers ? followPeers(inner, this, (sql) => this.#q(sql), (fn) => this.#commit.read(fn), opts.log, opts.peers.want?.bind(opts.peers)) : inner;
    this.#limits = mailboxLimits(opts.mailboxLimits);
    this.#blobs = new FsBlobStore(opts.blobDir);
    this.#bodyScan = new BodyScanPool(opts.blobDir, (id, start, end) => this.#blobs.read(id, start, end), {
      onWorkerError: (err) => opts.log?.warn('store.body-scan-worker-failed', { err }),
    });
    const db = openConnection(opts.path, !!opts.peers);
    this.#db = db;
    this.#stmts = new Statements(db, opts.readCheck ?? 'log', opts.log);
    this.#migrate();
    this.#walSync = opts.walSync ?? new WalSync(opts.path);
    if (opts.noAutoCheckpoint) db.pragma('wal_autocheckpoint = 0');
    if (opts.checkpointMs) {
      db.pragma('wal_autocheckpoint = 0');
      const lost = () => {
        // Without its worker the WAL would grow without bound: SQLite's own checkpoints again.
        opts.log?.error('store.checkpointer-lost', {});
        if (db.open) db.pragma('wal_autocheckpoint = 1000');
      };
      this.checkpointer = new Checkpointer(opts.path, opts.checkpointMs, (fn) => this.#commit.pause(fn), lost, opts.log);
    }
    // The WAL file exists now (migrations read the database): its directory entry is made durable,
    // as WalSync's fsyncs of the file's contents rely on the file being there after a crash.
    fsyncDir(dirname(opts.path));
    this.loginFailures = new SqliteLoginFailures(db, (fn) => this.#writeBatched(fn), (fn) => this.#commit.read(fn));
    this.liveSessions = new SqliteLiveSessions(db);
    this.dkimKeys = new SqliteDkimKeys(db);
    this.#log = opts.log;
    const q = (sql: string) => this.#q(sql);
    this.#w = new MessageWrites(q, this.#holds);
    this.#summaries = new SummaryCache(db, q, {
      // One statement: the HIGHESTMODSEQ a COPY staging into the mailbox shows, else the row's
      // (the listing cache asks on every FETCH and listing; two statements were ~3% of the CPU).
      hms: (id) => this.#q(SHOWN_HMS).pluck().get(id) as number | undefined,
      below: (id) => this.#below(id),
      settled: () => this.#commit.settled(),
    });
    this.#commit = new SqliteCommit(db, this.#summaries, this.#blobs, publishing, this.#walSync, opts.log);
    this.#stmts.unsettledFor = (scope) => this.#commit.unsettledFor(scope);
    if (opts.peers) {
      this.#commit.sharedWith(new ForeignCommits(db, this.#walSync), PEER_BUSY_MS);
      this.#holds.foreign = (id) => this.#staged(id) !== undefined;
      this.#w.fileGone = (id) => this.#q('SELECT 1 FROM blobs WHERE id = ?').get(id) === undefined && !existsSync(this.#blobs.path(id));
      this.deadBlobs = new DeadBlobSweeper(q, this.#blobs, (fn) => this.#writeBatched(fn), opts.log);
    }
    const journal = (this.#journal = new SqliteJournal(db, q));
    const peers = !!opts.peers;
    this.#commit.finalize = (tx) => (journal.record(tx.changes), peers && deferDeadBlobs(q, tx));
    this.#bulk = new SqliteBulk({
      db,
      q,
      w: this.#w,
      summaries: this.#summaries,
      bus: publishing,
      recordChanges: (changes) => journal.record(changes),
      batched: (fn, op) => this.#writeBatched(fn, op),
      insertMailbox: (tx, accountId, name, specialUse, subscribed) => this.#mailboxes.insertMailbox(tx, accountId, name, specialUse, subscribed),
      mailbox: (row) => this.#mailbox(row),
      chunks: opts.bulk ?? {},
    });
    const settled = () => this.#commit.settled();
    this.#sort = new SqliteSortKeys(q, (fn) => this.#writeBatched(fn), settled);
    this.#threads = new SqliteThreads(q, (fn) => this.#writeBatched(fn), settled);
    this.queue = new SqliteQueue({
      q,
      write: (fn) => this.#write(fn),
      batched: (fn) => this.#writeBatched(fn),
      read: (fn) => this.#commit.read(fn),
      settled: () => this.#commit.settled(),
      unrefBlob: (tx, id, n) => this.#w.unrefBlob(tx, id, n),
      hasBlobFile: (id) => /^[0-9a-f]{64}$/.test(id) && existsSync(this.#blobs.path(id)),
      ...(opts.peers ? { fileGone: (id: string) => this.#w.fileGone?.(id) ?? false } : {}),
      keepFinal: opts.queueKeepFinal ?? false,
    });
    const ctx = this.#context();
    this.#accounts = new SqliteAccounts(ctx);
    this.#mailboxes = new SqliteMailboxes(ctx);
    this.#messages = new SqliteMessages(ctx);
    this.#pop = new SqlitePop(ctx);
    this.#search = new SqliteSearch(ctx);
  }

  /** What the per-concern parts get (context.ts). */
  #context(): SqliteContext {
    return {
      db: this.#db,
      q: (sql) => this.#q(sql),
      write: (fn) => this.#write(fn),
      writeBatched: (fn, op) => this.#writeBatched(fn, op),
      bulk: this.#bulk,
      insertMailbox: (tx, accountId, name, specialUse, subscribed, uidNext) => this.#mailboxes.insertMailbox(tx, accountId, name, specialUse, subscribed, uidNext),
      limits: this.#limits,
      mailbox: (r) => this.#mailbox(r),
      below: (mailboxId) => this.#below(mailboxId),
      w: this.#w,
      summaries: this.#summaries,
      threads: this.#threads,
      blobs: this.#blobs,
      sort: this.#sort,
      bodyScan: this.#bodyScan,
      settled: () => this.#commit.settled(),
    };
  }

  /** See SqliteBulk.recover. */
  recover(): void {
    const tx = newTx();
    const r = this.#db
      .transaction(() => {
        const v = this.#bulk.recover(tx);
        this.#journal.record(tx.changes);
        return v;
      })
      .immediate();
    // The files of blobs left unreferenced go in collectGarbage(), which runs next.
    tx.deadBlobs.length = 0;
    this.#commit.afterCommit(tx);
    if (r.copies || r.drops) this.#log?.warn('store.bulk-recovered', { copies: r.copies, drops: r.drops });
  }

  /** What a dead worker process staged (SqliteBulk.recoverStep), in steps of the group commit; returns the steps. */
  async recoverProcess(pid: number): Promise<number> {
    let steps = 0;
    while (await this.#writeBatched((tx) => this.#bulk.recoverStep(tx, pid, 2000))) steps++;
    if (steps) this.#log?.warn('store.bulk-recovered', { pid, steps });
    return steps;
  }

  /** A COPY staging rows in the mailbox (not part of it yet): from which UID, and the HIGHESTMODSEQ shown. */
  #staged(mailboxId: number): { uidFrom: number; hms: number } | undefined {
    // bulk_ops is empty but for a COPY or DELETE in progress: this costs a lookup in an empty table.
    return this.#q("SELECT uid_from AS uidFrom, hms FROM bulk_ops WHERE kind = 'copy' AND mailbox_id = CAST(? AS INTEGER) ORDER BY id LIMIT 1").get(mailboxId) as
      | { uidFrom: number; hms: number }
      | undefined;
  }

  /** Rows with this UID or above are staged, not part of the mailbox. */
  #below(mailboxId: number): number {
    return this.#staged(mailboxId)?.uidFrom ?? Number.MAX_SAFE_INTEGER;
  }

  /**
   * A mailbox row as clients see it: a COPY being staged into it does not show yet (UIDNEXT,
   * HIGHESTMODSEQ). A row read with MAILBOX_ROW (mailboxes.ts) carries the staging already.
   */
  #mailbox(r: Row): Mailbox {
    const mb = toMailbox(r);
    const hide = 'staged_from' in r ? (r.staged_from === null ? undefined : { uidFrom: r.staged_from as number, hms: r.staged_hms as number }) : this.#staged(mb.id);
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

  #q(sql: string): Database.Statement {
    return this.#stmts.q(sql);
  }

  collectGarbage(): void {
    const has = this.#q('SELECT 1 FROM blobs WHERE id = ?').pluck();
    this.#blobs.collectGarbage((id) => has.get(id) !== undefined);
  }

  /** One IMMEDIATE transaction of its own (changes.ts). */
  #write<T>(fn: (tx: Tx) => T): T {
    return this.#commit.write(fn);
  }

  /** One write in the group commit (changes.ts). */
  #writeBatched<T>(fn: (tx: Tx) => T, op = 0): Promise<T> {
    return this.#commit.writeBatched(fn, op);
  }

  /**
   * Every Store call but stageBlob starts here: at once when every commit is durable and settled,
   * else once they are (changes.ts, the read gate). Writes pass too: they would wait for the
   * running fdatasync anyway, and the reads some of them make first see what is durable.
   */
  #read<T>(fn: () => Promise<T>): Promise<T> {
    return this.#commit.read(fn);
  }

  /**
   * A read of one mailbox's rows or one account's mailbox list: it waits only for the commits
   * that changed those (changes.ts, ReadScope), so one user's fdatasync holds back no other user's
   * reads. The scope holds while fn runs up to its first await (the statement cache's check, #q);
   * what it reads after an await waits for the whole gate (the summaries' and bulk reads' resume
   * points do).
   */
  #readIn<T>(scope: ReadScope, fn: () => Promise<T>): Promise<T> {
    return this.#commit.read(() => this.#stmts.within(scope, fn), scope);
  }

  async close(): Promise<void> {
    if (this.#commit.closed) return;
    await this.deadBlobs?.close();
    await this.#commit.close();
    // Before the last connection closes (which checkpoints and removes the WAL itself).
    await this.checkpointer?.close();
    this.#walSync.close();
    await this.#bodyScan.close();
    this.#blobs.close();
    this.#db.close();
  }

  // ---------------------------------------------------------------- domains, accounts, aliases (accounts.ts)
  addDomain(name: string): Promise<Domain> {
    return this.#read(() => this.#accounts.addDomain(name));
  }

  removeDomain(name: string): Promise<void> {
    return this.#read(() => this.#accounts.removeDomain(name));
  }

  listDomains(): Promise<Domain[]> {
    return this.#read(() => this.#accounts.listDomains());
  }

  getDomain(name: string): Promise<Domain | null> {
    return this.#read(() => this.#accounts.getDomain(name));
  }

  createAccount(a: { address: string; passwordHash: string; quota?: number; settings?: AccountSettings }): Promise<Account> {
    return this.#read(() => this.#accounts.createAccount(a));
  }

  getAccount(address: string): Promise<Account | null> {
    return this.#read(() => this.#accounts.getAccount(address));
  }

  /** Waits only for commits that changed this account (its usage moves with its messages' Changes,
   *  changes.ts): APPEND's quota check waited for other users' fdatasyncs (~0.2 ms each APPEND). */
  getAccountById(id: number): Promise<Account | null> {
    return this.#readIn({ account: id }, () => this.#accounts.getAccountById(id));
  }

  listAccounts(domain?: string): Promise<Account[]> {
    return this.#read(() => this.#accounts.listAccounts(domain));
  }

  updateAccount(id: number, patch: { passwordHash?: string; quota?: number; settings?: AccountSettings }): Promise<Account> {
    return this.#read(() => this.#accounts.updateAccount(id, patch));
  }

  removeAccount(id: number): Promise<void> {
    return this.#read(() => this.#accounts.removeAccount(id));
  }

  setAlias(address: string, targets: string[]): Promise<Alias> {
    return this.#read(() => this.#accounts.setAlias(address, targets));
  }

  removeAlias(address: string): Promise<void> {
    return this.#read(() => this.#accounts.removeAlias(address));
  }

  getAlias(address: string): Promise<Alias | null> {
    return this.#read(() => this.#accounts.getAlias(address));
  }

  listAliases(domain?: string): Promise<Alias[]> {
    return this.#read(() => this.#accounts.listAliases(domain));
  }

  // ---------------------------------------------------------------- mailboxes (mailboxes.ts)
  listMailboxes(accountId: number): Promise<Mailbox[]> {
    return this.#readIn({ account: accountId }, () => this.#mailboxes.listMailboxes(accountId));
  }

  getMailbox(accountId: number, name: string): Promise<Mailbox | null> {
    return this.#readIn({ account: accountId }, () => this.#mailboxes.getMailbox(accountId, name));
  }

  getMailboxById(mailboxId: number): Promise<Mailbox | null> {
    return this.#readIn({ mailbox: mailboxId }, () => this.#mailboxes.getMailboxById(mailboxId));
  }

  createMailbox(accountId: number, name: string, opts: { specialUse?: SpecialUse | null; subscribed?: boolean } & WriteOptions = {}): Promise<Mailbox> {
    return this.#read(() => this.#mailboxes.createMailbox(accountId, name, opts));
  }

  renameMailbox(accountId: number, oldName: string, newName: string, opts: WriteOptions = {}): Promise<void> {
    return this.#read(() => this.#mailboxes.renameMailbox(accountId, oldName, newName, opts));
  }

  deleteMailbox(accountId: number, name: string, opts: WriteOptions = {}): Promise<void> {
    return this.#read(() => this.#mailboxes.deleteMailbox(accountId, name, opts));
  }

  setSubscribed(accountId: number, name: string, subscribed: boolean, opts: WriteOptions = {}): Promise<void> {
    return this.#read(() => this.#mailboxes.setSubscribed(accountId, name, subscribed, opts));
  }

  claimRecent(mailboxId: number, uidBelow: number, claim: boolean): Promise<number> {
    return this.#readIn({ mailbox: mailboxId }, () => this.#mailboxes.claimRecent(mailboxId, uidBelow, claim));
  }

  listSubscriptions(accountId: number): Promise<string[]> {
    return this.#read(() => this.#mailboxes.listSubscriptions(accountId));
  }

  mailboxStatus(mailboxId: number): Promise<MailboxStatus> {
    return this.#readIn({ mailbox: mailboxId }, () => this.#mailboxes.mailboxStatus(mailboxId));
  }

  // ---------------------------------------------------------------- messages and blobs (messages.ts)
  listMessages(mailboxId: number, opts: { changedSince?: number } = {}): Promise<MessageSummary[]> {
    return this.#readIn({ mailbox: mailboxId }, () => this.#messages.listMessages(mailboxId, opts));
  }

  getMessages(mailboxId: number, uids: number[]): Promise<MessageRecord[]> {
    return this.#readIn({ mailbox: mailboxId }, () => this.#messages.getMessages(mailboxId, uids));
  }

  expungedSince(mailboxId: number, sinceModseq: number): Promise<number[]> {
    return this.#readIn({ mailbox: mailboxId }, () => this.#messages.expungedSince(mailboxId, sinceModseq));
  }

  stageBlob(input: Readable | Buffer, opts: { maxBytes?: number } = {}): Promise<StagedBlob> {
    return this.#messages.stageBlob(input, opts);
  }

  /** A body file is immutable and durable before any row naming it commits (and its id comes from
   *  such a row, read through the gate): read at once. Only a body kept in the database waits. */
  readBlob(blobId: string, start?: number, end?: number): Promise<Buffer> {
    return this.#messages.readFile(blobId, start, end).catch((err: unknown) => {
      if (!(err instanceof StoreError && err.code === 'not-found')) throw err;
      return this.#read(async () => this.#messages.readData(blobId, start, end) ?? Promise.reject(err));
    });
  }

  streamBlob(blobId: string, start?: number, end?: number): Readable {
    // Synchronous: a body held in the database is read once every commit is settled.
    if (!this.#commit.unsettledFor(null)) return this.#messages.streamBlob(blobId, start, end);
    const later = this.#commit.read(async () => this.#messages.streamBlob(blobId, start, end));
    return Readable.from((async function* () {
      yield* await later;
    })(), { objectMode: false });
  }

  deliver(blob: BlobRef, meta: MessageMeta, targets: NewMessage[], opts: WriteOptions = {}): Promise<DeliveryResult[]> {
    return this.#read(() => this.#messages.deliver(blob, meta, targets, opts));
  }

  append(blob: BlobRef, meta: MessageMeta, target: NewMessage, opts: WriteOptions = {}): Promise<{ uid: number; modseq: number; uidValidity: number }> {
    return this.#read(() => this.#messages.append(blob, meta, target, opts));
  }

  appendMessages(mailboxId: number, items: AppendItem[], opts: { replace?: { mailboxId: number; uid: number } } & WriteOptions = {}) {
    return this.#read(() => this.#messages.appendMessages(mailboxId, items, opts));
  }

  storeFlags(
    mailboxId: number,
    uids: number[],
    op: FlagOp,
    flags: { systemFlags: number; keywords: string[] },
    opts: { unchangedSince?: number } & WriteOptions = {},
  ): Promise<StoreFlagsResult> {
    return this.#read(() => this.#messages.storeFlags(mailboxId, uids, op, flags, opts));
  }

  expunge(mailboxId: number, opts: { uids?: number[]; onlyDeleted?: boolean } & WriteOptions = {}): Promise<number[]> {
    return this.#read(() => this.#messages.expunge(mailboxId, opts));
  }

  copyMessages(srcMailboxId: number, uids: number[], dstMailboxId: number, opts: WriteOptions = {}): Promise<CopyResult> {
    return this.#read(() => this.#messages.copyMessages(srcMailboxId, uids, dstMailboxId, opts));
  }

  moveMessages(srcMailboxId: number, uids: number[], dstMailboxId: number, opts: WriteOptions = {}): Promise<CopyResult> {
    return this.#read(() => this.#messages.moveMessages(srcMailboxId, uids, dstMailboxId, opts));
  }

  // ---------------------------------------------------------------- SEARCH, SORT, THREAD (search.ts)
  getSearchData(mailboxId: number, uids: number[], opts: { fields?: boolean } = {}): Promise<SearchData[]> {
    return this.#read(() => this.#search.getSearchData(mailboxId, uids, opts));
  }

  getSortData(mailboxId: number, uids: number[], opts: { thread?: boolean } = {}): Promise<SortData[]> {
    return this.#read(() => this.#search.getSortData(mailboxId, uids, opts));
  }

  getThreadIds(mailboxId: number, uids: number[]): Promise<Map<number, number>> {
    return this.#read(() => this.#search.getThreadIds(mailboxId, uids));
  }

  threadMembers(mailboxId: number, threadId: number): Promise<number[]> {
    return this.#read(() => this.#search.threadMembers(mailboxId, threadId));
  }

  matchHeader(mailboxId: number, field: SearchHeaderField, value: string): Promise<number[]> {
    return this.#read(() => this.#search.matchHeader(mailboxId, field, value));
  }

  getTextPlans(mailboxId: number, uids: number[]): Promise<MessageTextPlan[]> {
    return this.#read(() => this.#search.getTextPlans(mailboxId, uids));
  }

  matchBody(mailboxId: number, uids: number[], needles: string[]): Promise<number[][]> {
    return this.#read(() => this.#search.matchBody(mailboxId, uids, needles));
  }
  // ---------------------------------------------------------------- POP3 (pop.ts)
  popUpdate(inboxId: number, u: PopUpdate, opts: WriteOptions = {}): Promise<{ removed: number[]; mailbox: Mailbox | null }> {
    return this.#read(() => this.#pop.popUpdate(inboxId, u, opts));
  }

  popRetained(inboxId: number, since: number): Promise<PopRetainedMessage[]> {
    return this.#read(() => this.#pop.popRetained(inboxId, since));
  }

  // ---------------------------------------------------------------- change journal (journal.ts)
  // Read through the gate: an entry is not shown before its commit is durable.
  changesSince(accountId: number, since: number, limit?: number): Promise<ChangesSince> {
    return this.#readIn({ account: accountId }, async () => this.#journal.changesSince(accountId, since, limit));
  }

  journalHead(accountId: number): Promise<number> {
    return this.#readIn({ account: accountId }, async () => this.#journal.journalHead(accountId));
  }

  pruneJournal(opts: JournalPruneOptions): Promise<number> {
    // With peers through the group commit: a FULL write holds the lock across its fsync, on the loop.
    return this.#journal.prune(opts, this.deadBlobs ? (fn) => this.#writeBatched(fn) : (fn) => this.#write(fn));
  }
}
