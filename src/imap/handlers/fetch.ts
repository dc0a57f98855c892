// FETCH and UID FETCH (RFC 9051 §6.4.5, §7.5.2), BINARY (RFC 3516), CONDSTORE CHANGEDSINCE / MODSEQ
// (RFC 7162 §3.1.4), QRESYNC VANISHED (RFC 7162 §3.2.6), OBJECTID EMAILID / THREADID (RFC 8474 §5.3)
// and the UID FETCH PARTIAL modifier (RFC 9394 §3.3).
//
// ENVELOPE, BODY, BODYSTRUCTURE and section offsets come from the MessageMeta cached at delivery;
// body bytes are read from the blob by range and written with backpressure.

import type { Handler } from '../commands.ts';
import type { ImapSession } from '../session.ts';
import type { FetchItem, ImapCommand } from '../../protocol/imap/types.ts';
import type { MessageRecord, MessageSummary } from '../../store/store.ts';
import { SystemFlag, emailObjectId, threadObjectId } from '../../store/store.ts';
import { ImapNo } from '../errors.ts';
import { resolveSet } from '../sequence.ts';
import { flagList, formatSeqSet, internalDate, seqSetHas } from '../../protocol/imap/response.ts';
import { writeEnvelope } from '../../protocol/imap/envelope.ts';
import { writeBodyStructure } from '../../protocol/imap/bodystructure.ts';
import { decodeTransferEncoding, filterHeaderFields, findPart, formatSection, resolveSection } from '../../protocol/imap/section.ts';
import { LoopBudget } from '../../obs/loop-lag.ts';
import { fetchOpen } from '../uidonly.ts';
import { partialSlice } from '../esearch.ts';
import { renderedFields, renderedText } from '../render-cache.ts';

/** Bodies larger than this are streamed from the blob instead of read whole. */
const STREAM_THRESHOLD = 256 * 1024;
const BATCH = 100;

const META_ITEMS = new Set(['ENVELOPE', 'BODY', 'BODYSTRUCTURE', 'BODY[]', 'BINARY[]', 'BINARY.SIZE', 'RFC822', 'RFC822.HEADER', 'RFC822.TEXT']);

/**
 * Renderers of the items that come from the message summary alone (UID is written by the caller).
 * The same function objects for every command: optimised code that calls one stays valid for the
 * next FETCH.
 */
const SIMPLE_RENDERERS: Readonly<Record<string, (m: MessageSummary) => string>> = {
  FLAGS: (m) => `FLAGS ${flagList(m.systemFlags, m.keywords)}`,
  INTERNALDATE: (m) => `INTERNALDATE ${internalDate(m.internalDate)}`,
  'RFC822.SIZE': (m) => `RFC822.SIZE ${m.size}`,
  MODSEQ: (m) => `MODSEQ (${m.modseq})`,
  // RFC 8514 §4.2: when the message was saved into this mailbox (APPEND, COPY, MOVE, delivery).
  SAVEDATE: (m) => `SAVEDATE ${internalDate(m.savedAt)}`,
  // RFC 8474 §5.3 (src/store/threads.ts: from the body and INTERNALDATE).
  EMAILID: (m) => `EMAILID (${emailObjectId(m.blobId, m.internalDate)})`,
};

/** Items rendered from the message summary alone. */
const SIMPLE_ITEMS = new Set(['UID', ...Object.keys(SIMPLE_RENDERERS)]);

function simpleRenderer(item: FetchItem): (msg: MessageSummary) => string {
  const r = SIMPLE_RENDERERS[item.k];
  if (!r) throw new Error(`not a summary item: ${item.k}`);
  return r;
}

/** Sets \Seen (RFC 9051 §6.4.5: BODY[...] without .PEEK, RFC822, RFC822.TEXT, BINARY[...]). */
function setsSeen(items: readonly FetchItem[]): boolean {
  return items.some((i) => ((i.k === 'BODY[]' || i.k === 'BINARY[]') && !i.peek) || i.k === 'RFC822' || i.k === 'RFC822.TEXT');
}

type Piece = string | Buffer | { blobId: string; start: number; end: number };

function literalHead(n: number, binary = false): string {
  return `${binary ? '~' : ''}{${n}}\r\n`;
}

