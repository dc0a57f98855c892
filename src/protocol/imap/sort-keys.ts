// The per-message keys of SORT (RFC 5256 §3, RFC 5957) and THREAD (RFC 5256 §3), computed once
// from a message's cached parse when it is delivered and stored with it (src/store/*/sort.ts), so
// a SORT or THREAD never re-reads or re-parses a message. Pure; linear in the header size.
//
// Strings are kept as collation keys: i;unicode-casemap (RFC 5051, required by RFC 5256 §7):
// each character's titlecase mapping, then the compatibility decomposition (NFKD). Two keys then
// compare as plain strings (see compareKeys).

import type { EnvelopeAddress, MessageMeta, SearchHeaders } from '../mime/types.ts';
import { decodeWords } from '../mime/headers.ts';

/** The part of a cached parse the keys come from. */
export type SortSource = Pick<MessageMeta, 'envelope' | 'sentDate'> & { search: Pick<SearchHeaders, 'subject' | 'fields'> };

export interface SortKeys {
  /** Sent date (RFC 5256 §2.2: the Date: header, UTC ms); null: not determinable (INTERNALDATE is used). */
  sent: number | null;
  /** Base subject (RFC 5256 §2.1) as a collation key. */
  subject: string;
  /** The base subject extraction removed a reply/forward marker (RFC 5256 §3, REFERENCES). */
  reply: boolean;
  /** addr-mailbox of the first From / To / Cc address (RFC 5256 §3 FROM, TO, CC), collation keys. */
  from: string;
  to: string;
  cc: string;
  /** DISPLAY sort value of the first From / To address (RFC 5957 §3, §4), collation keys. */
  displayFrom: string;
  displayTo: string;
  /** Normalized Message-ID (RFC 5256 §3 REFERENCES note), null when there is no valid one. */
  messageId: string | null;
  /** The references (References:, else the first In-Reply-To: id), normalized, in order. */
  refs: string[];
}

// ------------------------------------------------------------------ collation

/** Simple titlecase mappings that differ from the uppercase one (the Latin digraphs DŽ, LJ, NJ, DZ). */
const TITLE_DIGRAPH: Readonly<Record<number, string>> = {
  0x1c4: '\u01c5', 0x1c5: '\u01c5', 0x1c6: '\u01c5',
  0x1c7: '\u01c8', 0x1c8: '\u01c8', 0x1c9: '\u01c8',
  0x1ca: '\u01cb', 0x1cb: '\u01cb', 0x1cc: '\u01cb',
  0x1f1: '\u01f2', 0x1f2: '\u01f2', 0x1f3: '\u01f2',
};

function isAsciiString(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * i;unicode-casemap (RFC 5051 §2): each character replaced by its simple titlecase mapping (a
 * character whose uppercase form is several characters keeps itself: it has no simple mapping),
 * then NFKD. ASCII: uppercase, as i;ascii-casemap.
 *
 * RFC 5051 compares the UTF-8 octets, i.e. code points; JavaScript compares UTF-16 code units,
 * which differ in one place: U+E000–U+FFFF sort after the surrogates of U+10000 and up. So a key
 * writes each U+E000–U+FFFF character as U+D7FF followed by itself (U+D7FF is unassigned), which
 * puts it between U+D7FE and U+10000: keys then compare with plain `<` (compareKeys).
 */
export function collationKey(s: string): string {
  if (isAsciiString(s)) return s.toUpperCase();
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    const t = TITLE_DIGRAPH[cp];
    if (t !== undefined) {
      out += t;
      continue;
    }
    const u = ch.toUpperCase();
    out += u.length === 1 || (u.length === 2 && u.codePointAt(0)! > 0xffff) ? u : ch;
  }
  const d = out.normalize('NFKD');
  let hasHigh = false;
  for (let i = 0; i < d.length && !hasHigh; i++) hasHigh = d.charCodeAt(i) >= 0xe000;
  if (!hasHigh) return d;
  let k = '';
  for (let i = 0; i < d.length; i++) {
    const c = d.charCodeAt(i);
    k += c >= 0xe000 ? '\ud7ff' + d[i] : d[i];
  }
  return k;
}

/** Orders two collation keys as RFC 5051 orders the strings they were made from. */
export function compareKeys(a: string, b: string): number {
  return a === b ? 0 : a < b ? -1 : 1;
}

// ------------------------------------------------------------------ base subject (RFC 5256 §2.1)

const isWsp = (c: number) => c === 0x20 || c === 0x09;

/** RFC 5256 §2.1 (1): tabs and line breaks to spaces, runs of spaces to one. */
function normalizeSpaces(s: string): string {
  let out = '';
  let space = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) {
      space = true;
      continue;
    }
    if (space && out !== '') out += ' ';
    space = false;
    out += s[i];
  }
  return space && out !== '' ? out + ' ' : out;
}

