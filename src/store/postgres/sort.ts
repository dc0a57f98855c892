// SORT / THREAD keys in the PostgreSQL store (table blob_sort, migration 8): one row per body,
// inserted in the delivery statement itself (deliverWithSortKeys wraps pb_deliver, and assigns the
// body's conversation thread in each account, src/store/threads.ts), read for a
// mailbox's messages by SORT and THREAD (RFC 5256, RFC 5957). Bodies stored before migration 8
// get their row on first read, computed from the cached parse (a few JSON fields).

import type pg from 'pg';
import type { SortData } from '../store.ts';
import type { MessageMeta } from '../../protocol/mime/types.ts';
import { sortKeysOf, type SortKeys, type SortSource } from '../../protocol/imap/sort-keys.ts';
import { nextTurn } from '../../obs/loop-lag.ts';
import { threadIds } from '../threads.ts';

type Row = Record<string, any>;

/** The JSON record a blob_sort row is inserted from (jsonb_to_recordset). */
function record(blobId: string, k: SortKeys): Row {
  return {
    blob_id: blobId,
    sent: k.sent,
    subject: k.subject,
    reply: k.reply,
    from_key: k.from,
    to_key: k.to,
    cc_key: k.cc,
    display_from: k.displayFrom,
    display_to: k.displayTo,
    message_id: k.messageId,
    refs: k.refs.join('\n'),
  };
}

const RECORDSET = `jsonb_to_recordset($KEYS::jsonb) AS r(blob_id text, sent bigint, subject text, reply boolean, from_key text, to_key text, cc_key text,
  display_from text, display_to text, message_id text, refs text)`;
const COLUMNS = 'blob_id, sent, subject, reply, from_key, to_key, cc_key, display_from, display_to, message_id, refs';

/**
 * pb_deliver (migration 2/5) and the body's blob_sort row in one statement, so delivery keeps its
 * single round trip under the mailbox locks. The row is written only when a target took the
 * message (otherwise pb_deliver created no blob row); an existing row is kept.
 */
export function deliverWithSortKeys(): string {
  return `WITH d AS (SELECT * FROM pb_deliver($1, $2, $3, $4, $5::jsonb, $6)),
  k AS (
    INSERT INTO blob_sort (${COLUMNS})
    SELECT ${COLUMNS} FROM ${RECORDSET.replace('$KEYS', '$7')}
    WHERE EXISTS (SELECT 1 FROM d WHERE d.res = 'ok')
    ON CONFLICT (blob_id) DO NOTHING
  ),
  ${ASSIGN_THREADS}
  SELECT * FROM d`;
}

/**
 * The body's thread in each account that took it (src/store/threads.ts): the thread it already
 * has there, else the oldest thread one of its ids ($8, sorted: rows are inserted in one order
 * by everyone) is mapped to, else a new one; then its unmapped ids are mapped to it.
 */
const ASSIGN_THREADS = `acc AS (SELECT DISTINCT d.acc AS account_id FROM d WHERE d.res = 'ok'),
  ex AS (SELECT mt.account_id, mt.thread_id FROM message_threads mt WHERE mt.blob_id = $1 AND mt.account_id IN (SELECT account_id FROM acc)),
  fnd AS (
    SELECT t.account_id, min(t.thread_id) AS thread_id FROM thread_ids t
    WHERE t.account_id IN (SELECT account_id FROM acc) AND t.msgid = ANY($8::text[]) GROUP BY t.account_id
  ),
  ch AS (
    SELECT a.account_id, coalesce(ex.thread_id, fnd.thread_id, nextval('thread_seq')) AS thread_id
    FROM acc a LEFT JOIN ex USING (account_id) LEFT JOIN fnd USING (account_id)
  ),
  mt AS (INSERT INTO message_threads (account_id, blob_id, thread_id) SELECT account_id, $1, thread_id FROM ch ON CONFLICT DO NOTHING),
  ti AS (
    INSERT INTO thread_ids (account_id, msgid, thread_id)
    SELECT ch.account_id, i.msgid, ch.thread_id FROM ch, unnest($8::text[]) AS i(msgid) ORDER BY 1, 2 ON CONFLICT DO NOTHING
  )`;

/** The 7th and 8th parameters of deliverWithSortKeys: the body's keys and its thread ids. */
export function sortKeysParams(blobId: string, meta: MessageMeta): [string, string[]] {
  const k = sortKeysOf(meta);
  return [JSON.stringify([record(blobId, k)]), threadIds(k).sort()];
}

