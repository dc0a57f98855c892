// The selected mailbox as one session sees it: the UID of every sequence number, and the changes
// (from any session, SMTP delivery, POP3…) it has not told its client about yet.
//
// RFC 9051 §7.5.1: an EXPUNGE (or VANISHED, RFC 7162 §3.2.10) is never sent while a FETCH, STORE
// or SEARCH by sequence number runs, so sequence numbers stay stable under the client; EXISTS and
// FETCH FLAGS may be sent then. Every report is idempotent: the bus and the handler of the
// session's own command may both announce the same change.

import type { Change } from '../store/bus.ts';
import { flagList } from '../protocol/imap/response.ts';
import { LoopBudget } from '../obs/loop-lag.ts';
import { SystemFlag } from '../store/store.ts';
import { fetchOpen } from './uidonly.ts';

const ALL_SYSTEM = SystemFlag.Seen | SystemFlag.Answered | SystemFlag.Flagged | SystemFlag.Deleted | SystemFlag.Draft;

export interface PendingFlags {
  modseq: number;
  systemFlags: number;
  keywords: string[];
}

/**
 * The update contexts of CONTEXT=SEARCH / CONTEXT=SORT (RFC 5267 §4.3; src/imap/context.ts): told
 * of every change, and asked for their ESEARCH ADDTO / REMOVEFROM lines at each flush.
 */
export interface ResultUpdates {
  /** Decisions to report or to make. */
  readonly pending: boolean;
  note(changes: readonly Change[]): void;
  /** Waits (briefly) for the decisions of the changes noted so far. */
  settle(): Promise<void>;
  /** REMOVEFROM for pending expunges: before their EXPUNGE (RFC 5267 §4.3.4). */
  beforeExpunge(): Generator<string>;
  /** The rest, after EXISTS (RFC 5267 §4.3.3). */
  afterChanges(): Generator<string>;
}

export class SelectedMailbox {
  /** Sequence number n (1-based) → uids[n-1], ascending. */
  uids: number[];
  readonly pendingAdded = new Set<number>();
  readonly pendingExpunged = new Set<number>();
  readonly pendingFlags = new Map<number, PendingFlags>();
  /** Largest UID the session knows of (announced or pending). */
  maxUid: number;
  /** The mailbox was deleted or renamed away under the session. */
  gone = false;
  /** Keywords announced in FLAGS (lower case → spelling), in the order they were announced. */
  readonly #keywords = new Map<string, string>();
  /** A keyword the client has not been told of appeared: a FLAGS update is owed. */
  #newKeywords = false;
  /**
   * IMAP4rev1 \Recent (RFC 3501 §2.3.2), null in IMAP4rev2 sessions: asks the store for the
   * mailbox's recent boundary, claiming the UIDs below `uidBelow` when the session is read-write.
   */
  recentSource: ((uidBelow: number) => Promise<number>) | null = null;
  /** The UIDs that are \Recent in this session. */
  readonly recent = new Set<number>();
  /** UIDs below this were checked for \Recent; pending ones above wait (no EXISTS before). */
  #recentBelow = 0;
  #claiming: Promise<void> | null = null;
  /** RFC 5267 update contexts, once a SEARCH/SORT RETURN (UPDATE) made one. */
  updates: ResultUpdates | null = null;

  readonly mailboxId: number;
  name: string;
  readonly uidValidity: number;
  readonly readOnly: boolean;
  highestModseq: number;
  constructor(
    mailboxId: number,
    name: string,
    uidValidity: number,
    readOnly: boolean,
    uids: number[],
    highestModseq: number) {
    this.mailboxId = mailboxId;
    this.name = name;
    this.uidValidity = uidValidity;
    this.readOnly = readOnly;
    this.highestModseq = highestModseq;
    this.uids = uids;
    this.maxUid = uids.length ? uids[uids.length - 1]! : 0;
    if (uids.length) this.#early = null;
  }

  get exists(): number {
    return this.uids.length;
  }

