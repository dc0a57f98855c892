// Messages of the SQLite store: listings (cached per mailbox, summaries.ts), records with their
// parsed meta (an LRU, meta-cache.ts), the expunge log, the body files (FsBlobStore: staged durably
// before any row references them) and the message writes — deliver, APPEND, MULTIAPPEND/REPLACE
// (append-many.ts), flags, EXPUNGE, COPY, MOVE. Each write is one write of the group commit
// (changes.ts); the row-level SQL is in writes.ts, the commands over many rows run in steps
// (bulk.ts).

import type Database from 'better-sqlite3';
import { Readable } from 'node:stream';
import type { FsBlobStore } from '../blob/fs-blob-store.ts';
import {
  StoreError,
  type AppendItem,
  type BlobRef,
  type CopyResult,
  type DeliveryResult,
  type FlagOp,
  type MessageRecord,
  type MessageSummary,
  type NewMessage,
  type StagedBlob,
  type StoreFlagsResult,
  type WriteOptions,
} from '../store.ts';
import type { MessageMeta } from '../../protocol/mime/types.ts';
import { sortKeysOf, type SortKeys } from '../../protocol/imap/sort-keys.ts';
import type { SqliteContext } from './context.ts';
import type { SqliteBulk } from './bulk.ts';
import { uidLowerBound, type SummaryCache } from './summaries.ts';
import type { SqliteThreads } from './threads.ts';
import { MetaCache } from './meta-cache.ts';
import { appendRows } from './append-many.ts';
import { prepareMeta, stamp, type MessageWrites, type Query } from './writes.ts';

type Row = Record<string, any>;

const now = () => Date.now();

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

export class SqliteMessages {
  readonly #q: Query;
  readonly #writeBatched: SqliteContext['writeBatched'];
  readonly #w: MessageWrites;
  readonly #summaries: SummaryCache;
  readonly #threads: SqliteThreads;
  readonly #bulk: SqliteBulk;
  readonly #blobs: FsBlobStore;

  constructor(ctx: SqliteContext) {
    this.#q = ctx.q;
    this.#writeBatched = ctx.writeBatched;
    this.#w = ctx.w;
    this.#summaries = ctx.summaries;
    this.#threads = ctx.threads;
    this.#bulk = ctx.bulk;
    this.#blobs = ctx.blobs;
    // Prepared here, not through the read check (ctx.q): a row seen before its commit is durable
    // still names a file that is (the file is fsync'd before the commit that references it).
    this.#hasFile = ctx.db.prepare('SELECT 1 FROM blobs WHERE id = ? AND data IS NULL').pluck();
  }

