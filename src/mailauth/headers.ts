// The header block of a message as byte ranges, found in one pass (RFC 5322 §2.2: a field starts
// at a line that does not begin with SP or HTAB, continuation lines belong to it; the block ends
// at the first empty line). No regular expressions: the input is untrusted and can be large.

export interface HeaderField {
  /** Lower-cased field name. */
  name: string;
  /** Offset of the field's first byte. */
  start: number;
  /** Offset just after the colon. */
  valueStart: number;
  /** Offset just after the field's last line end (CRLF or LF); `start..end` removes the whole field. */
  end: number;
}

/** Longest header block looked at (bytes); fields beyond are not returned. */
export const MAX_HEADER_BLOCK = 1024 * 1024;

/** Fields in order. Lines without a colon (not a field) are skipped. */
export function headerFields(message: Buffer, limit = MAX_HEADER_BLOCK): HeaderField[] {
  const out: HeaderField[] = [];
  const n = Math.min(message.length, limit);
  let pos = 0;
  let cur: HeaderField | null = null;
  while (pos < n) {
    let eol = message.indexOf(0x0a, pos);
    if (eol < 0 || eol >= n) eol = n - 1;
    const lineEnd = eol + 1;
    const first = message[pos]!;
    const empty = first === 0x0a || (first === 0x0d && message[pos + 1] === 0x0a);
    if (empty) break; // end of the header block
    if (first === 0x20 || first === 0x09) {
      if (cur) cur.end = lineEnd; // continuation line
    } else {
      if (cur) out.push(cur);
      cur = null;
      const colon = message.indexOf(0x3a, pos);
      if (colon >= 0 && colon < eol) {
        let nameEnd = colon;
        while (nameEnd > pos && (message[nameEnd - 1] === 0x20 || message[nameEnd - 1] === 0x09)) nameEnd--;
        cur = { name: message.toString('latin1', pos, nameEnd).toLowerCase(), start: pos, valueStart: colon + 1, end: lineEnd };
      }
    }
    pos = lineEnd;
  }
  if (cur) out.push(cur);
  return out;
}

/** Offset where the body starts (after the empty line), or message.length when there is none. */
export function bodyOffset(message: Buffer, limit = MAX_HEADER_BLOCK): number {
  const n = Math.min(message.length, limit);
  let pos = 0;
  while (pos < n) {
    const first = message[pos]!;
    if (first === 0x0a) return pos + 1;
    if (first === 0x0d && message[pos + 1] === 0x0a) return pos + 2;
    const eol = message.indexOf(0x0a, pos);
    if (eol < 0) return message.length;
    pos = eol + 1;
  }
  return message.length;
}