  /** Checks the UIDs the session learnt of since the last check for \Recent (one store claim). */
  settleRecent(): Promise<void> {
    const source = this.recentSource;
    if (!source || this.maxUid + 1 <= this.#recentBelow) return Promise.resolve();
    if (this.#claiming) return this.#claiming.then(() => this.settleRecent());
    const below = this.maxUid + 1;
    const from = this.#recentBelow;
    this.#claiming = source(below)
      .catch(() => below) // mailbox gone: nothing is recent
      .then((boundary) => {
        const lo = Math.max(boundary, from);
        for (let i = this.uids.length - 1; i >= 0 && this.uids[i]! >= lo; i--) if (this.uids[i]! < below) this.recent.add(this.uids[i]!);
        for (const u of this.pendingAdded) if (u >= lo && u < below) this.recent.add(u);
        if (below > this.#recentBelow) this.#recentBelow = below;
      })
      .finally(() => {
        this.#claiming = null;
      });
    return this.#claiming;
  }

  /** The session's \Recent flag of a UID (always false in IMAP4rev2). */
  isRecent(uid: number): boolean {
    return this.recent.size > 0 && this.recent.has(uid);
  }

  /**
   * Notes keywords the client may be shown (a message's flags). True when one is new to it: then
   * `* FLAGS` / `* OK [PERMANENTFLAGS]` must come before any FETCH that shows it (RFC 3501 §7.2.6).
   */
  noteKeywords(keywords: readonly string[]): boolean {
    for (const k of keywords) {
      const l = k.toLowerCase();
      if (this.#keywords.has(l)) continue;
      this.#keywords.set(l, k);
      this.#newKeywords = true;
    }
    return this.#newKeywords;
  }

  /**
   * The FLAGS and PERMANENTFLAGS responses for every keyword noted (RFC 3501 §7.2.6, §7.1):
   * `always` for SELECT/EXAMINE, else only when a new keyword is owed ('' when none).
   */
  flagsResponses(always = false): string {
    if (!always && !this.#newKeywords) return '';
    this.#newKeywords = false;
    const kw = [...this.#keywords.values()];
    let out = `* FLAGS ${flagList(ALL_SYSTEM, kw)}\r\n`;
    if (this.readOnly) return always ? out + '* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n' : out;
    out += `* OK [PERMANENTFLAGS ${flagList(ALL_SYSTEM, [...kw, '\\*'])}] Flags permitted\r\n`;
    return out;
  }

  /** UIDs expunged while the initial listing was in flight. */
  #early: Set<number> | null = new Set();

  /** Sets the listing taken at SELECT; changes that arrived meanwhile are merged (not lost). */
  initialize(uids: number[]): void {
    const early = this.#early ?? new Set<number>();
    this.#early = null;
    this.uids = uids.filter((u) => !early.has(u));
    const last = this.uids.length ? this.uids[this.uids.length - 1]! : 0;
    for (const u of [...this.pendingAdded]) if (u <= last) this.pendingAdded.delete(u);
    if (last > this.maxUid) this.maxUid = last;
  }

  /** Sequence number of a UID, or 0. */
  seqOf(uid: number): number {
    let lo = 0;
    let hi = this.uids.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.uids[mid]!;
      if (v === uid) return mid + 1;
      if (v < uid) lo = mid + 1;
      else hi = mid - 1;
    }
    return 0;
  }

  /** Applies bus changes (for this mailbox only; the caller filters by account). */
  apply(changes: readonly Change[], ownOrigin: string): void {
    for (const c of changes) {
      if (!('mailboxId' in c) || c.mailboxId !== this.mailboxId) continue;
      switch (c.kind) {
        case 'message-added':
          this.added([c.uid]);
          if (c.keywords.length) this.noteKeywords(c.keywords);
          if (c.modseq > this.highestModseq) this.highestModseq = c.modseq;
          break;
        case 'flags-changed':
          if (c.modseq > this.highestModseq) this.highestModseq = c.modseq;
          if (c.keywords.length) this.noteKeywords(c.keywords);
          // The session's own STORE answers for itself (RFC 9051 §6.4.6 .SILENT).
          if (c.origin === ownOrigin) break;
          this.pendingFlags.set(c.uid, { modseq: c.modseq, systemFlags: c.systemFlags, keywords: c.keywords });
          break;
        case 'messages-expunged':
          this.expunged(c.uids);
          if (c.modseq > this.highestModseq) this.highestModseq = c.modseq;
          break;
        case 'mailbox-deleted':
          this.gone = true;
          this.expunged([...this.uids, ...this.pendingAdded]);
          break;
        case 'mailbox-renamed':
          this.name = c.newName;
          break;
      }
    }
    this.updates?.note(changes);
  }

  added(uids: readonly number[]): void {
    for (const u of uids) {
      if (u > this.maxUid) {
        this.pendingAdded.add(u);
        this.maxUid = u;
      }
    }
  }

  expunged(uids: readonly number[]): void {
    for (const u of uids) {
      this.#early?.add(u);
      this.recent.delete(u);
      if (this.pendingAdded.delete(u)) continue;
      if (this.seqOf(u)) this.pendingExpunged.add(u);
      this.pendingFlags.delete(u);
    }
  }

  get hasPending(): boolean {
    return this.#newKeywords || this.pendingAdded.size > 0 || this.pendingExpunged.size > 0 || this.pendingFlags.size > 0 || (this.updates?.pending ?? false);
  }

  /**
   * Untagged responses for what changed, applying them to the sequence map. Expunges only when
   * `allowExpunge`. `qresync`: VANISHED instead of EXPUNGE (RFC 7162 §3.2.10); `condstore`: MODSEQ
   * in FETCH (RFC 7162 §3.1.2).
   */
  flush(opts: FlushOptions): string {
    let out = '';
    for (const part of this.flushParts(opts)) out += part;
    return out;
  }

  /**
   * The same responses in parts of about PART_BYTES, so a writer can yield between them (131,072
   * EXPUNGEs are 2 MB). Linear in the pending changes and the mailbox size (merge walks over
   * ascending lists). Each kind of change is taken from the pending sets when its first part is
   * made; what arrives meanwhile waits for the next flush.
   */
  *flushParts(opts: FlushOptions): Generator<string> {
    // RFC 3501 §7.2.6: a new keyword is announced before any FETCH that shows it.
    const flags = this.flagsResponses();
    if (flags) yield flags;
    if (this.updates) yield* this.updates.beforeExpunge();
    if (opts.allowExpunge && this.pendingExpunged.size > 0) yield* this.#expungeParts(opts.qresync);
    if (this.pendingFlags.size > 0) {
      const entries = [...this.pendingFlags].sort((a, b) => a[0] - b[0]);
      this.pendingFlags.clear();
      let out = '';
      let si = 0;
      for (const [uid, f] of entries) {
        while (si < this.uids.length && this.uids[si]! < uid) si++;
        // Not announced yet (pending add): its flags come with a later FETCH.
        if (this.uids[si] !== uid) continue;
        const o = fetchOpen(opts.uidOnly ?? false, si + 1, uid, !opts.uidOnly);
        out += `${o.head}${o.more ? ' ' : ''}FLAGS ${flagList(f.systemFlags, f.keywords, this.isRecent(uid))}${opts.condstore ? ` MODSEQ (${f.modseq})` : ''})\r\n`;
        if (out.length >= PART_BYTES) {
          yield out;
          out = '';
        }
      }
      if (out) yield out;
    }
    if (this.pendingAdded.size > 0) {
      let add = ascending(this.pendingAdded);
      // IMAP4rev1: only UIDs already checked for \Recent (settleRecent); the rest wait for the check.
      if (this.recentSource) add = add.filter((u) => u < this.#recentBelow);
      if (add.length) {
        for (const u of add) this.pendingAdded.delete(u);
        for (const u of add) this.uids.push(u);
        yield `* ${this.uids.length} EXISTS\r\n`;
        // RFC 3501 §7.3.2: the number of \Recent messages, with the new EXISTS.
        if (this.recentSource) yield `* ${this.recent.size} RECENT\r\n`;
      }
    }
    if (this.updates) yield* this.updates.afterChanges();
  }

  *#expungeParts(qresync: boolean): Generator<string> {
    const gone = ascending(this.pendingExpunged);
    this.pendingExpunged.clear();
    // One merge walk: the sequence number of each expunged UID in the list as it was before this
    // flush, and the list without them.
    const seqs: number[] = [];
    const kept: number[] = [];
    let g = 0;
    for (let i = 0; i < this.uids.length; i++) {
      const u = this.uids[i]!;
      while (g < gone.length && gone[g]! < u) g++;
      if (g < gone.length && gone[g] === u) seqs.push(i + 1);
      else kept.push(u);
    }
    this.uids = kept;
    if (qresync) {
      if (gone.length) yield `* VANISHED ${uidRanges(gone)}\r\n`;
      return;
    }
    // Highest sequence number first, so no renumbering affects the next one: each number is its
    // position in the list as it was before this flush.
    let out = '';
    for (let i = seqs.length - 1; i >= 0; i--) {
      out += `* ${seqs[i]} EXPUNGE\r\n`;
      if (out.length >= PART_BYTES) {
        yield out;
        out = '';
      }
    }
    if (out) yield out;
  }

  /**
   * Writes the pending responses through `s`, waiting for the socket to drain (backpressure) and
   * giving the event loop a turn between parts when the budget is spent.
   */
  async flushTo(s: { writeAwait(data: string): Promise<void>; readonly closed: boolean }, opts: FlushOptions): Promise<void> {
    if (!this.hasPending) return;
    await this.settleRecent();
    await this.updates?.settle();
    const budget = new LoopBudget();
    for (const part of this.flushParts(opts)) {
      if (s.closed) return;
      await s.writeAwait(part);
      await budget.pause();
    }
  }

  /** expunged() for a long list, a slice per event-loop turn. */
  async expungedAll(uids: readonly number[]): Promise<void> {
    const budget = new LoopBudget();
    for (let i = 0; i < uids.length; i += 4096) {
      this.expunged(uids.slice(i, i + 4096));
      await budget.pause();
    }
  }
}

export interface FlushOptions {
  allowExpunge: boolean;
  /** VANISHED instead of EXPUNGE (QRESYNC or UIDONLY). */
  qresync: boolean;
  condstore: boolean;
  /** RFC 9586 §3.3: UIDFETCH instead of FETCH. */
  uidOnly?: boolean;
}

/** About this many bytes of responses per part. */
const PART_BYTES = 64 * 1024;

function ascending(set: ReadonlySet<number>): number[] {
  return Array.from(Float64Array.from(set).sort());
}

/**
 * A UID set for an ascending list (RFC 9051 §9 sequence-set, RFC 4315 uid-set): consecutive runs
 * as ranges, in the list's order, in one pass.
 */
export function uidRanges(list: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < list.length; ) {
    const start = list[i]!;
    let end = start;
    while (i + 1 < list.length && list[i + 1] === end + 1) end = list[++i]!;
    parts.push(start === end ? String(start) : `${start}:${end}`);
    i++;
  }
  return parts.join(',');
}
