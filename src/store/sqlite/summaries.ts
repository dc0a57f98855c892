// Whole-mailbox summary lists of the SQLite store, cached per mailbox (SELECT, FETCH 1:*, SEARCH
// and QRESYNC all list the mailbox; reading 100k rows costs ~150 ms). An entry is used only while
// the mailbox's visible HIGHESTMODSEQ equals the one the entry is at. Our own commits update the
// entries in place (every message write bumps HIGHESTMODSEQ by one per change, so an entry follows
// a change only if the change's MODSEQ is exactly one above it); a write from another process, or
// anything not understood, leaves the entry behind and the next read catches it up (a few MODSEQs
// behind: the rows changed since and the expunge log, merged in one read) or reloads it. Entries are frozen
// objects shared with callers (flag changes replace them), so a listing costs one array copy and a
// caller that modifies one gets a TypeError instead of corrupting the cache.
//
// A load reads the mailbox in pages of PAGE rows with an event-loop turn between pages (a cold
// 131,072-message SELECT no longer holds the loop for ~250 ms), then catches up, in one read
// transaction, with what committed meanwhile: rows whose MODSEQ is above the one the load started
// at, and the expunge log above it. After each turn the load waits for the store's read gate
// (changes.ts), so no page and no catch-up reads a commit that is not durable yet; and an entry
// follows a commit only once it is durable (update() runs in its after-commit work), when the
// rows and the entry agree again.

import type Database from 'better-sqlite3';
import type { MessageSummary } from '../store.ts';
import type { Tx, Query } from './writes.ts';
import { nextTurn } from '../../obs/loop-lag.ts';

const NO_KEYWORDS = Object.freeze([]) as unknown as string[];
const PAGE = 8192;
export const SUMMARY_CACHE_MAX = 300_000;
/** An entry this many MODSEQs behind (at most as many changed rows) is caught up in place; more: reloaded in pages. */
const CATCH_UP_MAX = 2048;

function frozenKeywords(k: readonly string[]): string[] {
  return (k.length === 0 ? NO_KEYWORDS : Object.freeze([...k])) as string[];
}

