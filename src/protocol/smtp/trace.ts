// Trace fields a receiving SMTP server adds (RFC 5321 §4.4) and the hop counter of the loop guard
// (RFC 5321 §6.3). Pure: strings and bytes only.

import { addressLiteral } from './address.ts';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number) => String(n).padStart(2, '0');

/** RFC 5322 §3.3 date-time in UTC: `Sun, 22 Nov 2026 02:21:46 +0000`. */
export function rfc5322Date(d: Date): string {
  return (
    `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`
  );
}

/**
 * RFC 5321 §4.4: "When the delivery SMTP server makes the final delivery of a message, it inserts a
 * return-path line at the beginning of the mail data." The reverse-path as given, `<>` for the
 * null sender.
 */
export function formatReturnPath(reversePath: string): string {
  return `Return-Path: <${clean(reversePath)}>\r\n`;
}

export interface ReceivedInfo {
  /** The EHLO/HELO argument. */
  helo: string | null;
  /** Reverse-DNS name of the peer, if known and different from its address literal. */
  clientHostname: string | null;
  remoteAddress: string;
  /** Our hostname (the "by" domain). */
  hostname: string;
  /** RFC 3848 protocol: ESMTP, ESMTPS, ESMTPA, ESMTPSA, SMTP… */
  protocol: string;
  /** Queue/session id (the ID clause). */
  id: string;
  /** TLS in use: protocol version and cipher suite. */
  tls: { version: string; cipher: string } | null;
  /** The recipient, only when the message has exactly one (RFC 5321 §7.2: don't disclose the others). */
  forRecipient: string | null;
  date: Date;
}

/**
 * RFC 5321 §4.4 Time-stamp-line:
 *   "Received:" FWS Stamp;  Stamp = From-domain By-domain Opt-info [CFWS] ";" FWS date-time
 *   From-domain = "FROM" FWS Extended-Domain; Extended-Domain = Domain FWS "(" TCP-info ")"
 * TLS details go in a comment (CFWS is allowed between the clauses), as Postfix does.
 */
export function formatReceived(r: ReceivedInfo): string {
  const lit = addressLiteral(r.remoteAddress);
  const helo = r.helo ? heloToken(r.helo) : 'unknown';
  const tcpInfo = r.clientHostname && r.clientHostname !== lit ? `${clean(r.clientHostname)} ${lit}` : lit;
  const lines = [`Received: from ${helo} (${tcpInfo})`];
  if (r.tls) lines.push(`\t(using ${token(r.tls.version)} with cipher ${token(r.tls.cipher)})`);
  lines.push(`\tby ${clean(r.hostname)} (Pillarbox) with ${token(r.protocol)} id ${token(r.id)}`);
  const date = rfc5322Date(r.date);
  lines.push(r.forRecipient ? `\tfor <${clean(r.forRecipient)}>; ${date}` : `\t; ${date}`);
  return lines.join('\r\n') + '\r\n';
}

/** The EHLO argument can be anything printable; keep what is domain- or literal-like, mask the rest. */
function heloToken(helo: string): string {
  return helo.replace(/[^A-Za-z0-9.\-_:[\]\u00a0-\uffff]/g, '_').slice(0, 255) || 'unknown';
}

function token(s: string): string {
  return s.replace(/[^A-Za-z0-9_.\-/]/g, '_').slice(0, 100);
}

/** No CR, LF or other controls may reach a header (the SMTP layer already refuses them; belt and braces). */
function clean(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, '');
}

/**
 * Counts `Received:` fields in the header section of a message fed in chunks (RFC 5321 §6.3 loop
 * detection: "simply counting the number of Received header fields"). Stops looking at the first
 * empty line (CRLF CRLF, or a bare LF line). Constant memory.
 */
export class ReceivedCounter {
  count = 0;
  #done = false;
  /** Bytes of the current line seen so far, up to 9 ("received:"). */
  #head = '';
  #lineLen = 0;
  #prevCR = false;

  get done(): boolean {
    return this.#done;
  }

  write(chunk: Uint8Array): void {
    if (this.#done) return;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (c === 0x0a) {
        // End of line. An empty line (nothing but an optional CR) ends the header section.
        if (this.#lineLen === 0 || (this.#lineLen === 1 && this.#prevCR)) {
          this.#done = true;
          return;
        }
        this.#head = '';
        this.#lineLen = 0;
        this.#prevCR = false;
        continue;
      }
      if (this.#lineLen < 9) {
        this.#head += String.fromCharCode(c);
        if (this.#head.length === 9 && this.#head.toLowerCase() === 'received:') this.count++;
      }
      this.#lineLen++;
      this.#prevCR = c === 0x0d;
    }
  }
}
