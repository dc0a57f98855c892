// Evaluates a SEARCH key tree (RFC 9051 §6.4.4) over the selected mailbox. Flags, sizes, dates and
// UIDs come from the message summaries; SUBJECT/FROM/TO/CC/BCC from store.matchHeader, other header
// keys from the cached search data; BODY and the body half of TEXT from store.matchBody (one scan
// of the mailbox's bodies for all needles, off the event loop where the backend can).

import type { SearchKey } from '../protocol/imap/types.ts';
import { emailObjectId, parseThreadObjectId, type MessageRecord, type MessageSummary, type SearchHeaderField } from '../store/store.ts';
import type { MimeNode } from '../protocol/mime/types.ts';
import { seqSetHas } from '../protocol/imap/response.ts';
import type { ImapSession } from './session.ts';
import { LoopBudget } from '../obs/loop-lag.ts';

const STORE_FIELDS = new Set<string>(['subject', 'from', 'to', 'cc', 'bcc']);

export interface Need {
  /** SUBJECT/FROM/TO/CC/BCC keys with a value: answered by store.matchHeader for the whole mailbox. */
  headerKeys: Array<Extract<SearchKey, { k: 'header' }>>;
  meta: boolean;
  /** Every header field (HEADER with another name or an empty value, TEXT), not just the five. */
  fields: boolean;
  /** Values of BODY and TEXT keys: searched in the bodies by store.matchBody. */
  bodyNeedles: Set<string>;
  modseq: boolean;
  /** THREADID keys (RFC 8474 §6): their members come from store.threadMembers. */
  threadKeys: Array<Extract<SearchKey, { k: 'objectid' }>>;
}

export function needs(k: SearchKey, n: Need): void {
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
      n.bodyNeedles.add(k.value);
      break;
    case 'text':
      n.meta = true;
      n.fields = true;
      n.bodyNeedles.add(k.value);
      break;
    case 'modseq':
      n.modseq = true;
      break;
    case 'objectid':
      if (k.what === 'threadid') n.threadKeys.push(k);
      break;
  }
}

export interface Ctx {
  seq: number;
  msg: MessageSummary;
  /** The session's \Recent UIDs (RFC 3501 §2.3.2; empty in IMAP4rev2). */
  recent: ReadonlySet<number>;
  /** Sent date and search headers (from getSearchData, or from rec when the body is needed too). */
  sd: { sentDate: number | null; sentDay: number | null; search: MessageRecord['meta']['search'] } | null;
  headerText: string | null;
  maxSeq: number;
  maxUid: number;
  /** The search's "now" (RFC 5032 OLDER/YOUNGER), one instant for every message. */
  now: number;
  saved: Set<number>;
  /** UIDs matching each store-answered header key. */
  headerHits: Map<SearchKey, Set<number>>;
  /** UIDs whose body contains each BODY/TEXT value. */
  bodyHits: Map<string, Set<number>>;
}

const day = (ms: number) => {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
};

function includesCi(hay: string, needle: string): boolean {
  return hay.toLowerCase().includes(needle.toLowerCase());
}

