// SORT over the selected mailbox (RFC 5256 §3) from the mailbox's key index (sort-index.ts): the
// matches (SEARCH, search-eval.ts; `ALL` needs no evaluation: every message the client knows),
// then the index's cached order of the sort program filtered to them, and the response built
// into one Buffer.

import type { SearchKey, SortCriterion } from '../protocol/imap/types.ts';
import { LoopBudget } from '../obs/loop-lag.ts';
import { runSearch } from './search-eval.ts';
import type { ImapSession } from './session.ts';
import { keyIndex, wantsOf, type KeyIndex, type Wants } from './sort-index.ts';

/** RFC 9051 §6.4.4 ALL (alone or ANDed with itself): every message, nothing to evaluate. */
export function isAll(k: SearchKey): boolean {
  return k.k === 'all' || (k.k === 'and' && k.keys.every(isAll));
}

/** The matches of a SORT or THREAD, as positions of the mailbox's key index. */
export interface Matches {
  index: KeyIndex;
  /** Entries of the index this command sees (positions below). */
  n: number;
  /** Per position: the sequence number of a match, 0 for the others. */
  seqOf: Int32Array;
  /** The matching positions, ascending (= UID order). */
  positions: Uint32Array;
  usedModseq: boolean;
  /** UID → MODSEQ of the matches when the search had a MODSEQ criterion (RFC 7162 §3.1.9), else empty. */
  modseqs: Map<number, number>;
}

/**
 * The messages matching `key` mapped to the index (messages gone from the store left out). Runs
 * `then` inside the index's exclusive section (derive orders or threads there), returns its value.
 */
export async function withMatches<T>(s: ImapSession, key: SearchKey, wants: Wants, budget: LoopBudget, then: (m: Matches) => Promise<T>): Promise<T> {
  const sel = s.selected!;
  const all = isAll(key);
  const r = all ? null : await runSearch(s, key);
  const { index, done } = keyIndex(s.deps.store, sel.mailboxId, sel.uidValidity);
  const uids = sel.uids.slice();
  try {
    return await index.exclusive(async () => {
      const cov = await index.cover(s.deps.store, uids, sel.pendingExpunged, wants, budget);
      const seqOf = new Int32Array(cov.n);
      let count = 0;
      const modseqs = new Map<number, number>();
      if (r === null) {
        for (let i = 0; i < cov.posOfSeq.length; i++) {
          const p = cov.posOfSeq[i]!;
          if (p >= 0) {
            seqOf[p] = i + 1;
            count++;
          }
        }
      } else {
        for (let i = 0; i < r.seqs.length; i++) {
          // runSearch's sequence numbers are of the session's UIDs at its start: the same copy here
          // unless an EXPUNGE was announced meanwhile (it is not: commands run one at a time).
          const seq = r.seqs[i]!;
          const p = uids[seq - 1] === r.uids[i] ? cov.posOfSeq[seq - 1]! : -1;
          if (p >= 0) {
            seqOf[p] = seq;
            count++;
            if (r.usedModseq) modseqs.set(r.uids[i]!, r.modseqs[i]!);
          }
        }
      }
      const positions = new Uint32Array(count);
      for (let p = 0, j = 0; p < cov.n; p++) if (seqOf[p]! > 0) positions[j++] = p;
      return then({ index, n: cov.n, seqOf, positions, usedModseq: r?.usedModseq ?? false, modseqs });
    });
  } finally {
    done();
  }
}

/** A SORT's answer: the matches in sort order. */
export interface Sorted {
  /** Matching positions in sort order. */
  order: Uint32Array;
  /** UID of each position (the index's column at the time). */
  uidOf: Uint32Array;
  seqOf: Int32Array;
  usedModseq: boolean;
  modseqs: Map<number, number>;
}

/** SORT (RFC 5256 §3): the matches of `key` ordered by `criteria`, then by sequence number. */
export async function sortMatches(s: ImapSession, criteria: readonly SortCriterion[], key: SearchKey): Promise<Sorted> {
  const budget = new LoopBudget(5);
  return withMatches(s, key, wantsOf(criteria), budget, async (m) => {
    const full = await m.index.order(criteria, budget);
    // Full orders are over every entry: keep the matches (most often all of them).
    const order = new Uint32Array(m.positions.length);
    let j = 0;
    for (let i = 0; i < full.length; i++) {
      const p = full[i]!;
      if (p < m.n && m.seqOf[p]! > 0) order[j++] = p;
    }
    return { order: order.subarray(0, j), uidOf: m.index.uid, seqOf: m.seqOf, usedModseq: m.usedModseq, modseqs: m.modseqs };
  });
}

/** The UIDs and sequence numbers in sort order (ESORT, RFC 5267). */
export function sortedNumbers(r: Sorted): { uids: number[]; seqs: number[] } {
  const uids = new Array<number>(r.order.length);
  const seqs = new Array<number>(r.order.length);
  for (let i = 0; i < r.order.length; i++) {
    const p = r.order[i]!;
    uids[i] = r.uidOf[p]!;
    seqs[i] = r.seqOf[p]!;
  }
  return { uids, seqs };
}

/** `* SORT n n …` (RFC 5256 §4) with CONDSTORE's `(MODSEQ m)` (RFC 7162 §3.1.9) when asked, in one Buffer. */
export function sortResponse(r: Sorted, uid: boolean): Buffer {
  let tail = '';
  // RFC 7162 §3.1.9: with a MODSEQ criterion, a non-empty result ends with the highest MODSEQ.
  if (r.usedModseq && r.order.length) {
    let hi = 0;
    for (const v of r.modseqs.values()) if (v > hi) hi = v;
    tail = ` (MODSEQ ${hi})`;
  }
  const w = new NumberWriter(8 + r.order.length * 11 + tail.length + 2);
  w.ascii('* SORT');
  for (let i = 0; i < r.order.length; i++) {
    const p = r.order[i]!;
    w.byte(0x20);
    w.number(uid ? r.uidOf[p]! : r.seqOf[p]!);
  }
  w.ascii(tail + '\r\n');
  return w.done();
}

/** Writes ASCII text and decimal numbers into one Buffer (no string per number). */
export class NumberWriter {
  #buf: Buffer;
  #at = 0;
  constructor(capacity: number) {
    this.#buf = Buffer.allocUnsafe(Math.max(64, capacity));
  }
  get length(): number {
    return this.#at;
  }
  #room(n: number): void {
    if (this.#at + n <= this.#buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#at + n));
    this.#buf.copy(b, 0, 0, this.#at);
    this.#buf = b;
  }
  byte(c: number): void {
    this.#room(1);
    this.#buf[this.#at++] = c;
  }
  ascii(s: string): void {
    this.#room(s.length);
    this.#at += this.#buf.write(s, this.#at, 'latin1');
  }
  /** A non-negative integer below 2^32. */
  number(v: number): void {
    this.#room(10);
    const b = this.#buf;
    let digits = 1;
    for (let x = v; x >= 10; x = Math.floor(x / 10)) digits++;
    let at = this.#at + digits;
    this.#at = at;
    do {
      const q = Math.floor(v / 10);
      b[--at] = 0x30 + (v - q * 10);
      v = q;
    } while (v > 0);
  }
  /** The bytes written (a view: the writer must not be used after). */
  done(): Buffer {
    return this.#buf.subarray(0, this.#at);
  }
  /** The bytes written so far, and a fresh start (for output in parts). */
  take(): Buffer {
    const out = Buffer.from(this.#buf.subarray(0, this.#at));
    this.#at = 0;
    return out;
  }
}
