// Delivery Status Notifications (RFC 3464) as multipart/report (RFC 6522). Pure: values in, the
// finished message bytes out (CRLF line ends, ready to store or queue).
//
//   part 1  text/plain: what happened, in words a user understands ("Your message to X could not be
//           delivered: mailbox full — returned to sender."); UTF-8, quoted-printable when not ASCII.
//   part 2  message/delivery-status: per-message fields (RFC 3464 §2.2), then one block per
//           recipient (§2.3), in the order of the RFC's grammar.
//   part 3  message/rfc822 (RET=FULL) or text/rfc822-headers (RET=HDRS, RFC 6522 §4).
//
// Decisions:
// - The delivery-status part stays 7-bit (RFC 3464 §2.1.2): non-ASCII characters in a diagnostic or
//   envelope id are written as `\x{HHHH}` (the escape of RFC 6533 §3), control characters as
//   spaces; a non-ASCII address uses the address type `utf-8` with the same escapes (RFC 6533 §3).
// - Long Diagnostic-Code values are folded at spaces (the part has header syntax) and cut at
//   MAX_DIAGNOSTIC characters.
// - The boundary is random and checked against every part; a collision picks another one.
// - Auto-Submitted: auto-replied (RFC 3834 §5) so that autoresponders never answer a DSN.

import { randomBytes } from 'node:crypto';
import { rfc5322Date } from './trace.ts';

export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';
export interface DsnRecipient {
  /** rfc822;addr (a bare address gets `rfc822;`). */
  finalRecipient: string;
  /** ORCPT as given ("rfc822;addr"), decoded from xtext. */
  originalRecipient?: string | null;
  action: DsnAction;
  /** RFC 3463 status, e.g. "5.1.1". */
  status: string;
  /** dns;mx.example.org (a bare name gets `dns;`). */
  remoteMta?: string | null;
  /** The remote reply, e.g. "550 5.1.1 no such user" (emitted as "smtp; ..."). */
  diagnostic?: string | null;
  lastAttempt?: Date | null;
  willRetryUntil?: Date | null;
}
export interface DsnInput {
  /** Our hostname. */
  reportingMta: string;
  /** Header From:, e.g. "MAILER-DAEMON@host". */
  from: string;
  /** The envelope sender being told. */
  to: string;
  envid?: string | null;
  arrivalDate?: Date | null;
  /** At least one. */
  recipients: DsnRecipient[];
  /** The original message (or only its header block). */
  original: Buffer;
  /** HDRS: include only the header block as text/rfc822-headers. */
  ret: 'FULL' | 'HDRS';
  now: Date;
  /** Message-ID for the DSN (without <>). */
  messageId: string;
}

/** Longest Diagnostic-Code text kept (characters). */
export const MAX_DIAGNOSTIC = 2000;
/** Most recipients in one DSN. */
export const MAX_DSN_RECIPIENTS = 1000;
/** RFC 3463 §3.1 status-code: class "." subject "." detail. */
const STATUS = /^[245]\.\d{1,3}\.\d{1,3}$/;
/** An RFC 3464 typed value: addr-type / mta-name-type ";" … (the type is an atom). */
const TYPED = /^[A-Za-z0-9-]{1,32};/;

/** Plain words for the codes users meet most (RFC 3463 §3). */
const REASONS: Record<string, string> = {
  '1.1': 'no such user',
  '1.2': 'the destination domain does not exist or accepts no mail',
  '1.3': 'the recipient address is not valid',
  '1.10': 'the destination domain accepts no mail (null MX)',
  '2.1': 'the mailbox is disabled',
  '2.2': 'mailbox full',
  '2.3': 'the message is too large for the recipient',
  '3.4': 'the message is too large',
  '4.1': 'the receiving server did not answer',
  '4.3': 'the destination domain could not be found right now',
  '4.4': 'no mail server could be found for the destination domain',
  '4.6': 'the message is looping',
  '4.7': 'delivery time expired',
  '6.7': 'the receiving server does not accept internationalised addresses (SMTPUTF8)',
  '7.1': 'refused by the receiving server\'s policy',
  '7.26': 'refused: the message failed authentication checks',
};

