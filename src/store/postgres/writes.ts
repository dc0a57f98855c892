// The message writes of the PostgreSQL store inside one transaction (flag changes, expunges,
// copies and moves), worked a chunk at a time. PostgreSQL keeps a big command atomic by itself
// (one transaction, so a crash leaves all or nothing), and its queries don't hold the event loop;
// what did was the JavaScript around them: a 131,072-row JSON parameter built by one
// JSON.stringify, a 131,072-element result mapped and reduced in one go, one Change with 131,072
// UIDs applied by every listening session at once. Here each statement carries at most `chunk`
// rows (src/store/chunks.ts) and each chunk of an expunge is its own Change under its own MODSEQ.
// Lock order (see postgres-store.ts): mailbox rows, then the account row, then blob rows in
// ascending id — blob references are collected over all chunks and applied once at the end, so
// the blob locks are still taken in one ascending pass.

import type pg from 'pg';
import type { Change } from '../bus.ts';
import { sortedUnique } from '../chunks.ts';
import {
  StoreError,
  SystemFlag,
  applyFlagOp,
  normalizeKeywords,
  sameFlags,
  type CopyResult,
  type FlagOp,
  type FlagUpdate,
  type StoreFlagsResult,
} from '../store.ts';

type Row = Record<string, any>;
type Client = pg.PoolClient;

export interface Tx {
  c: Client;
  changes: Change[];
}

export interface NewRow {
  mailboxId: number;
  systemFlags: number;
  keywords: string[];
  internalDate: number;
  size: number;
  blobId: string;
}

function slices<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

export class PgWrites {
  /** Rows per statement. */
  readonly chunk: number;
  constructor(chunk: number) {
    this.chunk = Math.max(1, chunk);
  }

  /** Locks mailbox rows in ascending id order; returns those that exist. */
  async lockMailboxes(c: Client, ids: number[]): Promise<Map<number, Row>> {
    const rows = (await c.query('SELECT * FROM mailboxes WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE', [sortedUnique(ids)])).rows as Row[];
    return new Map(rows.map((r) => [r.id as number, r]));
  }

  /** Reserves `bytes` (and `count` messages) of the account's quota if it fits (quota 0 = unlimited). */
  async reserve(c: Client, accountId: number, bytes: number, count: number): Promise<boolean> {
    const r = await c.query(
      `UPDATE accounts SET used_bytes = used_bytes + $2, message_count = message_count + $3
       WHERE id = $1 AND (quota = 0 OR used_bytes + $2 <= quota) RETURNING id`,
      [accountId, bytes, count],
    );
    return r.rowCount === 1;
  }

  /** Drops one reference per entry (ids may repeat); deletes blobs nothing references any more. */
  async unrefBlobs(c: Client, blobIds: string[]): Promise<void> {
    const deltas = new Map<string, number>();
    for (const id of blobIds) deltas.set(id, (deltas.get(id) ?? 0) - 1);
    await this.adjustBlobs(c, deltas);
  }

  /**
   * Adds `delta` references to each blob (negative: drops them), in ascending id order, a chunk
   * per statement; deletes blobs nothing references any more. Blobs whose delta is 0 are not touched.
   */
  async adjustBlobs(c: Client, deltas: ReadonlyMap<string, number>): Promise<void> {
    const ids = [...deltas.keys()].filter((id) => deltas.get(id) !== 0).sort();
    if (ids.length === 0) return;
    if (ids.length === 1) {
      const left = await c.query('UPDATE blobs SET refcount = refcount + $2 WHERE id = $1 RETURNING refcount', [ids[0], deltas.get(ids[0]!)]);
      if (left.rowCount && (left.rows[0].refcount as number) <= 0) await c.query('DELETE FROM blobs WHERE id = $1', [ids[0]]);
      return;
    }
    for (const part of slices(ids, this.chunk)) {
      // Several rows: lock them in id order first (lock order), then update and sweep.
      await c.query('SELECT id FROM blobs WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE', [part]);
      const left = await c.query(
        'UPDATE blobs b SET refcount = b.refcount + u.n FROM jsonb_to_recordset($1::jsonb) AS u(id text, n bigint) WHERE b.id = u.id RETURNING b.id, b.refcount',
        [JSON.stringify(part.map((id) => ({ id, n: deltas.get(id) })))],
      );
      const dead = left.rows.filter((r: Row) => (r.refcount as number) <= 0).map((r: Row) => r.id as string);
      if (dead.length > 0) await c.query('DELETE FROM blobs WHERE id = ANY($1::text[])', [dead]);
    }
  }

