// The message rows of the SQLite store: the SQL of every message write (insert, copy, move, flag
// change, expunge) on a bounded set of rows inside the caller's transaction, with the bookkeeping
// each one keeps — UID/MODSEQ allocation, quota usage, blob refcounts, the expunge log and the
// Changes to publish. Bulk commands (src/store/sqlite/bulk.ts) call these a chunk at a time, with
// a `stop` check (src/store/chunks.ts) between rows: a write that stops early has done a prefix of
// its rows, with every counter (UIDNEXT, HIGHESTMODSEQ, usage, refcounts) set for exactly those.
//
// Mailbox holds: a bulk COPY (and an INBOX rename) holds its destination mailbox; every write to a
// held mailbox by anyone else throws `Held`, which the group commit turns into "wait for the
// release, then run again" (the caller just sees a later commit). What a staged COPY hides is in
// the database (bulk_ops), so every process (the admin CLI too) sees the same mailbox.

import type Database from 'better-sqlite3';
import type { Change } from '../bus.ts';
import {
  StoreError,
  applyFlagOp,
  normalizeKeywords,
  sameFlags,
  type BlobRef,
  type FlagOp,
  type MessageSummary,
  type StoreFlagsResult,
} from '../store.ts';
import type { MessageMeta } from '../../protocol/mime/types.ts';
import { textPlan } from '../../protocol/mime/text-plan.ts';
import { NEVER, countBelow, type Stop } from '../chunks.ts';
import { insertSortKeys } from './sort.ts';
import type { SortKeys } from '../../protocol/imap/sort-keys.ts';

type Row = Record<string, any>;
export type Query = (sql: string) => Database.Statement;

/** One write's view of the shared (group-commit) transaction. */
export interface Tx {
  changes: Change[];
  deadBlobs: string[];
  /** Summaries of the rows inserted, by "mailboxId:uid", for the listing cache. */
  added: Map<string, MessageSummary>;
  /** First change of the current write (several writes share a batched transaction). */
  start: number;
  /** The bulk operation this write belongs to (it may write the mailboxes that operation holds). */
  op: number;
}

export function newTx(): Tx {
  return { changes: [], deadBlobs: [], added: new Map(), start: 0, op: 0 };
}

export function stamp(tx: Tx, origin: string | undefined): void {
  if (origin === undefined) return;
  for (let i = tx.start; i < tx.changes.length; i++) tx.changes[i]!.origin = origin;
}

/** Thrown by a write to a mailbox another operation holds; the group commit waits and retries. */
export class Held extends Error {
  readonly wait: Promise<void>;
  constructor(wait: Promise<void>) {
    super('mailbox is held by a bulk operation');
    this.wait = wait;
  }
}

export interface Hold {
  op: number;
  released: Promise<void>;
  release(): void;
}

/** Mailboxes held by bulk operations (in this process). */
export class Holds {
  readonly #m = new Map<number, Hold>();

  get(mailboxId: number): Hold | undefined {
    return this.#m.get(mailboxId);
  }