  /** Whether a blobs row says body `id` has its file (a row keeping the bytes itself has none). */
  readonly #hasFile: Database.Statement;

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
    const cached = this.#summaries.current(mailboxId);
    if (cached) return this.#recordsOf(cached, uids);
    const out: MessageRecord[] = [];
    const stmt = this.#q(
      `SELECT uid, modseq, system_flags, keywords, internal_date, saved_at, size, blob_id
       FROM messages WHERE mailbox_id = CAST(? AS INTEGER) AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid`,
    );
    const sorted = [...new Set(uids)].sort((a, b) => a - b);
    for (let i = 0; i < sorted.length; i += 500) {
      for (const r of stmt.all(mailboxId, JSON.stringify(sorted.slice(i, i + 500))) as Row[]) {
        out.push({ ...toSummary(r), meta: this.#meta(r.blob_id) });
      }
    }
    return out;
  }

  /**
   * The records from the mailbox's cached listing (at the HIGHESTMODSEQ shown: exactly the rows a
   * read would return) and the parse cache: FETCH of a selected mailbox reads no message rows.
   */
  #recordsOf(list: readonly MessageSummary[], uids: number[]): MessageRecord[] {
    const sorted = [...new Set(uids)].sort((a, b) => a - b);
    const out: MessageRecord[] = [];
    for (let i = uidLowerBound(list, sorted[0]!), k = 0; i < list.length && k < sorted.length; ) {
      const m = list[i]!;
      const want = sorted[k]!;
      if (m.uid < want) i++;
      else if (m.uid > want) k++;
      else {
        out.push({ ...m, keywords: m.keywords.length ? [...m.keywords] : [], meta: this.#meta(m.blobId) });
        i++;
        k++;
      }
    }
    return out;
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
    return this.#q('SELECT uid FROM expunged WHERE mailbox_id = CAST(? AS INTEGER) AND modseq > ? ORDER BY uid').pluck().all(mailboxId, sinceModseq) as number[];
  }

  // ---------------------------------------------------------------- blobs
  async stageBlob(input: Readable | Buffer, opts: { maxBytes?: number } = {}): Promise<StagedBlob> {
    return this.#blobs.stage(input, opts.maxBytes, (id) => this.#hasFile.get(id) !== undefined);
  }

  /** The body's file only (rejects 'not-found' when there is none: a body kept in the database, or gone). */
  readFile(blobId: string, start?: number, end?: number): Promise<Buffer> {
    return this.#blobs.read(blobId, start, end);
  }

  /** A body kept in the database (blobs.data), or null: what readFile's 'not-found' falls back to. */
  readData(blobId: string, start?: number, end?: number): Buffer | null {
    const data = this.#blobData(blobId);
    return data ? data.subarray(start ?? 0, end ?? data.length) : null;
  }

  streamBlob(blobId: string, start?: number, end?: number): Readable {
    // One indexed row from the database's cached pages, rather than a stat of the file on the loop
    // (synchronous, and a disk read when the inode is not cached).
    const data = this.#blobData(blobId);
    if (data) return Readable.from([data.subarray(start ?? 0, end ?? data.length)], { objectMode: false });
    return this.#blobs.stream(blobId, start, end);
  }

  /** A body kept in the database instead of a file (blobs.data, a queued message's: migration 13). */
  #blobData(blobId: string): Buffer | null {
    return (this.#q('SELECT data FROM blobs WHERE id = ?').pluck().get(blobId) as Buffer | null | undefined) ?? null;
  }

  // ---------------------------------------------------------------- writes
  async deliver(blob: BlobRef, meta: MessageMeta, targets: NewMessage[], opts: WriteOptions = {}): Promise<DeliveryResult[]> {
    // A body held in memory (memoryBlob) is durable nowhere: a mailbox takes staged files only.
    if ((blob as StagedBlob).data) throw new StoreError('invalid', 'deliver needs a staged blob, not one held in memory');
    // SORT/THREAD keys (src/protocol/imap/sort-keys.ts), computed before the transaction.
    const prepared = prepareMeta(meta);
    const keys = sortKeysOf(meta);
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
        if (refs === 0) this.#w.refBlob(blob, prepared, keys, 0);
        refs++;
        const r = this.#w.insertMessage(tx, mb.account_id, t.mailboxId, blob, prepared, {
          systemFlags: t.systemFlags ?? 0,
          keywords: t.keywords ?? [],
          internalDate: t.internalDate ?? now(),
        });
        this.#threads.assign(mb.account_id, blob.id, keys);
        results.push({ ok: true, accountId: mb.account_id, mailboxId: t.mailboxId, uid: r.uid, modseq: r.modseq });
      }
      if (refs > 0) this.#q('UPDATE blobs SET refcount = refcount + ? WHERE id = ?').run(refs, blob.id);
      stamp(tx, opts.origin);
      return results;
    });
  }

  async append(blob: BlobRef, meta: MessageMeta, target: NewMessage, opts: WriteOptions = {}): Promise<{ uid: number; modseq: number; uidValidity: number }> {
    const prepared = prepareMeta(meta);
    const keys = sortKeysOf(meta);
    return this.#writeBatched((tx) => {
      const mb = this.#q('SELECT account_id, uid_validity FROM mailboxes WHERE id = ?').get(target.mailboxId) as Row | undefined;
      if (!mb) throw new StoreError('not-found', `no mailbox ${target.mailboxId}`);
      if (!this.#w.fits(mb.account_id, blob.size)) throw new StoreError('quota', 'mailbox is full: quota exceeded');
      this.#w.refBlob(blob, prepared, keys, 1);
      const r = this.#w.insertMessage(tx, mb.account_id, target.mailboxId, blob, prepared, {
        systemFlags: target.systemFlags ?? 0,
        keywords: target.keywords ?? [],
        internalDate: target.internalDate ?? now(),
      });
      this.#threads.assign(mb.account_id, blob.id, keys);
      stamp(tx, opts.origin);
      return { ...r, uidValidity: mb.uid_validity };
    });
  }

  async appendMessages(mailboxId: number, items: AppendItem[], opts: { replace?: { mailboxId: number; uid: number } } & WriteOptions = {}) {
    const prepared = items.map((it) => prepareMeta(it.meta));
    const keys = items.map((it) => sortKeysOf(it.meta));
    const assign = (accountId: number, blobId: string, k: SortKeys) => this.#threads.assign(accountId, blobId, k);
    return this.#writeBatched((tx) => {
      const r = appendRows((sql) => this.#q(sql), this.#w, tx, mailboxId, items, prepared, keys, assign, opts.replace);
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