  /**
   * Adds messages to mailboxes the transaction has locked, in one statement: each mailbox's
   * uid_next/highest_modseq advance by its number of new messages, which get consecutive UIDs and
   * MODSEQs in input order. Returns the UID and MODSEQ of each input row, in input order.
   */
  async insertNew(c: Client, rows: NewRow[]): Promise<Array<{ uid: number; modseq: number }>> {
    if (rows.length === 0) return [];
    const r = await c.query(
      `WITH t AS (
         SELECT * FROM jsonb_to_recordset($1::jsonb)
           AS t(i int, mailbox_id bigint, system_flags int, keywords jsonb, internal_date bigint, size bigint, blob_id text)
       ), o AS (
         SELECT t.*, row_number() OVER (PARTITION BY t.mailbox_id ORDER BY t.i) - 1 AS k FROM t
       ), n AS (
         SELECT mailbox_id, count(*) AS n FROM t GROUP BY mailbox_id
       ), a AS (
         UPDATE mailboxes m SET uid_next = m.uid_next + n.n, highest_modseq = m.highest_modseq + n.n
         FROM n WHERE m.id = n.mailbox_id
         RETURNING m.id, m.uid_next - n.n AS first_uid, m.highest_modseq - n.n + 1 AS first_modseq
       ), s AS (
         SELECT o.*, a.first_uid + o.k AS uid, a.first_modseq + o.k AS modseq FROM o JOIN a ON a.id = o.mailbox_id
       ), ins AS (
         INSERT INTO messages (mailbox_id, uid, modseq, system_flags, keywords, internal_date, saved_at, size, blob_id)
         SELECT mailbox_id, uid, modseq, system_flags, keywords, internal_date, $2, size, blob_id FROM s
       )
       SELECT i, uid, modseq FROM s ORDER BY i`,
      [
        JSON.stringify(
          rows.map((x, i) => ({
            i,
            mailbox_id: x.mailboxId,
            system_flags: x.systemFlags & 0x1f,
            keywords: normalizeKeywords(x.keywords),
            internal_date: x.internalDate,
            size: x.size,
            blob_id: x.blobId,
          })),
        ),
        Date.now(),
      ],
    );
    return r.rows.map((x: Row) => ({ uid: x.uid as number, modseq: x.modseq as number }));
  }

  /** Flag changes in a mailbox the transaction has locked (storeFlags, popUpdate), a chunk per statement. */
  async flagsIn(tx: Tx, mb: Row, uids: number[], op: FlagOp, flags: { systemFlags: number; keywords: string[] }, unchangedSince?: number): Promise<StoreFlagsResult> {
    const updated: FlagUpdate[] = [];
    const modified: number[] = [];
    for (const want of slices(sortedUnique(uids), this.chunk)) {
      const r = await this.#flagsChunk(tx, mb, want, op, flags, unchangedSince);
      for (const u of r.updated) updated.push(u);
      for (const u of r.modified) modified.push(u);
    }
    return { updated, modified };
  }

