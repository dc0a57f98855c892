// What the MIME parser (./parser.ts) takes from a parsed header block: the ENVELOPE (RFC 9051
// §7.5.2), the SEARCH header texts (RFC 3501 §6.4.4), the Date: as a time, and a part's MIME
// fields (RFC 2045 §5-6, RFC 2183, RFC 3282, RFC 2557). The ENVELOPE and SEARCH texts come as
// generators of steps so the end of a parse can be sliced (MimeParser.endSteps, finishSliced).
import type { MimeNode, Envelope, SearchHeaders } from './types.ts';
import { unfoldValue, bytesToString, parseMimeHeader, parseAddressList, decodeWords, stripComments, type HeaderField } from './headers.ts';

function firstField(fields: HeaderField[], name: string): HeaderField | undefined {
  for (const f of fields) if (f.name === name) return f;
  return undefined;
}

function lastField(fields: HeaderField[], name: string): HeaderField | undefined {
  for (let i = fields.length - 1; i >= 0; i--) if (fields[i]!.name === name) return fields[i];
  return undefined;
}

export function fieldString(fields: HeaderField[], name: string): string | null {
  const f = firstField(fields, name);
  return f ? unfoldValue(f.value) : null;
}

/** Raw value without the whitespace after the colon; folding kept (`nolf` drops CR/LF). */
function rawValue(f: HeaderField | undefined, nolf: boolean): string | null {
  if (!f) return null;
  // linear: anchored at the start, one character class; a single-character class with /g.
  let s = bytesToString(f.value).replace(/^[ \t]+/, '');
  if (nolf) s = s.replace(/[\r\n]/g, ''); // linear: single-character class
  return s;
}

/** Runs a generator of steps to its end (the synchronous form of the *Steps functions). */
export function drain<T>(g: Generator<void, T>): T {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
  }
}

/**
 * RFC 9051 §7.5.2 ENVELOPE from a header block. As Dovecot does, the last occurrence of a field
 * wins, values are raw (RFC 2047 words not decoded), and the subject keeps its folding so that
 * writeEnvelope() can clean it up exactly as Dovecot does.
 */
export function buildEnvelope(fields: HeaderField[]): Envelope {
  return drain(envelopeSteps(fields));
}

/** buildEnvelope, yielding after each address field (each up to MAX_ENVELOPE_ADDRESSES). */
export function* envelopeSteps(fields: HeaderField[]): Generator<void, Envelope> {
  const lists: Array<ReturnType<typeof parseAddressList>> = [];
  for (const name of ['from', 'sender', 'reply-to', 'to', 'cc', 'bcc']) {
    const f = lastField(fields, name);
    lists.push(f ? parseAddressList(bytesToString(f.value)) : null);
    if (f) yield;
  }
  const [from, sender, replyTo, to, cc, bcc] = lists as [typeof lists[0], typeof lists[0], typeof lists[0], typeof lists[0], typeof lists[0], typeof lists[0]];
  return {
    date: rawValue(lastField(fields, 'date'), true),
    subject: rawValue(lastField(fields, 'subject'), false),
    from,
    // RFC 9051 §7.5.2: absent or empty Sender/Reply-To default to From.
    sender: sender ?? from,
    replyTo: replyTo ?? from,
    to,
    cc,
    bcc,
    inReplyTo: rawValue(lastField(fields, 'in-reply-to'), true),
    messageId: rawValue(lastField(fields, 'message-id'), true),
  };
}

/**
 * SEARCH FROM/TO/CC/BCC text (RFC 3501 §6.4.4, "contains the specified string"): the header as
 * written (decoded), then each parsed address on a line of its own: the display name, and
 * mailbox@host with comments and white space gone (as Dovecot matches them), so
 * `<user (c)@ (c) example.org>` is found by `user@example.org`. Group names count as names.
 * `decoded[i]` is fields[i]'s decoded value (each field is decoded once for all of buildSearch).
 */
