// The SORT/THREAD keys of a mailbox's messages kept in memory, per store and mailbox, shared by
// every session (RFC 5256 SORT and THREAD answered without a store read or a sort per command, as
// Dovecot answers from its sort index and thread cache).
//
// An index holds, per message in UID order (a "position"), the keys the store computed at
// delivery (Store.getSortData): INTERNALDATE, sent date (RFC 5256 §2.2: INTERNALDATE when there
// is none), size, the string keys the sorts so far asked for, and for THREAD the Message-ID and
// references. A message's keys never change (its body, INTERNALDATE and size are immutable and a
// UID is never reused within a UIDVALIDITY), so an entry is never stale; the index only grows
// (new messages: their keys read from the store, appended) and is compacted of messages the
// sessions no longer know (expunged). Keyed by mailbox id and UIDVALIDITY.
//
// Derived data, rebuilt on demand when missing:
// - `orders`: per sort program, every position in sort order (RFC 5256 §3: the criteria, then the
//   sequence number, i.e. the position). New messages are merged in (binary search per message);
//   an insertion in the middle or a compaction renumbers positions and drops them.
// - `threads` (thread-cache.ts): the THREAD answer for an exact set of positions.
//
// Memory: bounded by SORT_INDEX_MAX_BYTES per store (estimated, `bytes`); least recently used
// mailboxes go first, and an index bigger than that alone is not kept. Measured per 100,000
// messages (heap + array buffers after GC): the fixed columns
// with the base subject ≈ 9 MB, + 0.4 MB per cached sort order, + ≈ 4–5 MB per other string key
// (FROM…), THREAD REFERENCES (Message-IDs, references, the kept threads) + ≈ 50 MB.
// Every pass over the entries yields (LoopBudget) between slices.

import type { SortCriterion } from '../protocol/imap/types.ts';
import type { SortData, Store } from '../store/store.ts';
import { sortSliced } from '../protocol/imap/sort-order.ts';
import { LoopBudget } from '../obs/loop-lag.ts';

/** Estimated bytes kept per store (all mailboxes). A bigger index serves its command only. */
export const SORT_INDEX_MAX_BYTES = 192 * 2 ** 20;
/** Estimated bytes per entry: the typed columns (with growth slack), a string key, THREAD's ids. */
const BYTES_FIXED = 40;
const BYTES_STRING = 50;
const BYTES_THREAD_IDS = 90;
/** UIDs per Store.getSortData call. */
const LOAD_SLICE = 1000;
/** Entries handled between two budget checks in the long loops. */
const STEP = 8192;

export type StringKey = 'subject' | 'from' | 'to' | 'cc' | 'displayFrom' | 'displayTo';

const STRING_OF: Partial<Record<SortCriterion['key'], StringKey>> = {
  SUBJECT: 'subject',
  FROM: 'from',
  TO: 'to',
  CC: 'cc',
  DISPLAYFROM: 'displayFrom',
  DISPLAYTO: 'displayTo',
};

/** What a command needs of every entry. */
export interface Wants {
  strings: ReadonlySet<StringKey>;
  thread: boolean;
}

/** Positions of the session's messages: posOfSeq[seq - 1], -1 when the message is gone. */
export interface Coverage {
  posOfSeq: Int32Array;
  /** Entries at the time of the call (positions below it are valid for this command). */
  n: number;
}

export class KeyIndex {
  readonly mailboxId: number;
  readonly uidValidity: number;
  n = 0;
  uid = new Uint32Array(0);
  internalDate = new Float64Array(0);
  /** RFC 5256 §2.2 sent date: the Date: header, else INTERNALDATE. */
  date = new Float64Array(0);
  size = new Float64Array(0);
  reply = new Uint8Array(0);
  readonly strings = new Map<StringKey, string[]>();
  messageId: Array<string | null> | null = null;
  refs: Array<readonly string[]> | null = null;
  /** Bumped whenever existing entries change position (compaction, insertion in the middle). */
  gen = 0;
  /** Sort program → positions [0, order.length) in sort order. */
  readonly orders = new Map<string, Uint32Array>();
  /** Cached THREAD answers (thread-cache.ts), by algorithm, each with its estimated size. */
  readonly threads = new Map<string, { bytes: number }>();
  #queue: Promise<unknown> = Promise.resolve();
  /** A background build (prewarmKeyIndex) is queued or running. */
  prewarming = false;