  /** Takes the hold (the caller checked the mailbox is free inside its transaction). */
  take(mailboxId: number, op: number): Hold {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const h: Hold = {
      op,
      released,
      release: () => {
        if (this.#m.get(mailboxId) === h) this.#m.delete(mailboxId);
        release();
      },
    };
    this.#m.set(mailboxId, h);
    return h;
  }

  /**
   * With other processes on the file (peers.ts): whether one of them stages a COPY into the
   * mailbox (its bulk_ops row; the hold itself is in that process's memory).
   */
  foreign: ((mailboxId: number) => boolean) | null = null;

  /** Throws Held if another operation holds the mailbox (here, or in another process: asked again every 20 ms). */
  check(tx: Tx, mailboxId: number): void {
    const h = this.#m.get(mailboxId);
    if (h) {
      if (h.op !== tx.op) throw new Held(h.released);
      return;
    }
    if (this.foreign?.(mailboxId)) throw new Held(new Promise((r) => setTimeout(r, 20)));
  }
}

/** A source row for a copy or move. */
export interface SourceRow {
  uid: number;
  system_flags: number;
  keywords: string;
  internal_date: number;
  saved_at: number;
  size: number;
  blob_id: string;
}

export const SOURCE_COLUMNS = 'uid, system_flags, keywords, internal_date, saved_at, size, blob_id';

/** Case folding for header SEARCH (RFC 9051 §6.4.4 leaves the comparison to the server). */
export function foldForSearch(v: string): string {
  return v.toLowerCase();
}

/**
 * What a new message's rows need from its parse, computed before the write joins the group
 * commit (`prepareMeta`): the cached meta JSON, the five folded SEARCH header fields and the text
 * plan. In SQL (json_extract five times, pb_text_plan) a 10,000-part message cost ~40 ms inside
 * the shared commit's turn; here it is one JSON.stringify in the caller's own turn.
 */
export interface PreparedMeta {
  json: string;
  search: [subject: string, from: string, to: string, cc: string, bcc: string];
  plan: string;
}

export function prepareMeta(meta: MessageMeta): PreparedMeta {
  const h = meta.search;
  return {
    json: JSON.stringify(meta),
    search: [foldForSearch(h.subject ?? ''), foldForSearch(h.from ?? ''), foldForSearch(h.to ?? ''), foldForSearch(h.cc ?? ''), foldForSearch(h.bcc ?? '')],
    plan: JSON.stringify(textPlan(meta.root)),
  };
}

const NO_KEYWORDS = Object.freeze([]) as unknown as string[];
const parseKeywords = (k: string): string[] => (k === '[]' ? NO_KEYWORDS : (JSON.parse(k) as string[]));

export class MessageWrites {
  readonly q: Query;
  readonly holds: Holds;
  /** With peers (peers.ts): whether a body file is missing, checked before a new blobs row names it. */
  fileGone: ((id: string) => boolean) | null = null;
  constructor(q: Query, holds: Holds) {
    this.q = q;
    this.holds = holds;
  }

  /** Adds n to the mailbox's HIGHESTMODSEQ; returns the first of the n new MODSEQs. */
  bumpModseq(tx: Tx, mailboxId: number, n = 1): number {
    this.holds.check(tx, mailboxId);
    const last = this.q('UPDATE mailboxes SET highest_modseq = highest_modseq + ? WHERE id = ? RETURNING highest_modseq').pluck().get(n, mailboxId) as number;
    return last - n + 1;
  }

  /** References a body (its row made with the parse and SORT keys when new). */
  refBlob(blob: BlobRef, meta: PreparedMeta, keys: SortKeys, n: number): void {
    // The caller's body is a staged (durable) file: a row that kept the bytes itself (blobs.data, a
    // queued body, migration 13) now has that file, and drops them, so the file goes with the row.
    const queueOnly = this.q("UPDATE blobs SET refcount = refcount + ?, data = NULL WHERE id = ? RETURNING meta = 'null'").pluck().get(n, blob.id) as number | undefined;
    // A body only the outbound queue held so far has no parse yet (sqlite/queue.ts): fill it in.
    if (queueOnly === 1) {
      this.q('UPDATE blobs SET meta = ? WHERE id = ?').run(meta.json, blob.id);
      insertSortKeys(this.q, blob.id, keys);
    }
    if (queueOnly !== undefined) return;
    // With peers, a file without a row may have been swept by another worker since it was staged.
    if (this.fileGone?.(blob.id)) throw new StoreError('invalid', 'the message body was removed meanwhile; try again');
    this.q('INSERT INTO blobs (id, size, refcount, meta) VALUES (?, ?, ?, ?)').run(blob.id, blob.size, n, meta.json);
    // SORT/THREAD keys with the parse, once per body (src/store/sqlite/sort.ts).
    insertSortKeys(this.q, blob.id, keys);
  }

  unrefBlob(tx: Tx, blobId: string, n: number): void {
    const left = this.q('UPDATE blobs SET refcount = refcount - ? WHERE id = ? RETURNING refcount').pluck().get(n, blobId) as number | undefined;
    if (left !== undefined && left <= 0) {
      // A body kept in the row itself (blobs.data, migration 13) has no file to remove.
      const file = this.q('DELETE FROM blobs WHERE id = ? RETURNING data IS NULL').pluck().get(blobId);
      if (file !== 0) tx.deadBlobs.push(blobId);
    }
  }