function partialRange(start: number, end: number, p: { start: number; length: number } | null): [number, number] {
  if (!p) return [start, end];
  const s = Math.min(start + p.start, end);
  return [s, Math.min(s + p.length, end)];
}

/**
 * An IMAP literal may hold any octet but NUL (RFC 3501 §4.3, RFC 9051 §4.3); only `~{n}` (literal8,
 * RFC 3516 §4.2) may, and only a BINARY fetch gets one. So stored bytes sent as BODY[…], RFC822…
 * have each NUL replaced by 0x80, as Dovecot does: same length, so sizes and partial offsets hold.
 */
export function withoutNul(data: Buffer): Buffer {
  let i = data.indexOf(0);
  if (i < 0) return data;
  const out = Buffer.from(data);
  for (; i >= 0; i = out.indexOf(0, i + 1)) out[i] = 0x80;
  return out;
}

async function bodyPiece(s: ImapSession, rec: MessageRecord, start: number, end: number): Promise<Piece[]> {
  const n = Math.max(0, end - start);
  if (n === 0) return ['{0}\r\n'];
  if (n > STREAM_THRESHOLD) return [literalHead(n), { blobId: rec.blobId, start, end }];
  const data = withoutNul(await s.deps.store.readBlob(rec.blobId, start, end));
  return [literalHead(data.length), data];
}

async function decodedPart(s: ImapSession, rec: MessageRecord, part: number[]): Promise<Buffer> {
  const node = part.length ? findPart(rec.meta.root, part) : rec.meta.root;
  if (!node) throw new ImapNo('NONEXISTENT', 'No such message part');
  if (part.length === 0) {
    // BINARY[] = the whole message (RFC 3516 §4.2): headers as they are, a single-part body decoded.
    const raw = await s.deps.store.readBlob(rec.blobId, 0, rec.size);
    if (node.children && node.children.length) return raw;
    const body = decodeTransferEncoding(raw.subarray(node.bodyStart, node.bodyEnd), node.encoding);
    if (!body) throw new ImapNo('UNKNOWN-CTE', `Unknown Content-Transfer-Encoding ${node.encoding}`);
    return Buffer.concat([raw.subarray(0, node.bodyStart), body]);
  }
  if (node.children && node.children.length) throw new ImapNo('UNKNOWN-CTE', 'BINARY of a multipart is not allowed');
  const raw = await s.deps.store.readBlob(rec.blobId, node.bodyStart, node.bodyEnd);
  // RFC 3516 §4.3: UNKNOWN-CTE when the encoding cannot be decoded.
  const body = decodeTransferEncoding(raw, node.encoding);
  if (!body) throw new ImapNo('UNKNOWN-CTE', `Unknown Content-Transfer-Encoding ${node.encoding}`);
  return body;
}

