// SORT / THREAD keys in the SQLite store (table blob_sort, migration 10): one row per body,
// written with the body's parse at its first delivery (insertSortKeys, called from
// MessageWrites.refBlob), read for a mailbox's messages by SORT and THREAD (RFC 5256, RFC 5957).
// Bodies stored before migration 10 have no row: the first read computes theirs from the cached
// parse (a few JSON fields, not the MIME tree), answers with them and stores them, so an upgraded
// store needs no backfill pass at open and each body is computed once.

import type { Query, Tx } from './writes.ts';
import type { SortData } from '../store.ts';
import { sortKeysOf, type SortKeys, type SortSource } from '../../protocol/imap/sort-keys.ts';
import { LoopBudget } from '../../obs/loop-lag.ts';

const INSERT = `INSERT OR IGNORE INTO blob_sort (blob_id, sent, subject, reply, from_key, to_key, cc_key, display_from, display_to, message_id, refs)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

function insertKeys(q: Query, blobId: string, k: SortKeys): void {
  q(INSERT).run(blobId, k.sent, k.subject, k.reply ? 1 : 0, k.from, k.to, k.cc, k.displayFrom, k.displayTo, k.messageId, k.refs.join('\n'));
}

/** At delivery, inside the write transaction: the keys of a body whose parse was just stored. */
export function insertSortKeys(q: Query, blobId: string, keys: SortKeys): void {
  insertKeys(q, blobId, keys);
}

/**
 * The keys of a stored body computed from its cached parse (a few JSON fields, not the MIME tree),
 * or null when the body is gone.
 */
export function sortKeysFromMeta(q: Query, blobId: string): SortKeys | null {
  const text = q("SELECT json_extract(meta, '$.envelope', '$.sentDate', '$.search.subject', '$.search.fields') FROM blobs WHERE id = ?").pluck().get(blobId) as string | undefined;
  if (text === undefined) return null;
  const [envelope, sentDate, subject, fields] = JSON.parse(text) as [SortSource['envelope'], number | null, string | null, Array<[string, string]> | null];
  return sortKeysOf({ envelope, sentDate, search: { subject: subject ?? '', fields: fields ?? [] } });
}

/** Rows read per statement. */
const SLICE = 1000;

type Raw = unknown[];

export class SqliteSortKeys {
  readonly #q: Query;
  readonly #write: <T>(fn: (tx: Tx) => T) => Promise<T>;
  /** The read gate (changes.ts), awaited after every turn a read yields. */
  readonly #settled: () => Promise<void> | null;

  constructor(q: Query, write: <T>(fn: (tx: Tx) => T) => Promise<T>, settled: () => Promise<void> | null) {
    this.#q = q;
    this.#write = write;
    this.#settled = settled;
  }

  /** See Store.getSortData; `below`: rows with this UID or above are staged by a COPY, not in the mailbox. */
  async read(mailboxId: number, uids: readonly number[], below: number, thread: boolean): Promise<SortData[]> {
    const sorted = [...new Set(uids)].filter((u) => u < below).sort((a, b) => a - b);
    const out: SortData[] = [];
    const budget = new LoopBudget(5);
    for (let i = 0; i < sorted.length; i += SLICE) {
      if (i > 0) {
        await budget.pause();
        await this.#settled();
      }
      const rows = this.#rows(mailboxId, sorted.slice(i, i + SLICE), thread);
      const missing = rows.filter((r) => r[3] === null);
      const filled = missing.length ? await this.#fill(missing.map((r) => r[11] as string), budget) : null;
      if (filled) await this.#settled();
      for (const r of rows) out.push(toSortData(r, filled, thread));
    }
    return out;
  }

  /**
   * [uid, internal_date, size, sent-or-null-marker…] of the given UIDs (ascending, distinct). A
   * body without a blob_sort row has NULL in column 3 (`subject`, never NULL in a row).
   */
  #rows(mailboxId: number, sorted: readonly number[], thread: boolean): Raw[] {
    const cols = `m.uid, m.internal_date, m.size, k.subject, k.sent, k.reply, k.from_key, k.to_key, k.cc_key, k.display_from, k.display_to, m.blob_id${thread ? ', k.message_id, k.refs' : ''}`;
    const sql = `SELECT ${cols} FROM messages m LEFT JOIN blob_sort k ON k.blob_id = m.blob_id WHERE m.mailbox_id = CAST(? AS INTEGER)`;
    const lo = sorted[0]!;
    const hi = sorted[sorted.length - 1]!;
    if (hi - lo < 4 * sorted.length) {
      // Dense (a SORT of most of a mailbox): one range scan, filtered here.
      const rows = this.#q(`${sql} AND m.uid BETWEEN ? AND ? ORDER BY m.uid`).raw().all(mailboxId, lo, hi) as Raw[];
      if (rows.length === sorted.length) return rows;
      const out: Raw[] = [];
      let k = 0;
      for (const r of rows) {
        while (k < sorted.length && sorted[k]! < (r[0] as number)) k++;
        if (sorted[k] === r[0]) out.push(r);
      }
      return out;
    }
    return this.#q(`${sql} AND m.uid IN (SELECT value FROM json_each(?)) ORDER BY m.uid`).raw().all(mailboxId, JSON.stringify(sorted)) as Raw[];
  }

  /** Computes (and stores) the keys of bodies without a row, from their cached parse. */
  async #fill(blobIds: string[], budget: LoopBudget): Promise<Map<string, SortKeys>> {
    const keys = new Map<string, SortKeys>();
    for (const id of new Set(blobIds)) {
      await budget.pause();
      await this.#settled();
      const k = sortKeysFromMeta(this.#q, id);
      if (k) keys.set(id, k); // else the body went meanwhile: its messages went with it
    }
    if (keys.size) {
      await this.#write(() => {
        const has = this.#q('SELECT 1 FROM blobs WHERE id = ?').pluck();
        for (const [id, k] of keys) if (has.get(id) !== undefined) insertKeys(this.#q, id, k);
      });
    }
    return keys;
  }
}

function toSortData(r: Raw, filled: Map<string, SortKeys> | null, thread: boolean): SortData {
  const uid = r[0] as number;
  const internalDate = r[1] as number;
  const size = r[2] as number;
  if (r[3] === null) {
    const k = filled?.get(r[11] as string);
    const base: SortKeys = k ?? { sent: null, subject: '', reply: false, from: '', to: '', cc: '', displayFrom: '', displayTo: '', messageId: null, refs: [] };
    return { ...base, messageId: thread ? base.messageId : null, refs: thread ? base.refs : [], uid, internalDate, size };
  }
  const refs = thread && r[13] ? (r[13] as string).split('\n') : [];
  return {
    uid,
    internalDate,
    size,
    subject: r[3] as string,
    sent: (r[4] as number | null) ?? null,
    reply: r[5] === 1,
    from: r[6] as string,
    to: r[7] as string,
    cc: r[8] as string,
    displayFrom: r[9] as string,
    displayTo: r[10] as string,
    messageId: thread ? ((r[12] as string | null) ?? null) : null,
    refs,
  };
}
