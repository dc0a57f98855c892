// Streaming MIME structure parser (RFC 2045/2046, RFC 5322). Header blocks are kept (capped);
// bodies are only scanned for boundaries, line counts and sizes, never kept, so memory stays
// bounded whatever the message size. Boundaries are found across arbitrary chunk splits.
// It never throws on malformed input: every byte ends up in some part.
//
// Conventions follow Dovecot 2.3 (the oracle for test/vectors/mime):
// - a boundary line is any line that starts with "--" + boundary (prefix match, RFC 2046 §5.1.1
//   forbids such lines inside parts), checked innermost multipart first, and it also closes every
//   part nested below the multipart it belongs to;
// - the line break before a boundary line belongs to the boundary (RFC 2046 §5.1.1), also when
//   the boundary interrupts a header block;
// - `lines` is the number of LF bytes in the body.
// The values read from each header block (ENVELOPE, SEARCH texts, Date:, a part's Content-*
// fields) are made in ./header-values.ts.
import type { MessageMeta, MimeNode } from './types.ts';
import { sentDayOf } from './date.ts';
import { parseHeaderBlock, type HeaderField } from './headers.ts';
import { applyMimeHeaders, buildEnvelope, drain, envelopeSteps, fieldString, parseDate, searchSteps } from './header-values.ts';

export { buildEnvelope } from './header-values.ts';

/**
 * Header bytes parsed per header block (fields, ENVELOPE, search headers). The rest of a larger
 * block is still scanned for its end (so every byte range stays exact and the stored message is
 * byte-exact) but not parsed: 256 KiB is 2.5× Postfix's per-header header_size_limit (100 KiB)
 * and far more than any real header (RFC 5322 §2.1.1 lines are at most 998 characters).
 */
export const MAX_HEADER_BYTES = 256 * 1024;
/** Nesting limit for multipart and message/rfc822 parts; deeper parts are treated as leaves. */
export const MAX_DEPTH = 50;
/** Limit on the number of parts; later boundaries are treated as body text. */
export const MAX_PARTS = 10000;
/** Boundaries longer than this are ignored (RFC 2046 §5.1.1 allows 70). */
const MAX_BOUNDARY = 200;
/**
 * A header line without LF that grows past this is handled in pieces. Small, because the
 * unprocessed tail is copied at every write(): it bounds that copy (O(n) for any chunking, also
 * one byte at a time). It must exceed the longest boundary line prefix we look at (MAX_BOUNDARY +
 * 4) so line-start checks still see whole prefixes.
 */
const LONG_LINE = 1024;

interface Frame {
  node: MimeNode;
  depth: number;
  /** "--" + boundary while this multipart's boundary is active (not yet closed). */
  boundary: Buffer | null;
  /** The close delimiter was seen: the rest is epilogue. */
  closed: boolean;
  /** LF count at bodyStart (for `lines`). */
  nlAtBody: number;
  /** Header collection, only while in header mode. */
  hdr: Buffer[];
  hdrLen: number;
  /** Default type of children (multipart/digest → message/rfc822, RFC 2046 §5.1.5). */
  digest: boolean;
  /** Frame that is the encapsulated message of a message/rfc822 frame. */
  isMessageRoot: boolean;
  /** A body part of a multipart (a MIME part even without MIME-Version). */
  inMultipart: boolean;
  fields: HeaderField[] | null;
}

function newNode(headerStart: number): MimeNode {
  return {
    headerStart, headerEnd: headerStart, bodyStart: headerStart, bodyEnd: headerStart,
    type: 'text', subtype: 'plain', params: [], id: null, description: null, encoding: '7bit',
    md5: null, disposition: null, language: null, location: null, size: 0, lines: 0,
  };
}

export class MimeParser {
  private buf: Buffer = Buffer.alloc(0);
  /** Absolute offset of buf[0]. */
  private pos = 0;
  /** LF bytes consumed so far. */
  private nl = 0;
  /** The two bytes before `pos` (-1 when none). */
  private prev1 = -1;
  private prev2 = -1;
  private stack: Frame[] = [];
  private mode: 'header' | 'body' | 'skipline' = 'header';
  /** In header mode: the current line is the tail of a long line (no line-start checks). */
  private longLine = false;
  /** After a non-closing boundary line: which multipart gets a new child. */
  private pendingChild: Frame | null = null;
  /** Offset just after the last boundary line. */
  private lastDelimEnd = -1;
  private parts = 1;
  private activeBoundaries = 0;
  private maxBoundaryLen = 0;
  private done: MessageMeta | null = null;
  private rootFields: HeaderField[] = [];

