// Header-field parsing and decoding: RFC 5322 fields and addresses, RFC 2045 Content-Type,
// RFC 2183 Content-Disposition, RFC 2231 parameter continuations/charsets, RFC 2047 encoded words.
// Everything here is lenient: malformed input yields a best-effort value, never an exception.
import { isAscii, isUtf8 } from 'node:buffer';
import libmime from 'libmime';
import iconv from 'iconv-lite';
import type { EnvelopeAddress } from './types.ts';

export interface HeaderField {
  /** Lower-cased field name. */
  name: string;
  /** Raw value bytes after the colon, still folded, without the final line ending. */
  value: Buffer;
}

/** Raw header bytes as a string: UTF-8 when valid (RFC 6532), else Latin-1 so no byte is lost. */
export function bytesToString(b: Buffer): string {
  if (b.length === 0) return '';
  if (isAscii(b)) return b.toString('latin1');
  return isUtf8(b) ? b.toString('utf8') : b.toString('latin1');
}

/** Fields parsed per header block (as Postfix's 1000-header cap); later ones are not parsed. */
export const MAX_HEADER_FIELDS = 1000;

/**
 * Splits a header block into fields (RFC 5322 §2.2). Continuation lines (starting with SP/HT)
 * belong to the previous field. A line without a colon becomes a field named by the whole line
 * with an empty value, so nothing is silently lost; the blank line ending the block stops parsing.
 * At most MAX_HEADER_FIELDS fields; the bytes themselves are never changed (the stored message
 * stays byte-exact), only not parsed further. O(n): the colon search never goes back.
 */
export function parseHeaderBlock(block: Buffer): HeaderField[] {
  const out: Array<{ name: string; start: number; end: number }> = [];
  let i = 0;
  const n = block.length;
  let colonAt = -1; // first ':' at or after the current line's start; n when there is none
  while (i < n) {
    const nl = block.indexOf(10, i);
    const lineEnd = nl < 0 ? n : nl + 1;
    let contentEnd = nl < 0 ? n : nl;
    if (contentEnd > i && block[contentEnd - 1] === 13) contentEnd--;
    if (contentEnd === i) break; // blank line: end of header
    const c = block[i];
    if ((c === 0x20 || c === 0x09) && out.length > 0) {
      out[out.length - 1]!.end = contentEnd;
    } else {
      if (out.length >= MAX_HEADER_FIELDS) break;
      if (colonAt < i) {
        const k = block.indexOf(58, i);
        colonAt = k < 0 ? n : k;
      }
      if (colonAt < contentEnd) {
        out.push({ name: block.subarray(i, colonAt).toString('latin1').trim().toLowerCase(), start: colonAt + 1, end: contentEnd });
      } else {
        out.push({ name: block.subarray(i, contentEnd).toString('latin1').trim().toLowerCase(), start: contentEnd, end: contentEnd });
      }
    }
    i = lineEnd;
  }
  return out.map((f) => ({ name: f.name, value: block.subarray(f.start, f.end) }));
}

function isWsp(c: number): boolean {
  return c === 32 || c === 9;
}

/** Unfolds a raw value (RFC 5322 §2.2.3: remove CRLF before WSP) and trims surrounding whitespace. */
export function unfoldValue(value: Buffer): string {
  const s = bytesToString(value);
  // linear: a single-character class, each match consumed once.
  const unfolded = value.includes(10) ? s.replace(/\r?\n/g, '') : s;
  // Trimmed by hand: `/^[ \t]+|[ \t]+$/g` retries `[ \t]+$` at every blank of a long run, O(n²).
  let a = 0;
  let b = unfolded.length;
  while (a < b && isWsp(unfolded.charCodeAt(a))) a++;
  while (b > a && isWsp(unfolded.charCodeAt(b - 1))) b--;
  return a === 0 && b === unfolded.length ? unfolded : unfolded.slice(a, b);
}

/**
 * Removes RFC 5322 §3.2.2 comments (nested, with quoted-pairs) from a structured value, each
 * replaced by `repl`. O(n); an unclosed comment runs to the end.
 */
