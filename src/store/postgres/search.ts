// What SEARCH, SORT and THREAD read from the PostgreSQL store: the SEARCH values of the stored meta
// (dates, address and subject texts, other header fields), the header match (compared here, not
// with the database's locale-dependent lower(), RFC 9051 §6.4.4), the SORT/THREAD keys (sort.ts)
// and threads (threads.ts), and SEARCH BODY/TEXT: the bodies live in the database, so they are read
// by range with several reads in flight and scanned on the event loop (body-search.ts).

import { StoreError, storedSentDay, type MessageTextPlan, type SearchData, type SearchHeaderField, type SortData } from '../store.ts';
import type { MimeNode } from '../../protocol/mime/types.ts';
import { textPlan } from '../../protocol/mime/text-plan.ts';
import { scanBodies } from '../body-search.ts';
import { sortedUnique } from '../chunks.ts';
import type { PgContext, PgQuery } from './context.ts';
import { PgSortKeys } from './sort.ts';
import { PgThreads } from './threads.ts';

export class PgSearch {
  readonly #q: PgQuery;
  readonly #tx: PgContext['tx'];
  readonly #readBlob: PgContext['readBlob'];

  constructor(ctx: PgContext) {
    this.#q = ctx.q;
    this.#tx = ctx.tx;
    this.#readBlob = ctx.readBlob;
  }

  async getSearchData(mailboxId: number, uids: number[], opts: { fields?: boolean } = {}): Promise<SearchData[]> {
    if (uids.length === 0) return [];
    const search = (opts.fields ?? true)
      ? "(b.meta::json -> 'search')::text"
      : "json_build_object('subject', b.meta::json #> '{search,subject}', 'from', b.meta::json #> '{search,from}', 'to', b.meta::json #> '{search,to}', 'cc', b.meta::json #> '{search,cc}', 'bcc', b.meta::json #> '{search,bcc}', 'fields', json_build_array())::text";
    const rows = await this.#q(
      `SELECT m.uid, (b.meta::json ->> 'sentDate') AS sent, (b.meta::json ->> 'sentDay') AS day, (b.meta::json #>> '{envelope,date}') AS edate, ${search} AS search
       FROM messages m JOIN blobs b ON b.id = m.blob_id
       WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[]) ORDER BY m.uid`,
      [mailboxId, sortedUnique(uids)],
    );
    return rows.map((r) => {
      const sentDate = r.sent == null ? null : Number(r.sent);
      return {
        uid: r.uid as number,
        sentDate,
        // sentDay absent in metas cached before it existed: from the stored Date: (RFC 3501 §6.4.4).
        sentDay: storedSentDay(r.day == null ? undefined : Number(r.day), r.edate, sentDate),
        search: JSON.parse(r.search as string) as SearchData['search'],
      };
    });
  }

  readonly #sort = new PgSortKeys((text, values) => this.#q(text, values));

  async getSortData(mailboxId: number, uids: number[], opts: { thread?: boolean } = {}): Promise<SortData[]> {
    return this.#sort.read(mailboxId, uids, opts.thread ?? false);
  }

  readonly #threads = new PgThreads((text, values) => this.#q(text, values), (fn) => this.#tx(undefined, fn));

  async getThreadIds(mailboxId: number, uids: number[]): Promise<Map<number, number>> {
    return this.#threads.idsOf(mailboxId, uids);
  }

  async threadMembers(mailboxId: number, threadId: number): Promise<number[]> {
    return this.#threads.members(mailboxId, threadId);
  }

  async getTextPlans(mailboxId: number, uids: number[]): Promise<MessageTextPlan[]> {
    if (uids.length === 0) return [];
    const rows = await this.#q(
      `SELECT m.uid, m.size, m.blob_id, (b.meta::json -> 'root')::text AS root
       FROM messages m JOIN blobs b ON b.id = m.blob_id
       WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[]) ORDER BY m.uid`,
      [mailboxId, sortedUnique(uids)],
    );
    return rows.map((r) => ({ uid: r.uid as number, size: Number(r.size), blobId: r.blob_id as string, plan: textPlan(JSON.parse(r.root as string) as MimeNode) }));
  }

  async matchBody(mailboxId: number, uids: number[], needles: string[]): Promise<number[][]> {
    if (needles.length === 0) return [];
    // Bodies live in the database: read by range with several queries in flight.
    return scanBodies((id, start, end) => this.#readBlob(id, start, end), await this.getTextPlans(mailboxId, uids), needles);
  }

  async matchHeader(mailboxId: number, field: SearchHeaderField, value: string): Promise<number[]> {
    if (!['subject', 'from', 'to', 'cc', 'bcc'].includes(field)) throw new StoreError('invalid', `no search field ${field}`);
    // Compared here, not with SQL lower(): its case folding depends on the database's locale.
    const needle = value.toLowerCase();
    const rows = await this.#q(
      `SELECT m.uid, b.meta::json #>> $2::text[] AS v
       FROM messages m JOIN blobs b ON b.id = m.blob_id
       WHERE m.mailbox_id = $1 ORDER BY m.uid`,
      [mailboxId, ['search', field]],
    );
    return rows.filter((r) => typeof r.v === 'string' && (r.v as string).toLowerCase().includes(needle)).map((r) => r.uid as number);
  }
}
