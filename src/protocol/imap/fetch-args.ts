// FETCH arguments (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162 §3.1.4 CHANGEDSINCE / §3.2.6 VANISHED,
// RFC 9394 §3.3 PARTIAL). Pure.

import type { Reader } from './reader.ts';
import type { FetchItem, ImapCommand, Partial, PartialRange, SectionSpec, SectionText } from './types.ts';
import { partialRange } from './search-args.ts';

function parsePartial(r: Reader): Partial | null {
  if (!r.take('<')) return null;
  const start = r.number();
  r.expect('.');
  const length = r.nzNumber();
  r.expect('>');
  return { start, length };
}

function parsePart(r: Reader): number[] {
  const part: number[] = [];
  while (/[0-9]/.test(r.peek())) {
    part.push(r.nzNumber());
    if (r.peek() === '.' && /[0-9]/.test(r.seg[r.pos + 1] ?? '')) r.pos++;
    else break;
  }
  return part;
}

/** section-spec inside [ ]. */
export function parseSection(r: Reader): SectionSpec {
  r.expect('[');
  const part = parsePart(r);
  let text: SectionText | null = null;
  const fields: string[] = [];
  if (part.length === 0 || r.take('.')) {
    if (r.peek() !== ']') {
      const word = r.atom('section').toUpperCase();
      if (word === 'HEADER' || word === 'TEXT') text = word;
      else if (word === 'MIME' && part.length > 0) text = 'MIME';
      else if (word === 'HEADER.FIELDS' || word === 'HEADER.FIELDS.NOT') {
        text = word;
        r.sp();
        fields.push(...r.list(() => r.astring(), false));
      } else r.fail(`Invalid section ${word}`);
    } else if (part.length > 0) {
      r.fail('Invalid section');
    }
  }
  r.expect(']');
  return { part, text, fields };
}

/** One fetch-att (RFC 9051 §9); also NOTIFY's MessageNew list (RFC 5465 §8). */
export function fetchAtt(r: Reader): FetchItem {
  const c = r.peek();
  if (c === '' ) r.fail('Expected a fetch item');
  // Read the item name up to [ or a delimiter.
  const start = r.pos;
  while (r.pos < r.seg.length && /[A-Za-z0-9.]/.test(r.seg[r.pos]!)) r.pos++;
  const word = r.seg.slice(start, r.pos).toUpperCase();
  switch (word) {
    case 'FLAGS':
    case 'INTERNALDATE':
    case 'RFC822.SIZE':
    case 'ENVELOPE':
    case 'BODYSTRUCTURE':
    case 'UID':
    case 'MODSEQ':
    case 'SAVEDATE': // RFC 8514 §4.2
    case 'EMAILID':
    case 'THREADID':
    case 'RFC822':
    case 'RFC822.HEADER':
    case 'RFC822.TEXT':
      return { k: word };
    case 'BODY':
    case 'BODY.PEEK': {
      if (r.peek() !== '[') {
        if (word === 'BODY.PEEK') r.fail('BODY.PEEK needs a section');
        return { k: 'BODY' };
      }
      const section = parseSection(r);
      return { k: 'BODY[]', peek: word === 'BODY.PEEK', section, partial: parsePartial(r) };
    }
    case 'BINARY':
    case 'BINARY.PEEK':
    case 'BINARY.SIZE': {
      // RFC 3516 / RFC 9051: section-binary = "[" [section-part] "]"
      r.expect('[');
      const part = parsePart(r);
      r.expect(']');
      if (word === 'BINARY.SIZE') return { k: 'BINARY.SIZE', part };
      return { k: 'BINARY[]', peek: word === 'BINARY.PEEK', part, partial: parsePartial(r) };
    }
    default:
      return r.fail(`Unknown fetch item ${word || r.peek()}`);
  }
}

export function parseFetch(r: Reader, uid: boolean): ImapCommand {
  r.sp();
  const set = r.seqSet();
  r.sp();
  let items: FetchItem[];
  let macro = false;
  if (r.peek() === '(') {
    items = r.list(() => fetchAtt(r), false);
  } else if (r.peekWord('ALL') || r.peekWord('FAST') || r.peekWord('FULL')) {
    const m = r.atom().toUpperCase();
    macro = true;
    items = [{ k: 'FLAGS' }, { k: 'INTERNALDATE' }, { k: 'RFC822.SIZE' }];
    if (m !== 'FAST') items.push({ k: 'ENVELOPE' });
    if (m === 'FULL') items.push({ k: 'BODY' });
  } else {
    items = [fetchAtt(r)];
  }
  let changedSince: number | null = null;
  let vanished = false;
  let partial: PartialRange | null = null;
  if (r.take(' ')) {
    // RFC 7162 §3.1.4 CHANGEDSINCE, §3.2.6 VANISHED, RFC 9394 §3.3 PARTIAL
    r.list(() => {
      if (r.takeWord('CHANGEDSINCE')) {
        r.sp();
        changedSince = r.number64();
      } else if (r.takeWord('VANISHED')) {
        vanished = true;
      } else if (r.takeWord('PARTIAL')) {
        if (partial) r.fail('Only one PARTIAL modifier');
        r.sp();
        partial = partialRange(r);
      } else r.fail('Unknown FETCH modifier');
      return null;
    }, false);
  }
  if (vanished && (!uid || changedSince === null)) r.fail('VANISHED needs UID FETCH with CHANGEDSINCE');
  if (partial && !uid) r.fail('PARTIAL is a UID FETCH modifier (RFC 9394 §3.3)');
  return { name: 'FETCH', uid, set, items, changedSince, vanished, macro, partial };
}