export function stripComments(s: string, repl: string): string {
  if (!s.includes('(')) return s;
  let out = '';
  let depth = 0;
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (depth > 0 && c === 0x5c) {
      i++;
    } else if (c === 0x28) {
      if (depth === 0) out += s.slice(from, i);
      depth++;
    } else if (c === 0x29 && depth > 0) {
      depth--;
      if (depth === 0) {
        out += repl;
        from = i + 1;
      }
    }
  }
  return depth > 0 ? out + repl : out + s.slice(from);
}

/** Converts bytes in `charset` to a string; unknown charsets fall back to UTF-8/Latin-1. */
export function decodeCharset(buf: Buffer, charset: string | null | undefined): string {
  const cs = (charset ?? '').trim().toLowerCase();
  if (cs === '' || cs === 'us-ascii' || cs === 'ascii' || cs === 'utf-8' || cs === 'utf8') return bytesToString(buf);
  try {
    if (iconv.encodingExists(cs)) return iconv.decode(buf, cs);
    // iconv-lite lacks ISO-2022-JP and friends; libmime's charset layer has them.
    // linear: anchored, bounded alternatives, no nested quantifier.
    if (/^(jis|iso-?2022-?jp|euc-?jp)/.test(cs)) return libmime.decodeWord(cs, 'B', buf.toString('base64'));
  } catch {
    /* fall through */
  }
  return bytesToString(buf);
}

/** RFC 2047 encoded words → UTF-8; never throws. */
export function decodeWords(s: string): string {
  if (!s.includes('=?')) return s;
  try {
    return libmime.decodeWords(s);
  } catch {
    return s;
  }
}

// ---------------------------------------------------------------------------------------------
// RFC 5322 §3.2 lexical tokens

type Tok =
  | { t: 'atom'; v: string; ws: boolean }
  | { t: 'qs'; v: string; ws: boolean }
  | { t: 'comment'; v: string; ws: boolean }
  | { t: 'dlit'; v: string; ws: boolean }
  | { t: 'sp'; v: string; ws: boolean };

function specialTable(chars: string): Uint8Array {
  const t = new Uint8Array(128);
  for (const c of chars) t[c.charCodeAt(0)] = 1;
  for (const c of ' \t\r\n') t[c.charCodeAt(0)] = 2;
  return t;
}
/** RFC 5322 §3.2.3 specials (plus whitespace). */
const RFC5322 = specialTable('()<>[]:;@\\,."');
/** RFC 2045 §5.1 tspecials (plus whitespace). */
const TSPECIALS = specialTable('()<>@,;:\\"/[]?=');

/**
 * RFC 5322 §3.2 tokens, one at a time (`mime`: RFC 2045 tspecials), so a caller that has what it
 * needs (MAX_ENVELOPE_ADDRESSES, MAX_PARAMS) stops reading a 256 KiB value early. `ws` tells
 * whether whitespace preceded the token.
 */
class Lexer {
  readonly #s: string;
  readonly #table: Uint8Array;
  readonly #mime: boolean;
  #i = 0;
  #ahead: Tok[] = [];
  /** Tokens read so far (peeked ones included). */
  count = 0;
  constructor(s: string, mime = false) {
    this.#s = s;
    this.#mime = mime;
    this.#table = mime ? TSPECIALS : RFC5322;
  }

  next(): Tok | null {
    return this.#ahead.length ? this.#ahead.shift()! : this.#read();
  }

  /** The token after the next one's `k` (0: the next one), without consuming it. */
  peek(k = 0): Tok | null {
    while (this.#ahead.length <= k) {
      const t = this.#read();
      if (!t) return null;
      this.#ahead.push(t);
    }
    return this.#ahead[k]!;
  }

