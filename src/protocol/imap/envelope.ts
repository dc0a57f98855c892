// RFC 9051 §7.5.2 ENVELOPE serialisation. Matches Dovecot 2.3 byte for byte on the vectors in
// test/vectors/mime (see humanString for the subject and display names).
import type { Envelope, EnvelopeAddress } from '../mime/types.ts';
import { nstring, literal, quoted } from './strings.ts';

/**
 * A string meant for humans (subject, display name), written as Dovecot's
 * imap_append_string_for_humans() does: CR, LF, TAB and runs of spaces become one space, leading
 * and trailing whitespace go; a string that needed any change, or holds '"', '\' or 8-bit
 * characters (unless `utf8`), is sent as a literal, anything else as a plain quoted string.
 */
export function humanString(s: string | null, utf8 = false): string {
  if (s === null) return 'NIL';
  let modify = false;
  let lastLwsp = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0) { modify = true; lastLwsp = false; }
    else if (c === 13 || c === 10 || c === 9 || c === 32) {
      if (c !== 32 || lastLwsp) modify = true;
      lastLwsp = true;
    } else {
      if (c === 0x22 || c === 0x5c || (c > 0x7e && !utf8)) modify = true;
      lastLwsp = false;
    }
  }
  if (lastLwsp && s.length > 0) modify = true;
  if (!modify) return '"' + s + '"';
  // linear: one class repeated at the end of the pattern; each match is consumed.
  const out = s.replace(/\0/g, '\u0080').replace(/[\r\n\t ]+/g, ' ').trim();
  if (out === '') return '""';
  if (utf8 && !/["\\]/.test(out)) return quoted(out);
  return literal(out);
}

function addressList(list: EnvelopeAddress[] | null, utf8: boolean): string {
  if (!list || list.length === 0) return 'NIL';
  // Parts joined once: `s +=` over ~10^5 addresses builds a deep rope that GC and flattening
  // pay for again and again (superlinear on a 256 KiB header of `g: ;` groups).
  const parts = new Array<string>(list.length);
  for (let i = 0; i < list.length; i++) {
    const a = list[i]!;
    parts[i] = `(${humanString(a.name, utf8)} ${nstring(a.adl, utf8)} ${nstring(a.mailbox, utf8)} ${nstring(a.host, utf8)})`;
  }
  return '(' + parts.join('') + ')';
}

/**
 * `(date subject from sender reply-to to cc bcc in-reply-to message-id)`. `utf8`: the session
 * enabled UTF8=ACCEPT (RFC 9051 §6.3.1 / RFC 6855), so 8-bit strings may be sent quoted.
 */
export function writeEnvelope(env: Envelope, utf8 = false): string {
  // Sender and Reply-To default to From (the same array, RFC 9051 §7.5.2): written once, not 3×.
  const from = addressList(env.from, utf8);
  const same = (l: EnvelopeAddress[] | null) => (l === env.from ? from : addressList(l, utf8));
  return '(' + [
    nstring(env.date, utf8),
    humanString(env.subject, utf8),
    from,
    same(env.sender),
    same(env.replyTo),
    addressList(env.to, utf8),
    addressList(env.cc, utf8),
    addressList(env.bcc, utf8),
    nstring(env.inReplyTo, utf8),
    nstring(env.messageId, utf8),
  ].join(' ') + ')';
}
