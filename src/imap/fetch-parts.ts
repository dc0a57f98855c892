// Byte ranges of FETCH sections (RFC 9051 §6.4.5) from the cached MIME tree, and header-field
// filtering. Everything is computed from MessageMeta; bodies are read by range from the blob.

import type { MimeNode } from '../protocol/mime/types.ts';
import type { SectionSpec } from '../protocol/imap/types.ts';

/** The node a part number names (RFC 9051 §6.4.5: part 1 of a single-part message is its body). */
export function findPart(root: MimeNode, part: readonly number[]): MimeNode | null {
  let node: MimeNode = root;
  for (let i = 0; i < part.length; i++) {
    const n = part[i]!;
    if (node.children && node.children.length) {
      const child = node.children[n - 1];
      if (!child) return null;
      node = child;
    } else if (n !== 1) {
      return null;
    }
    if (i < part.length - 1) {
      if (node.message) node = node.message.root;
      else if (!(node.children && node.children.length)) return null;
    }
  }
  return node;
}

export interface SectionRange {
  start: number;
  end: number;
  /** HEADER.FIELDS[.NOT]: filter the header block. */
  fields: { names: string[]; not: boolean } | null;
}

/** The bytes a BODY[section] names, or null when the section does not exist. */
export function sectionRange(root: MimeNode, size: number, sec: SectionSpec): SectionRange | null {
  const fields = sec.text === 'HEADER.FIELDS' || sec.text === 'HEADER.FIELDS.NOT' ? { names: sec.fields.map((f) => f.toLowerCase()), not: sec.text === 'HEADER.FIELDS.NOT' } : null;
  if (sec.part.length === 0) {
    if (sec.text === null) return { start: 0, end: size, fields: null };
    if (sec.text === 'TEXT') return { start: root.bodyStart, end: root.bodyEnd, fields: null };
    return { start: root.headerStart, end: root.headerEnd, fields };
  }
  const node = findPart(root, sec.part);
  if (!node) return null;
  if (sec.text === null) return { start: node.bodyStart, end: node.bodyEnd, fields: null };
  if (sec.text === 'MIME') return { start: node.headerStart, end: node.headerEnd, fields: null };
  // HEADER / TEXT / HEADER.FIELDS of a part: only for message/rfc822 parts.
  const m = node.message?.root;
  if (!m) return sec.text === 'TEXT' || sec.text === 'HEADER' ? { start: node.bodyStart, end: node.bodyStart, fields: null } : null;
  if (sec.text === 'TEXT') return { start: m.bodyStart, end: m.bodyEnd, fields: null };
  return { start: m.headerStart, end: m.headerEnd, fields };
}

/**
 * The header fields of a header block whose names are (or, with `not`, are not) in `names`,
 * followed by the blank line (RFC 9051 §6.4.5 HEADER.FIELDS).
 */
export function filterHeader(block: Buffer, names: readonly string[], not: boolean): Buffer {
  const want = new Set(names);
  const out: Buffer[] = [];
  let i = 0;
  let keep = false;
  while (i < block.length) {
    const nl = block.indexOf(0x0a, i);
    const end = nl < 0 ? block.length : nl + 1;
    const line = block.subarray(i, end);
    const c = line[0];
    if (line.length <= 2 && (c === 0x0d || c === 0x0a)) break; // blank line
    if (c === 0x20 || c === 0x09) {
      if (keep) out.push(line);
    } else {
      const colon = line.indexOf(0x3a);
      const name = (colon > 0 ? line.subarray(0, colon) : line).toString('latin1').trim().toLowerCase();
      keep = want.has(name) !== not;
      if (keep) out.push(line);
    }
    i = end;
  }
  out.push(Buffer.from('\r\n'));
  return Buffer.concat(out);
}

/** Section text as echoed in the response: "1.2.HEADER.FIELDS (FROM TO)". */
export function sectionString(sec: SectionSpec): string {
  let s = sec.part.join('.');
  if (sec.text) {
    if (s) s += '.';
    s += sec.text;
    if (sec.fields.length) s += ' (' + sec.fields.map((f) => f.toUpperCase()).join(' ') + ')';
  }
  return s;
}