  constructor(mailboxId: number, uidValidity: number) {
    this.mailboxId = mailboxId;
    this.uidValidity = uidValidity;
  }

  /** Runs fn after the index's earlier users (one command at a time updates or derives). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * Brings the index up to the session's messages (`uids`, ascending; `gone`: announced to the
   * store as expunged, not yet to the client) with the keys `wants` asks for, and maps them to
   * positions. Messages the store no longer has get -1.
   */
  async cover(store: Store, uids: readonly number[], gone: ReadonlySet<number>, wants: Wants, budget: LoopBudget): Promise<Coverage> {
    const missingStrings = [...wants.strings].filter((k) => !this.strings.has(k));
    if (missingStrings.length || (wants.thread && !this.messageId)) await this.#addColumns(store, missingStrings, wants.thread, budget);
    // One walk of both ascending lists: positions, the UIDs to load, entries nobody knows (dead).
    let missing: number[] = [];
    let dead = 0;
    const walk = () => {
      missing = [];
      dead = 0;
      const pos = new Int32Array(uids.length);
      const u = this.uid;
      const n = this.n;
      let p = 0;
      for (let i = 0; i < uids.length; i++) {
        const x = uids[i]!;
        while (p < n && u[p]! < x) {
          p++;
          dead++;
        }
        if (p < n && u[p] === x) {
          pos[i] = gone.has(x) ? -1 : p;
          p++;
        } else {
          pos[i] = -1;
          if (!gone.has(x)) missing.push(x);
        }
      }
      return pos;
    };
    let pos = walk();
    if (missing.length) {
      await this.#load(store, missing, budget);
      pos = walk();
    }
    // Entries below the session's highest UID it does not know were expunged: compact when many.
    if (dead > 256 && dead * 4 > this.n) {
      await this.#compact(uids, budget);
      pos = walk();
    }
    return { posOfSeq: pos, n: this.n };
  }