  unrefBlobs(tx: Tx, counts: ReadonlyMap<string, number>): void {
    for (const [id, n] of counts) this.unrefBlob(tx, id, n);
  }

  /** Whether `bytes` more fit in the account's quota (quota 0 = unlimited). */
  fits(accountId: number, bytes: number): boolean {
    const a = this.q('SELECT quota, used_bytes FROM accounts WHERE id = ?').get(accountId) as Row | undefined;
    if (!a) return false;
    return a.quota === 0 || a.used_bytes + bytes <= a.quota;
  }

  usage(accountId: number, bytes: number, count: number): void {
    if (bytes === 0 && count === 0) return;
    this.q('UPDATE accounts SET used_bytes = used_bytes + ?, message_count = message_count + ? WHERE id = ?').run(bytes, count, accountId);
  }

  /** Adds one message row; the caller has checked quota and referenced the blob. */
  insertMessage(
    tx: Tx,
    accountId: number,
    mailboxId: number,
    blob: { id: string; size: number },
    meta: PreparedMeta,
    m: { systemFlags: number; keywords: string[]; internalDate: number },
  ): { uid: number; modseq: number } {
    this.holds.check(tx, mailboxId);
    const mb = this.q('UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING uid_next - 1 AS uid, highest_modseq AS modseq')
      .get(mailboxId) as Row;
    const keywords = normalizeKeywords(m.keywords);
    const savedAt = Date.now();
    this.q('INSERT INTO messages (mailbox_id, uid, modseq, system_flags, keywords, internal_date, saved_at, size, blob_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(mailboxId, mb.uid, mb.modseq, m.systemFlags, JSON.stringify(keywords), m.internalDate, savedAt, blob.size, blob.id);
    this.q('INSERT INTO message_search (mailbox_id, uid, subject, from_addr, to_addr, cc_addr, bcc_addr, text_plan) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(mailboxId, mb.uid, ...meta.search, meta.plan);
    tx.added.set(`${mailboxId}:${mb.uid}`, { uid: mb.uid, modseq: mb.modseq, systemFlags: m.systemFlags, keywords, internalDate: m.internalDate, savedAt, size: blob.size, blobId: blob.id });
    this.usage(accountId, blob.size, 1);
    tx.changes.push({ kind: 'message-added', accountId, mailboxId, uid: mb.uid, modseq: mb.modseq, keywords });
    return { uid: mb.uid, modseq: mb.modseq };
  }

  /**
   * The rows of the given UIDs (ascending, distinct) that exist, ascending. Dense UIDs (most of a
   * range): one range scan filtered here; sparse ones: one lookup each.
   */
  rowsOf<T extends Row = Row>(columns: string, mailboxId: number, uids: readonly number[]): T[] {
    if (uids.length === 0) return [];
    const lo = uids[0]!;
    const hi = uids[uids.length - 1]!;
    if (hi - lo < 4 * uids.length) {
      const rows = this.q(`SELECT ${columns} FROM messages WHERE mailbox_id = CAST(? AS INTEGER) AND uid BETWEEN ? AND ? ORDER BY uid`).all(mailboxId, lo, hi) as T[];
      if (rows.length === uids.length) return rows;
      const out: T[] = [];
      let k = 0;
      for (const r of rows) {
        while (k < uids.length && uids[k]! < r.uid) k++;
        if (uids[k] === r.uid) out.push(r);
      }
      return out;
    }
    const one = this.q(`SELECT ${columns} FROM messages WHERE mailbox_id = ? AND uid = ?`);
    const out: T[] = [];
    for (const u of uids) {
      const r = one.get(mailboxId, u) as T | undefined;
      if (r) out.push(r);
    }
    return out;
  }

  /**
   * Flag changes on the given UIDs (ascending, distinct); each changed message gets its own new
   * MODSEQ in UID order (RFC 7162 §3.1), the mailbox's HIGHESTMODSEQ set once at the end. `done`:
   * how many of `uids` were handled (all, unless `stop` said so first).
   */
  flags(
    tx: Tx,
    accountId: number,
    mailboxId: number,
    uids: readonly number[],
    op: FlagOp,
    flags: { systemFlags: number; keywords: string[] },
    unchangedSince?: number,
    stop: Stop = NEVER,
  ): StoreFlagsResult & { done: number } {
    const updated: StoreFlagsResult['updated'] = [];
    const modified: number[] = [];
    const rows = this.rowsOf<Row>('uid, modseq, system_flags, keywords', mailboxId, uids);
    this.holds.check(tx, mailboxId);
    const hms = this.q('SELECT highest_modseq FROM mailboxes WHERE id = ?').pluck().get(mailboxId) as number;
    const upd = this.q('UPDATE messages SET system_flags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?');
    let done = uids.length;
    let modseq = hms;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      if (i > 0 && stop()) {
        done = countBelow(uids, r.uid);
        break;
      }
      // RFC 7162 §3.1.3: UNCHANGEDSINCE fails for messages whose MODSEQ is greater.
      if (unchangedSince !== undefined && r.modseq > unchangedSince) {
        modified.push(r.uid);
        continue;
      }
      const cur = { systemFlags: r.system_flags as number, keywords: parseKeywords(r.keywords) };
      const next = applyFlagOp(cur, op, flags);
      if (sameFlags(cur, next)) continue;
      modseq++;
      upd.run(next.systemFlags, next.keywords.length ? JSON.stringify(next.keywords) : '[]', modseq, mailboxId, r.uid);
      updated.push({ uid: r.uid, modseq, systemFlags: next.systemFlags, keywords: next.keywords });
      tx.changes.push({ kind: 'flags-changed', accountId, mailboxId, uid: r.uid, modseq, systemFlags: next.systemFlags, keywords: next.keywords });
    }
    if (modseq !== hms) this.q('UPDATE mailboxes SET highest_modseq = ? WHERE id = ?').run(modseq, mailboxId);
    return { updated, modified, done };
  }

  /**
   * Expunges the given UIDs (ascending, existing) under one new MODSEQ, logged for VANISHED (RFC
   * 7162 §3.2.10). Returns how many of `uids` were handled (all, unless `stop` said so first).
   */
  expunge(tx: Tx, accountId: number, mailboxId: number, uids: readonly number[], stop: Stop = NEVER): number {
    if (uids.length === 0) return 0;
    const modseq = this.bumpModseq(tx, mailboxId);
    const del = this.q('DELETE FROM messages WHERE mailbox_id = ? AND uid = ? RETURNING size, blob_id');
    const delSearch = this.q('DELETE FROM message_search WHERE mailbox_id = ? AND uid = ?');
    const log = this.q('INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)');
    const blobs = new Map<string, number>();
    const gone: number[] = [];
    let bytes = 0;
    let done = 0;
    for (const uid of uids) {
      if (done > 0 && stop()) break;
      done++;
      const r = del.get(mailboxId, uid) as Row | undefined;
      if (!r) continue;
      delSearch.run(mailboxId, uid);
      log.run(mailboxId, uid, modseq);
      bytes += r.size;
      blobs.set(r.blob_id, (blobs.get(r.blob_id) ?? 0) + 1);
      gone.push(uid);
    }
    this.unrefBlobs(tx, blobs);
    this.usage(accountId, -bytes, -gone.length);
    if (gone.length) tx.changes.push({ kind: 'messages-expunged', accountId, mailboxId, uids: gone, modseq });
    return done;
  }

  /**
   * Copies rows into `dst` with consecutive new UIDs and MODSEQs (one update of the mailbox row),
   * flags and dates kept, the search row copied from the source's. With `publish` false the
   * message-added changes are returned instead of queued (a staged COPY publishes them at the end).
   * The caller checked quota. Returns [source UID, new UID] pairs and the new summaries; the pairs
   * are for a prefix of `rows` when `stop` ended it early.
   */
  copyRows(
    tx: Tx,
    src: { id: number },
    dst: { id: number; accountId: number },
    rows: readonly SourceRow[],
    publish: boolean,
    stop: Stop = NEVER,
  ): { mapping: Array<[number, number]>; added: MessageSummary[]; changes: Change[] } {
    if (rows.length === 0) return { mapping: [], added: [], changes: [] };
    this.holds.check(tx, dst.id);
    const a = this.q('SELECT uid_next, highest_modseq FROM mailboxes WHERE id = ?').get(dst.id) as Row;
    const uid0 = a.uid_next as number;
    const modseq0 = (a.highest_modseq as number) + 1;
    const ins = this.q('INSERT INTO messages (mailbox_id, uid, modseq, system_flags, keywords, internal_date, saved_at, size, blob_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const insSearch = this.q(
      `INSERT INTO message_search (mailbox_id, uid, subject, from_addr, to_addr, cc_addr, bcc_addr, text_plan)
       SELECT ?, ?, subject, from_addr, to_addr, cc_addr, bcc_addr, text_plan FROM message_search WHERE mailbox_id = ? AND uid = ?`,
    );
    const savedAt = Date.now();
    const mapping: Array<[number, number]> = [];
    const added: MessageSummary[] = [];
    const changes: Change[] = [];
    const blobs = new Map<string, number>();
    let bytes = 0;
    for (let k = 0; k < rows.length; k++) {
      if (k > 0 && stop()) break;
      const r = rows[k]!;
      const uid = uid0 + k;
      const modseq = modseq0 + k;
      ins.run(dst.id, uid, modseq, r.system_flags, r.keywords, r.internal_date, savedAt, r.size, r.blob_id);
      if (insSearch.run(dst.id, uid, src.id, r.uid).changes === 0) this.#searchFromMeta(dst.id, uid, r.blob_id);
      blobs.set(r.blob_id, (blobs.get(r.blob_id) ?? 0) + 1);
      bytes += r.size;
      mapping.push([r.uid, uid]);
      const m: MessageSummary = { uid, modseq, systemFlags: r.system_flags, keywords: parseKeywords(r.keywords), internalDate: r.internal_date, savedAt, size: r.size, blobId: r.blob_id };
      added.push(m);
      const c: Change = { kind: 'message-added', accountId: dst.accountId, mailboxId: dst.id, uid, modseq, keywords: m.keywords };
      if (publish) {
        tx.added.set(`${dst.id}:${uid}`, m);
        tx.changes.push(c);
      } else changes.push(c);
    }
    const n = mapping.length;
    this.q('UPDATE mailboxes SET uid_next = ?, highest_modseq = ? WHERE id = ?').run(uid0 + n, modseq0 + n - 1, dst.id);
    const ref = this.q('UPDATE blobs SET refcount = refcount + ? WHERE id = ?');
    for (const [id, k] of blobs) ref.run(k, id);
    this.usage(dst.accountId, bytes, n);
    return { mapping, added, changes };
  }

  #searchFromMeta(mailboxId: number, uid: number, blobId: string): void {
    this.q(
      `INSERT INTO message_search (mailbox_id, uid, subject, from_addr, to_addr, cc_addr, bcc_addr, text_plan)
       SELECT ?, ?, pb_fold(coalesce(json_extract(meta, '$.search.subject'), '')), pb_fold(coalesce(json_extract(meta, '$.search.from'), '')),
              pb_fold(coalesce(json_extract(meta, '$.search.to'), '')), pb_fold(coalesce(json_extract(meta, '$.search.cc'), '')),
              pb_fold(coalesce(json_extract(meta, '$.search.bcc'), '')), pb_text_plan(meta)
       FROM blobs WHERE id = ?`,
    ).run(mailboxId, uid, blobId);
  }

