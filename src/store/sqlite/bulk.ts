// Bulk message operations of the SQLite store, in bounded steps. better-sqlite3 is synchronous: one
// transaction over 131,072 rows held the event loop — every user — for 2–10 s. Here each command
// runs as steps of at most a few thousand rows (sized to ~8 ms of work, src/store/chunks.ts; the
// first is 64 rows, and a step stops itself between rows after 10 ms, `Chunker.deadline`), each
// step one write in the group commit (sharing the fsync with other users' writes of that turn;
// other sockets are served between steps), with a rest of half its time after it. The client's
// tagged OK resolves after the last step is durable. Each step leaves a state clients may see
// (docs/architecture.md, "Bulk operations"):
//
// - STORE / EXPUNGE: each step changes a slice of the messages; its Changes are published at its
//   commit, in order, like any write.
// - MOVE (RFC 6851 §3.3): each step moves its messages in place (new UID and MODSEQ in the same
//   row update that takes them out of the source): at every commit, each message is in exactly
//   one mailbox, so a crash can leave a partial move but never a duplicate or a loss.
// - COPY (RFC 9051 §6.4.7: a failed COPY leaves the destination as it was, UIDNEXT aside): the
//   destination is held (every other write to it waits) and the copies are staged in it above
//   the UIDNEXT it had, under a journal row (bulk_ops) that hides them: listings, STATUS and the
//   mailbox's UIDNEXT/HIGHESTMODSEQ skip them. The last step deletes the journal row: that short
//   commit makes the whole copy visible at once; then the message-added Changes are published. On failure the
//   staged rows are deleted; after a crash, `recover()` deletes them at the next start. UIDs used
//   by staged rows are never handed out again (UIDNEXT stays past them).
// - DELETE of a mailbox / removal of an account: one short commit removes the mailbox rows and
//   journals the drop; the messages (invisible from then on) are deleted in steps, at the next
//   start if the server stops first, or by another worker if its own dies (`recoverStep`).
//   Mailbox ids still being dropped are never reused.
// - RENAME INBOX (RFC 9051 §6.3.6): the new mailbox is held while the messages move to it in UID
//   order, a step at a time, keeping their UIDs; a crash leaves each message in one of the two.
// - POP3 UPDATE (pop.ts, with `step`): each step applies the UPDATE to a slice of the messages.

import type Database from 'better-sqlite3';
import type { ChangeBus, Change } from '../bus.ts';
import { dropThreadRows } from './threads.ts';
import { Chunker, countBelow, sortedUnique, type ChunkOptions } from '../chunks.ts';
import { activity, nextTurn } from '../../obs/loop-lag.ts';
import {
  StoreError,
  SystemFlag,
  type CopyResult,
  type FlagOp,
  type Mailbox,
  type MessageSummary,
  type SpecialUse,
  type StoreFlagsResult,
  type WriteOptions,
} from '../store.ts';
import { SOURCE_COLUMNS, stamp, type Hold, type MessageWrites, type Query, type SourceRow, type Tx } from './writes.ts';
import type { SummaryCache } from './summaries.ts';

type Row = Record<string, any>;

export interface BulkHost {
  db: Database.Database;
  q: Query;
  w: MessageWrites;
  summaries: SummaryCache;
  bus: ChangeBus;
  /** Journal entries for Changes this write commits but publishes itself (a staged COPY's, at its reveal). */
  recordChanges(changes: readonly Change[]): void;
  /** One write in the group commit; `op` lets it write the mailboxes that operation holds. */
  batched<T>(fn: (tx: Tx) => T, op?: number): Promise<T>;
  insertMailbox(tx: Tx, accountId: number, name: string, specialUse: SpecialUse | null, subscribed: boolean): Mailbox;
  mailbox(row: Row): Mailbox;
  chunks: ChunkOptions;
}

let nextOp = 1;
/** Changes published per event-loop turn when a staged COPY becomes visible. */
const PUBLISH_SLICE = 2000;

