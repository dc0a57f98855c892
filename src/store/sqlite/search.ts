// What SEARCH, SORT and THREAD read from the SQLite store: the SEARCH values of the cached meta
// (dates, folded address and subject texts, other header fields), the header match inside SQLite
// on message_search (RFC 9051 §6.4.4), the SORT/THREAD keys (sort.ts) and threads (threads.ts),
// and SEARCH BODY/TEXT: text plans read in slices and scanned on worker threads (body-scan.ts).
// Rows a COPY is staging (UID >= `below`) are not part of the mailbox yet.

import type { BodyScanPool } from '../blob/body-scan.ts';
import type { BodyScanItem } from '../body-search.ts';
import { StoreError, storedSentDay, type MessageTextPlan, type SearchData, type SearchHeaderField, type SortData } from '../store.ts';
import type { TextLeaf } from '../../protocol/mime/types.ts';
import type { SqliteContext } from './context.ts';
import type { SqliteSortKeys } from './sort.ts';
import type { SqliteThreads } from './threads.ts';
import { foldForSearch, type Query } from './writes.ts';

export class SqliteSearch {
  readonly #q: Query;
  readonly #below: SqliteContext['below'];
  readonly #sort: SqliteSortKeys;
  readonly #threads: SqliteThreads;
  readonly #bodyScan: BodyScanPool;
  readonly #settled: SqliteContext['settled'];

  constructor(ctx: SqliteContext) {
    this.#q = ctx.q;
    this.#below = ctx.below;
    this.#sort = ctx.sort;
    this.#threads = ctx.threads;
    this.#bodyScan = ctx.bodyScan;
    this.#settled = ctx.settled;
  }