  /**
   * Moves rows from `src` to `dst` (same account) in place: each row gets its new UID and MODSEQ in
   * the same statement that takes it out of the source, so at every commit each message is in
   * exactly one mailbox (RFC 6851 §3.3). The source logs them expunged under one new MODSEQ.
   * Returns the [old UID, new UID] pairs: a prefix of `rows` when `stop` ended it early.
   */
  moveRows(tx: Tx, src: { id: number; accountId: number }, dst: { id: number }, rows: readonly SourceRow[], stop: Stop = NEVER): Array<[number, number]> {
    if (rows.length === 0) return [];
    const srcModseq = this.bumpModseq(tx, src.id);
    this.holds.check(tx, dst.id);
    const a = this.q('SELECT uid_next, highest_modseq FROM mailboxes WHERE id = ?').get(dst.id) as Row;
    const uid0 = a.uid_next as number;
    const modseq0 = (a.highest_modseq as number) + 1;
    const mv = this.q('UPDATE messages SET mailbox_id = ?, uid = ?, modseq = ?, saved_at = ? WHERE mailbox_id = ? AND uid = ?');
    const savedAt = Date.now();
    const mvSearch = this.q('UPDATE message_search SET mailbox_id = ?, uid = ? WHERE mailbox_id = ? AND uid = ?');
    const log = this.q('INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)');
    const mapping: Array<[number, number]> = [];
    for (let k = 0; k < rows.length; k++) {
      if (k > 0 && stop()) break;
      const r = rows[k]!;
      const uid = uid0 + k;
      const modseq = modseq0 + k;
      mv.run(dst.id, uid, modseq, savedAt, src.id, r.uid);
      mvSearch.run(dst.id, uid, src.id, r.uid);
      log.run(src.id, r.uid, srcModseq);
      mapping.push([r.uid, uid]);
      const keywords = parseKeywords(r.keywords);
      tx.added.set(`${dst.id}:${uid}`, { uid, modseq, systemFlags: r.system_flags, keywords, internalDate: r.internal_date, savedAt, size: r.size, blobId: r.blob_id });
      tx.changes.push({ kind: 'message-added', accountId: src.accountId, mailboxId: dst.id, uid, modseq, keywords });
    }
    const n = mapping.length;
    this.q('UPDATE mailboxes SET uid_next = ?, highest_modseq = ? WHERE id = ?').run(uid0 + n, modseq0 + n - 1, dst.id);
    tx.changes.push({ kind: 'messages-expunged', accountId: src.accountId, mailboxId: src.id, uids: mapping.map((p) => p[0]), modseq: srcModseq });
    return mapping;
  }