function addrText(fields: HeaderField[], decoded: readonly string[], name: string): string {
  const out: string[] = [];
  const parsed: string[] = [];
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (f.name !== name) continue;
    out.push(decoded[i]!);
    for (const a of parseAddressList(bytesToString(f.value)) ?? []) {
      if (a.host === null) {
        if (a.mailbox) parsed.push(decodeWords(a.mailbox)); // group start (RFC 9051 §7.5.2)
        continue;
      }
      if (a.name) parsed.push(decodeWords(a.name));
      parsed.push(`${a.mailbox === 'MISSING_MAILBOX' ? '' : a.mailbox}@${a.host === 'MISSING_DOMAIN' ? '' : a.host}`);
    }
  }
  const raw = out.join(', ');
  return parsed.length ? raw + '\n' + parsed.join('\n') : raw;
}

/** The SEARCH header texts, yielding after each field's decoding and each address text. */
export function* searchSteps(fields: HeaderField[]): Generator<void, SearchHeaders> {
  // RFC 2047 words decoded once per field: a 256 KiB To: of encoded words took 25 ms per decode.
  const decoded: string[] = [];
  for (const f of fields) {
    decoded.push(decodeWords(unfoldValue(f.value)));
    if (f.value.length > 1024) yield;
  }
  const subject = fields.findIndex((f) => f.name === 'subject');
  const addr: string[] = [];
  for (const name of ['from', 'to', 'cc', 'bcc']) {
    addr.push(addrText(fields, decoded, name));
    yield;
  }
  return {
    subject: subject < 0 ? '' : decoded[subject]!,
    from: addr[0]!,
    to: addr[1]!,
    cc: addr[2]!,
    bcc: addr[3]!,
    fields: fields.map((f, i) => [f.name, decoded[i]!] as [string, string]),
  };
}

export function parseDate(s: string | null): number | null {
  if (!s) return null;
  // RFC 5322 §3.3; strip comments like "(UTC)" that Date.parse rejects. Date.parse gets at most
  // 200 characters (a date is ~31): its own parser's cost is then bounded too.
  const d = stripComments(s.length > 4096 ? s.slice(0, 4096) : s, '').replace(/\s+/g, ' ').trim(); // linear: one class, /g
  const t = d.length > 200 ? NaN : Date.parse(d);
  return Number.isFinite(t) ? t : null;
}

/**
 * Fills a node's MIME fields from its header (RFC 2045 §5-6, RFC 2183, RFC 3282, RFC 2557).
 * As Dovecot: the first Content-Type is always honoured; the other Content-* fields only in a
 * MIME part (RFC 2045 §4): MIME-Version or Content-Type present, or a body part of a multipart.
 */
export function applyMimeHeaders(node: MimeNode, fields: HeaderField[], digestDefault: boolean, inMultipart: boolean): void {
  const ct = fieldString(fields, 'content-type');
  if (ct !== null) {
    const parsed = parseMimeHeader(ct, true);
    const slash = parsed.value.indexOf('/');
    node.type = parsed.value.slice(0, slash);
    node.subtype = parsed.value.slice(slash + 1);
    node.params = parsed.params;
  } else if (digestDefault) {
    // RFC 2046 §5.1.5
    node.type = 'message';
    node.subtype = 'rfc822';
  }
  if (!inMultipart && ct === null && !firstField(fields, 'mime-version')) return;
  const cte = fieldString(fields, 'content-transfer-encoding');
  if (cte) {
    const tok = /^[^\s;(]+/.exec(cte); // linear: anchored, one class
    if (tok) node.encoding = tok[0];
  }
  node.id = fieldString(fields, 'content-id');
  node.description = fieldString(fields, 'content-description');
  node.md5 = fieldString(fields, 'content-md5');
  const cd = fieldString(fields, 'content-disposition');
  if (cd !== null) {
    const d = parseMimeHeader(cd, false);
    if (d.value !== '') node.disposition = { type: d.value, params: d.params };
  }
  const cl = fieldString(fields, 'content-language');
  if (cl !== null) {
    const langs = stripComments(cl, ' ').split(/[\s,]+/).filter((x) => x !== ''); // linear: one class
    node.language = langs.length ? langs : null;
  }
  node.location = fieldString(fields, 'content-location');
}