  constructor() {
    this.stack.push(this.frame(newNode(0), 0, false, false));
  }

  private frame(node: MimeNode, depth: number, digest: boolean, isMessageRoot: boolean): Frame {
    return { node, depth, boundary: null, closed: false, nlAtBody: 0, hdr: [], hdrLen: 0, digest, isMessageRoot, inMultipart: false, fields: null };
  }

  write(chunk: Buffer): void {
    if (this.done || chunk.length === 0) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    this.run(false);
    // Keep our own copy of the small unprocessed tail: a view would pin the caller's (possibly
    // large, possibly reused) chunk.
    if (this.buf.length) this.buf = Buffer.from(this.buf);
  }

  end(): MessageMeta {
    return drain(this.endSteps());
  }

  /**
   * end() in steps: the root header's ENVELOPE and SEARCH texts are made one address field or
   * long header field at a time, so a caller can give the event loop a turn between steps (a
   * 256 KiB header of encoded words or addresses is several such pieces; see finishSliced).
   */
  *endSteps(): Generator<void, MessageMeta> {
    if (this.done) return this.done;
    this.run(true);
    const end = this.pos;
    // EOF ends every open part (a missing close delimiter is tolerated).
    while (this.stack.length) this.endTop(end, this.nl);
    const root = this.rootNode!;
    const fields = this.rootFields;
    const envelope = yield* envelopeSteps(fields);
    const search = yield* searchSteps(fields);
    const date = fieldString(fields, 'date');
    const sentDate = parseDate(date);
    this.done = { v: 1, envelope, root, sentDate, sentDay: sentDayOf(date, sentDate), search };
    return this.done;
  }

  private rootNode: MimeNode | null = null;

  private consume(n: number): void {
    if (n <= 0) return;
    const b = this.buf;
    let c = 0;
    const part = b.subarray(0, n);
    let i = part.indexOf(10);
    while (i !== -1) { c++; i = part.indexOf(10, i + 1); }
    this.nl += c;
    if (n >= 2) { this.prev2 = b[n - 2]!; this.prev1 = b[n - 1]!; }
    else { this.prev2 = this.prev1; this.prev1 = b[0]!; }
    this.pos += n;
    this.buf = b.subarray(n);
  }

  /** consume() when the number of LFs in the first n bytes is known. */
  private consumeKnown(n: number, lfs: number): void {
    if (n <= 0) return;
    const b = this.buf;
    this.nl += lfs;
    if (n >= 2) { this.prev2 = b[n - 2]!; this.prev1 = b[n - 1]!; }
    else { this.prev2 = this.prev1; this.prev1 = b[0]!; }
    this.pos += n;
    this.buf = b.subarray(n);
  }

  /** Byte at absolute offset `abs` if still known (abs >= pos - 2). */
  private byteAt(abs: number): number {
    if (abs >= this.pos) return this.buf[abs - this.pos] ?? -1;
    if (abs === this.pos - 1) return this.prev1;
    if (abs === this.pos - 2) return this.prev2;
    return -1;
  }

  /** Offset where the line break before absolute line start `a` begins (a itself if none). */
  private beforeBreak(a: number): number {
    if (this.byteAt(a - 1) !== 10) return a;
    return this.byteAt(a - 2) === 13 ? a - 2 : a - 1;
  }

  /**
   * Boundary check for a line starting at buf[i]. Returns the matched frame index and whether it
   * is a close delimiter, null for no match, or 'more' when more bytes are needed to decide.
   */
  private matchBoundary(i: number, final: boolean): { k: number; close: boolean } | null | 'more' {
    const b = this.buf;
    if (this.activeBoundaries === 0) return null;
    const avail = b.length - i;
    if (avail < 2) return final ? null : 'more';
    if (b[i] !== 0x2d || b[i + 1] !== 0x2d) return null;
    const nlIdx = b.indexOf(10, i);
    const lineLen = nlIdx < 0 ? avail : nlIdx - i;
    if (nlIdx < 0 && !final && avail < this.maxBoundaryLen + 4) return 'more';
    for (let k = this.stack.length - 1; k >= 0; k--) {
      const bd = this.stack[k]!.boundary;
      if (!bd || lineLen < bd.length) continue;
      if (b.compare(bd, 0, bd.length, i, i + bd.length) === 0) {
        const close = lineLen >= bd.length + 2 && b[i + bd.length] === 0x2d && b[i + bd.length + 1] === 0x2d;
        return { k, close };
      }
    }
    return null;
  }

