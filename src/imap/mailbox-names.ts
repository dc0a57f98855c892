// Mailbox names between the wire and the store (RFC 9051 §5.1, RFC 3501 §5.1.3, RFC 6855 §3):
// modified UTF-7 for IMAP4rev1 clients, UTF-8 for IMAP4rev2 / UTF8=ACCEPT ones; INBOX canonical;
// `/` the separator. The store's own rules (mailbox-limits.ts) apply on create and rename.
import { decodeMailboxUtf7, encodeMailboxUtf7 } from '../protocol/imap/utf7.ts';
import { imapString } from '../protocol/imap/strings.ts';
import { ImapNo } from './errors.ts';

/** Client mailbox name → store name (UTF-8, `/` separator, INBOX canonical). */
export function mailboxFromClient(raw: string, utf8: boolean, maxBytes: number): string {
  let name = raw;
  if (!utf8) {
    // Modified UTF-7 from rev1 clients (RFC 3501 §5.1.3); a UTF-8 client's "&" is literal.
    const d = decodeMailboxUtf7(raw);
    if (d === null) throw new ImapNo('CANNOT', 'Mailbox name is not valid modified UTF-7');
    name = d;
  }
  if (name.length === 0) throw new ImapNo('CANNOT', 'Empty mailbox name');
  // UTF-16 length ≤ UTF-8 length: cheap here; the store checks the exact rule (mailbox-limits.ts).
  if (name.length > maxBytes) throw new ImapNo('LIMIT', `Mailbox name longer than ${maxBytes} bytes`);
  // INBOX is case-insensitive (RFC 9051 §5.1).
  const slash = name.indexOf('/');
  const first = slash < 0 ? name : name.slice(0, slash);
  if (first.toUpperCase() === 'INBOX') name = 'INBOX' + name.slice(first.length);
  return name;
}

/** Validates a name for CREATE/RENAME targets. */
export function checkNewMailboxName(name: string): void {
  if (name.startsWith('/') || name.endsWith('/') || name.includes('//')) throw new ImapNo('CANNOT', 'Invalid mailbox name');
  for (const ch of name) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || c === 0x7f || ch === '*' || ch === '%') throw new ImapNo('CANNOT', 'Mailbox names cannot contain control characters or wildcards');
  }
}

/** Store name → wire form (astring). */
export function mailboxToClient(name: string, utf8: boolean): string {
  return imapString(utf8 ? name : encodeMailboxUtf7(name), utf8);
}