  /**
   * Deletes up to `limit` messages of a mailbox that no longer exists (DELETE, account removal),
   * with quota (when the account is still there) and blob bookkeeping. Returns how many (fewer
   * when `stop` ended it early; 0 only when none are left).
   */
  dropSome(tx: Tx, mailboxId: number, accountId: number, limit: number, fromUid = 0, stop: Stop = NEVER): number {
    const rows = this.q('SELECT uid, size, blob_id FROM messages WHERE mailbox_id = CAST(? AS INTEGER) AND uid >= ? ORDER BY uid LIMIT CAST(? AS INTEGER)').all(mailboxId, fromUid, limit) as Row[];
    if (rows.length === 0) return 0;
    const del = this.q('DELETE FROM messages WHERE mailbox_id = ? AND uid = ?');
    const delSearch = this.q('DELETE FROM message_search WHERE mailbox_id = ? AND uid = ?');
    const blobs = new Map<string, number>();
    let bytes = 0;
    let n = 0;
    for (const r of rows) {
      if (n > 0 && stop()) break;
      del.run(mailboxId, r.uid);
      delSearch.run(mailboxId, r.uid);
      bytes += r.size;
      blobs.set(r.blob_id, (blobs.get(r.blob_id) ?? 0) + 1);
      n++;
    }
    this.unrefBlobs(tx, blobs);
    if (accountId) this.usage(accountId, -bytes, -n);
    return n;
  }

  dropRetained(tx: Tx, where: string, args: unknown[]): void {
    const rows = this.q(`SELECT blob_id, count(*) AS n FROM pop_retained WHERE ${where} GROUP BY blob_id`).all(...args) as Row[];
    if (rows.length === 0) return;
    this.q(`DELETE FROM pop_retained WHERE ${where}`).run(...args);
    for (const r of rows) this.unrefBlob(tx, r.blob_id, r.n);
  }

  /** The account of a mailbox, or StoreError 'not-found'. */
  accountOf(mailboxId: number): number {
    const a = this.q('SELECT account_id FROM mailboxes WHERE id = ?').pluck().get(mailboxId) as number | undefined;
    if (a === undefined) throw new StoreError('not-found', `no mailbox ${mailboxId}`);
    return a;
  }
}