  private run(final: boolean): void {
    for (;;) {
      if (this.mode === 'skipline') {
        const nlIdx = this.buf.indexOf(10);
        if (nlIdx < 0) {
          this.consume(this.buf.length);
          if (!final) return;
        } else {
          this.consume(nlIdx + 1);
        }
        this.lastDelimEnd = this.pos;
        const m = this.pendingChild;
        this.pendingChild = null;
        if (m) {
          // RFC 2046 §5.1.1: a body part starts right after the delimiter line.
          const child = this.frame(newNode(this.pos), m.depth + 1, false, false);
          child.digest = m.digest; // carried only to pick the default type below
          child.inMultipart = true;
          m.node.children!.push(child.node);
          this.parts++;
          this.stack.push(child);
          this.mode = 'header';
          this.longLine = false;
        } else {
          this.mode = 'body';
        }
        if (nlIdx < 0) return;
        continue;
      }
      if (this.mode === 'header') {
        if (!this.headerStep(final)) return;
        continue;
      }
      if (!this.bodyStep(final)) return;
    }
  }

  /** Processes header lines; returns false when it needs more data. */
  private headerStep(final: boolean): boolean {
    const top = this.stack[this.stack.length - 1]!;
    const b = this.buf;
    // Complete header lines [0, j) are kept and consumed in one go (one copy, one LF count).
    let j = 0;
    let lines = 0;
    const flush = () => {
      if (j === 0) return;
      this.keepHeader(top, b.subarray(0, j));
      this.consumeKnown(j, lines);
    };
    for (;;) {
      if (j === b.length) { flush(); return false; }
      if (!this.longLine) {
        const m = this.matchBoundary(j, final);
        if (m === 'more') { flush(); return false; }
        if (m) { flush(); this.onBoundary(m.k, m.close); return true; }
      }
      const nlIdx = b.indexOf(10, j);
      if (nlIdx < 0) {
        if (!final && b.length - j < LONG_LINE) { flush(); return false; }
        // partial long line (or last line at EOF without LF)
        flush();
        this.keepHeader(top, this.buf);
        this.consumeKnown(this.buf.length, 0);
        this.longLine = true;
        if (final) return false;
        return true;
      }
      const isBlank = !this.longLine && (nlIdx === j || (nlIdx === j + 1 && b[j] === 13));
      j = nlIdx + 1;
      lines++;
      this.longLine = false;
      if (isBlank) {
        flush();
        this.endHeader(top, this.pos);
        return true;
      }
    }
  }

  private keepHeader(f: Frame, bytes: Buffer): void {
    const room = MAX_HEADER_BYTES - f.hdrLen;
    if (room <= 0) return;
    const part = bytes.length > room ? bytes.subarray(0, room) : bytes;
    f.hdr.push(Buffer.from(part));
    f.hdrLen += part.length;
  }

  /** The header of the top frame ended at `end`; the body starts there. */
  private endHeader(f: Frame, end: number): void {
    const node = f.node;
    node.headerEnd = end;
    node.bodyStart = end;
    node.bodyEnd = end;
    f.nlAtBody = this.nl;
    const block = Buffer.concat(f.hdr);
    f.hdr = [];
    const fields = parseHeaderBlock(block);
    f.fields = fields;
    if (this.stack.length === 1) this.rootFields = fields;
    applyMimeHeaders(node, fields, f.digest && !f.isMessageRoot, f.inMultipart);
    f.digest = false;
    this.mode = 'body';
    if (node.type === 'multipart') {
      const bnd = node.params.find(([k]) => k === 'boundary')?.[1];
      node.children = [];
      if (bnd && bnd.length <= MAX_BOUNDARY && f.depth < MAX_DEPTH) {
        f.boundary = Buffer.from('--' + bnd, 'latin1');
        f.digest = node.subtype === 'digest';
        this.activeBoundaries++;
        this.maxBoundaryLen = Math.max(this.maxBoundaryLen, f.boundary.length);
      }
    } else if (node.type === 'message' && (node.subtype === 'rfc822' || node.subtype === 'global') && f.depth < MAX_DEPTH && this.parts < MAX_PARTS) {
      // RFC 2046 §5.2.1: the body is a complete message; parse it recursively. (RFC 2046 allows
      // only 7bit/8bit/binary here; like Dovecot we parse whatever the declared encoding.)
      const inner = this.frame(newNode(end), f.depth + 1, false, true);
      this.parts++;
      this.stack.push(inner);
      this.mode = 'header';
      this.longLine = false;
    }
  }