// EXPUNGE's scan: every row, or only the \Deleted ones from the partial index messages_deleted
// (schema.ts v17, the same term; named, as the planner without statistics takes the primary key).
const SCAN_ALL = 'SELECT uid, system_flags FROM messages WHERE mailbox_id = CAST(? AS INTEGER) AND uid > ? ORDER BY uid LIMIT CAST(? AS INTEGER)';
const SCAN_DELETED = `SELECT uid, system_flags FROM messages INDEXED BY messages_deleted WHERE mailbox_id = CAST(? AS INTEGER) AND uid > ? AND (system_flags & ${SystemFlag.Deleted}) != 0 ORDER BY uid LIMIT CAST(? AS INTEGER)`;

export class SqliteBulk {
  readonly #h: BulkHost;
  constructor(host: BulkHost) {
    this.#h = host;
  }

  /** A chunker sized as this store's bulk steps are (sqlite/pop.ts's UPDATE runs its steps too). */
  chunker(): Chunker {
    return new Chunker(this.#h.chunks);
  }

  /** One step: fn in the group commit; the chunker learns how long the work took. */
  step<T>(ch: Chunker, rows: () => number, fn: (tx: Tx) => T): Promise<T> {
    return this.#step(ch, rows, fn);
  }

  async #step<T>(ch: Chunker, rows: () => number, fn: (tx: Tx) => T, op = 0): Promise<T> {
    let ms = 0;
    const r = await this.#h.batched((tx) => {
      const t = performance.now();
      const v = fn(tx);
      ms = performance.now() - t;
      return v;
    }, op);
    ch.took(rows(), ms);
    await ch.rest();
    return r;
  }

  #label(op: string, mailboxId: number, n: number): () => void {
    return activity.begin(`store.bulk op=${op} mailbox=${mailboxId} messages=${n}`);
  }

  // ---------------------------------------------------------------- STORE
  async storeFlags(mailboxId: number, uids: number[], op: FlagOp, flags: { systemFlags: number; keywords: string[] }, opts: { unchangedSince?: number } & WriteOptions): Promise<StoreFlagsResult> {
    const { w } = this.#h;
    const sorted = sortedUnique(uids);
    const out: StoreFlagsResult = { updated: [], modified: [] };
    const ch = new Chunker(this.#h.chunks);
    const end = this.#label('store', mailboxId, sorted.length);
    try {
      let i = 0;
      do {
        const slice = sorted.slice(i, i + ch.size);
        let done = 0;
        const r = await this.#step(ch, () => done, (tx) => {
          const stop = ch.deadline();
          const acc = w.accountOf(mailboxId);
          w.holds.check(tx, mailboxId);
          const r = w.flags(tx, acc, mailboxId, slice, op, flags, opts.unchangedSince, stop);
          done = r.done;
          stamp(tx, opts.origin);
          return r;
        });
        for (const u of r.updated) out.updated.push(u);
        for (const u of r.modified) out.modified.push(u);
        i += r.done;
      } while (i < sorted.length);
    } finally {
      end();
    }
    return out;
  }

  // ---------------------------------------------------------------- EXPUNGE
  async expunge(mailboxId: number, opts: { uids?: number[]; onlyDeleted?: boolean } & WriteOptions): Promise<number[]> {
    const { w, q } = this.#h;
    const onlyDeleted = opts.onlyDeleted ?? true;
    const want = opts.uids ? sortedUnique(opts.uids) : null;
    const removed: number[] = [];
    const ch = new Chunker(this.#h.chunks);
    const end = this.#label('expunge', mailboxId, want?.length ?? -1);
    try {
      let cursor = 0; // `want` index, or the last UID scanned
      for (let more = true; more; ) {
        let scanned = 0;
        const r = await this.#step(ch, () => scanned, (tx) => {
          const stop = ch.deadline();
          const acc = w.accountOf(mailboxId);
          w.holds.check(tx, mailboxId);
          let rows: Row[];
          let next: number;
          let again: boolean;
          const slice = want ? want.slice(cursor, cursor + ch.size) : [];
          if (want) {
            rows = w.rowsOf('uid, system_flags', mailboxId, slice);
            next = cursor + slice.length;
            again = next < want.length;
          } else {
            rows = q(onlyDeleted ? SCAN_DELETED : SCAN_ALL).all(mailboxId, cursor, ch.size) as Row[];
            next = rows.length ? rows[rows.length - 1]!.uid : cursor;
            again = rows.length === ch.size;
          }
          scanned = rows.length;
          const all = rows.filter((x) => !onlyDeleted || (x.system_flags & SystemFlag.Deleted) !== 0).map((x) => x.uid as number);
          const done = w.expunge(tx, acc, mailboxId, all, stop);
          const gone = done < all.length ? all.slice(0, done) : all;
          if (done < all.length) {
            // Stopped at all[done]: the next step starts there.
            const at = all[done]!;
            next = want ? cursor + countBelow(slice, at) : at - 1;
            again = true;
            scanned = countBelow(rows.map((x) => x.uid as number), at);
          }
          stamp(tx, opts.origin);
          return { gone, next, again };
        });
        for (const u of r.gone) removed.push(u);
        cursor = r.next;
        more = r.again;
      }
    } finally {
      end();
    }
    return removed;
  }

  // ---------------------------------------------------------------- MOVE
  async move(srcId: number, uids: number[], dstId: number, opts: WriteOptions): Promise<CopyResult> {
    const { w, q } = this.#h;
    const sorted = sortedUnique(uids);
    const mapping: Array<[number, number]> = [];
    let uidValidity = 0;
    const ch = new Chunker(this.#h.chunks);
    const end = this.#label('move', srcId, sorted.length);
    try {
      let i = 0;
      do {
        const slice = sorted.slice(i, i + ch.size);
        let done = 0;
        const r = await this.#step(ch, () => done, (tx) => {
          const stop = ch.deadline();
          const src = q('SELECT account_id FROM mailboxes WHERE id = ?').get(srcId) as Row | undefined;
          const dst = q('SELECT account_id, uid_validity FROM mailboxes WHERE id = ?').get(dstId) as Row | undefined;
          if (!src || !dst) throw new StoreError('not-found', 'no such mailbox');
          if (src.account_id !== dst.account_id) throw new StoreError('invalid', 'move across accounts');
          const rows = w.rowsOf<SourceRow>(SOURCE_COLUMNS, srcId, slice);
          const m = w.moveRows(tx, { id: srcId, accountId: src.account_id }, { id: dstId }, rows, stop);
          done = m.length < rows.length ? countBelow(slice, rows[m.length]!.uid) : slice.length;
          stamp(tx, opts.origin);
          return { m, uidValidity: dst.uid_validity as number, done };
        });
        for (const p of r.m) mapping.push(p);
        uidValidity = r.uidValidity;
        i += r.done;
      } while (i < sorted.length);
    } finally {
      end();
    }
    return { mapping, uidValidity };
  }

  // ---------------------------------------------------------------- COPY
  async copy(srcId: number, uids: number[], dstId: number, opts: WriteOptions): Promise<CopyResult> {
    const sorted = sortedUnique(uids);
    const ch = new Chunker(this.#h.chunks);
    // What fits in one step needs no staging: one commit makes it visible.
    if (sorted.length <= ch.size) return this.#h.batched((tx) => this.#copyStep(tx, srcId, sorted, dstId, true, opts.origin));
    const end = this.#label('copy', dstId, sorted.length);
    try {
      return await this.#stagedCopy(ch, srcId, sorted, dstId, opts);
    } finally {
      end();
    }
  }

  /** Copies `slice` (or, when `stop` ends it early, its first `done`) into dstId. */
  #copyStep(
    tx: Tx,
    srcId: number,
    slice: readonly number[],
    dstId: number,
    publish: boolean,
    origin: string | undefined,
    stop?: () => boolean,
  ): CopyResult & { added: MessageSummary[]; changes: Change[]; done: number } {
    const { w, q } = this.#h;
    const src = q('SELECT id FROM mailboxes WHERE id = ?').get(srcId) as Row | undefined;
    const dst = q('SELECT account_id, uid_validity FROM mailboxes WHERE id = ?').get(dstId) as Row | undefined;
    if (!src || !dst) throw new StoreError('not-found', 'no such mailbox');
    const rows = w.rowsOf<SourceRow>(SOURCE_COLUMNS, srcId, slice);
    const bytes = rows.reduce((s, r) => s + r.size, 0);
    // A copy adds usage to the destination account: all of it fits or nothing is copied (the whole
    // slice is checked even when the step stops early: what follows must fit too).
    if (!w.fits(dst.account_id, bytes)) throw new StoreError('quota', 'quota exceeded');
    const r = w.copyRows(tx, { id: srcId }, { id: dstId, accountId: dst.account_id }, rows, publish, stop);
    const done = r.mapping.length < rows.length ? countBelow(slice, rows[r.mapping.length]!.uid) : slice.length;
    stamp(tx, origin);
    return { mapping: r.mapping, uidValidity: dst.uid_validity, added: r.added, changes: r.changes, done };
  }

  async #stagedCopy(ch: Chunker, srcId: number, sorted: number[], dstId: number, opts: WriteOptions): Promise<CopyResult> {
    const { w, q } = this.#h;
    const op = nextOp++;
    let hold: Hold | null = null;
    const start = await this.#h.batched((tx) => {
      const dst = q('SELECT account_id, uid_next, highest_modseq, uid_validity FROM mailboxes WHERE id = ?').get(dstId) as Row | undefined;
      if (!dst || !q('SELECT 1 FROM mailboxes WHERE id = ?').get(srcId)) throw new StoreError('not-found', 'no such mailbox');
      w.holds.check(tx, dstId); // another COPY into it: wait for its end
      // While this row exists the staged rows (uid >= uid_from) are not part of the mailbox.
      const journal = Number(
        q("INSERT INTO bulk_ops (kind, mailbox_id, account_id, uid_from, hms, created_at, owner) VALUES ('copy', ?, ?, ?, ?, ?, ?)")
          .run(dstId, dst.account_id, dst.uid_next, dst.highest_modseq, Date.now(), process.pid).lastInsertRowid,
      );
      // Taken inside the transaction: a write queued after this one in the same commit already waits.
      hold = w.holds.take(dstId, op);
      return { journal, accountId: dst.account_id as number, uidFrom: dst.uid_next as number, hms: dst.highest_modseq as number };
    }, op).catch((err) => {
      (hold as Hold | null)?.release();
      throw err;
    });
    const h = hold as unknown as Hold;
    const mapping: Array<[number, number]> = [];
    const added: MessageSummary[] = [];
    const changes: Change[] = [];
    let uidValidity = 0;
    try {
      for (let i = 0; i < sorted.length; ) {
        const slice = sorted.slice(i, i + ch.size);
        let done = 0;
        const r = await this.#step(ch, () => done, (tx) => {
          const v = this.#copyStep(tx, srcId, slice, dstId, false, undefined, ch.deadline());
          done = v.done;
          return v;
        }, op);
        for (const p of r.mapping) mapping.push(p);
        for (const m of r.added) added.push(m);
        for (const c of r.changes) changes.push(c);
        uidValidity = r.uidValidity;
        i += r.done;
      }
      // The short commit that makes the whole copy part of the mailbox, and its journal entries.
      for (const c of changes) if (opts.origin !== undefined) c.origin = opts.origin;
      await this.#h.batched(() => {
        q('DELETE FROM bulk_ops WHERE id = ?').run(start.journal);
        this.#h.recordChanges(changes);
      }, op);
    } catch (err) {
      await this.#unstage(ch, op, start.journal, dstId, start.accountId, start.uidFrom).catch(() => {});
      h.release();
      throw err;
    }
    this.#h.summaries.reveal(dstId, start.hms, added);
    try {
      for (let k = 0; k < changes.length; k += PUBLISH_SLICE) {
        if (k > 0) await nextTurn();
        this.#h.bus.publish(changes.slice(k, k + PUBLISH_SLICE));
      }
    } finally {
      h.release();
    }
    return { mapping, uidValidity };
  }

  /** Deletes a failed COPY's staged rows (they were never visible), then its journal row. */
  async #unstage(ch: Chunker, op: number, journal: number, mailboxId: number, accountId: number, uidFrom: number): Promise<void> {
    const { w, q } = this.#h;
    for (let done = false; !done; ) {
      done = await this.#h.batched((tx) => {
        if (w.dropSome(tx, mailboxId, accountId, ch.max, uidFrom, ch.deadline()) > 0) return false;
        q('DELETE FROM bulk_ops WHERE id = ?').run(journal);
        return true;
      }, op);
    }
  }

  // ---------------------------------------------------------------- DELETE, account removal
  /** Deletes a mailbox: gone for everyone at the first commit, its messages removed in steps. */
  async deleteMailbox(accountId: number, name: string, opts: WriteOptions): Promise<void> {
    const { w, q } = this.#h;
    const first = await this.#h.batched((tx) => {
      const mb = q('SELECT id FROM mailboxes WHERE account_id = ? AND name = ?').get(accountId, name) as Row | undefined;
      if (!mb) throw new StoreError('not-found', `no mailbox ${name}`);
      w.holds.check(tx, mb.id);
      q('DELETE FROM mailboxes WHERE id = ?').run(mb.id);
      const journal = Number(q("INSERT INTO bulk_ops (kind, mailbox_id, account_id, created_at, owner) VALUES ('drop', ?, ?, ?, ?)").run(mb.id, accountId, Date.now(), process.pid).lastInsertRowid);
      tx.changes.push({ kind: 'mailbox-deleted', accountId, mailboxId: mb.id, name });
      stamp(tx, opts.origin);
      return { journal, mailboxId: mb.id as number };
    });
    await this.drain(first.journal, first.mailboxId, accountId);
  }

  /** Removes an account: its rows at the first commit, its messages in steps. */
  async removeAccount(id: number): Promise<void> {
    const { w, q } = this.#h;
    const drops = await this.#h.batched((tx) => {
      if (!q('SELECT 1 FROM accounts WHERE id = ?').get(id)) throw new StoreError('not-found', `no account ${id}`);
      const boxes = q('SELECT id FROM mailboxes WHERE account_id = ?').pluck().all(id) as number[];
      for (const mb of boxes) w.holds.check(tx, mb);
      w.dropRetained(tx, 'account_id = ?', [id]);
      q('DELETE FROM mailboxes WHERE account_id = ?').run(id);
      q('DELETE FROM subscriptions WHERE account_id = ?').run(id);
      q('DELETE FROM accounts WHERE id = ?').run(id);
      // account 0: no usage to keep (the account is gone; its id may be given out again).
      const ins = q("INSERT INTO bulk_ops (kind, mailbox_id, account_id, created_at, owner) VALUES ('drop', ?, 0, ?, ?)");
      const out = boxes.map((mb) => ({ journal: Number(ins.run(mb, Date.now(), process.pid).lastInsertRowid), mailboxId: mb }));
      tx.changes.push({ kind: 'account-removed', accountId: id });
      return out;
    });
    for (const d of drops) await this.drain(d.journal, d.mailboxId, 0);
    // Its threads (src/store/sqlite/threads.ts), in steps; a crash before the end leaves rows that
    // createAccount clears if the id is given out again.
    const ch = new Chunker(this.#h.chunks);
    for (let n = -1; n !== 0; ) await this.#step(ch, () => n, () => (n = dropThreadRows(q, id, ch.size)) === 0);
  }

  /** Deletes a dropped mailbox's messages and expunge log in steps, then its journal row. */
  async drain(journal: number, mailboxId: number, accountId: number): Promise<void> {
    const { w, q } = this.#h;
    const ch = new Chunker(this.#h.chunks);
    const end = this.#label('drop', mailboxId, -1);
    try {
      for (let done = false; !done; ) {
        let n = 0;
        done = await this.#step(ch, () => n, (tx) => {
          n = w.dropSome(tx, mailboxId, accountId, ch.size, 0, ch.deadline());
          if (n > 0) return false;
          n = q('DELETE FROM expunged WHERE mailbox_id = ? AND uid IN (SELECT uid FROM expunged WHERE mailbox_id = ? ORDER BY uid LIMIT CAST(? AS INTEGER))').run(mailboxId, mailboxId, ch.size * 4).changes;
          if (n > 0) return false;
          q('DELETE FROM bulk_ops WHERE id = ?').run(journal);
          return true;
        });
      }
    } finally {
      end();
    }
  }

  // ---------------------------------------------------------------- RENAME INBOX
  /**
   * RFC 9051 §6.3.6: renaming INBOX moves its messages into a new mailbox (they keep their UIDs;
   * it has its own UIDVALIDITY) and leaves INBOX empty; INBOX's inferiors are unaffected.
   */
  async renameInbox(accountId: number, to: string, opts: WriteOptions): Promise<void> {
    const { w, q } = this.#h;
    const op = nextOp++;
    let hold: Hold | null = null;
    const start = await this.#h.batched((tx) => {
      const src = q("SELECT id, uid_next FROM mailboxes WHERE account_id = ? AND name = 'INBOX'").get(accountId) as Row | undefined;
      if (!src) throw new StoreError('not-found', 'no mailbox INBOX');
      if (q('SELECT 1 FROM mailboxes WHERE account_id = ? AND name = ?').get(accountId, to)) throw new StoreError('exists', `mailbox ${to} already exists`);
      const dst = this.#h.insertMailbox(tx, accountId, to, null, false);
      hold = w.holds.take(dst.id, op);
      stamp(tx, opts.origin);
      return { src: src.id as number, dst: dst.id, uidEnd: src.uid_next as number };
    }, op).catch((err) => {
      (hold as Hold | null)?.release();
      throw err;
    });
    const h = hold as unknown as Hold;
    const ch = new Chunker(this.#h.chunks);
    const end = this.#label('rename-inbox', start.src, -1);
    try {
      for (let cursor = 0; cursor >= 0; ) {
        let n = 0;
        cursor = await this.#step(ch, () => n, (tx) => {
          const stop = ch.deadline();
          const rows = q(`SELECT ${SOURCE_COLUMNS} FROM messages WHERE mailbox_id = CAST(? AS INTEGER) AND uid > ? AND uid < ? ORDER BY uid LIMIT CAST(? AS INTEGER)`).all(start.src, cursor, start.uidEnd, ch.size) as SourceRow[];
          n = rows.length;
          if (n === 0) {
            q('UPDATE mailboxes SET uid_next = max(uid_next, ?) WHERE id = ?').run(start.uidEnd, start.dst);
            return -1;
          }
          n = this.#renameStep(tx, accountId, start.src, start.dst, rows, stop);
          stamp(tx, opts.origin);
          return rows[n - 1]!.uid;
        }, op);
      }
    } finally {
      end();
      h.release();
    }
  }

  /** Moves `all` (or, when `stop` ends it early, a prefix) from INBOX to the new mailbox; returns how many. */
  #renameStep(tx: Tx, accountId: number, src: number, dst: number, all: readonly SourceRow[], stop: () => boolean): number {
    const { w, q } = this.#h;
    const srcModseq = w.bumpModseq(tx, src);
    w.holds.check(tx, dst);
    const base = (q('SELECT highest_modseq FROM mailboxes WHERE id = ?').pluck().get(dst) as number) + 1;
    const mv = q('UPDATE messages SET mailbox_id = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?');
    const mvSearch = q('UPDATE message_search SET mailbox_id = ? WHERE mailbox_id = ? AND uid = ?');
    const log = q('INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)');
    const uids: number[] = [];
    for (let k = 0; k < all.length; k++) {
      if (k > 0 && stop()) break;
      const r = all[k]!;
      mv.run(dst, base + k, src, r.uid);
      mvSearch.run(dst, src, r.uid);
      log.run(src, r.uid, srcModseq);
      const keywords = r.keywords === '[]' ? [] : (JSON.parse(r.keywords) as string[]);
      tx.added.set(`${dst}:${r.uid}`, {
        uid: r.uid,
        modseq: base + k,
        systemFlags: r.system_flags,
        keywords,
        internalDate: r.internal_date,
        savedAt: r.saved_at,
        size: r.size,
        blobId: r.blob_id,
      });
      tx.changes.push({ kind: 'message-added', accountId, mailboxId: dst, uid: r.uid, modseq: base + k, keywords });
      uids.push(r.uid);
    }
    // UIDNEXT follows the moved UIDs, so the new mailbox's UIDs only ever grow under a client.
    q('UPDATE mailboxes SET uid_next = max(uid_next, ?), highest_modseq = ? WHERE id = ?').run(uids[uids.length - 1]! + 1, base + uids.length - 1, dst);
    tx.changes.push({ kind: 'messages-expunged', accountId, mailboxId: src, uids, modseq: srcModseq });
    return uids.length;
  }

  // ---------------------------------------------------------------- crash recovery
  /**
   * At start (server only, before anything is served): a COPY that was staging loses its staged
   * rows; a drop that was under way finishes. One transaction: nobody is waiting yet.
   */
  recover(tx: Tx): { copies: number; drops: number } {
    const { w, q } = this.#h;
    const ops = q('SELECT * FROM bulk_ops ORDER BY id').all() as Row[];
    let copies = 0;
    let drops = 0;
    for (const o of ops) {
      const account = q('SELECT 1 FROM accounts WHERE id = ?').get(o.account_id) ? (o.account_id as number) : 0;
      if (o.kind === 'copy') {
        while (w.dropSome(tx, o.mailbox_id, account, 10_000, o.uid_from) > 0);
        copies++;
      } else {
        while (w.dropSome(tx, o.mailbox_id, account, 10_000) > 0);
        q('DELETE FROM expunged WHERE mailbox_id = ?').run(o.mailbox_id);
        drops++;
      }
      q('DELETE FROM bulk_ops WHERE id = ?').run(o.id);
    }
    return { copies, drops };
  }

  /** Process `owner` died (--workers): a step undoing its COPYs' staging (and releasing their holds), then finishing its
   *  drops (mailboxes gone for clients whose rows still hold bodies and usage). False once it left nothing. */
  recoverStep(tx: Tx, owner: number, limit: number): boolean {
    const { w, q } = this.#h;
    const o = q("SELECT * FROM bulk_ops WHERE owner = ? ORDER BY kind = 'copy' DESC, id LIMIT 1").get(owner) as Row | undefined;
    if (!o) return false;
    const account = q('SELECT 1 FROM accounts WHERE id = ?').get(o.account_id) ? (o.account_id as number) : 0;
    if (o.kind === 'copy') {
      if (w.dropSome(tx, o.mailbox_id, account, limit, o.uid_from) === 0) q('DELETE FROM bulk_ops WHERE id = ?').run(o.id);
      return true;
    }
    if (w.dropSome(tx, o.mailbox_id, account, limit) > 0) return true;
    const log = q('DELETE FROM expunged WHERE mailbox_id = ? AND uid IN (SELECT uid FROM expunged WHERE mailbox_id = ? ORDER BY uid LIMIT CAST(? AS INTEGER))');
    if (log.run(o.mailbox_id, o.mailbox_id, limit * 4).changes === 0) q('DELETE FROM bulk_ops WHERE id = ?').run(o.id);
    return true;
  }
}
