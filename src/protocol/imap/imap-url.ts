// IMAP URLs as CATENATE uses them (RFC 4469 §3: relative message / message part URLs of RFC 5092
// on the current server and session). Accepted forms, keys case-insensitive:
//   "/" enc-mailbox [";UIDVALIDITY=" nz-number] "/;UID=" nz-number ["/;SECTION=" enc-section] ["/;PARTIAL=" number ["." nz-number]]
//   ";UID=" nz-number [...]            (a message of the selected mailbox)
// Anything else (an absolute imap:// URL, URLAUTH, a mailbox list or search) is refused (null):
// RFC 4469 §3 leaves those out ("a server implementing only this specification would return NO").
// enc-mailbox and enc-section are %-encoded UTF-8 (RFC 5092 §5, §9). Pure, no RegExp backtracking.

export interface ImapUrl {
  /** Mailbox name (UTF-8), or null for the selected mailbox. */
  mailbox: string | null;
  uidValidity: number | null;
  uid: number;
  /** The section-spec as in FETCH BODY[…] (RFC 9051 §9), or null for the whole message. */
  section: string | null;
  partial: { start: number; length: number | null } | null;
}

const MAX_URL = 2048;

function nz(s: string): number | null {
  if (s.length === 0 || s.length > 10) return null;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) < 0x30 || s.charCodeAt(i) > 0x39) return null;
  const n = Number(s);
  return n >= 1 && n <= 0xffffffff ? n : null;
}

function decode(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

export function parseImapUrl(url: string): ImapUrl | null {
  if (url.length === 0 || url.length > MAX_URL) return null;
  let mailbox: string | null = null;
  let params: string;
  let validityAllowed = false;
  if (url[0] === '/') {
    const semi = url.indexOf(';');
    if (semi < 0) return null;
    let enc = url.slice(1, semi);
    if (enc.endsWith('/')) enc = enc.slice(0, -1);
    else validityAllowed = true; // "/Drafts;UIDVALIDITY=…/;UID=…"
    if (enc === '' || enc.includes('?')) return null;
    mailbox = decode(enc);
    if (mailbox === null || mailbox === '') return null;
    params = url.slice(semi + 1);
  } else if (url[0] === ';') {
    params = url.slice(1);
  } else {
    return null;
  }
  const out: ImapUrl = { mailbox, uidValidity: null, uid: 0, section: null, partial: null };
  const segs = params.split('/;');
  let i = 0;
  const kv = (seg: string): [string, string] | null => {
    const eq = seg.indexOf('=');
    return eq < 0 ? null : [seg.slice(0, eq).toUpperCase(), seg.slice(eq + 1)];
  };
  let p = kv(segs[i] ?? '');
  if (p && p[0] === 'UIDVALIDITY') {
    if (!validityAllowed) return null;
    out.uidValidity = nz(p[1]);
    if (out.uidValidity === null) return null;
    p = kv(segs[++i] ?? '');
  } else if (validityAllowed) {
    return null; // "/Drafts;UID=1": the mailbox must end in "/" before ";UID"
  }
  if (!p || p[0] !== 'UID') return null;
  const uid = nz(p[1]);
  if (uid === null) return null;
  out.uid = uid;
  p = kv(segs[++i] ?? '');
  if (p && p[0] === 'SECTION') {
    out.section = decode(p[1]);
    if (out.section === null || out.section === '') return null;
    p = kv(segs[++i] ?? '');
  }
  if (p && p[0] === 'PARTIAL') {
    const dot = p[1].indexOf('.');
    const a = dot < 0 ? p[1] : p[1].slice(0, dot);
    const start = a === '0' ? 0 : nz(a);
    const length = dot < 0 ? null : nz(p[1].slice(dot + 1));
    if (start === null || (dot >= 0 && length === null)) return null;
    out.partial = { start, length };
    i++;
  } else if (p) {
    return null;
  }
  return i >= segs.length ? out : null; // nothing left over
}