  /** Ends the top frame at absolute offset `end` (`nlEnd` LFs before it). */
  private endTop(end: number, nlEnd: number): void {
    const f = this.stack.pop()!;
    const node = f.node;
    if (f.fields === null) {
      // header interrupted (boundary or EOF): it ends at the cut, the body is empty.
      const block = Buffer.concat(f.hdr);
      f.hdr = [];
      const fields = parseHeaderBlock(block);
      f.fields = fields;
      if (this.stack.length === 0) this.rootFields = fields;
      applyMimeHeaders(node, fields, f.digest && !f.isMessageRoot, f.inMultipart);
      if (node.type === 'multipart') node.children = [];
      node.headerEnd = node.bodyStart = node.bodyEnd = Math.max(node.headerStart, end);
      node.lines = 0;
    } else if (end < node.bodyStart) {
      // the line break taken by a boundary was the blank line ending the header
      node.headerEnd = node.bodyStart = node.bodyEnd = Math.max(node.headerStart, end);
      node.lines = 0;
    } else {
      node.bodyEnd = end;
      node.lines = nlEnd - f.nlAtBody;
    }
    node.size = node.bodyEnd - node.bodyStart;
    if (f.boundary) { this.activeBoundaries--; f.boundary = null; }
    const parent = this.stack[this.stack.length - 1];
    if (f.isMessageRoot && parent) {
      parent.node.message = { envelope: buildEnvelope(f.fields), root: node };
    }
    if (this.stack.length === 0) this.rootNode = node;
  }

  /**
   * A boundary line of stack[k] starts at `pos` (buf[0]); every part nested below stack[k] ends.
   * RFC 2046 §5.1.1: the line break before the boundary belongs to it, so parts end before it,
   * unless that line break ends the previous boundary line (e.g. a close delimiter right before
   * an outer boundary). As Dovecot, a message/rfc822 part whose encapsulated message was still
   * in its header keeps that line break (its header does not).
   */
  private onBoundary(k: number, close: boolean): void {
    const a = this.pos;
    const cut = Math.max(this.beforeBreak(a), this.lastDelimEnd);
    const nlAtCut = cut < a ? this.nl - 1 : this.nl;
    let childHeaderOpen = false;
    let childWasMessage = false;
    while (this.stack.length - 1 > k) {
      const f = this.stack[this.stack.length - 1]!;
      const keepBreak = childWasMessage && childHeaderOpen;
      childWasMessage = f.isMessageRoot;
      childHeaderOpen = f.fields === null;
      if (keepBreak) this.endTop(a, this.nl);
      else this.endTop(cut, nlAtCut);
    }
    const m = this.stack[k]!;
    if (close) {
      // RFC 2046 §5.1.1: after the close delimiter comes the epilogue, part of the multipart body.
      m.boundary = null;
      m.closed = true;
      this.activeBoundaries--;
      this.pendingChild = null;
    } else if (this.parts >= MAX_PARTS) {
      this.pendingChild = null;
    } else {
      this.pendingChild = m;
    }
    this.mode = 'skipline';
  }

  /** Scans body bytes for boundary lines; returns false when it needs more data. */
  private bodyStep(final: boolean): boolean {
    const b = this.buf;
    if (b.length === 0) return false;
    if (this.activeBoundaries === 0) {
      this.consume(b.length);
      return false;
    }
    let from = 0;
    // Is buf[0] at a line start? (the first body byte, or after an LF)
    if (this.prev1 === 10 || this.pos === this.stack[this.stack.length - 1]!.node.bodyStart) {
      const m = this.matchBoundary(0, final);
      if (m === 'more') return false;
      if (m) { this.onBoundary(m.k, m.close); return true; }
    }
    for (;;) {
      const idx = b.indexOf('\n--', from, 'latin1');
      if (idx < 0) {
        // keep the last 2 bytes: they may start "\n--"
        const keep = final ? 0 : Math.min(2, b.length);
        this.consume(b.length - keep);
        return false;
      }
      const m = this.matchBoundary(idx + 1, final);
      if (m === 'more') {
        this.consume(idx + 1);
        return false;
      }
      if (m) {
        this.consume(idx + 1);
        this.onBoundary(m.k, m.close);
        return true;
      }
      from = idx + 1;
    }
  }
}

/** parser.end() with `pause()` awaited between its steps (e.g. a LoopBudget's pause). */
export async function finishSliced(p: MimeParser, pause: () => Promise<void>): Promise<MessageMeta> {
  const g = p.endSteps();
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
    await pause();
  }
}

/** Parses a whole message held in memory. */
export function parseMessage(raw: Buffer): MessageMeta {
  const p = new MimeParser();
  p.write(raw);
  return p.end();
}
