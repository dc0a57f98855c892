// The searchable text of a message (SEARCH BODY/TEXT): decoded text/* leaf parts, read from the
// blob by byte range (never the whole message for a large one).
import type { MessageRecord, Store } from '../store/store.ts';
import type { MimeNode } from '../protocol/mime/types.ts';
import { decodeCharset } from '../protocol/mime/headers.ts';

/** Most bytes of one part that SEARCH reads. */
const MAX_PART_TEXT = 4 * 1024 * 1024;

export function decodeBody(raw: Buffer, encoding: string): Buffer {
  const enc = encoding.toLowerCase();
  if (enc === 'base64') return Buffer.from(raw.toString('latin1').replace(/[^A-Za-z0-9+/]/g, ''), 'base64');
  if (enc === 'quoted-printable') {
    const s = raw.toString('latin1').replace(/=\r?\n/g, '');
    const out: number[] = [];
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c === 0x3d && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
        out.push(parseInt(s.slice(i + 1, i + 3), 16));
        i += 2;
      } else out.push(c & 0xff);
    }
    return Buffer.from(out);
  }
  return raw;
}

function textLeaves(node: MimeNode, out: MimeNode[]): void {
  if (node.children?.length) for (const c of node.children) textLeaves(c, out);
  else if (node.message) textLeaves(node.message.root, out);
  else if (node.type === 'text') out.push(node);
}

export async function textOfMessage(store: Store, rec: MessageRecord): Promise<string> {
  const leaves: MimeNode[] = [];
  textLeaves(rec.meta.root, leaves);
  let text = '';
  for (const n of leaves) {
    const end = Math.min(n.bodyEnd, n.bodyStart + MAX_PART_TEXT);
    if (end <= n.bodyStart) continue;
    const raw = await store.readBlob(rec.blobId, n.bodyStart, end);
    const charset = n.params.find(([k]) => k === 'charset')?.[1] ?? null;
    text += decodeCharset(decodeBody(raw, n.encoding), charset) + '\n';
  }
  return text;
}
