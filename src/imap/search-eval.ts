// Evaluates a SEARCH key tree (RFC 9051 §6.4.4) over the selected mailbox. Flags, sizes, dates and
// UIDs come from the message summaries; header keys from the cached MessageMeta; BODY/TEXT read the
// body by byte range and decode the text parts.

import type { SearchKey } from '../protocol/imap/types.ts';
import type { MessageRecord, MessageTextPlan, MessageSummary, SearchHeaderField } from '../store/store.ts';
import type { MimeNode } from '../protocol/mime/types.ts';
import { seqSetHas } from '../protocol/imap/response.ts';
import type { ImapSession } from './session.ts';
import { textOfMessage } from './text.ts';

const STORE_FIELDS = new Set<string>(['subject', 'from', 'to', 'cc', 'bcc']);

interface Need {
  /** SUBJECT/FROM/TO/CC/BCC keys with a value: answered by store.matchHeader for the whole mailbox. */
  headerKeys: Array<Extract<SearchKey, { k: 'header' }>>;
  meta: boolean;
  /** Every header field (HEADER with another name or an empty value, TEXT), not just the five. */
  fields: boolean;
  body: boolean;
  modseq: boolean;
}

function needs(k: SearchKey, n: Need): void {
  switch (k.k) {
    case 'and':
      k.keys.forEach((x) => needs(x, n));
      break;
    case 'or':
      needs(k.a, n);
      needs(k.b, n);
      break;
    case 'not':
      needs(k.key, n);
      break;
    case 'header':
      if (k.value !== '' && STORE_FIELDS.has(k.field)) {
        n.headerKeys.push(k);
        break;
      }
      n.meta = true;
      n.fields = true;
      break;
    case 'date':
      if (k.sent) n.meta = true;
      break;
    case 'body':
      n.body = true;
      break;
    case 'text':
      n.meta = true;
      n.fields = true;
      n.body = true;
      break;
    case 'modseq':
      n.modseq = true;
      break;
  }
}

interface Ctx {
  seq: number;
  msg: MessageSummary;
  /** Sent date and search headers (from getSearchData, or from rec when the body is needed too). */
  sd: { sentDate: number | null; search: MessageRecord['meta']['search'] } | null;
  body: string | null;
  headerText: string | null;
  maxSeq: number;
  maxUid: number;
  saved: Set<number>;
  /** UIDs matching each store-answered header key. */
  headerHits: Map<SearchKey, Set<number>>;
}

const day = (ms: number) => {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
};

function includesCi(hay: string, needle: string): boolean {
  return hay.toLowerCase().includes(needle.toLowerCase());
}

function match(k: SearchKey, c: Ctx): boolean {
  switch (k.k) {
    case 'all':
      return true;
    case 'and':
      return k.keys.every((x) => match(x, c));
    case 'or':
      return match(k.a, c) || match(k.b, c);
    case 'not':
      return !match(k.key, c);
    case 'flag':
      return Boolean(c.msg.systemFlags & k.flag) === k.set;
    case 'keyword':
      return c.msg.keywords.some((x) => x.toLowerCase() === k.keyword.toLowerCase()) === k.set;
    case 'recent':
      return !k.set;
    case 'size':
      return k.op === 'larger' ? c.msg.size > k.n : c.msg.size < k.n;
    case 'modseq':
      return c.msg.modseq >= k.modseq;
    case 'seq':
      return k.set.saved ? c.saved.has(c.msg.uid) : seqSetHas(k.set, c.seq, c.maxSeq);
    case 'uid':
      return k.set.saved ? c.saved.has(c.msg.uid) : seqSetHas(k.set, c.msg.uid, c.maxUid);
    case 'date': {
      const t = k.sent ? c.sd?.sentDate ?? null : c.msg.internalDate;
      if (t === null) return false;
      const d = day(t);
      return k.op === 'before' ? d < k.day : k.op === 'on' ? d === k.day : d >= k.day;
    }
    case 'header': {
      const hits = c.headerHits.get(k);
      if (hits) return hits.has(c.msg.uid);
      const sh = c.sd?.search;
      if (!sh) return false;
      const f = k.field;
      if (f === 'subject' || f === 'from' || f === 'to' || f === 'cc' || f === 'bcc') {
        const v = sh[f];
        if (k.value === '') return sh.fields.some(([n]) => n === f);
        return includesCi(v, k.value);
      }
      return sh.fields.some(([n, v]) => n === f && (k.value === '' || includesCi(v, k.value)));
    }
    case 'body':
      return c.body !== null && includesCi(c.body, k.value);
    case 'text': {
      if (c.headerText === null && c.sd) c.headerText = c.sd.search.fields.map(([n, v]) => `${n}: ${v}`).join('\n');
      return includesCi(c.headerText ?? '', k.value) || (c.body !== null && includesCi(c.body, k.value));
    }
  }
}