async function renderItem(s: ImapSession, item: FetchItem, msg: MessageSummary, rec: MessageRecord | null, out: Piece[], threads: Map<number, number> | null): Promise<void> {
  const sp = (): void => {
    out.push(' ');
  };
  switch (item.k) {
    case 'UID':
      return;
    case 'FLAGS':
      out.push(`FLAGS ${flagList(msg.systemFlags, msg.keywords, s.selected!.isRecent(msg.uid))}`);
      return sp();
    case 'INTERNALDATE':
    case 'RFC822.SIZE':
    case 'MODSEQ':
    case 'SAVEDATE':
    case 'EMAILID':
      out.push(simpleRenderer(item)(msg));
      return sp();
    case 'THREADID': {
      // RFC 8474 §5.3: NIL only for a message without a thread (gone meanwhile).
      const t = threads?.get(msg.uid);
      out.push(t === undefined ? 'THREADID NIL' : `THREADID (${threadObjectId(t)})`);
      return sp();
    }
    case 'ENVELOPE':
      out.push(`ENVELOPE ${renderedText(rec!.meta, 'E', s.utf8, () => writeEnvelope(rec!.meta.envelope, s.utf8))}`);
      return sp();
    case 'BODY':
      out.push(`BODY ${renderedText(rec!.meta, 'B', s.utf8, () => writeBodyStructure(rec!.meta.root, false, s.utf8))}`);
      return sp();
    case 'BODYSTRUCTURE':
      out.push(`BODYSTRUCTURE ${renderedText(rec!.meta, 'S', s.utf8, () => writeBodyStructure(rec!.meta.root, true, s.utf8))}`);
      return sp();
    case 'RFC822':
      out.push('RFC822 ', ...(await bodyPiece(s, rec!, 0, msg.size)));
      return sp();
    case 'RFC822.HEADER': {
      const r = rec!.meta.root;
      out.push('RFC822.HEADER ', ...(await bodyPiece(s, rec!, r.headerStart, r.headerEnd)));
      return sp();
    }
    case 'RFC822.TEXT': {
      const r = rec!.meta.root;
      out.push('RFC822.TEXT ', ...(await bodyPiece(s, rec!, r.bodyStart, r.bodyEnd)));
      return sp();
    }
    case 'BODY[]': {
      const name = `BODY[${formatSection(item.section)}]${item.partial ? `<${item.partial.start}>` : ''} `;
      const range = resolveSection(rec!.meta, item.section);
      if (range.kind === 'empty') {
        // RFC 9051 §6.4.5: a section that does not exist is returned empty.
        out.push(name, '""');
        return sp();
      }
      if (range.kind === 'header-fields') {
        let data = await renderedFields(rec!.meta, range, async () =>
          withoutNul(filterHeaderFields(await s.deps.store.readBlob(rec!.blobId, range.start, range.end), range.names, range.not)),
        );
        if (item.partial) data = data.subarray(Math.min(item.partial.start, data.length), Math.min(item.partial.start + item.partial.length, data.length));
        out.push(name, literalHead(data.length), data);
        return sp();
      }
      const [a, b] = partialRange(range.start, range.end, item.partial);
      out.push(name, ...(await bodyPiece(s, rec!, a, b)));
      return sp();
    }
    case 'BINARY[]': {
      const data = await decodedPart(s, rec!, item.part);
      const d = item.partial ? data.subarray(Math.min(item.partial.start, data.length), Math.min(item.partial.start + item.partial.length, data.length)) : data;
      out.push(`BINARY[${item.part.join('.')}]${item.partial ? `<${item.partial.start}>` : ''} `, literalHead(d.length, d.includes(0)), d);
      return sp();
    }
    case 'BINARY.SIZE': {
      const data = await decodedPart(s, rec!, item.part);
      out.push(`BINARY.SIZE[${item.part.join('.')}] ${data.length}`);
      return sp();
    }
  }
}

/**
 * A FETCH's responses on their way to the socket, written ~64 KB at a time. Consecutive string
 * pieces are joined and turned into bytes once (a Buffer.from per piece was ~4% of the server's
 * CPU under bench/imap-persistent.ts); Buffers are kept as they are; blob ranges are streamed.
 */
class Output {
  #buf: Buffer[] = [];
  /** Strings since the last Buffer, not yet encoded. */
  #text = '';
  #size = 0;
  readonly s: ImapSession;
  constructor(s: ImapSession) {
    this.s = s;
  }