  async getSearchData(mailboxId: number, uids: number[], opts: { fields?: boolean } = {}): Promise<SearchData[]> {
    if (uids.length === 0) return [];
    // One json_extract with several paths parses each cached meta once, in C, and returns a small
    // JSON array; the MIME tree is never parsed here.
    const withFields = opts.fields ?? true;
    // sentDay: metas cached before it existed have none; their day comes from the stored Date: (envelope.date).
    const dates = "'$.sentDate', '$.sentDay', '$.envelope.date'";
    const paths = withFields ? `${dates}, '$.search'` : `${dates}, '$.search.subject', '$.search.from', '$.search.to', '$.search.cc', '$.search.bcc'`;
    const stmt = this.#q(
      `SELECT m.uid, json_extract(b.meta, ${paths})
       FROM messages m JOIN blobs b ON b.id = m.blob_id
       WHERE m.mailbox_id = CAST(? AS INTEGER) AND m.uid IN (SELECT value FROM json_each(?)) ORDER BY m.uid`,
    );
    const out: SearchData[] = [];
    const sorted = [...new Set(uids)].sort((a, b) => a - b);
    for (let i = 0; i < sorted.length; i += 1000) {
      for (const r of stmt.raw().all(mailboxId, JSON.stringify(sorted.slice(i, i + 1000))) as unknown[][]) {
        const v = JSON.parse(r[1] as string) as unknown[];
        const search: SearchData['search'] = withFields
          ? (v[3] as SearchData['search'])
          : { subject: (v[3] as string) ?? '', from: (v[4] as string) ?? '', to: (v[5] as string) ?? '', cc: (v[6] as string) ?? '', bcc: (v[7] as string) ?? '', fields: [] };
        const sentDate = (v[0] as number | null) ?? null;
        out.push({ uid: r[0] as number, sentDate, sentDay: storedSentDay(v[1], v[2], sentDate), search });
      }
    }
    return out;
  }

  async getSortData(mailboxId: number, uids: number[], opts: { thread?: boolean } = {}): Promise<SortData[]> {
    return this.#sort.read(mailboxId, uids, this.#below(mailboxId), opts.thread ?? false);
  }

  async getThreadIds(mailboxId: number, uids: number[]): Promise<Map<number, number>> {
    return this.#threads.idsOf(mailboxId, uids);
  }

  async threadMembers(mailboxId: number, threadId: number): Promise<number[]> {
    const below = this.#below(mailboxId);
    return (await this.#threads.members(mailboxId, threadId)).filter((u) => u < below);
  }

  async matchHeader(mailboxId: number, field: SearchHeaderField, value: string): Promise<number[]> {
    // message_search (migration 4) holds the fields case-folded: instr() on the folded needle is
    // the case-insensitive substring match of RFC 9051 §6.4.4, evaluated inside SQLite.
    const column = { subject: 'subject', from: 'from_addr', to: 'to_addr', cc: 'cc_addr', bcc: 'bcc_addr' }[field];
    if (!column) throw new StoreError('invalid', `no search column for ${field}`);
    return this.#q(`SELECT uid FROM message_search WHERE mailbox_id = CAST(? AS INTEGER) AND uid < ? AND instr(${column}, ?) > 0 ORDER BY uid`)
      .pluck()
      .all(mailboxId, this.#below(mailboxId), foldForSearch(value)) as number[];
  }

  /**
   * [uid, size, blob id, text plan JSON] of the given UIDs (ascending, distinct). From
   * message_search, stored in mailbox order next to messages: no per-message parse read. Dense
   * UIDs (a SEARCH over most of a mailbox): one range scan filtered here; sparse ones: a lookup each.
   */
  #textPlanRows(mailboxId: number, sorted: readonly number[]): Array<[number, number, string, string]> {
    if (sorted.length === 0) return [];
    const sql = `SELECT m.uid, m.size, m.blob_id, s.text_plan
       FROM messages m JOIN message_search s ON s.mailbox_id = m.mailbox_id AND s.uid = m.uid
       WHERE m.mailbox_id = CAST(? AS INTEGER)`;
    const lo = sorted[0]!;
    const hi = sorted[sorted.length - 1]!;
    if (hi - lo < 4 * sorted.length) {
      const rows = this.#q(`${sql} AND m.uid BETWEEN ? AND ? ORDER BY m.uid`).raw().all(mailboxId, lo, hi) as Array<[number, number, string, string]>;
      const out: Array<[number, number, string, string]> = [];
      let k = 0;
      for (const r of rows) {
        while (k < sorted.length && sorted[k]! < r[0]) k++;
        if (sorted[k] === r[0]) out.push(r);
      }
      return out;
    }
    return this.#q(`${sql} AND m.uid IN (SELECT value FROM json_each(?)) ORDER BY m.uid`).raw().all(mailboxId, JSON.stringify(sorted)) as Array<[number, number, string, string]>;
  }

  async getTextPlans(mailboxId: number, uids: number[]): Promise<MessageTextPlan[]> {
    const sorted = [...new Set(uids)].sort((a, b) => a - b);
    const out: MessageTextPlan[] = [];
    for (let i = 0; i < sorted.length; i += 1000) {
      for (const r of this.#textPlanRows(mailboxId, sorted.slice(i, i + 1000))) out.push({ uid: r[0], size: r[1], blobId: r[2], plan: JSON.parse(r[3]) as TextLeaf[] });
    }
    return out;
  }

  async matchBody(mailboxId: number, uids: number[], needles: string[]): Promise<number[][]> {
    if (needles.length === 0) return [];
    const sorted = [...new Set(uids)].sort((a, b) => a - b);
    // The plans are read in slices with an event-loop turn between (other sessions go on), and go
    // to the workers as stored (JSON): the workers parse them.
    const self = this;
    async function* slices(): AsyncGenerator<BodyScanItem[]> {
      for (let i = 0; i < sorted.length; i += 1000) {
        if (i > 0) {
          await new Promise((r) => setImmediate(r));
          await self.#settled();
        }
        yield self.#textPlanRows(mailboxId, sorted.slice(i, i + 1000)).map((r) => ({ uid: r[0], size: r[1], blobId: r[2], plan: r[3] }));
      }
    }
    return this.#bodyScan.scan(slices(), needles, sorted.length);
  }
}