/** Matching UIDs (ascending) among the messages the client knows, and their highest MODSEQ. */
export async function runSearch(s: ImapSession, key: SearchKey): Promise<{ uids: number[]; seqs: number[]; highestModseq: number; usedModseq: boolean }> {
  const sel = s.selected!;
  const need: Need = { headerKeys: [], meta: false, fields: false, body: false, modseq: false };
  needs(key, need);
  const headerHits = new Map<SearchKey, Set<number>>();
  for (const k of need.headerKeys) headerHits.set(k, new Set(await s.deps.store.matchHeader(sel.mailboxId, k.field as SearchHeaderField, k.value)));
  const all = await s.deps.store.listMessages(sel.mailboxId);
  // The session's UIDs and the listing are both ascending: align them in one walk (msgAt[i] is
  // the summary of sequence number i + 1, undefined if expunged meanwhile).
  const msgAt: Array<MessageSummary | undefined> = new Array(sel.uids.length);
  for (let i = 0, li = 0; i < sel.uids.length; i++) {
    const u = sel.uids[i]!;
    while (li < all.length && all[li]!.uid < u) li++;
    msgAt[i] = li < all.length && all[li]!.uid === u ? all[li] : undefined;
  }
  const maxSeq = sel.uids.length;
  const maxUid = maxSeq ? sel.uids[maxSeq - 1]! : 0;
  const saved = new Set(s.savedSearch);
  const uids: number[] = [];
  const seqs: number[] = [];
  let highestModseq = 0;
  // Rows come from the store in chunks. BODY/TEXT: up to WINDOW bodies are read ahead (the reads
  // overlap each other and the text extraction of earlier ones); each is matched and dropped in
  // order, so memory stays bounded whatever the mailbox size.
  const CHUNK = need.body ? 500 : 2000;
  const c: Ctx = { seq: 0, msg: undefined as unknown as MessageSummary, sd: null, body: null, headerText: null, maxSeq, maxUid, saved, headerHits };
  const WINDOW = 16;
  for (let i = 0; i < sel.uids.length; i += CHUNK) {
    const chunk = sel.uids.slice(i, i + CHUNK);
    let plans: Map<number, MessageTextPlan> | null = null;
    let sds: Map<number, NonNullable<Ctx['sd']>> | null = null;
    if (need.body) plans = new Map((await s.deps.store.getTextPlans(sel.mailboxId, chunk)).map((r) => [r.uid, r]));
    if (need.meta) sds = new Map((await s.deps.store.getSearchData(sel.mailboxId, chunk, { fields: need.fields })).map((d) => [d.uid, d]));
    const texts: Array<Promise<string | null> | undefined> = [];
    const readAhead = (j: number): void => {
      const r = plans?.get(chunk[j]!);
      // A failed read rejects when awaited below, in order, like a read done then would.
      texts[j] = r && msgAt[i + j] ? textOfMessage(s.deps.store, r) : Promise.resolve(null);
      texts[j]!.catch(() => {});
    };
    if (plans) for (let j = 0; j < Math.min(WINDOW, chunk.length); j++) readAhead(j);
    for (let j = 0; j < chunk.length; j++) {
      const uid = chunk[j]!;
      let body: string | null = null;
      if (plans) {
        body = await texts[j]!;
        texts[j] = undefined;
        if (j + WINDOW < chunk.length) readAhead(j + WINDOW);
      }
      const msg = msgAt[i + j];
      if (!msg) continue; // expunged meanwhile
      c.seq = i + j + 1;
      c.msg = msg;
      c.sd = sds?.get(uid) ?? null;
      c.body = body;
      c.headerText = null;
      if (match(key, c)) {
        uids.push(uid);
        seqs.push(i + j + 1);
        if (msg.modseq > highestModseq) highestModseq = msg.modseq;
      }
    }
  }
  return { uids, seqs, highestModseq, usedModseq: need.modseq };
}

export type { MimeNode };