  #read(): Tok | null {
    const s = this.#s;
    const n = s.length;
    const table = this.#table;
    let i = this.#i;
    let ws = false;
    while (i < n) {
      const code = s.charCodeAt(i);
      if ((code < 128 ? table[code]! : 0) !== 2) break;
      ws = true;
      i++;
    }
    if (i >= n) {
      this.#i = i;
      return null;
    }
    const code = s.charCodeAt(i);
    const cls = code < 128 ? table[code]! : 0;
    let tok: Tok;
    if (code === 0x22) {
      // quoted-string; quoted-pairs unescaped, CR/LF of folding dropped. Pieces joined once: a
      // string grown by += at each of 100,000 escapes is a rope that every later use flattens.
      let j = i + 1;
      const v: string[] = [];
      let segStart = j;
      while (j < n && s.charCodeAt(j) !== 0x22) {
        const d = s.charCodeAt(j);
        if (d === 0x5c || d === 13 || d === 10) {
          if (j > segStart) v.push(s.slice(segStart, j));
          if (d === 0x5c && j + 1 < n) { v.push(s[j + 1]!); j += 2; } else j++;
          segStart = j;
          continue;
        }
        j++;
      }
      v.push(s.slice(segStart, j));
      tok = { t: 'qs', v: v.length === 1 ? v[0]! : v.join(''), ws };
      i = j + 1;
    } else if (code === 0x28) {
      // comment (nested); the same, with the pieces between escapes and line breaks.
      let depth = 1;
      const v: string[] = [];
      i++;
      let segStart = i;
      while (i < n && depth > 0) {
        const d = s.charCodeAt(i);
        if (d === 0x5c && i + 1 < n) {
          if (i > segStart) v.push(s.slice(segStart, i));
          v.push(s[i + 1]!);
          i += 2;
          segStart = i;
          continue;
        }
        if (d === 0x28) depth++;
        else if (d === 0x29 && --depth === 0) break;
        if (d === 13 || d === 10) {
          if (i > segStart) v.push(s.slice(segStart, i));
          segStart = i + 1;
        }
        i++;
      }
      if (i > segStart) v.push(s.slice(segStart, i));
      if (i < n) i++; // the closing ')'
      tok = { t: 'comment', v: v.length === 1 ? v[0]! : v.join(''), ws };
    } else if (code === 0x5b && !this.#mime) {
      const e = s.indexOf(']', i);
      const end = e < 0 ? n : e + 1;
      tok = { t: 'dlit', v: s.slice(i, end), ws };
      i = end;
    } else if (cls === 1) {
      tok = { t: 'sp', v: s[i]!, ws };
      i++;
    } else {
      let j = i + 1;
      while (j < n) {
        const c = s.charCodeAt(j);
        if (c < 128 && table[c] !== 0) break;
        j++;
      }
      tok = { t: 'atom', v: s.slice(i, j), ws };
      i = j;
    }
    this.#i = i;
    this.count++;
    return tok;
  }
}