  /** Reads the keys of `uids` (ascending) and adds the entries (messages gone are skipped). */
  async #load(store: Store, uids: readonly number[], budget: LoopBudget): Promise<void> {
    const append = this.n === 0 || uids[0]! > this.uid[this.n - 1]!;
    const rows: SortData[] = [];
    for (let i = 0; i < uids.length; i += LOAD_SLICE) {
      await budget.pause();
      const got = await store.getSortData(this.mailboxId, uids.slice(i, i + LOAD_SLICE), { thread: this.messageId !== null });
      if (append) {
        // Added slice by slice (ascending UIDs after the last): no 100,000-row pass at the end.
        this.#grow(this.n + got.length);
        for (const d of got) this.#put(this.n++, d);
      } else for (const d of got) rows.push(d);
    }
    // Out of UID order (rare: a session that knows an older message the index never loaded): a
    // merged copy, positions renumbered, derived data dropped.
    if (!append) await this.#rebuild(() => true, rows, budget);
  }

  #grow(want: number): void {
    if (want <= this.uid.length) return;
    const cap = Math.max(want, Math.ceil(this.uid.length * 1.5), 64);
    const grow = <T extends Uint32Array | Float64Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a.subarray(0, this.n));
      return b;
    };
    this.uid = grow(this.uid, (c) => new Uint32Array(c));
    this.internalDate = grow(this.internalDate, (c) => new Float64Array(c));
    this.date = grow(this.date, (c) => new Float64Array(c));
    this.size = grow(this.size, (c) => new Float64Array(c));
    this.reply = grow(this.reply, (c) => new Uint8Array(c));
  }

  #put(p: number, d: SortData): void {
    this.uid[p] = d.uid;
    this.internalDate[p] = d.internalDate;
    this.date[p] = d.sent ?? d.internalDate;
    this.size[p] = d.size;
    this.reply[p] = d.reply ? 1 : 0;
    for (const [k, col] of this.strings) col[p] = d[k];
    if (this.messageId) this.messageId[p] = d.messageId;
    if (this.refs) this.refs[p] = d.refs.length ? d.refs : NO_REFS;
  }

  /** Adds string (and thread) columns for the entries already in the index. */
  async #addColumns(store: Store, keys: readonly StringKey[], thread: boolean, budget: LoopBudget): Promise<void> {
    const cols = keys.map((k) => [k, new Array<string>(this.n).fill('')] as const);
    const ids = thread && !this.messageId ? new Array<string | null>(this.n).fill(null) : null;
    const refs = ids ? new Array<readonly string[]>(this.n).fill(NO_REFS) : null;
    const uids = Array.from(this.uid.subarray(0, this.n));
    let p = 0;
    for (let i = 0; i < uids.length; i += LOAD_SLICE) {
      await budget.pause();
      for (const d of await store.getSortData(this.mailboxId, uids.slice(i, i + LOAD_SLICE), { thread: ids !== null })) {
        while (p < this.n && this.uid[p]! < d.uid) p++;
        if (this.uid[p] !== d.uid) continue;
        for (const [k, col] of cols) col[p] = d[k];
        if (ids) ids[p] = d.messageId;
        if (refs && d.refs.length) refs[p] = d.refs;
      }
    }
    // Entries added meanwhile are impossible (callers hold exclusive()); gone ones keep ''/null.
    for (const [k, col] of cols) this.strings.set(k, col);
    if (ids) {
      this.messageId = ids;
      this.refs = refs;
    }
  }

  /** Drops the entries the session does not know below its highest UID (expunged). */
  async #compact(known: readonly number[], budget: LoopBudget): Promise<void> {
    const keep = new Set<number>();
    for (let i = 0; i < known.length; i++) {
      keep.add(known[i]!);
      if (i % STEP === 0) await budget.pause();
    }
    const last = known.length ? known[known.length - 1]! : 0;
    await this.#rebuild((uid) => uid > last || keep.has(uid), [], budget);
  }

  /**
   * A new copy of the columns: the entries `keepOld` keeps (by UID), merged
   * with `rows` (ascending UIDs, none already in). Orders are remapped when nothing was inserted,
   * else dropped; cached threads are dropped.
   */
  async #rebuild(keepOld: (uid: number) => boolean, rows: readonly SortData[], budget: LoopBudget): Promise<void> {
    const old = {
      n: this.n,
      uid: this.uid,
      internalDate: this.internalDate,
      date: this.date,
      size: this.size,
      reply: this.reply,
      strings: new Map(this.strings),
      messageId: this.messageId,
      refs: this.refs,
    };
    this.n = 0;
    this.uid = new Uint32Array(0);
    this.internalDate = new Float64Array(0);
    this.date = new Float64Array(0);
    this.size = new Float64Array(0);
    this.reply = new Uint8Array(0);
    for (const k of this.strings.keys()) this.strings.set(k, []);
    if (this.messageId) {
      this.messageId = [];
      this.refs = [];
    }
    this.#grow(old.n + rows.length);
    const map = new Int32Array(old.n).fill(-1);
    let r = 0;
    for (let p = 0; p < old.n; p++) {
      if (p % STEP === 0) await budget.pause();
      if (!keepOld(old.uid[p]!)) continue;
      while (r < rows.length && rows[r]!.uid < old.uid[p]!) this.#put(this.n++, rows[r++]!);
      const q = this.n++;
      map[p] = q;
      this.uid[q] = old.uid[p]!;
      this.internalDate[q] = old.internalDate[p]!;
      this.date[q] = old.date[p]!;
      this.size[q] = old.size[p]!;
      this.reply[q] = old.reply[p]!;
      for (const [k, col] of old.strings) this.strings.get(k)![q] = col[p]!;
      if (old.messageId) this.messageId![q] = old.messageId[p]!;
      if (old.refs) this.refs![q] = old.refs[p]!;
    }
    while (r < rows.length) this.#put(this.n++, rows[r++]!);
    this.gen++;
    this.threads.clear();
    if (rows.length) {
      this.orders.clear();
      return;
    }
    for (const [k, order] of this.orders) {
      const next = new Uint32Array(this.n);
      let j = 0;
      for (let i = 0; i < order.length; i++) {
        const q = map[order[i]!]!;
        if (q >= 0) next[j++] = q;
      }
      this.orders.set(k, next.subarray(0, j));
    }
  }

  /** Estimated memory (the registry's accounting; the figures in the header). */
  get bytes(): number {
    let b = (BYTES_FIXED + BYTES_STRING * this.strings.size + (this.messageId ? BYTES_THREAD_IDS : 0)) * this.n;
    for (const o of this.orders.values()) b += 4 * o.length;
    for (const t of this.threads.values()) b += t.bytes;
    return b;
  }

  /**
   * Every position in the order of `criteria` (RFC 5256 §3), from the cache, with the entries
   * added since merged in. Call inside exclusive(), after cover() with the criteria's columns.
   */
  async order(criteria: readonly SortCriterion[], budget: LoopBudget): Promise<Uint32Array> {
    const key = criteria.map((c) => (c.reverse ? '-' : '') + c.key).join(' ');
    const cmp = this.comparator(criteria);
    const pause = () => budget.pause();
    const have = this.orders.get(key);
    const n = this.n;
    let order: Uint32Array;
    if (have && have.length === n) return have;
    if (have && have.length < n) {
      // The new entries sorted among themselves, then each placed by binary search after the last.
      const added = await sortSliced(range(have.length, n), cmp, pause);
      order = new Uint32Array(n);
      let from = 0;
      let at = 0;
      for (let i = 0; i < added.length; i++) {
        const x = added[i]!;
        let lo = from;
        let hi = have.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (cmp(have[mid]!, x) < 0) lo = mid + 1;
          else hi = mid;
        }
        order.set(have.subarray(from, lo), at);
        at += lo - from;
        order[at++] = x;
        from = lo;
        if (i % 256 === 255) await budget.pause();
      }
      order.set(have.subarray(from), at);
    } else if (criteria.length === 1 && !criteria[0]!.reverse && (criteria[0]!.key === 'ARRIVAL' || criteria[0]!.key === 'DATE') && nonDecreasing(criteria[0]!.key === 'ARRIVAL' ? this.internalDate : this.date, n)) {
      // Dates that grow with the UID (mail appended as it arrives): UID order is the order.
      order = Uint32Array.from(range(0, n));
    } else {
      order = Uint32Array.from(await sortSliced(range(0, n), cmp, pause));
    }
    this.orders.set(key, order);
    return order;
  }

  /** Compares two positions by a sort program, then by position (= UID = sequence order). */
  comparator(criteria: readonly SortCriterion[]): (a: number, b: number) => number {
    const one = criteria.map((c) => {
      const s = STRING_OF[c.key];
      let f: (a: number, b: number) => number;
      if (s) {
        const col = this.strings.get(s)!;
        f = (a, b) => {
          const x = col[a]!;
          const y = col[b]!;
          return x === y ? 0 : x < y ? -1 : 1;
        };
      } else {
        const col = c.key === 'ARRIVAL' ? this.internalDate : c.key === 'DATE' ? this.date : this.size;
        f = (a, b) => col[a]! - col[b]!;
      }
      return c.reverse ? (a: number, b: number) => f(b, a) : f;
    });
    if (one.length === 1) {
      const f = one[0]!;
      return (a, b) => f(a, b) || a - b;
    }
    return (a, b) => {
      for (const f of one) {
        const r = f(a, b);
        if (r !== 0) return r;
      }
      return a - b;
    };
  }
}

