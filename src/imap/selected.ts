// The selected mailbox as one session sees it: the UID of every sequence number, and the changes
// (from any session, SMTP delivery, POP3…) it has not told its client about yet.
//
// RFC 9051 §7.5.1: an EXPUNGE (or VANISHED, RFC 7162 §3.2.10) is never sent while a FETCH, STORE
// or SEARCH by sequence number runs, so sequence numbers stay stable under the client; EXISTS and
// FETCH FLAGS may be sent then. Every report is idempotent: the bus and the handler of the
// session's own command may both announce the same change.

import type { Change } from '../store/bus.ts';
import { flagList, formatSeqSet } from '../protocol/imap/response.ts';

export interface PendingFlags {
  modseq: number;
  systemFlags: number;
  keywords: string[];
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
          if (c.modseq > this.highestModseq) this.highestModseq = c.modseq;
          break;
        case 'flags-changed':
          if (c.modseq > this.highestModseq) this.highestModseq = c.modseq;
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
      if (this.pendingAdded.delete(u)) continue;
      if (this.seqOf(u)) this.pendingExpunged.add(u);
      this.pendingFlags.delete(u);
    }
  }

  get hasPending(): boolean {
    return this.pendingAdded.size > 0 || this.pendingExpunged.size > 0 || this.pendingFlags.size > 0;
  }

  /**
   * Untagged responses for what changed, applying them to the sequence map. Expunges only when
   * `allowExpunge`. `qresync`: VANISHED instead of EXPUNGE (RFC 7162 §3.2.10); `condstore`: MODSEQ
   * in FETCH (RFC 7162 §3.1.2).
   */
  flush(opts: { allowExpunge: boolean; qresync: boolean; condstore: boolean }): string {
    let out = '';
    if (opts.allowExpunge && this.pendingExpunged.size > 0) {
      const gone = [...this.pendingExpunged].sort((a, b) => a - b);
      this.pendingExpunged.clear();
      if (opts.qresync) {
        out += `* VANISHED ${formatSeqSet(gone)}\r\n`;
        const drop = new Set(gone);
        this.uids = this.uids.filter((u) => !drop.has(u));
      } else {
        // Highest sequence number first, so no renumbering affects the next one: each number is
        // its position in the list as it was before this flush.
        const seqs = gone.map((u) => this.seqOf(u)).filter((n) => n > 0);
        const parts: string[] = [];
        for (let i = seqs.length - 1; i >= 0; i--) parts.push(`* ${seqs[i]} EXPUNGE\r\n`);
        out += parts.join('');
        const drop = new Set(gone);
        this.uids = this.uids.filter((u) => !drop.has(u));
      }
    }
    if (this.pendingFlags.size > 0) {
      const entries = [...this.pendingFlags].sort((a, b) => a[0] - b[0]);
      this.pendingFlags.clear();
      for (const [uid, f] of entries) {
        const seq = this.seqOf(uid);
        if (!seq) {
          // Not announced yet (pending add): its flags come with a later FETCH.
          continue;
        }
        out += `* ${seq} FETCH (UID ${uid} FLAGS ${flagList(f.systemFlags, f.keywords)}${opts.condstore ? ` MODSEQ (${f.modseq})` : ''})\r\n`;
      }
    }
    if (this.pendingAdded.size > 0) {
      const add = [...this.pendingAdded].sort((a, b) => a - b);
      this.pendingAdded.clear();
      for (const u of add) this.uids.push(u);
      out += `* ${this.uids.length} EXISTS\r\n`;
    }
    return out;
  }
}