/** At most `max` tokens of `s`. */
function tokenize(s: string, mime: boolean, max: number): Tok[] {
  const lex = new Lexer(s, mime);
  const out: Tok[] = [];
  for (let t = lex.next(); t && out.length < max; t = lex.next()) out.push(t);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Content-Type / Content-Disposition (RFC 2045 §5.1, RFC 2183, RFC 2231)

export interface ParsedMimeHeader {
  value: string;
  params: Array<[string, string]>;
}

/**
 * Parameters read per Content-Type / Content-Disposition value (RFC 2231 sections count one each):
 * no real header has more than a few dozen, and a 256 KiB value of `; a=b` (50,000 of them) took
 * 20 ms in one piece, then as much again for every BODYSTRUCTURE. Later ones are not parsed.
 */
export const MAX_PARAMS = 1000;
/** Tokens read for it: a parameter is `; name = value`, plus some room for comments. */
const MAX_MIME_TOKENS = 8 * MAX_PARAMS;

function parseParamList(toks: Tok[], i: number, truncated: boolean): Array<[string, string]> {
  const raw: Array<[string, string]> = [];
  while (i < toks.length && raw.length < MAX_PARAMS) {
    // skip to next ';'
    while (i < toks.length && !(toks[i]!.t === 'sp' && toks[i]!.v === ';')) i++;
    i++;
    while (i < toks.length && toks[i]!.t === 'comment') i++;
    const nameTok = toks[i];
    if (!nameTok || nameTok.t !== 'atom') continue;
    let j = i + 1;
    while (j < toks.length && toks[j]!.t === 'comment') j++;
    if (!(toks[j]?.t === 'sp' && toks[j]!.v === '=')) { i = j; continue; }
    j++;
    while (j < toks.length && toks[j]!.t === 'comment') j++;
    const vt = toks[j];
    if (vt && (vt.t === 'atom' || vt.t === 'qs')) {
      raw.push([nameTok.v.toLowerCase(), vt.v]);
      i = j + 1;
    } else {
      raw.push([nameTok.v.toLowerCase(), '']); // "name=" with no value, as Dovecot
      i = j;
    }
  }
  // The tokens ran out at MAX_MIME_TOKENS: the last parameter may be cut short.
  if (truncated && raw.length < MAX_PARAMS) raw.pop();
  return joinRfc2231(raw);
}

/**
 * RFC 2231 §3-4: joins `name*0`, `name*1*`… continuations. As Dovecot 2.3 does, plain parameters
 * come first in their order, then the RFC 2231 ones sorted by name; a parameter whose first
 * section carries a charset (`*`-suffixed) is returned as `name*` with its value still in
 * `charset'lang'%XX` form (later plain sections appended as they are), so BODYSTRUCTURE stays
 * 7-bit; decodeParamValue() reads it.
 */
export function joinRfc2231(raw: Array<[string, string]>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const groups = new Map<string, Array<{ n: number; v: string; ext: boolean }>>();
  for (const [name, value] of raw) {
    // linear: anchored; `[^*]+` and `\*` are disjoint, so there is one way to split.
    const m = /^([^*]+)\*(?:(\d+)(\*?)|)$/.exec(name);
    if (m) {
      const base = m[1]!;
      let g = groups.get(base);
      if (!g) groups.set(base, (g = []));
      if (m[2] === undefined) g.push({ n: -1, v: value, ext: true });
      else g.push({ n: Number(m[2]), v: value, ext: m[3] === '*' });
    } else {
      out.push([name, value]);
    }
  }
  const names = [...groups.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const base of names) {
    const g = groups.get(base)!.sort((a, b) => a.n - b.n);
    const ext = g[0]!.ext;
    out.push([ext ? base + '*' : base, g.map((p) => p.v).join('')]);
  }
  return out;
}

/**
 * Parses `type/subtype; params` (wantSlash) or `disposition; params`; the value is lower-cased.
 * Invalid Content-Type values map as Dovecot 2.3 maps them: no token → "/", a token without
 * "/subtype" → "token/" (no parameters), a "/" without subtype → "/".
 */
export function parseMimeHeader(s: string, wantSlash: boolean): ParsedMimeHeader {
  const toks = tokenize(s, true, MAX_MIME_TOKENS);
  const truncated = toks.length === MAX_MIME_TOKENS;
  let i = 0;
  while (i < toks.length && toks[i]!.t === 'comment') i++;
  const first = toks[i];
  if (!first || first.t !== 'atom') return { value: wantSlash ? '/' : '', params: [] };
  let value = first.v.toLowerCase();
  i++;
  if (wantSlash) {
    while (i < toks.length && toks[i]!.t === 'comment') i++;
    if (!(toks[i]?.t === 'sp' && toks[i]!.v === '/')) return { value: value + '/', params: [] };
    i++;
    while (i < toks.length && toks[i]!.t === 'comment') i++;
    const sub = toks[i];
    if (!sub || sub.t !== 'atom') return { value: '/', params: [] };
    value += '/' + sub.v.toLowerCase();
    i++;
  }
  return { value, params: parseParamList(toks, i, truncated) };
}

/** Decodes a parameter for display (filenames etc.): RFC 2231 `name*` form or RFC 2047 words. */
export function decodeParamValue(params: Array<[string, string]>, name: string): string | null {
  const lname = name.toLowerCase();
  for (const [k, v] of params) {
    if (k === lname + '*') {
      // linear: anchored; each `[^']*` stops at a quote, `(.*)$` runs once.
      const m = /^([^']*)'[^']*'(.*)$/s.exec(v);
      const charset = m ? m[1]! : 'us-ascii';
      const data = m ? m[2]! : v;
      // linear: the three alternatives start with different characters; each match is consumed.
      const bytes = Buffer.from(data.replace(/%([0-9a-fA-F]{2})|([^%]+)|%/g, (all, hex: string | undefined) =>
        hex ? String.fromCharCode(parseInt(hex, 16)) : all), 'latin1');
      return decodeCharset(bytes, charset || 'utf-8');
    }
  }
  for (const [k, v] of params) if (k === lname) return decodeWords(v);
  return null;
}

// ---------------------------------------------------------------------------------------------
// Address lists (RFC 5322 §3.4) → ENVELOPE addresses (RFC 9051 §7.5.2)

function phraseText(toks: Tok[]): string | null {
  let s = '';
  for (const t of toks) {
    if (t.t === 'comment') continue;
    if (s !== '' && t.ws) s += ' ';
    s += t.v;
  }
  return s === '' ? null : s;
}

function lastComment(toks: Tok[]): string | null {
  for (let i = toks.length - 1; i >= 0; i--) if (toks[i]!.t === 'comment') return toks[i]!.v.trim() || null;
  return null;
}

function concat(toks: Tok[]): string {
  return toks.filter((t) => t.t !== 'comment').map((t) => t.v).join('');
}

/** Parses one mailbox from tokens (no top-level ',' or group syntax). */
function parseMailbox(toks: Tok[]): EnvelopeAddress | null {
  // Only comments (and white space): no address at all. In a group this is the CFWS of an empty
  // group-list (RFC 5322 §3.4 `group-list = mailbox-list / CFWS / obs-group-list`), so the group is
  // its start/end pair only (RFC 3501 §7.4.2); at top level there is nothing to report either.
  if (!toks.some((t) => t.t !== 'comment')) return null;
  const lt = toks.findIndex((t) => t.t === 'sp' && t.v === '<');
  let name: string | null;
  let spec: Tok[];
  let adl: string | null = null;
  if (lt >= 0) {
    // name-addr: the display name is the phrase; comments are not names here (as Dovecot)
    name = phraseText(toks.slice(0, lt));
    let gt = toks.findIndex((t, i) => i > lt && t.t === 'sp' && t.v === '>');
    if (gt < 0) gt = toks.length;
    spec = toks.slice(lt + 1, gt);
    // RFC 5322 §4.4 obs-route: "@a,@b:" before the addr-spec
    const colon = spec.findIndex((t) => t.t === 'sp' && t.v === ':');
    if (colon >= 0 && spec[0]?.t === 'sp' && spec[0].v === '@') {
      adl = concat(spec.slice(0, colon));
      spec = spec.slice(colon + 1);
    }
  } else {
    spec = toks;
    name = lastComment(toks);
  }
  const at = (() => {
    for (let i = spec.length - 1; i >= 0; i--) if (spec[i]!.t === 'sp' && spec[i]!.v === '@') return i;
    return -1;
  })();
  const local = concat(at >= 0 ? spec.slice(0, at) : spec);
  const domain = at >= 0 ? concat(spec.slice(at + 1)) : '';
  if (local === '' && domain === '' && name === null && lt < 0) return null;
  // As Dovecot: a missing local part or domain is reported with a placeholder, not NIL, because
  // NIL host would read as a group marker (RFC 9051 §7.5.2).
  return { name, adl, mailbox: local === '' ? 'MISSING_MAILBOX' : local, host: domain === '' ? 'MISSING_DOMAIN' : domain };
}

/**
 * Addresses (group start and end markers included) read per address field for ENVELOPE and the
 * SEARCH address text. A 256 KiB To: of 65,000 empty groups made 130,000 entries: 7 MB of cached
 * meta and ~300 ms of CPU in one turn at delivery. The message itself is stored unchanged and
 * SEARCH TO/FROM/CC/BCC still match its whole header text; only the parsed list stops here
 * (a group is always closed with its end marker).
 */
export const MAX_ENVELOPE_ADDRESSES = 1000;
/**
 * Tokens read per address field: what 1000 ordinary addresses need many times over. It bounds a
 * field that is one giant item (150,000 tokens of quotes and backslashes, no comma: ~35 ms per
 * parse). An item the limit cuts is dropped, a group it cuts is still closed.
 */
const MAX_ADDRESS_TOKENS = 32 * MAX_ENVELOPE_ADDRESSES;

/** True for the special `v` (a one-character 'sp' token). */
function isSp(t: Tok | null | undefined, v: string): boolean {
  return t !== null && t !== undefined && t.t === 'sp' && t.v === v;
}

/**
 * Reads one group-list (RFC 5322 §3.4) after its ':' up to and including the ';', appending its
 * members to `out` while there is room; the rest of the group is read but not kept. False when
 * MAX_ADDRESS_TOKENS ended it first.
 */
function readGroup(lex: Lexer, out: EnvelopeAddress[], max: number): boolean {
  let member: Tok[] = [];
  /** For the end of the group: inside <...> (a ';' there is not the end). */
  let groupAngle = false;
  /** For splitting members: the same, but a comma that cannot be an obs-route's ends it. */
  let inAngle = false;
  const flush = () => {
    if (out.length < max) {
      const a = parseMailbox(member);
      if (a) out.push(a);
    }
    member = [];
  };
  for (let u = lex.next(); u; u = lex.next()) {
    if (lex.count > MAX_ADDRESS_TOKENS) return false; // cut: the member in progress is dropped
    if (isSp(u, '<')) groupAngle = inAngle = true;
    else if (isSp(u, '>')) groupAngle = inAngle = false;
    if (!groupAngle && isSp(u, ';')) break;
    // A comma inside <...> other than an obs-route's ("<@a,@b:x@y>") means the '>' is missing.
    if (inAngle && isSp(u, ',') && !isSp(lex.peek(), '@')) inAngle = false;
    if (!inAngle && isSp(u, ',')) {
      flush();
      continue;
    }
    if (out.length < max) member.push(u);
  }
  flush();
  return true;
}

/**
 * Parses an address-list header value (raw, RFC 2047 words kept as IMAP sends them) into ENVELOPE
 * addresses, groups as [NIL NIL name NIL] … [NIL NIL NIL NIL]. Null when the list is empty. At most
 * `max` entries (MAX_ENVELOPE_ADDRESSES; one more to close a group) from at most
 * MAX_ADDRESS_TOKENS tokens: the rest is not read.
 */
export function parseAddressList(value: string, max = MAX_ENVELOPE_ADDRESSES): EnvelopeAddress[] | null {
  const lex = new Lexer(value);
  const out: EnvelopeAddress[] = [];
  let item: Tok[] = [];
  /** The current item has an '@' or '<' (then a ':' cannot start a group); kept, not searched. */
  let itemHasAddr = false;
  let inAngle = false;
  const flush = () => {
    const a = parseMailbox(item);
    if (a) out.push(a);
    item = [];
    itemHasAddr = false;
  };
  let cut = false;
  for (let t = lex.next(); t && out.length < max; t = lex.next()) {
    if (lex.count > MAX_ADDRESS_TOKENS) {
      cut = true;
      break;
    }
    if (isSp(t, '<')) inAngle = true;
    else if (isSp(t, '>')) inAngle = false;
    // Inside <...> a comma only belongs to an obs-route ("<@a,@b:x@y>", RFC 5322 §4.4);
    // any other comma means the '>' is missing: treat it as a separator.
    if (inAngle && isSp(t, ',') && !isSp(lex.peek(), '@')) inAngle = false;
    if (!inAngle && isSp(t, ',')) {
      flush();
      continue;
    }
    if (!inAngle && isSp(t, ':') && !itemHasAddr) {
      // RFC 5322 §3.4 group: display-name ":" [group-list] ";"
      out.push({ name: null, adl: null, mailbox: phraseText(item) ?? '', host: null });
      item = [];
      cut = !readGroup(lex, out, max);
      out.push({ name: null, adl: null, mailbox: null, host: null });
      if (cut) break;
      continue;
    }
    if (t.t === 'sp' && (t.v === '@' || t.v === '<')) itemHasAddr = true;
    item.push(t);
  }
  if (!cut && out.length < max) flush();
  return out.length ? out : null;
}