  async #flagsChunk(tx: Tx, mb: Row, want: number[], op: FlagOp, flags: { systemFlags: number; keywords: string[] }, unchangedSince?: number): Promise<StoreFlagsResult> {
    const { c } = tx;
    const mailboxId = mb.id as number;
    const f = { systemFlags: flags.systemFlags & 0x1f, keywords: flags.keywords };
    const rows = (await c.query('SELECT uid, modseq, system_flags, keywords FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid', [mailboxId, want]))
      .rows as Row[];
    const modified: number[] = [];
    const changed: Array<{ uid: number; next: { systemFlags: number; keywords: string[] } }> = [];
    for (const r of rows) {
      // RFC 7162 §3.1.3: UNCHANGEDSINCE fails for messages whose MODSEQ is greater.
      if (unchangedSince !== undefined && (r.modseq as number) > unchangedSince) {
        modified.push(r.uid);
        continue;
      }
      const cur = { systemFlags: r.system_flags as number, keywords: r.keywords as string[] };
      const next = applyFlagOp(cur, op, f);
      if (!sameFlags(cur, next)) changed.push({ uid: r.uid, next });
    }
    const updated: FlagUpdate[] = [];
    if (changed.length > 0) {
      // RFC 7162 §3.1: every changed message gets a new MODSEQ, each its own, in UID order.
      const spec = changed.map((x, k) => ({ uid: x.uid, f: x.next.systemFlags, kw: x.next.keywords, k }));
      const r = await c.query(
        `WITH a AS (
           UPDATE mailboxes SET highest_modseq = highest_modseq + $3 WHERE id = $1 RETURNING highest_modseq - $3 AS base
         )
         UPDATE messages m SET system_flags = u.f, keywords = u.kw, modseq = a.base + u.k + 1
         FROM jsonb_to_recordset($2::jsonb) AS u(uid bigint, f int, kw jsonb, k bigint), a
         WHERE m.mailbox_id = $1 AND m.uid = u.uid
         RETURNING m.uid, m.modseq`,
        [mailboxId, JSON.stringify(spec), changed.length],
      );
      const modseqOf = new Map(r.rows.map((x: Row) => [x.uid as number, x.modseq as number]));
      for (const x of changed) updated.push({ uid: x.uid, modseq: modseqOf.get(x.uid)!, systemFlags: x.next.systemFlags, keywords: x.next.keywords });
      for (const u of updated)
        tx.changes.push({ kind: 'flags-changed', accountId: mb.account_id, mailboxId, uid: u.uid, modseq: u.modseq, systemFlags: u.systemFlags, keywords: u.keywords });
    }
    return { updated, modified };
  }

  /**
   * Removes messages of a locked mailbox (given UIDs, or all; optionally only \Deleted ones), a
   * chunk per statement, each chunk logged under its own new MODSEQ (RFC 7162 §3.2.10) in the
   * same statement; returns the removed UIDs, ascending.
   */
  async expungeIn(
    tx: Tx,
    mb: Row,
    sel: { uids?: number[]; onlyDeleted: boolean },
    accountUsage: boolean,
    /** With accountUsage: collect the blob references dropped here instead of applying them. */
    pendingBlobs?: Map<string, number>,
  ): Promise<number[]> {
    const removed: number[] = [];
    const blobs = pendingBlobs ?? new Map<string, number>();
    const take = async (uids: number[]) => {
      for (const u of await this.#expungeChunk(tx, mb, uids, sel.onlyDeleted, accountUsage, blobs)) removed.push(u);
    };
    if (sel.uids) {
      for (const part of slices(sortedUnique(sel.uids), this.chunk)) await take(part);
    } else {
      // The whole mailbox, in UID order, a chunk of candidates at a time.
      for (let after = 0; ; ) {
        const r = await tx.c.query(
          `SELECT uid FROM messages WHERE mailbox_id = $1 AND uid > $2 ${sel.onlyDeleted ? `AND system_flags & ${SystemFlag.Deleted} <> 0` : ''} ORDER BY uid LIMIT $3`,
          [mb.id, after, this.chunk],
        );
        if (r.rowCount === 0) break;
        const part = r.rows.map((x: Row) => x.uid as number);
        await take(part);
        after = part[part.length - 1]!;
        if (part.length < this.chunk) break;
      }
    }
    if (accountUsage && !pendingBlobs) await this.adjustBlobs(tx.c, blobs);
    return removed;
  }

  async #expungeChunk(tx: Tx, mb: Row, uids: number[], onlyDeleted: boolean, accountUsage: boolean, blobs: Map<string, number>): Promise<number[]> {
    if (uids.length === 0) return [];
    const del = await tx.c.query(
      `WITH d AS (
         DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ${onlyDeleted ? `AND system_flags & ${SystemFlag.Deleted} <> 0` : ''}
         RETURNING uid, size, blob_id
       ), m AS (
         UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = $1 AND EXISTS (SELECT 1 FROM d) RETURNING highest_modseq
       ), l AS (
         INSERT INTO expunged (mailbox_id, uid, modseq) SELECT $1, d.uid, m.highest_modseq FROM d, m
         ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq
       )
       SELECT d.uid, d.size, d.blob_id, m.highest_modseq AS modseq FROM d, m ORDER BY d.uid`,
      [mb.id, uids],
    );
    if (del.rowCount === 0) return [];
    const removed = del.rows.map((r: Row) => r.uid as number);
    const modseq = del.rows[0].modseq as number;
    if (accountUsage) {
      let bytes = 0;
      for (const r of del.rows as Row[]) {
        bytes += r.size as number;
        blobs.set(r.blob_id, (blobs.get(r.blob_id) ?? 0) - 1);
      }
      await tx.c.query('UPDATE accounts SET used_bytes = used_bytes - $2, message_count = message_count - $3 WHERE id = $1', [mb.account_id, bytes, removed.length]);
    }
    tx.changes.push({ kind: 'messages-expunged', accountId: mb.account_id, mailboxId: mb.id, uids: removed, modseq });
    return removed;
  }

  /** COPY / MOVE inside one transaction, a chunk of messages per statement. */
  async copyIn(tx: Tx, srcMailboxId: number, uids: number[], dstMailboxId: number, move: boolean): Promise<CopyResult> {
    const { c } = tx;
    const boxes = await this.lockMailboxes(c, [srcMailboxId, dstMailboxId]);
    const src = boxes.get(srcMailboxId);
    const dst = boxes.get(dstMailboxId);
    if (!src || !dst) throw new StoreError('not-found', 'no such mailbox');
    if (move && src.account_id !== dst.account_id) throw new StoreError('invalid', 'move across accounts');
    const usage = !(move && src.account_id === dst.account_id);
    const mapping: Array<[number, number]> = [];
    // Blob references of all chunks, applied once at the end in ascending id order (lock order).
    const blobs = new Map<string, number>();
    for (const want of slices(sortedUnique(uids), this.chunk)) {
      const rows = (
        await c.query('SELECT uid, system_flags, keywords, internal_date, size, blob_id FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid', [
          srcMailboxId,
          want,
        ])
      ).rows as Row[];
      if (rows.length === 0) continue;
      if (usage) {
        // A copy adds usage to the destination account: all of it fits or nothing is copied
        // (a later chunk that does not fit rolls the whole transaction back).
        const bytes = rows.reduce((s, r) => s + (r.size as number), 0);
        if (!(await this.reserve(c, dst.account_id, bytes, rows.length))) throw new StoreError('quota', 'quota exceeded');
        // The source rows are locked (their mailbox is), so each blob has refcount >= 1 and stays.
        for (const r of rows) blobs.set(r.blob_id, (blobs.get(r.blob_id) ?? 0) + 1);
      }
      const added = await this.insertNew(
        c,
        rows.map((r) => ({
          mailboxId: dstMailboxId,
          systemFlags: r.system_flags as number,
          keywords: r.keywords as string[],
          internalDate: r.internal_date as number,
          size: r.size as number,
          blobId: r.blob_id as string,
        })),
      );
      added.forEach((m, k) =>
        tx.changes.push({ kind: 'message-added', accountId: dst.account_id, mailboxId: dstMailboxId, uid: m.uid, modseq: m.modseq, keywords: rows[k]!.keywords as string[] }),
      );
      if (move) {
        // RFC 6851 §3.3: the source loses the messages in the same transaction; usage and blob
        // references carry over to the copies (same account).
        await this.expungeIn(tx, src, { uids: rows.map((r) => r.uid as number), onlyDeleted: false }, false);
      }
      rows.forEach((r, k) => mapping.push([r.uid as number, added[k]!.uid]));
    }
    await this.adjustBlobs(c, blobs);
    return { mapping, uidValidity: dst.uid_validity };
  }
}
