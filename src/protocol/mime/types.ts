// What the MIME parser computes once, at delivery, and the store caches with every message
// (`messages.meta`, JSON). IMAP FETCH (ENVELOPE, BODYSTRUCTURE, BODY[section]), SEARCH and the
// webmail read it from there; nothing re-parses a stored message per command.
// All offsets are absolute byte offsets into the raw message as stored.

/** RFC 9051 §7.5.2 ENVELOPE address: [name, adl, mailbox, host]; a group is [null,null,name,null] … [null,null,null,null]. */
export interface EnvelopeAddress {
  /** Display name, decoded to UTF-8 (RFC 2047), or null. */
  name: string | null;
  adl: string | null;
  /** Local part, or the group name for a group start, or null for a group end. */
  mailbox: string | null;
  /** Domain, or null for group start/end markers. */
  host: string | null;
}

/** RFC 9051 §7.5.2 ENVELOPE. Strings are raw header values (unfolded, not decoded) as IMAP sends them. */
export interface Envelope {
  date: string | null;
  subject: string | null;
  from: EnvelopeAddress[] | null;
  sender: EnvelopeAddress[] | null;
  replyTo: EnvelopeAddress[] | null;
  to: EnvelopeAddress[] | null;
  cc: EnvelopeAddress[] | null;
  bcc: EnvelopeAddress[] | null;
  inReplyTo: string | null;
  messageId: string | null;
}

export interface MimeNode {
  /** Start of this part's header block. */
  headerStart: number;
  /** End of the header block, including the blank line that ends it (== bodyStart). */
  headerEnd: number;
  bodyStart: number;
  bodyEnd: number;
  /** Lower-case media type and subtype; defaults per RFC 2045 §5.2 (text/plain, or message/rfc822 in multipart/digest). */
  type: string;
  subtype: string;
  /** Content-Type parameters, names lower-cased, RFC 2231 continuations joined and values decoded. */
  params: Array<[string, string]>;
  id: string | null;
  description: string | null;
  /** Content-Transfer-Encoding as given (upper-cased by IMAP serialisation), default '7BIT'. */
  encoding: string;
  md5: string | null;
  disposition: { type: string; params: Array<[string, string]> } | null;
  language: string[] | null;
  location: string | null;
  /** Body size in bytes (bodyEnd - bodyStart). */
  size: number;
  /** Lines in the body, for text/* and message/rfc822 (RFC 9051 §7.5.2). */
  lines: number;
  /** Children of a multipart. */
  children?: MimeNode[];
  /** For message/rfc822 (and message/global): the encapsulated message. */
  message?: { envelope: Envelope; root: MimeNode };
}

/** Header fields kept for SEARCH, decoded to UTF-8. */
export interface SearchHeaders {
  subject: string;
  from: string;
  to: string;
  cc: string;
  bcc: string;
  /** Every top-level header field, name lower-cased, value unfolded and decoded; in order. */
  fields: Array<[string, string]>;
}

/** A text part for SEARCH BODY/TEXT: body byte range [start, end), transfer encoding, charset, 1 if HTML. */
export type TextLeaf = [start: number, end: number, encoding: string, charset: string | null, html: 0 | 1];

export interface MessageMeta {
  /** Format version of this object. */
  v: 1;
  envelope: Envelope;
  root: MimeNode;
  /** Date: header as ms since epoch, null when absent or unparseable. */
  sentDate: number | null;
  /**
   * The Date: header's calendar date as written, as ms at 00:00 UTC of that date (SENTBEFORE /
   * SENTON / SENTSINCE disregard time and timezone, RFC 3501 §6.4.4). Absent in metas cached
   * before it existed: then computed from `envelope.date` (`sentDayOf` in src/store/store.ts).
   */
  sentDay?: number | null;
  search: SearchHeaders;
}
