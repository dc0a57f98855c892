// Messages of the PostgreSQL store: listings (read through a cursor, LIST_PAGE rows per FETCH),
// records with their parsed meta, the expunge log, the bodies (staged in memory, written by the
// delivery transaction that references them, read by range) and the message writes — deliver and
// APPEND through pb_deliver (schema.ts migration 2, with the SORT/THREAD keys: sort.ts),
// MULTIAPPEND/REPLACE (append-many.ts), flags, EXPUNGE, COPY, MOVE, each one transaction
// (changes.ts) whose row-level statements are in writes.ts.

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type pg from 'pg';
import {
  StoreError,
  normalizeKeywords,
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
import { sortedUnique } from '../chunks.ts';
import { nextTurn } from '../../obs/loop-lag.ts';
import { pgCode } from './changes.ts';
import type { PgContext, PgQuery } from './context.ts';
import type { PgWrites } from './writes.ts';
import { appendRowsPg } from './append-many.ts';
import { deliverWithSortKeys, sortKeysParams } from './sort.ts';

type Row = Record<string, any>;
type Client = pg.PoolClient;

const STREAM_CHUNK = 256 * 1024;

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

export class PgMessages {
  readonly #pool: pg.Pool;
  readonly #q: PgQuery;
  readonly #check: PgContext['check'];
  readonly #tx: PgContext['tx'];
  readonly #wr: PgWrites;
  /** Staged bodies waiting for their delivery transaction: id → bytes + pin count. */
  readonly #staged: PgContext['staged'];
  readonly #defaultMaxBlob: number;

  constructor(ctx: PgContext) {
    this.#pool = ctx.pool;
    this.#q = ctx.q;
    this.#check = ctx.check;
    this.#tx = ctx.tx;
    this.#wr = ctx.wr;
    this.#staged = ctx.staged;
    this.#defaultMaxBlob = ctx.defaultMaxBlob;
  }

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