/** Index of a UID in a UID-ordered list, or -1. */
export function uidIndex(list: readonly MessageSummary[], uid: number): number {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = list[mid]!.uid;
    if (v === uid) return mid;
    if (v < uid) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Index of the first entry with a UID at or above `uid` (list.length if none). */
export function uidLowerBound(list: readonly MessageSummary[], uid: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.uid < uid) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function summaryOf(r: unknown[]): MessageSummary {
  const kw = r[3] as string;
  return Object.freeze({
    uid: r[0] as number,
    modseq: r[1] as number,
    systemFlags: r[2] as number,
    keywords: kw === '[]' ? NO_KEYWORDS : Object.freeze(JSON.parse(kw) as string[]),
    internalDate: r[4] as number,
    savedAt: r[5] as number,
    size: r[6] as number,
    blobId: r[7] as string,
  }) as MessageSummary;
}

const COLS = 'uid, modseq, system_flags, keywords, internal_date, saved_at, size, blob_id';

export interface Visibility {
  /** The HIGHESTMODSEQ the mailbox shows (undefined: no such mailbox). */
  hms(mailboxId: number): number | undefined;
  /** Rows with this UID or above are not part of the mailbox yet (a staged COPY). */
  below(mailboxId: number): number;
  /** Null, or what a read resuming after an event-loop turn waits for (the read gate, changes.ts). */
  settled(): Promise<void> | null;
}

export class SummaryCache {
  readonly #entries = new Map<number, { hms: number; list: MessageSummary[] }>();
  readonly #loading = new Map<number, Promise<MessageSummary[]>>();
  #size = 0;
  readonly #db: Database.Database;
  readonly #q: Query;
  readonly #vis: Visibility;

  constructor(db: Database.Database, q: Query, vis: Visibility) {
    this.#db = db;
    this.#q = q;
    this.#vis = vis;
  }

  drop(mailboxId: number): void {
    const e = this.#entries.get(mailboxId);
    if (!e) return;
    this.#entries.delete(mailboxId);
    this.#size -= e.list.length;
  }

  clear(): void {
    this.#entries.clear();
    this.#size = 0;
  }

  /** Follows one commit's changes (see the header). */
  update(tx: Tx): void {
    if (this.#entries.size === 0) return;
    for (const c of tx.changes) {
      if (c.kind === 'account-removed') return this.clear();
      if (c.kind === 'subscription-changed' || c.kind === 'account-created' || c.kind === 'account-updated') continue;
      const e = this.#entries.get(c.mailboxId);
      if (!e) continue;
      if (c.kind === 'mailbox-created' || c.kind === 'mailbox-renamed') continue;
      if (c.kind === 'mailbox-deleted' || c.modseq !== e.hms + 1) {
        this.drop(c.mailboxId);
        continue;
      }
      const list = e.list;
      if (c.kind === 'message-added') {
        const m = tx.added.get(`${c.mailboxId}:${c.uid}`);
        if (!m || (list.length && list[list.length - 1]!.uid >= c.uid)) {
          this.drop(c.mailboxId);
          continue;
        }
        list.push(Object.freeze({ ...m, keywords: frozenKeywords(m.keywords) }));
        this.#size++;
      } else if (c.kind === 'flags-changed') {
        const i = uidIndex(list, c.uid);
        if (i >= 0) list[i] = Object.freeze({ ...list[i]!, modseq: c.modseq, systemFlags: c.systemFlags, keywords: frozenKeywords(c.keywords) });
      } else {
        this.#remove(e, c.uids);
      }
      e.hms = c.modseq;
    }
  }

  #remove(e: { list: MessageSummary[] }, uids: readonly number[]): void {
    const list = e.list;
    const gone = new Set(uids);
    let w = 0;
    for (let r = 0; r < list.length; r++) if (!gone.has(list[r]!.uid)) list[w++] = list[r]!;
    this.#size -= list.length - w;
    list.length = w;
  }

  /**
   * A staged COPY became visible: its rows (ascending UIDs above every listed one, MODSEQs
   * fromHms+1…) join the entry if the entry is at fromHms; else the entry goes.
   */
  reveal(mailboxId: number, fromHms: number, added: readonly MessageSummary[]): void {
    const e = this.#entries.get(mailboxId);
    if (!e) return;
    const last = e.list.length ? e.list[e.list.length - 1]!.uid : 0;
    if (e.hms !== fromHms || (added.length && added[0]!.uid <= last) || this.#size + added.length > SUMMARY_CACHE_MAX) {
      this.drop(mailboxId);
      return;
    }
    for (const m of added) e.list.push(Object.freeze({ ...m, keywords: frozenKeywords(m.keywords) }));
    this.#size += added.length;
    e.hms = fromHms + added.length;
  }

  /**
   * The cached list if it is at `hms` (the HIGHESTMODSEQ the mailbox shows now), else null: no
   * load, no catch-up, no change to the recency order (STATUS counts it: mailboxes.ts).
   */
  peek(mailboxId: number, hms: number): readonly MessageSummary[] | null {
    const e = this.#entries.get(mailboxId);
    return e !== undefined && e.hms === hms ? e.list : null;
  }

  /** The cached list if it is at the HIGHESTMODSEQ the mailbox shows now, else null (no load). */
  current(mailboxId: number): readonly MessageSummary[] | null {
    if (!this.#entries.has(mailboxId)) return null;
    const hms = this.#vis.hms(mailboxId);
    return hms === undefined ? null : this.peek(mailboxId, hms);
  }

  /** The mailbox's summaries by UID: the cached list (shared, frozen) or a fresh paged load. */
  async list(mailboxId: number): Promise<MessageSummary[]> {
    const hms = this.#vis.hms(mailboxId);
    const cached = this.#entries.get(mailboxId);
    if (cached) {
      this.#entries.delete(mailboxId);
      if (cached.hms === hms) {
        this.#entries.set(mailboxId, cached); // most recently used last
        return cached.list;
      }
      this.#size -= cached.list.length;
      // Behind by a few commits of another process (--workers): merge them in rather than reload.
      if (hms !== undefined && hms > cached.hms && hms - cached.hms <= CATCH_UP_MAX && !this.#loading.has(mailboxId)) {
        const next = this.#catchUp(mailboxId, cached.hms, cached.list);
        if (next) {
          this.#entries.set(mailboxId, next);
          this.#size += next.list.length;
          return next.list;
        }
      }
    }
    if (hms === undefined) return [];
    let p = this.#loading.get(mailboxId);
    if (!p) {
      p = this.#load(mailboxId, hms).finally(() => this.#loading.delete(mailboxId));
      this.#loading.set(mailboxId, p);
    }
    return p;
  }

  async #load(mailboxId: number, hms0: number): Promise<MessageSummary[]> {
    // Raw rows (arrays), one at a time, and a hand-built object: iterate() rather than all(), so
    // the rows die young instead of all 100,000 surviving into the old generation.
    const page = this.#q(`SELECT ${COLS} FROM messages WHERE mailbox_id = CAST(? AS INTEGER) AND uid > ? AND uid < ? ORDER BY uid LIMIT ${PAGE}`);
    let out: MessageSummary[] = [];
    let cursor = 0;
    for (;;) {
      let n = 0;
      for (const r of page.raw().iterate(mailboxId, cursor, this.#vis.below(mailboxId)) as IterableIterator<unknown[]>) {
        out.push(summaryOf(r));
        n++;
      }
      if (n < PAGE) break;
      cursor = out[out.length - 1]!.uid;
      await nextTurn();
      await this.#vis.settled();
    }
    const hms = this.#catchUp(mailboxId, hms0, out);
    if (hms === undefined) return [];
    out = hms.list;
    if (out.length <= SUMMARY_CACHE_MAX) {
      this.#entries.set(mailboxId, { hms: hms.hms, list: out });
      this.#size += out.length;
      for (const [id, e] of this.#entries) {
        if (this.#size <= SUMMARY_CACHE_MAX) break;
        this.#entries.delete(id);
        this.#size -= e.list.length;
      }
    }
    return out;
  }

  /** Merges what committed since hms0 (rows with a higher MODSEQ, expunges logged above it). */
  #catchUp(mailboxId: number, hms0: number, list: MessageSummary[]): { hms: number; list: MessageSummary[] } | undefined {
    return this.#db.transaction(() => {
      const hms = this.#vis.hms(mailboxId);
      if (hms === undefined || hms === hms0) return hms === undefined ? undefined : { hms, list };
      const below = this.#vis.below(mailboxId);
      const changed = (this.#q(`SELECT ${COLS} FROM messages WHERE mailbox_id = CAST(? AS INTEGER) AND modseq > ? AND uid < ? ORDER BY uid`).raw().all(mailboxId, hms0, below) as unknown[][]).map(summaryOf);
      const gone = new Set(this.#q('SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?').pluck().all(mailboxId, hms0) as number[]);
      const out: MessageSummary[] = [];
      let k = 0;
      for (const m of list) {
        while (k < changed.length && changed[k]!.uid < m.uid) out.push(changed[k++]!);
        if (k < changed.length && changed[k]!.uid === m.uid) out.push(changed[k++]!);
        else if (!gone.has(m.uid)) out.push(m);
      }
      while (k < changed.length) out.push(changed[k++]!);
      return { hms, list: out };
    })();
  }
}