  async add(pieces: Piece[]): Promise<void> {
    for (const p of pieces) {
      if (typeof p === 'string') {
        this.#text += p;
        this.#size += p.length; // characters: a bound on the flush, not a byte count
      } else if (Buffer.isBuffer(p)) {
        this.#encodeText();
        this.#buf.push(p);
        this.#size += p.length;
      } else {
        await this.flush();
        // Streamed pieces are stored bytes in an ordinary literal (never BINARY): no NUL (withoutNul).
        for await (const chunk of this.s.deps.store.streamBlob(p.blobId, p.start, p.end)) {
          if (this.s.closed) return;
          await this.s.writeAwait(withoutNul(chunk as Buffer));
        }
        continue;
      }
      if (this.#size >= 65536) await this.flush();
    }
  }

  #encodeText(): void {
    if (!this.#text) return;
    this.#buf.push(Buffer.from(this.#text, 'utf8'));
    this.#text = '';
  }

  async flush(): Promise<void> {
    this.#encodeText();
    if (!this.#buf.length) return;
    const data = this.#buf.length === 1 ? this.#buf[0]! : Buffer.concat(this.#buf);
    this.#buf = [];
    this.#size = 0;
    await this.s.writeAwait(data);
  }
}

function isAscending(xs: readonly number[]): boolean {
  for (let i = 1; i < xs.length; i++) if (xs[i]! <= xs[i - 1]!) return false;
  return true;
}

/**
 * Summary-only FETCH responses (FLAGS, sizes, dates, MODSEQ) as ~64 KB strings, one per next().
 * The requested UIDs, the listing and the session's UID list are all ascending: one merge walk
 * gives each message and its sequence number. A small synchronous loop, so V8 optimises it within
 * the first big FETCH (a 100,000-message `UID FETCH 1:* (FLAGS)`: ~20 ms of CPU).
 */
class SimpleFetchCursor {
  #w = 0;
  #li = 0;
  #si = 0;
  readonly wanted: readonly number[];
  readonly listing: readonly MessageSummary[];
  readonly known: readonly number[];
  readonly withUid: boolean;
  /** RFC 9586 §3.3: `* uid UIDFETCH (…)`. */
  readonly uidOnly: boolean;
  readonly renderers: ReadonlyArray<(m: MessageSummary) => string>;
  /** With FLAGS: the FLAGS update owed before a message with a keyword new to the client (or ''). */
  readonly announce: ((keywords: readonly string[]) => string) | null;
  constructor(
    wanted: readonly number[],
    listing: readonly MessageSummary[],
    known: readonly number[],
    withUid: boolean,
    renderers: ReadonlyArray<(m: MessageSummary) => string>,
    announce: ((keywords: readonly string[]) => string) | null,
    uidOnly = false,
  ) {
    this.wanted = wanted;
    this.listing = listing;
    this.known = known;
    this.uidOnly = uidOnly;
    this.withUid = withUid;
    this.renderers = renderers;
    this.announce = announce;
  }

  next(): string | null {
    const { wanted, listing, known, withUid, renderers } = this;
    const nr = renderers.length;
    let li = this.#li;
    let si = this.#si;
    let w = this.#w;
    const lines: string[] = [];
    let size = 0;
    for (; w < wanted.length && size < 65536; w++) {
      const uid = wanted[w]!;
      while (li < listing.length && listing[li]!.uid < uid) li++;
      if (li >= listing.length) {
        w = wanted.length;
        break;
      }
      const msg = listing[li]!;
      if (msg.uid !== uid) continue;
      while (si < known.length && known[si]! < uid) si++;
      if (known[si] !== uid) continue;
      if (this.announce !== null && msg.keywords.length) {
        const flags = this.announce(msg.keywords);
        if (flags) lines.push(flags);
      }
      let line = this.uidOnly ? `* ${uid} UIDFETCH (` : `* ${si + 1} FETCH (`;
      if (withUid) line += `UID ${uid}`;
      for (let r = 0; r < nr; r++) line += (r > 0 || withUid ? ' ' : '') + renderers[r]!(msg);
      line += ')\r\n';
      lines.push(line);
      size += line.length;
    }
    this.#w = w;
    this.#li = li;
    this.#si = si;
    return lines.length ? lines.join('') : null;
  }
}

type FetchCommand = ImapCommand & { name: 'FETCH' };

/** What one FETCH asks for, worked out once for all its messages. */
interface FetchPlan {
  items: FetchItem[];
  /** UID in every response: asked for, UID FETCH, or QRESYNC (RFC 7162 §3.2.6). */
  withUid: boolean;
  /** The UID item was asked for (with UIDONLY the only reason to send it, RFC 9586 §3.3). */
  explicitUid: boolean;
  hasFlags: boolean;
  hasModseq: boolean;
  /** THREADID asked for: the batch's thread numbers come from the store. */
  hasThreadId: boolean;
  /** Some item needs the cached MIME meta (ENVELOPE, BODY…, sections). */
  needMeta: boolean;
  /** Every item comes from the message summary alone. */
  simple: boolean;
  markSeen: boolean;
}

export const fetch: Handler<'FETCH'> = async (s, _tag, cmd) => {
  const sel = s.selected!;
  let uids = resolveSet(s, cmd.set, cmd.uid);
  if (cmd.partial) {
    // RFC 9394 §3.3: only the messages at those positions of the set, before CHANGEDSINCE applies.
    const sorted = isAscending(uids) ? uids : [...uids].sort((a, b) => a - b);
    const at = partialSlice(cmd.partial, sorted.length);
    uids = at ? sorted.slice(at[0], at[1]) : [];
  }
  const plan = await planFetch(s, cmd);
  const done = `${cmd.uid ? 'UID FETCH' : 'FETCH'} completed`;
  let summaries: Map<number, MessageSummary> | null = null;
  let listing: MessageSummary[] = [];
  if (!plan.needMeta) {
    listing = await s.deps.store.listMessages(sel.mailboxId, cmd.changedSince !== null ? { changedSince: cmd.changedSince } : undefined);
    if (!plan.simple) summaries = new Map(listing.map((m) => [m.uid, m]));
  }
  const output = new Output(s);
  // A write that needs no drain resolves at once (only microtasks run): without these turns a
  // 131,072-message FETCH would hold the event loop from its first line to its last.
  const budget = new LoopBudget();
  try {
    if (plan.simple) return (await fetchSimple(s, uids, listing, plan, budget)) ? done : null;
    for (let i = 0; i < uids.length; i += BATCH) {
      if (s.closed) return null;
      await budget.pause();
      await fetchBatch(s, cmd, uids.slice(i, i + BATCH), plan, summaries, output);
    }
  } finally {
    // What was rendered before a failure (e.g. UNKNOWN-CTE) still reaches the client.
    await output.flush();
  }
  return done;
};

/** The items, CONDSTORE's implied MODSEQ, and QRESYNC's VANISHED (EARLIER) written first. */
async function planFetch(s: ImapSession, cmd: FetchCommand): Promise<FetchPlan> {
  const sel = s.selected!;
  const items = [...cmd.items];
  const has = (k: FetchItem['k']) => items.some((i) => i.k === k);
  // RFC 7162 §3.1.4: CHANGEDSINCE implies MODSEQ; any MODSEQ use enables CONDSTORE.
  if (cmd.changedSince !== null || has('MODSEQ')) {
    s.enableCondstore();
    if (!has('MODSEQ')) items.push({ k: 'MODSEQ' });
  }
  // RFC 7162 §3.2.6: UID FETCH … (CHANGEDSINCE m VANISHED)
  if (cmd.vanished && cmd.changedSince !== null) {
    if (!s.qresync) throw new ImapNo('CANNOT', 'VANISHED needs ENABLE QRESYNC');
    const max = sel.maxUid;
    const gone = (await s.deps.store.expungedSince(sel.mailboxId, cmd.changedSince)).filter((u) => !cmd.set.saved && seqSetHas(cmd.set, u, max) && !sel.seqOf(u));
    if (gone.length) s.write(`* VANISHED (EARLIER) ${formatSeqSet(gone)}\r\n`);
  }
  return {
    items,
    withUid: cmd.uid || s.qresync || has('UID'),
    explicitUid: has('UID'),
    hasFlags: has('FLAGS'),
    hasModseq: has('MODSEQ'),
    hasThreadId: has('THREADID'),
    needMeta: items.some((i) => META_ITEMS.has(i.k)),
    simple: items.every((i) => SIMPLE_ITEMS.has(i.k)),
    markSeen: setsSeen(items) && !sel.readOnly,
  };
}

/**
 * Flags, sizes, dates only (e.g. `UID FETCH 1:* (FLAGS)` on a big mailbox): no store call per
 * message and nothing marked \Seen. The requested UIDs, the listing and the session's UID list are
 * all ascending: one merge walk gives each message and its sequence number. False if the session closed.
 */
async function fetchSimple(s: ImapSession, uids: number[], listing: MessageSummary[], plan: FetchPlan, budget: LoopBudget): Promise<boolean> {
  const wanted = isAscending(uids) ? uids : [...uids].sort((a, b) => a - b);
  const sel = s.selected!;
  const announce = plan.hasFlags ? (kw: readonly string[]) => (sel.noteKeywords(kw) ? sel.flagsResponses() : '') : null;
  // IMAP4rev1 \Recent is the session's: FLAGS rendered with it when any message has it.
  const flags = sel.recent.size ? (m: MessageSummary) => `FLAGS ${flagList(m.systemFlags, m.keywords, sel.isRecent(m.uid))}` : null;
  const renderers = plan.items.filter((i) => i.k !== 'UID').map((i) => (i.k === 'FLAGS' && flags ? flags : simpleRenderer(i)));
  const cursor = new SimpleFetchCursor(wanted, listing, sel.uids, s.uidOnly ? plan.explicitUid : plan.withUid, renderers, announce, s.uidOnly);
  for (let text = cursor.next(); text !== null; text = cursor.next()) {
    await s.writeAwait(text);
    if (s.closed) return false;
    await budget.pause();
  }
  return true;
}

/** Up to BATCH messages: their records or summaries, implicit \Seen, one response each. */
async function fetchBatch(
  s: ImapSession,
  cmd: FetchCommand,
  chunk: number[],
  plan: FetchPlan,
  summaries: Map<number, MessageSummary> | null,
  output: Output,
): Promise<void> {
  const sel = s.selected!;
  let msgs: MessageSummary[];
  let recs = new Map<number, MessageRecord>();
  if (plan.needMeta) {
    const list = await s.deps.store.getMessages(sel.mailboxId, chunk);
    recs = new Map(list.map((r) => [r.uid, r]));
    msgs = list;
  } else {
    msgs = chunk.map((u) => summaries!.get(u)).filter((m): m is MessageSummary => m !== undefined);
  }
  if (cmd.changedSince !== null) msgs = msgs.filter((m) => m.modseq > cmd.changedSince!);
  const seenNow = new Set<number>();
  if (plan.markSeen) msgs = await markSeen(s, msgs, seenNow);
  const threads = plan.hasThreadId ? await s.deps.store.getThreadIds(sel.mailboxId, msgs.map((m) => m.uid)) : null;
  for (const msg of msgs) {
    const seq = sel.seqOf(msg.uid);
    if (!seq) continue;
    await output.add(await renderMessage(s, seq, msg, recs.get(msg.uid) ?? null, plan, seenNow.has(msg.uid), threads));
  }
}

/**
 * Implicit \Seen (RFC 9051 §6.4.5), reported as FLAGS in the same response: sets it on the unseen
 * messages, adds their UIDs to `seenNow` and returns the messages with their new flags.
 */
async function markSeen(s: ImapSession, msgs: MessageSummary[], seenNow: Set<number>): Promise<MessageSummary[]> {
  const sel = s.selected!;
  const unseen = msgs.filter((m) => !(m.systemFlags & SystemFlag.Seen)).map((m) => m.uid);
  if (!unseen.length) return msgs;
  const r = await s.deps.store.storeFlags(sel.mailboxId, unseen, 'add', { systemFlags: SystemFlag.Seen, keywords: [] }, { origin: s.origin });
  const byUid = new Map(r.updated.map((u) => [u.uid, u]));
  // Summaries may be shared with the store's cache: replace, don't modify.
  const out = msgs.map((m) => {
    const u = byUid.get(m.uid);
    return u ? { ...m, systemFlags: u.systemFlags, modseq: u.modseq, keywords: u.keywords } : m;
  });
  for (const u of r.updated) {
    seenNow.add(u.uid);
    sel.pendingFlags.delete(u.uid);
  }
  return out;
}

/** One `* n FETCH (…)` response as pieces (bodies may be streamed from the blob). */
async function renderMessage(
  s: ImapSession,
  seq: number,
  msg: MessageSummary,
  rec: MessageRecord | null,
  plan: FetchPlan,
  seenNow: boolean,
  threads: Map<number, number> | null,
): Promise<Piece[]> {
  const pieces: Piece[] = [];
  // RFC 3501 §7.2.6: a keyword new to the client is announced in FLAGS before the FETCH shows it.
  const sel = s.selected!;
  if ((plan.hasFlags || seenNow) && msg.keywords.length && sel.noteKeywords(msg.keywords)) pieces.push(sel.flagsResponses());
  const open = fetchOpen(s.uidOnly, seq, msg.uid, s.uidOnly ? plan.explicitUid : plan.withUid);
  pieces.push(open.more ? open.head + ' ' : open.head);
  for (const item of plan.items) await renderItem(s, item, msg, rec, pieces, threads);
  if (seenNow && !plan.hasFlags) pieces.push(`FLAGS ${flagList(msg.systemFlags, msg.keywords, sel.isRecent(msg.uid))} `);
  if (seenNow && s.condstore && !plan.hasModseq) pieces.push(`MODSEQ (${msg.modseq}) `);
  // Drop the trailing space.
  const last = pieces[pieces.length - 1];
  if (last === ' ') pieces.pop();
  else if (typeof last === 'string' && last.endsWith(' ')) pieces[pieces.length - 1] = last.slice(0, -1);
  pieces.push(')\r\n');
  return pieces;
}
