// IMAP string forms (RFC 9051 §4.3): quoted when safe, literal otherwise; NIL for null.

/** True when `s` can be sent as a quoted string: no CR, LF or NUL, and (unless utf8) only ASCII. */
export function isQuotable(s: string, utf8 = false): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d) return false;
    if (c > 0x7e && !utf8) return false;
  }
  return s.length <= 1024;
}

/** A quoted string; caller checked isQuotable. */
export function quoted(s: string): string {
  // Most strings (ENVELOPE's NIL-heavy address parts: 10^5 per big header) need no escaping.
  if (!s.includes('"') && !s.includes('\\')) return '"' + s + '"';
  return '"' + s.replace(/[\\"]/g, (m) => '\\' + m) + '"';
}

/** A literal `{n}\r\n` + bytes (UTF-8). */
export function literal(s: string): string {
  return `{${Buffer.byteLength(s, 'utf8')}}\r\n${s}`;
}

/** astring/string for responses: quoted if possible, else a literal. */
export function imapString(s: string, utf8 = false): string {
  return isQuotable(s, utf8) ? quoted(s) : literal(s);
}

/** nstring: NIL for null. */
export function nstring(s: string | null | undefined, utf8 = false): string {
  return s == null ? 'NIL' : imapString(s, utf8);
}