const NO_REFS: readonly string[] = Object.freeze([]);

function range(from: number, to: number): number[] {
  const a = new Array<number>(to - from);
  for (let i = from; i < to; i++) a[i - from] = i;
  return a;
}

function nonDecreasing(col: Float64Array, n: number): boolean {
  for (let i = 1; i < n; i++) if (col[i]! < col[i - 1]!) return false;
  return true;
}

/** The string columns a sort program needs. */
export function wantsOf(criteria: readonly SortCriterion[], thread = false): Wants {
  // The base subject always: the commonest SORT key after the dates, and THREAD's (one read of
  // the keys at the first SORT, not a second pass over 100,000 messages at the first SUBJECT).
  const strings = new Set<StringKey>(['subject']);
  for (const c of criteria) {
    const s = STRING_OF[c.key];
    if (s) strings.add(s);
  }
  return { strings, thread };
}

// ------------------------------------------------------------------ the indexes of a store

class Registry {
  /** In least-recently-used order (a use moves an index to the end). */
  readonly #byMailbox = new Map<string, KeyIndex>();

  get(mailboxId: number, uidValidity: number): KeyIndex {
    const key = `${mailboxId}/${uidValidity}`;
    let ix = this.#byMailbox.get(key);
    if (ix) this.#byMailbox.delete(key);
    else ix = new KeyIndex(mailboxId, uidValidity);
    this.#byMailbox.set(key, ix);
    return ix;
  }

