// APPEND and REPLACE arguments: RFC 9051 §6.3.12 with MULTIAPPEND (RFC 3502), UTF8 (RFC 6855 §4),
// CATENATE (RFC 4469 §5) and REPLACE (RFC 8508 §5), in the RFC 4466 §2.3 form:
//   append         = "APPEND" SP mailbox 1*append-message
//   append-message = append-opts SP append-data
//   append-opts    = [SP flag-list] [SP date-time]
//   append-data    = literal / "UTF8" SP "(" literal8 ")" / "CATENATE" SP "(" cat-part *(SP cat-part) ")"
//   replace        = "REPLACE" SP seq-number SP mailbox append-message
// Also, for the session, which literal of an APPEND is being announced (appendLiteralTarget), so a
// message is streamed into the store as it arrives instead of being buffered. Pure.

import type { RawCommand } from './receiver.ts';
import { Reader } from './reader.ts';
import { readTag } from './parser.ts';
import type { AppendMessage, CatPart, ImapCommand } from './types.ts';

/** Messages one APPEND may carry (MULTIAPPEND); parts one CATENATE may join. */
export const MAX_APPEND_MESSAGES = 1000;
export const MAX_CATENATE_PARTS = 100;

/** [SP flag-list] [SP date-time] SP append-data, from just before the first SP. */
function appendMessage(r: Reader): AppendMessage {
  r.sp();
  const m: AppendMessage = { flags: null, date: null, message: null, literalIndex: -1, utf8: false, catenate: null };
  if (r.peek() === '(') {
    m.flags = r.flagList();
    r.sp();
  }
  if (r.peek() === '"') {
    m.date = r.dateTime();
    r.sp();
  }
  if (r.takeWord('CATENATE')) {
    // RFC 4469 §5
    r.sp();
    m.catenate = r.list(() => catPart(r), false);
    if (m.catenate.length > MAX_CATENATE_PARTS) r.fail(`At most ${MAX_CATENATE_PARTS} CATENATE parts`);
    return m;
  }
  if (r.takeWord('UTF8')) {
    // RFC 6855 §4: append-data =/ "UTF8" SP "(" literal8 ")"
    m.utf8 = true;
    r.sp();
    r.expect('(');
  }
  if (!r.atLiteral()) r.fail('Expected the message as a literal');
  m.literalIndex = r.literalIndex();
  m.message = r.literalBuffer();
  if (m.utf8) r.expect(')');
  return m;
}

function catPart(r: Reader): CatPart {
  if (r.takeWord('TEXT')) {
    r.sp();
    if (!r.atLiteral()) r.fail('Expected a literal after TEXT');
    const literalIndex = r.literalIndex();
    return { kind: 'text', literalIndex, data: r.literalBuffer() };
  }
  if (r.takeWord('URL')) {
    r.sp();
    return { kind: 'url', url: r.astring() };
  }
  return r.fail('Expected TEXT or URL');
}

export function parseAppend(r: Reader): ImapCommand {
  r.sp();
  const mailbox = r.astring();
  const messages = [appendMessage(r)];
  // RFC 3502: 1*append-message
  while (!r.atEnd()) {
    if (messages.length >= MAX_APPEND_MESSAGES) r.fail(`At most ${MAX_APPEND_MESSAGES} messages in one APPEND`);
    messages.push(appendMessage(r));
  }
  return { name: 'APPEND', mailbox, messages };
}

/** RFC 8508 §5: REPLACE SP seq-number SP mailbox append-message (UID REPLACE: a UID). */
export function parseReplace(r: Reader, uid: boolean): ImapCommand {
  r.sp();
  // seq-number = nz-number / "*" (RFC 3501 §9); "*" is the last message (-1).
  const target = r.take('*') ? -1 : r.nzNumber();
  if (target > 0xffffffff) r.fail('Invalid message number');
  r.sp();
  const mailbox = r.astring();
  return { name: 'REPLACE', uid, target, mailbox, message: appendMessage(r) };
}

/** What an announced literal of an APPEND/REPLACE is: a message (or a CATENATE TEXT part) of it. */
export interface AppendLiteral {
  /** The mailbox name as sent. */
  mailbox: string;
  replace: boolean;
  /** Which message of the command (0 first). */
  message: number;
  /** For a CATENATE TEXT part: which part of the message; null for a message literal. */
  part: number | null;
}

/**
 * For an APPEND or [UID] REPLACE whose literal is announced (the last segment ends where the
 * announcement was): a message or CATENATE text literal, with the mailbox name, so the session can
 * check the mailbox and APPENDLIMIT before "+" and stream the data. Null for another literal (the
 * mailbox name) or a line that does not parse.
 */
export function appendLiteralTarget(pending: RawCommand): AppendLiteral | null {
  const r = new Reader(pending);
  const last = pending.segments.length - 1;
  try {
    r.tag = readTag(pending);
    if (r.tag === null) return null;
    r.pos = r.tag.length;
    r.sp();
    let replace = true;
    if (r.takeWord('UID')) {
      r.sp();
      if (!r.takeWord('REPLACE')) return null;
    } else if (!r.takeWord('REPLACE')) {
      if (!r.takeWord('APPEND')) return null;
      replace = false;
    }
    r.sp();
    if (replace) {
      if (!r.take('*')) r.nzNumber();
      r.sp();
    }
    if (r.si === last && r.atLiteral()) return null; // the mailbox
    const mailbox = r.astring();
    for (let message = 0; message < MAX_APPEND_MESSAGES && !(replace && message > 0); message++) {
      if (r.atLiteral()) return null;
      r.sp();
      if (r.peek() === '(') {
        r.flagList();
        r.sp();
      }
      if (r.peek() === '"') {
        r.dateTime();
        r.sp();
      }
      if (r.takeWord('CATENATE')) {
        const part = catenateLiteral(r, last);
        if (part !== null) return { mailbox, replace, message, part };
        continue;
      }
      const utf8 = r.takeWord('UTF8');
      if (utf8) {
        r.sp();
        r.expect('(');
      }
      if (!r.atLiteral()) return null;
      if (r.si === last) return { mailbox, replace, message, part: null };
      r.literalBuffer();
      if (utf8) r.expect(')');
    }
    return null;
  } catch {
    return null;
  }
}

/** Inside CATENATE (…): the index of the TEXT part whose literal is announced, or null once ")" closed it. */
function catenateLiteral(r: Reader, last: number): number | null {
  r.sp();
  r.expect('(');
  for (let part = 0; part < MAX_CATENATE_PARTS; part++) {
    if (part > 0) {
      if (r.take(')')) return null;
      r.sp();
    }
    if (r.takeWord('TEXT')) {
      r.sp();
      if (!r.atLiteral()) throw new Error('not a literal');
      if (r.si === last) return part;
      r.literalBuffer();
    } else if (r.takeWord('URL')) {
      r.sp();
      r.astring();
    } else {
      throw new Error('not a cat-part');
    }
  }
  throw new Error('too many parts');
}