/** Keys of stored bodies computed from their cached parse (bodies gone are left out). */
export async function sortKeysFromMeta(query: (text: string, values?: unknown[]) => Promise<Row[]>, blobIds: readonly string[]): Promise<Map<string, SortKeys>> {
  const keys = new Map<string, SortKeys>();
  const rows = await query(
    `SELECT id, json_build_array(meta::json -> 'envelope', meta::json -> 'sentDate', meta::json #> '{search,subject}', meta::json #> '{search,fields}')::text AS src
     FROM blobs WHERE id = ANY($1::text[]) AND meta <> 'null'`,
    [[...new Set(blobIds)]],
  );
  let t = performance.now();
  for (const r of rows) {
    if (performance.now() - t > 5) {
      await nextTurn();
      t = performance.now();
    }
    const [envelope, sentDate, subject, fields] = JSON.parse(r.src as string) as [SortSource['envelope'], number | null, string | null, Array<[string, string]> | null];
    keys.set(r.id as string, sortKeysOf({ envelope, sentDate, search: { subject: subject ?? '', fields: fields ?? [] } }));
  }
  return keys;
}

/** Rows per statement. */
const SLICE = 2000;

export class PgSortKeys {
  readonly #query: (text: string, values?: unknown[]) => Promise<Row[]>;

  constructor(query: (text: string, values?: unknown[]) => Promise<Row[]>) {
    this.#query = query;
  }

  /** See Store.getSortData. */
  async read(mailboxId: number, uids: readonly number[], thread: boolean): Promise<SortData[]> {
    const sorted = [...new Set(uids)].sort((a, b) => a - b);
    const out: SortData[] = [];
    const cols = `m.uid, m.internal_date, m.size, m.blob_id, k.subject, k.sent, k.reply, k.from_key, k.to_key, k.cc_key, k.display_from, k.display_to${thread ? ', k.message_id, k.refs' : ''}`;
    for (let i = 0; i < sorted.length; i += SLICE) {
      const rows = await this.#query(
        `SELECT ${cols} FROM messages m LEFT JOIN blob_sort k ON k.blob_id = m.blob_id
         WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[]) ORDER BY m.uid`,
        [mailboxId, sorted.slice(i, i + SLICE)],
      );
      const missing = rows.filter((r) => r.subject === null).map((r) => r.blob_id as string);
      const filled = missing.length ? await this.#fill(missing) : null;
      for (const r of rows) out.push(toSortData(r, filled, thread));
    }
    return out;
  }

  /** Computes (and stores) the keys of bodies without a row, from their cached parse. */
  async #fill(blobIds: string[]): Promise<Map<string, SortKeys>> {
    const keys = await sortKeysFromMeta(this.#query, blobIds);
    if (keys.size) {
      // A body removed meanwhile has no row to hang keys on: skipped, not an error.
      await this.#query(
        `INSERT INTO blob_sort (${COLUMNS}) SELECT ${COLUMNS} FROM ${RECORDSET.replace('$KEYS', '$1')}
         WHERE EXISTS (SELECT 1 FROM blobs b WHERE b.id = r.blob_id) ON CONFLICT (blob_id) DO NOTHING`,
        [JSON.stringify([...keys].map(([id, k]) => record(id, k)))],
      ).catch(() => undefined);
    }
    return keys;
  }
}

const EMPTY: SortKeys = { sent: null, subject: '', reply: false, from: '', to: '', cc: '', displayFrom: '', displayTo: '', messageId: null, refs: [] };

function toSortData(r: Row, filled: Map<string, SortKeys> | null, thread: boolean): SortData {
  const uid = r.uid as number;
  const internalDate = Number(r.internal_date);
  const size = Number(r.size);
  if (r.subject === null) {
    const k = filled?.get(r.blob_id as string) ?? EMPTY;
    return { ...k, messageId: thread ? k.messageId : null, refs: thread ? k.refs : [], uid, internalDate, size };
  }
  return {
    uid,
    internalDate,
    size,
    subject: r.subject as string,
    sent: r.sent === null ? null : Number(r.sent),
    reply: r.reply === true,
    from: r.from_key as string,
    to: r.to_key as string,
    cc: r.cc_key as string,
    displayFrom: r.display_from as string,
    displayTo: r.display_to as string,
    messageId: thread ? ((r.message_id as string | null) ?? null) : null,
    refs: thread && r.refs ? (r.refs as string).split('\n') : [],
  };
}