/** subj-blob at p (`"[" *BLOBCHAR "]" *WSP`) within s[..end): its end, or -1. */
function blobEnd(s: string, p: number, end: number): number {
  if (p >= end || s.charCodeAt(p) !== 0x5b) return -1;
  let i = p + 1;
  while (i < end) {
    const c = s.charCodeAt(i);
    if (c === 0x5d) break;
    if (c === 0x5b) return -1;
    i++;
  }
  if (i >= end) return -1;
  i++;
  while (i < end && isWsp(s.charCodeAt(i))) i++;
  return i;
}

/** subj-refwd at p (`("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`) within s[..end): its end, or -1. */
function refwdEnd(s: string, p: number, end: number): number {
  if (p + 2 >= end) return -1;
  const c0 = s.charCodeAt(p) | 0x20;
  const c1 = s.charCodeAt(p + 1) | 0x20;
  let i: number;
  if (c0 === 0x72 && c1 === 0x65) i = p + 2; // "re"
  else if (c0 === 0x66 && c1 === 0x77) i = (s.charCodeAt(p + 2) | 0x20) === 0x64 ? p + 3 : p + 2; // "fw" ["d"]
  else return -1;
  while (i < end && isWsp(s.charCodeAt(i))) i++;
  if (i < end && s.charCodeAt(i) === 0x3a) return i + 1;
  const b = blobEnd(s, i, end);
  return b >= 0 && b < end && s.charCodeAt(b) === 0x3a ? b + 1 : -1;
}

const isFwdTrailer = (s: string, end: number) =>
  end >= 5 && s.charCodeAt(end - 5) === 0x28 && s.slice(end - 4, end - 1).toLowerCase() === 'fwd' && s.charCodeAt(end - 1) === 0x29;

const isFwdHeader = (s: string, p: number) => s.slice(p, p + 5).toLowerCase() === '[fwd:';

/**
 * The base subject (RFC 5256 §2.1 steps 1–7) of a decoded subject, and whether a reply/forward
 * marker was removed on the way (a subj-refwd, a "(fwd)" trailer, or subj-fwd-hdr/-trl).
 * Linear: the text is one string narrowed by two indexes, every step consumes what it looked at,
 * and a run of blobs not followed by a subj-refwd is remembered so later steps do not scan it again.
 */
export function baseSubject(subject: string): { base: string; reply: boolean } {
  const s = normalizeSpaces(subject);
  let p = 0;
  let end = s.length;
  let reply = false;
  // Blob boundaries from p up to `noRefwd` have been scanned: no subj-refwd follows their blobs.
  let noRefwd = -1;
  for (;;) {
    // (2) subj-trailer: "(fwd)" / WSP, repeatedly
    for (;;) {
      if (end > p && isWsp(s.charCodeAt(end - 1))) end--;
      else if (end - p >= 5 && isFwdTrailer(s, end)) {
        end -= 5;
        reply = true;
      } else break;
    }
    // (3)-(5) subj-leader = (*subj-blob subj-refwd) / WSP; (4) a subj-blob leaving a non-empty rest
    for (;;) {
      if (p < end && isWsp(s.charCodeAt(p))) {
        p++;
        continue;
      }
      if (p > noRefwd) {
        let q = p;
        for (let b = blobEnd(s, q, end); b >= 0; b = blobEnd(s, q, end)) q = b;
        const r = refwdEnd(s, q, end);
        if (r >= 0) {
          p = r;
          reply = true;
          continue;
        }
        noRefwd = q;
      }
      const b = blobEnd(s, p, end);
      if (b >= 0 && b < end) {
        p = b;
        continue;
      }
      break;
    }
    // (6) subj-fwd-hdr … subj-fwd-trl: strip both and repeat from (2)
    if (end - p >= 6 && isFwdHeader(s, p) && s.charCodeAt(end - 1) === 0x5d) {
      p += 5;
      end -= 1;
      reply = true;
      noRefwd = -1;
      continue;
    }
    return { base: s.slice(p, end), reply };
  }
}

// ------------------------------------------------------------------ addresses (RFC 5256 §3, RFC 5957 §3)

/**
 * The first address structure of an envelope list, or null. A group's start marker counts: its
 * addr-mailbox is the group name (RFC 9051 §7.5.2), which is the sort value RFC 5957 §3 gives an
 * address with a mailbox and no host; Dovecot sorts `To: undisclosed-recipients:;` the same way.
 */
function firstAddress(list: EnvelopeAddress[] | null): EnvelopeAddress | null {
  return list?.[0] ?? null;
}

/** RFC 5957 §3: the display name (RFC 2047 words decoded, RFC 5255 §4.6), else mailbox@host, else mailbox, else "". */
export function displayValue(a: EnvelopeAddress | null): string {
  if (!a) return '';
  const name = a.name === null ? '' : decodeWords(a.name);
  if (name !== '') return name;
  if (a.mailbox !== null && a.host !== null) return `${a.mailbox}@${a.host}`;
  return a.mailbox ?? '';
}