export function composeDsn(i: DsnInput): Buffer {
  if (i.recipients.length === 0) throw new RangeError('composeDsn: at least one recipient');
  if (i.recipients.length > MAX_DSN_RECIPIENTS) throw new RangeError(`composeDsn: at most ${MAX_DSN_RECIPIENTS} recipients`);
  for (const r of i.recipients) if (!STATUS.test(r.status)) throw new RangeError(`composeDsn: bad status "${r.status}"`);

  const human = encodeText(humanText(i));
  const status = Buffer.from(deliveryStatus(i), 'ascii');
  const third = thirdPart(i);
  const parts = [human.body, status, third.body];

  let boundary = '';
  for (;;) {
    boundary = `=_dsn_${randomBytes(12).toString('hex')}`;
    const b = Buffer.from(boundary, 'ascii');
    if (!parts.some((p) => p.includes(b))) break;
  }

  const subject = i.recipients.some((r) => r.action === 'failed')
    ? 'Undelivered mail returned to sender'
    : i.recipients.some((r) => r.action === 'delayed')
      ? 'Delivery delayed: still trying'
      : 'Delivery report';
  const head = [
    `From: ${headerAddress(i.from, 'Mail Delivery System')}`,
    `To: <${line(i.to)}>`,
    `Subject: ${subject}`,
    `Date: ${rfc5322Date(i.now)}`,
    `Message-ID: <${line(i.messageId).replace(/[<>\s]/g, '')}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"`,
    '',
    'This is a MIME-formatted delivery status notification (RFC 3464).',
    '',
  ].join('\r\n');

  const chunks: Buffer[] = [Buffer.from(head, 'utf8')];
  const sep = (headers: string) => Buffer.from(`\r\n--${boundary}\r\n${headers}\r\n\r\n`, 'ascii');
  chunks.push(sep(`Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: ${human.encoding}`), human.body);
  chunks.push(sep('Content-Type: message/delivery-status'), status);
  chunks.push(sep(third.headers), third.body);
  chunks.push(Buffer.from(`\r\n--${boundary}--\r\n`, 'ascii'));
  return Buffer.concat(chunks);
}

/** Part 1: one paragraph per recipient. */
function humanText(i: DsnInput): string {
  const out: string[] = [`This is the mail system at ${i.reportingMta}.`, ''];
  for (const r of i.recipients) {
    const to = bare(r.originalRecipient ?? r.finalRecipient);
    const reason = reasonOf(r);
    switch (r.action) {
      case 'failed':
        out.push(`Your message to ${to} could not be delivered: ${reason} — returned to sender.`);
        break;
      case 'delayed': {
        const until = r.willRetryUntil ? ` until ${rfc5322Date(r.willRetryUntil)}` : '';
        out.push(`Your message to ${to} has not been delivered yet: ${reason}. Delivery will be retried${until}; you do not need to send it again.`);
        break;
      }
      case 'delivered':
        out.push(`Your message to ${to} was delivered.`);
        break;
      case 'relayed':
        out.push(`Your message to ${to} was passed on to a system that sends no delivery notifications.`);
        break;
      case 'expanded':
        out.push(`Your message to ${to} was delivered and forwarded to further recipients.`);
        break;
    }
    if (r.diagnostic) out.push(`The ${r.remoteMta ? `server ${bare(r.remoteMta)}` : 'mail system'} said: ${cut(line(r.diagnostic), 900)}`);
    out.push('');
  }
  if (i.recipients.some((r) => r.action === 'failed' || r.action === 'delayed')) {
    out.push(i.ret === 'FULL' ? 'Your original message is attached.' : 'The headers of your original message are attached.');
  }
  return out.join('\r\n') + '\r\n';
}

/** The reason in words: the detail of the status code, else the diagnostic's text. */
function reasonOf(r: DsnRecipient): string {
  const detail = r.status.slice(2);
  const known = REASONS[detail];
  if (known) return known;
  if (r.diagnostic) return cut(line(r.diagnostic), 200);
  return r.status.startsWith('5') ? 'permanent failure' : 'temporary failure';
}

/** Part 2: RFC 3464 §2.2 per-message fields, then §2.3 per-recipient fields. */
function deliveryStatus(i: DsnInput): string {
  const f: string[] = [`Reporting-MTA: dns; ${ascii(i.reportingMta)}`];
  if (i.envid) f.push(`Original-Envelope-Id: ${ascii(i.envid)}`);
  if (i.arrivalDate) f.push(`Arrival-Date: ${rfc5322Date(i.arrivalDate)}`);
  for (const r of i.recipients) {
    f.push('');
    if (r.originalRecipient) f.push(`Original-Recipient: ${typed(r.originalRecipient, 'rfc822')}`);
    f.push(`Final-Recipient: ${typed(r.finalRecipient, 'rfc822')}`);
    f.push(`Action: ${r.action}`);
    f.push(`Status: ${r.status}`);
    if (r.remoteMta) f.push(`Remote-MTA: ${typed(r.remoteMta, 'dns')}`);
    if (r.diagnostic) {
      const d = line(r.diagnostic);
      const text = /^smtp;/i.test(d) ? d.slice(5).trim() : d;
      f.push(fold(`Diagnostic-Code: smtp; ${ascii(cut(text, MAX_DIAGNOSTIC))}`));
    }
    if (r.lastAttempt) f.push(`Last-Attempt-Date: ${rfc5322Date(r.lastAttempt)}`);
    if (r.willRetryUntil && r.action === 'delayed') f.push(`Will-Retry-Until: ${rfc5322Date(r.willRetryUntil)}`);
  }
  return f.join('\r\n') + '\r\n';
}