  /** After a command: least recently used indexes dropped until the estimate fits. */
  trim(max = SORT_INDEX_MAX_BYTES): void {
    let total = 0;
    for (const ix of this.#byMailbox.values()) total += ix.bytes;
    for (const [key, ix] of this.#byMailbox) {
      if (total <= max) break;
      this.#byMailbox.delete(key);
      total -= ix.bytes;
    }
  }

  get size(): number {
    return this.#byMailbox.size;
  }
}

const registries = new WeakMap<Store, Registry>();

function registryOf(store: Store): Registry {
  let r = registries.get(store);
  if (!r) registries.set(store, (r = new Registry()));
  return r;
}

/** The key index of a mailbox; `done()` after the command lets the registry trim (LRU). */
export function keyIndex(store: Store, mailboxId: number, uidValidity: number): { index: KeyIndex; done: () => void } {
  const r = registryOf(store);
  return { index: r.get(mailboxId, uidValidity), done: () => r.trim() };
}


/** Estimated bytes of a prewarmed entry (fixed columns, base subject, THREAD's ids). */
const BYTES_PREWARMED = BYTES_FIXED + BYTES_STRING + BYTES_THREAD_IDS;

/**
 * At SELECT of a big mailbox (issue 14): builds its key index in the background, in the same
 * slices with event-loop turns as a SORT would (LoopBudget), so the first SORT or THREAD after a
 * server start finds the keys read instead of reading 100,000 messages' keys from the store then.
 * Reads the fixed columns, the base subject and THREAD's Message-IDs and references in one pass
 * (a second pass at the first THREAD costs nearly as much as the first); computes no order and no
 * thread (those stay on demand). A SORT or THREAD arriving meanwhile waits for it (exclusive()) and
 * finds the entries there. Nothing when the index already covers the mailbox, when another
 * build is queued, or when the index could not be kept anyway (bigger than the store's bound).
 * `uids`: the session's, ascending (copied).
 */
export function prewarmKeyIndex(store: Store, mailboxId: number, uidValidity: number, uids: readonly number[], onError: (err: unknown) => void, maxBytes = SORT_INDEX_MAX_BYTES): boolean {
  if (uids.length * BYTES_PREWARMED > maxBytes) return false;
  const r = registryOf(store);
  const ix = r.get(mailboxId, uidValidity);
  const last = uids.length ? uids[uids.length - 1]! : 0;
  if (ix.prewarming || (ix.messageId && ix.strings.has('subject') && ix.n > 0 && ix.uid[ix.n - 1]! >= last)) return false;
  ix.prewarming = true;
  const copy = uids.slice();
  const wants: Wants = { strings: new Set<StringKey>(['subject']), thread: true };
  ix.exclusive(() => ix.cover(store, copy, new Set(), wants, new LoopBudget(5)))
    .catch(onError)
    .finally(() => {
      ix.prewarming = false;
      r.trim(maxBytes);
    });
  return true;
}

/** Drops least recently used indexes of a store until the estimate is at most `maxBytes`. */
export function trimSortIndexes(store: Store, maxBytes: number): void {
  registryOf(store).trim(maxBytes);
}