// ------------------------------------------------------------------ message ids (RFC 5256 §3 REFERENCES)

/**
 * The msg-ids in a header value, normalized (RFC 5256 §3: quoting must not make two ids differ):
 * `<"a.b"@host>` and `<a.b@host>` are both `a.b@host`. Comments and whitespace around and inside
 * are dropped; an id needs an "@" with something on both sides. One pass.
 */
export function messageIds(value: string | null | undefined, max = Infinity): string[] {
  const out: string[] = [];
  if (!value) return out;
  let i = 0;
  const n = value.length;
  while (i < n && out.length < max) {
    const c = value.charCodeAt(i);
    if (c === 0x28) {
      // comment, nested, with quoted-pairs
      let depth = 1;
      i++;
      while (i < n && depth > 0) {
        const d = value.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x28) depth++;
        else if (d === 0x29) depth--;
        i++;
      }
      continue;
    }
    if (c !== 0x3c) {
      i++;
      continue;
    }
    // "<" … ">": quoted strings keep their content (a ">" inside them does not end the id).
    let id = '';
    let j = i + 1;
    let closed = false;
    while (j < n) {
      const d = value.charCodeAt(j);
      if (d === 0x3e) {
        closed = true;
        j++;
        break;
      }
      if (d === 0x3c) break; // a new "<": this one was not an id
      if (d === 0x22) {
        j++;
        while (j < n && value.charCodeAt(j) !== 0x22) {
          if (value.charCodeAt(j) === 0x5c && j + 1 < n) j++;
          const q = value.charCodeAt(j);
          if (q !== 0x0a && q !== 0x0d) id += value[j]; // refs are stored "\n"-separated
          j++;
        }
        j++;
        continue;
      }
      if (d === 0x28) {
        let depth = 1;
        j++;
        while (j < n && depth > 0) {
          const e = value.charCodeAt(j);
          if (e === 0x5c) j++;
          else if (e === 0x28) depth++;
          else if (e === 0x29) depth--;
          j++;
        }
        continue;
      }
      if (d !== 0x20 && d !== 0x09 && d !== 0x0d && d !== 0x0a) id += value[j];
      j++;
    }
    i = j;
    const at = id.lastIndexOf('@');
    if (closed && at > 0 && at < id.length - 1) out.push(id);
  }
  return out;
}

function headerField(meta: SortSource, name: string): string | null {
  for (const [n, v] of meta.search?.fields ?? []) if (n === name) return v;
  return null;
}

const NO_ENVELOPE: MessageMeta['envelope'] = { date: null, subject: null, from: null, sender: null, replyTo: null, to: null, cc: null, bcc: null, inReplyTo: null, messageId: null };

/** Every key of one message, from its cached parse (a part missing from it counts as absent). */
export function sortKeysOf(meta: SortSource): SortKeys {
  const env = meta.envelope ?? NO_ENVELOPE;
  const { base, reply } = baseSubject(meta.search?.subject ?? (env.subject === null ? '' : decodeWords(env.subject)));
  const from = firstAddress(env.from);
  const to = firstAddress(env.to);
  const cc = firstAddress(env.cc);
  // RFC 5256 §3 REFERENCES: the References ids; without a valid one, the first In-Reply-To id.
  let refs = messageIds(headerField(meta, 'references'));
  if (refs.length === 0) refs = messageIds(env.inReplyTo, 1);
  return noNul({
    sent: typeof meta.sentDate === 'number' && Number.isFinite(meta.sentDate) ? meta.sentDate : null,
    subject: collationKey(base),
    reply,
    from: collationKey(from?.mailbox ?? ''),
    to: collationKey(to?.mailbox ?? ''),
    cc: collationKey(cc?.mailbox ?? ''),
    displayFrom: collationKey(displayValue(from)),
    displayTo: collationKey(displayValue(to)),
    messageId: messageIds(env.messageId, 1)[0] ?? null,
    refs,
  });
}

const hasNul = (s: string) => s.includes('\0');
const dropNul = (s: string) => (hasNul(s) ? s.split('\0').join('') : s);

/** Keys without U+0000 (PostgreSQL text cannot hold it; both stores keep the same keys). */
function noNul(k: SortKeys): SortKeys {
  const strs = [k.subject, k.from, k.to, k.cc, k.displayFrom, k.displayTo, k.messageId ?? ''];
  if (!strs.some(hasNul) && !k.refs.some(hasNul)) return k;
  return {
    ...k,
    subject: dropNul(k.subject),
    from: dropNul(k.from),
    to: dropNul(k.to),
    cc: dropNul(k.cc),
    displayFrom: dropNul(k.displayFrom),
    displayTo: dropNul(k.displayTo),
    messageId: k.messageId === null ? null : dropNul(k.messageId),
    refs: k.refs.map(dropNul),
  };
}
