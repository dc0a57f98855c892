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

/** `ws` tells whether whitespace preceded the token. `mime` uses RFC 2045 tspecials. */
function tokenize(s: string, mime = false): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  const n = s.length;
  let ws = false;
  const table = mime ? TSPECIALS : RFC5322;
  while (i < n) {
    const code = s.charCodeAt(i);
    const cls = code < 128 ? table[code]! : 0;
    if (cls === 2) { ws = true; i++; continue; }
    if (code === 0x22) {
      // quoted-string; quoted-pairs unescaped, CR/LF of folding dropped
      let j = i + 1;
      let v = '';
      let segStart = j;
      while (j < n && s.charCodeAt(j) !== 0x22) {
        const d = s.charCodeAt(j);
        if (d === 0x5c || d === 13 || d === 10) {
          v += s.slice(segStart, j);
          if (d === 0x5c && j + 1 < n) { v += s[j + 1]; j += 2; } else j++;
          segStart = j;
          continue;
        }
        j++;
      }
      v += s.slice(segStart, j);
      out.push({ t: 'qs', v, ws });
      i = j + 1;
    } else if (code === 0x28) {
      let depth = 1;
      let v = '';
      i++;
      while (i < n && depth > 0) {
        const d = s[i]!;
        if (d === '\\' && i + 1 < n) { v += s[i + 1]; i += 2; continue; }
        if (d === '(') depth++;
        else if (d === ')') { depth--; if (depth === 0) { i++; break; } }
        if (d !== '\r' && d !== '\n') v += d;
        i++;
      }
      out.push({ t: 'comment', v, ws });
    } else if (code === 0x5b && !mime) {
      const e = s.indexOf(']', i);
      const end = e < 0 ? n : e + 1;
      out.push({ t: 'dlit', v: s.slice(i, end), ws });
      i = end;
    } else if (cls === 1) {
      out.push({ t: 'sp', v: s[i]!, ws });
      i++;
    } else {
      let j = i + 1;
      while (j < n) {
        const c = s.charCodeAt(j);
        if (c < 128 && table[c] !== 0) break;
        j++;
      }
      out.push({ t: 'atom', v: s.slice(i, j), ws });
      i = j;
    }
    ws = false;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Content-Type / Content-Disposition (RFC 2045 §5.1, RFC 2183, RFC 2231)

export interface ParsedMimeHeader {
  value: string;
  params: Array<[string, string]>;
}

function parseParamList(toks: Tok[], i: number): Array<[string, string]> {
  const raw: Array<[string, string]> = [];
  while (i < toks.length) {
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
  const toks = tokenize(s, true);
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
  return { value, params: parseParamList(toks, i) };
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

function splitTop(toks: Tok[], sep: string): Tok[][] {
  const out: Tok[][] = [];
  let cur: Tok[] = [];
  let inAngle = false;
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i]!;
    if (t.t === 'sp' && t.v === '<') inAngle = true;
    else if (t.t === 'sp' && t.v === '>') inAngle = false;
    if (inAngle && t.t === 'sp' && t.v === ',' && !(toks[i + 1]?.t === 'sp' && toks[i + 1]!.v === '@')) inAngle = false;
    if (!inAngle && t.t === 'sp' && t.v === sep) { out.push(cur); cur = []; continue; }
    cur.push(t);
  }
  out.push(cur);
  return out;
}

/**
 * Parses an address-list header value (raw, RFC 2047 words kept as IMAP sends them) into ENVELOPE
 * addresses, groups as [NIL NIL name NIL] … [NIL NIL NIL NIL]. Null when the list is empty.
 */
export function parseAddressList(value: string): EnvelopeAddress[] | null {
  const toks = tokenize(value);
  const out: EnvelopeAddress[] = [];
  let i = 0;
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
  while (i < toks.length) {
    const t = toks[i]!;
    if (t.t === 'sp' && t.v === '<') inAngle = true;
    else if (t.t === 'sp' && t.v === '>') inAngle = false;
    // Inside <...> a comma only belongs to an obs-route ("<@a,@b:x@y>", RFC 5322 §4.4);
    // any other comma means the '>' is missing: treat it as a separator.
    if (inAngle && t.t === 'sp' && t.v === ',' && !(toks[i + 1]?.t === 'sp' && toks[i + 1]!.v === '@')) inAngle = false;
    if (!inAngle && t.t === 'sp' && t.v === ',') { flush(); i++; continue; }
    if (!inAngle && t.t === 'sp' && t.v === ':' && !itemHasAddr) {
      // RFC 5322 §3.4 group: display-name ":" [group-list] ";"
      const gname = phraseText(item) ?? '';
      item = [];
      let j = i + 1;
      let depthAngle = false;
      const members: Tok[] = [];
      while (j < toks.length) {
        const u = toks[j]!;
        if (u.t === 'sp' && u.v === '<') depthAngle = true;
        else if (u.t === 'sp' && u.v === '>') depthAngle = false;
        if (!depthAngle && u.t === 'sp' && u.v === ';') break;
        members.push(u);
        j++;
      }
      out.push({ name: null, adl: null, mailbox: gname, host: null });
      for (const m of splitTop(members, ',')) {
        const a = parseMailbox(m);
        if (a) out.push(a);
      }
      out.push({ name: null, adl: null, mailbox: null, host: null });
      i = j + 1;
      continue;
    }
    if (t.t === 'sp' && (t.v === '@' || t.v === '<')) itemHasAddr = true;
    item.push(t);
    i++;
  }
  flush();
  return out.length ? out : null;
}