/** Part 3: the original (RET=FULL) or its header block (RET=HDRS). */
function thirdPart(i: DsnInput): { headers: string; body: Buffer } {
  const body = i.ret === 'FULL' ? i.original : headerBlock(i.original);
  const type = i.ret === 'FULL' ? 'message/rfc822' : 'text/rfc822-headers';
  // RFC 2046 §5.2.1: message/rfc822 is 7bit, 8bit or binary; say 8bit when it is not ASCII.
  const eightBit = body.some((b) => b >= 0x80);
  return { headers: `Content-Type: ${type}${eightBit ? '\r\nContent-Transfer-Encoding: 8bit' : ''}`, body: trimFinalNewline(body) };
}

/** The header block including its blank line (the whole buffer when it has no body). */
export function headerBlock(msg: Buffer): Buffer {
  const crlf = msg.indexOf('\r\n\r\n');
  const lf = msg.indexOf('\n\n');
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return msg.subarray(0, crlf + 4);
  if (lf >= 0) return msg.subarray(0, lf + 2);
  return msg;
}

/** The part's CRLF before the boundary belongs to the boundary (RFC 2046 §5.1.1): drop one final newline. */
function trimFinalNewline(b: Buffer): Buffer {
  if (b.length >= 2 && b[b.length - 2] === 0x0d && b[b.length - 1] === 0x0a) return b.subarray(0, b.length - 2);
  if (b.length >= 1 && b[b.length - 1] === 0x0a) return b.subarray(0, b.length - 1);
  return b;
}

/** UTF-8 text as 7bit when it is ASCII, else quoted-printable (RFC 2045 §6.7). */
function encodeText(text: string): { encoding: '7bit' | 'quoted-printable'; body: Buffer } {
  const raw = Buffer.from(text, 'utf8');
  if (!raw.some((b) => b >= 0x80)) return { encoding: '7bit', body: raw };
  return { encoding: 'quoted-printable', body: Buffer.from(quotedPrintable(text), 'ascii') };
}

function quotedPrintable(text: string): string {
  const out: string[] = [];
  for (const l of text.split('\r\n')) {
    let cur = '';
    const bytes = Buffer.from(l, 'utf8');
    for (let k = 0; k < bytes.length; k++) {
      const b = bytes[k]!;
      const last = k === bytes.length - 1;
      const plain = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !last);
      const tok = plain ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
      if (cur.length + tok.length > 75) {
        out.push(cur + '=');
        cur = '';
      }
      cur += tok;
    }
    out.push(cur);
  }
  return out.join('\r\n');
}

/** One line: CR, LF and other controls become spaces. */
function line(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    out += c < 0x20 || c === 0x7f ? ' ' : ch;
  }
  return out.trim();
}

/** 7-bit: non-ASCII as \x{HHHH} (RFC 6533 §3), controls as spaces. */
function ascii(s: string): string {
  let out = '';
  for (const ch of line(s)) {
    const c = ch.codePointAt(0)!;
    out += c > 0x7e ? `\\x{${c.toString(16).toUpperCase()}}` : ch;
  }
  return out;
}

/** A typed field value (`rfc822; a@b`, `dns; mx`): the type given, or `dflt`; non-ASCII → utf-8 type. */
function typed(v: string, dflt: string): string {
  const s = line(v);
  const m = TYPED.exec(s);
  const type = m ? s.slice(0, m[0].length - 1) : dflt;
  const value = (m ? s.slice(m[0].length) : s).trim();
  const nonAscii = [...value].some((ch) => ch.codePointAt(0)! > 0x7e);
  if (nonAscii && type.toLowerCase() === 'rfc822') return `utf-8; ${ascii(value)}`;
  return `${type}; ${ascii(value)}`;
}

/** The value without its `type;` prefix, for the human text. */
function bare(v: string): string {
  const s = line(v);
  const m = TYPED.exec(s);
  return m ? s.slice(m[0].length).trim() : s;
}

function cut(s: string, n: number): string {
  return s.length > n ? s.slice(0, n) + '…' : s;
}

/** Folds a field at spaces so lines stay under 78 characters where possible (RFC 5322 §2.2.3). */
function fold(field: string): string {
  if (field.length <= 78) return field;
  const words = field.split(' ');
  const lines: string[] = [];
  let cur = words[0]!;
  for (let k = 1; k < words.length; k++) {
    const w = words[k]!;
    if (cur.length + 1 + w.length > 78 && cur.trim() !== '') {
      lines.push(cur);
      cur = ' ' + w;
    } else cur += ' ' + w;
  }
  lines.push(cur);
  return lines.join('\r\n');
}

/** `Name <addr>` for a bare address; a value with its own angle brackets as given. */
function headerAddress(v: string, name: string): string {
  const s = line(v);
  return s.includes('<') ? s : `${name} <${s}>`;
}
