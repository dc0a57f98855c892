// BODY[section] / BINARY[section] support (RFC 9051 §6.4.5, RFC 3516): section-spec parsing,
// mapping to byte ranges of the stored message from the cached MIME tree, HEADER.FIELDS
// filtering, transfer decoding, and text extraction for SEARCH BODY/TEXT.
import type { MessageMeta, MimeNode, TextLeaf } from '../mime/types.ts';
import { textPlan } from '../mime/text-plan.ts';
import { decodeCharset } from '../mime/headers.ts';
import { htmlToText } from '../mime/html-text.ts';
// The command parser's SectionSpec ({ part: number[]; text: SectionText | null; fields: string[] }).
import type { SectionSpec, SectionText } from './types.ts';

export type { SectionSpec, SectionText };

/** Canonical text of a section spec, as echoed in the FETCH response: `1.2.HEADER.FIELDS (FROM TO)`. */
export function formatSection(s: SectionSpec): string {
  const parts = s.part.join('.');
  if (!s.text) return parts;
  let t: string = s.text;
  if (s.text === 'HEADER.FIELDS' || s.text === 'HEADER.FIELDS.NOT') {
    // linear: anchored, one character class.
    t += ' (' + s.fields.map((f) => (/^[!#-'*+\-.0-9A-Z^-~]+$/i.test(f) ? f.toUpperCase() : JSON.stringify(f))).join(' ') + ')';
  }
  return parts ? parts + '.' + t : t;
}

/** Characters that end a header-fld-name atom (RFC 9051 §9: atom-specials). */
const ATOM_STOP = new Set([' ', '\t', '\r', '\n', '\f', '\v', '(', ')', '"', '{']);

/**
 * Parses the text between `[` and `]` of BODY[...] / BINARY[...] (RFC 9051 §9 section-spec).
 * Header field names may be atoms or quoted strings. Returns null on a syntax error.
 */
export function parseSection(input: string): SectionSpec | null {
  const s = input.trim();
  const spec: SectionSpec = { part: [], text: null, fields: [] };
  if (s === '') return spec;
  let i = 0;
  // section-part = nz-number *("." nz-number); scanned by hand (a RegExp on s.slice(i) per part
  // would copy the rest of the line each time).
  for (;;) {
    let j = i;
    while (j < s.length && j - i < 9 && s.charCodeAt(j) >= 0x30 && s.charCodeAt(j) <= 0x39) j++;
    if (j === i || s.charCodeAt(i) === 0x30) break;
    if (j < s.length && s.charCodeAt(j) >= 0x30 && s.charCodeAt(j) <= 0x39) return null; // > 9 digits
    spec.part.push(Number(s.slice(i, j)));
    i = j;
    if (i === s.length) return spec;
    if (s[i] !== '.') return null;
    i++;
  }
  const rest = s.slice(i);
  // linear: anchored, literal alternatives, no quantifier.
  const m = /^(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)(?=$| )/i.exec(rest);
  if (!m) return null;
  const text = m[1]!.toUpperCase() as SectionText;
  if (text === 'MIME' && spec.part.length === 0) return null; // section-text MIME needs a part
  spec.text = text;
  let tail = rest.slice(m[0].length);
  if (text === 'HEADER.FIELDS' || text === 'HEADER.FIELDS.NOT') {
    // SP header-list; header-list = "(" header-fld-name *(SP header-fld-name) ")"
    if (!tail.startsWith(' (') || !tail.endsWith(')')) return null;
    const body = tail.slice(2, -1);
    let j = 0;
    while (j < body.length) {
      if (body[j] === ' ') { j++; continue; }
      if (body[j] === '"') {
        let v = '';
        j++;
        while (j < body.length && body[j] !== '"') {
          if (body[j] === '\\') j++;
          v += body[j] ?? '';
          j++;
        }
        if (body[j] !== '"') return null;
        j++;
        spec.fields.push(v);
      } else {
        let k = j;
        while (k < body.length && !ATOM_STOP.has(body[k]!)) k++;
        if (k === j) return null;
        spec.fields.push(body.slice(j, k));
        j = k;
      }
    }
    if (spec.fields.length === 0) return null;
    tail = '';
  }
  return tail === '' ? spec : null;
}

/** What a section maps to in the stored message. */
export type SectionRange =
  /** Send raw[start, end). */
  | { kind: 'bytes'; start: number; end: number }
  /** Send filterHeaderFields(raw[start, end), names, not). */
  | { kind: 'header-fields'; start: number; end: number; names: string[]; not: boolean }
  /** Nonexistent part: an empty string (RFC 9051 §6.4.5 leaves it to the server; Dovecot sends ""). */
  | { kind: 'empty' };

/**
 * message/rfc822 parts have HEADER/TEXT and sub-parts. message/global (RFC 9051 §6.4.5 treats it
 * like message/rfc822) is a leaf here, matching writeBodyStructure and Dovecot 2.3, so part
 * numbers agree with the BODYSTRUCTURE the client saw.
 */
function isMessagePart(n: MimeNode): boolean {
  return n.type === 'message' && n.subtype === 'rfc822' && !!n.message;
}

/** The encapsulated message root whose header/body HEADER/TEXT refer to, for a part. */
function messageRoot(n: MimeNode): MimeNode | null {
  return isMessagePart(n) ? n.message!.root : null;
}

/**
 * Finds the part addressed by `path` (RFC 9051 §6.4.5): in a multipart, n is the n-th body part;
 * a message/rfc822 part's parts are those of its encapsulated message; a non-multipart message
 * or part has only part 1, itself.
 */
export function findPart(root: MimeNode, path: number[]): MimeNode | null {
  // Start at the top-level message, treated like an encapsulated message.
  let cur: MimeNode = root;
  let inMessage = true;
  for (const n of path) {
    let container: MimeNode | null = null;
    if (inMessage) container = cur;
    else if (cur.type === 'multipart') container = cur;
    else if (isMessagePart(cur)) container = cur.message!.root;
    if (container && container.type === 'multipart') {
      const c = container.children?.[n - 1];
      if (!c) return null;
      cur = c;
    } else if (container) {
      if (n !== 1) return null;
      cur = container;
    } else {
      // a leaf: only part 1, itself
      if (n !== 1) return null;
    }
    inMessage = false;
  }
  return cur;
}

/** Maps a section to the bytes to send (RFC 9051 §6.4.5). */
export function resolveSection(meta: MessageMeta, spec: SectionSpec): SectionRange {
  const root = meta.root;
  if (spec.part.length === 0) {
    return textRange(root, spec) ?? { kind: 'empty' };
  }
  const part = findPart(root, spec.part);
  if (!part) return { kind: 'empty' };
  switch (spec.text) {
    case null:
      // A multipart's body text; a message/rfc822 part's body is the whole encapsulated message.
      return { kind: 'bytes', start: part.bodyStart, end: part.bodyEnd };
    case 'MIME':
      return { kind: 'bytes', start: part.headerStart, end: part.headerEnd };
    default: {
      const inner = messageRoot(part);
      if (!inner) return { kind: 'empty' };
      return textRange(inner, spec) ?? { kind: 'empty' };
    }
  }
}

function textRange(msg: MimeNode, spec: SectionSpec): SectionRange | null {
  switch (spec.text) {
    case null:
      return { kind: 'bytes', start: msg.headerStart, end: msg.bodyEnd };
    case 'HEADER':
      return { kind: 'bytes', start: msg.headerStart, end: msg.headerEnd };
    case 'TEXT':
      return { kind: 'bytes', start: msg.bodyStart, end: msg.bodyEnd };
    case 'HEADER.FIELDS':
    case 'HEADER.FIELDS.NOT':
      return { kind: 'header-fields', start: msg.headerStart, end: msg.headerEnd, names: spec.fields, not: spec.text === 'HEADER.FIELDS.NOT' };
    default:
      return null;
  }
}

/** Section bytes from a message held in memory. */
export function readSection(raw: Buffer, meta: MessageMeta, spec: SectionSpec): Buffer {
  const r = resolveSection(meta, spec);
  if (r.kind === 'empty') return Buffer.alloc(0);
  const bytes = raw.subarray(r.start, r.end);
  if (r.kind === 'bytes') return bytes;
  return filterHeaderFields(bytes, r.names, r.not);
}

/**
 * HEADER.FIELDS / HEADER.FIELDS.NOT (RFC 9051 §6.4.5): the header lines (with their continuation
 * lines) whose field name is (not) in `names`, case-insensitively, in their original order,
 * each ending in CRLF, followed by the blank line that ends a header, as Dovecot sends it.
 */
export function filterHeaderFields(headerBlock: Buffer, names: string[], not: boolean): Buffer {
  const want = new Set(names.map((n) => n.toLowerCase()));
  const out: Buffer[] = [];
  let i = 0;
  let keep = false;
  const n = headerBlock.length;
  let colonAt = -1; // first ':' at or after the line start (n: none); the search never goes back
  while (i < n) {
    const nl = headerBlock.indexOf(10, i);
    const end = nl < 0 ? n : nl + 1;
    let contentEnd = nl < 0 ? n : nl;
    if (contentEnd > i && headerBlock[contentEnd - 1] === 13) contentEnd--;
    if (contentEnd === i) break; // the blank line
    const c = headerBlock[i];
    if (c !== 0x20 && c !== 0x09) {
      if (colonAt < i) {
        const k = headerBlock.indexOf(58, i);
        colonAt = k < 0 ? n : k;
      }
      const nameEnd = colonAt < contentEnd ? colonAt : contentEnd;
      const name = headerBlock.subarray(i, nameEnd).toString('latin1').trim().toLowerCase();
      keep = want.has(name) !== not;
    }
    if (keep) {
      out.push(headerBlock.subarray(i, contentEnd), CRLF);
    }
    i = end;
  }
  // As Dovecot: the blank line only when the header had one (a message may end inside its header).
  if (i < n) out.push(CRLF);
  return Buffer.concat(out);
}

const CRLF = Buffer.from('\r\n');

// ---------------------------------------------------------------------------------------------
// Transfer decoding (RFC 2045 §6) for BINARY[] (RFC 3516) and text extraction.

/** Decodes a Content-Transfer-Encoding; null for an unknown encoding (RFC 3516 UNKNOWN-CTE). */
export function decodeTransferEncoding(body: Buffer, encoding: string): Buffer | null {
  switch (encoding.trim().toLowerCase()) {
    case '':
    case '7bit':
    case '8bit':
    case 'binary':
      return body;
    case 'base64':
      return decodeBase64(body);
    case 'quoted-printable':
      return decodeQuotedPrintable(body);
    default:
      return null;
  }
}

function decodeBase64(body: Buffer): Buffer {
  // Node's decoder skips whitespace; drop every other non-alphabet byte first so that garbage
  // does not shift the 6-bit groups, and stop at the first padding.
  const s = body.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''); // linear: one class, /g
  const eq = s.indexOf('=');
  return Buffer.from(eq >= 0 ? s.slice(0, eq) : s, 'base64');
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** RFC 2045 §6.7: =XX escapes, soft line breaks, trailing whitespace dropped, bad escapes kept. */
function decodeQuotedPrintable(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(body.length);
  let o = 0;
  let i = 0;
  const n = body.length;
  let nextEq = -1;
  while (i < n) {
    const nl = body.indexOf(10, i);
    const lineEnd = nl < 0 ? n : nl;
    let contentEnd = lineEnd;
    if (contentEnd > i && body[contentEnd - 1] === 13) contentEnd--;
    // rule 3: trailing whitespace on a line is padding
    let e = contentEnd;
    while (e > i && (body[e - 1] === 0x20 || body[e - 1] === 0x09)) e--;
    let soft = false;
    let j = i;
    while (j < e) {
      // The next '=' is remembered across lines: searching from every line start to a far '='
      // (or to the end when there is none) would be O(n²) over many short lines.
      if (nextEq < j) {
        const k = body.indexOf(0x3d, j);
        nextEq = k < 0 ? n : k;
      }
      const eq = nextEq;
      const stop = eq >= e ? e : eq;
      body.copy(out, o, j, stop);
      o += stop - j;
      j = stop;
      if (j >= e) break;
      // at '='
      if (j === e - 1) { soft = true; j++; break; }
      const h = hexVal(body[j + 1]!);
      const l = hexVal(body[j + 2] ?? 0);
      if (j + 2 < e && h >= 0 && l >= 0) {
        out[o++] = (h << 4) | l;
        j += 3;
      } else {
        out[o++] = 0x3d;
        j++;
      }
    }
    if (nl < 0) break;
    if (!soft) { out[o++] = 13; out[o++] = 10; }
    i = nl + 1;
  }
  return out.subarray(0, o);
}

// ---------------------------------------------------------------------------------------------

/** Upper bound on text extracted per message for SEARCH. */
export const MAX_EXTRACT_CHARS = 4 * 1024 * 1024;

/**
 * Decoded text of the message's text/* parts (transfer- and charset-decoded, HTML reduced to its
 * text by the linear scanner of ../mime/html-text.ts), including those of attached messages, for SEARCH BODY / TEXT. Capped at
 * MAX_EXTRACT_CHARS.
 */
export function extractText(raw: Buffer, meta: Pick<MessageMeta, 'root'>): string {
  return extractPlannedText(raw, textPlan(meta.root));
}

/**
 * The same from a stored text plan. `raw` holds the message's bytes from offset `base` (the whole
 * message: 0); a leaf outside it contributes what it has.
 */
export function extractPlannedText(raw: Buffer, plan: readonly TextLeaf[], base = 0): string {
  const out: string[] = [];
  let total = 0;
  for (const [start, end, encoding, charset, html] of plan) {
    if (total >= MAX_EXTRACT_CHARS) break;
    const body = raw.subarray(Math.max(0, start - base), Math.max(0, Math.min(end - base, raw.length)));
    const decoded = decodeTransferEncoding(body, encoding) ?? body;
    let text = decodeCharset(decoded, charset);
    if (html) text = htmlToText(text);
    if (total + text.length > MAX_EXTRACT_CHARS) text = text.slice(0, MAX_EXTRACT_CHARS - total);
    total += text.length;
    out.push(text);
  }
  return out.join('\n');
}