export function match(k: SearchKey, c: Ctx): boolean {
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
      // RECENT / OLD (NEW = RECENT UNSEEN): the session's \Recent flag (RFC 3501 §6.4.4).
      return c.recent.has(c.msg.uid) === k.set;
    case 'size':
      return k.op === 'larger' ? c.msg.size > k.n : c.msg.size < k.n;
    case 'modseq':
      return c.msg.modseq >= k.modseq;
    case 'seq':
      return k.set.saved ? c.saved.has(c.msg.uid) : seqSetHas(k.set, c.seq, c.maxSeq);
    case 'uid':
      return k.set.saved ? c.saved.has(c.msg.uid) : seqSetHas(k.set, c.msg.uid, c.maxUid);
    case 'within': {
      // RFC 5032 §2: against now minus the interval, to the second.
      const target = c.now - k.seconds * 1000;
      return k.op === 'older' ? c.msg.internalDate <= target : c.msg.internalDate >= target;
    }
    case 'saved': {
      // RFC 8514 §4.3: the save date's day, disregarding time and timezone (UTC, as INTERNALDATE).
      const d = day(c.msg.savedAt);
      return k.op === 'before' ? d < k.day : k.op === 'on' ? d === k.day : d >= k.day;
    }
    case 'date': {
      // SENT*: the Date: header's day as written, disregarding time and timezone (RFC 3501 §6.4.4).
      const d = k.sent ? c.sd?.sentDay ?? null : day(c.msg.internalDate);
      if (d === null) return false;
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
      return c.bodyHits.get(k.value)?.has(c.msg.uid) ?? false;
    case 'objectid':
      // RFC 8474 §6: exactly the given EMAILID / THREADID.
      if (k.what === 'emailid') return emailObjectId(c.msg.blobId, c.msg.internalDate) === k.id;
      return c.headerHits.get(k)?.has(c.msg.uid) ?? false;
    case 'text': {
      // RFC 9051 §6.4.4 TEXT: "in the header or body of the message".
      if (c.headerText === null && c.sd) c.headerText = c.sd.search.fields.map(([n, v]) => `${n}: ${v}`).join('\n');
      return includesCi(c.headerText ?? '', k.value) || (c.bodyHits.get(k.value)?.has(c.msg.uid) ?? false);
    }
  }
}

/** Matching UIDs (ascending) among the messages the client knows, their MODSEQs and the highest of them. */
export async function runSearch(
  s: ImapSession,
  key: SearchKey,
): Promise<{ uids: number[]; seqs: number[]; modseqs: number[]; highestModseq: number; usedModseq: boolean }> {
  const sel = s.selected!;
  const need: Need = { headerKeys: [], meta: false, fields: false, bodyNeedles: new Set(), modseq: false, threadKeys: [] };
  needs(key, need);
  const headerHits = new Map<SearchKey, Set<number>>();
  for (const k of need.threadKeys) {
    const t = parseThreadObjectId(k.id);
    headerHits.set(k, new Set(t === null ? [] : await s.deps.store.threadMembers(sel.mailboxId, t)));
  }
  for (const k of need.headerKeys) headerHits.set(k, new Set(await s.deps.store.matchHeader(sel.mailboxId, k.field as SearchHeaderField, k.value)));
  const bodyHits = new Map<string, Set<number>>();
  if (need.bodyNeedles.size) {
    const needles = [...need.bodyNeedles];
    const hits = await s.deps.store.matchBody(sel.mailboxId, sel.uids.slice(), needles);
    needles.forEach((n, i) => bodyHits.set(n, new Set(hits[i])));
  }
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
  const modseqs: number[] = [];
  let highestModseq = 0;
  // Header search data comes from the store in chunks, so memory stays bounded whatever the size.
  const CHUNK = 2000;
  const c: Ctx = { seq: 0, msg: undefined as unknown as MessageSummary, recent: sel.recent, sd: null, headerText: null, maxSeq, maxUid, now: Date.now(), saved, headerHits, bodyHits };
  // The SQLite store answers synchronously: a turn of the event loop between chunks once 10 ms are
  // used, so a search over 131,072 messages does not hold every other session.
  const budget = new LoopBudget();
  for (let i = 0; i < sel.uids.length; i += CHUNK) {
    await budget.pause();
    const chunk = sel.uids.slice(i, i + CHUNK);
    let sds: Map<number, NonNullable<Ctx['sd']>> | null = null;
    if (need.meta) sds = new Map((await s.deps.store.getSearchData(sel.mailboxId, chunk, { fields: need.fields })).map((d) => [d.uid, d]));
    for (let j = 0; j < chunk.length; j++) {
      const uid = chunk[j]!;
      const msg = msgAt[i + j];
      if (!msg) continue; // expunged meanwhile
      c.seq = i + j + 1;
      c.msg = msg;
      c.sd = sds?.get(uid) ?? null;
      c.headerText = null;
      if (match(key, c)) {
        uids.push(uid);
        seqs.push(i + j + 1);
        modseqs.push(msg.modseq);
        if (msg.modseq > highestModseq) highestModseq = msg.modseq;
      }
    }
  }
  return { uids, seqs, modseqs, highestModseq, usedModseq: need.modseq };
}

export type { MimeNode };
