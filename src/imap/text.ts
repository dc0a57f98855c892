// The searchable text of a message (SEARCH BODY/TEXT) via the MIME helper's extractText. Small
// messages are read whole; for a large one only its text parts are read, by byte range.
import type { MessageRoot, Store } from '../store/store.ts';
import type { MimeNode } from '../protocol/mime/types.ts';
import { decodeCharset } from '../protocol/mime/headers.ts';
import { decodeTransferEncoding, extractText, MAX_EXTRACT_CHARS } from '../protocol/imap/section.ts';

/** Messages up to this size are read whole for SEARCH BODY/TEXT. */
const READ_WHOLE = 2 * 1024 * 1024;

function textLeaves(node: MimeNode, out: MimeNode[]): void {
  if (node.children?.length) for (const c of node.children) textLeaves(c, out);
  else if (node.message) textLeaves(node.message.root, out);
  else if (node.type === 'text' && !(node.disposition?.type === 'attachment' && node.subtype !== 'plain' && node.subtype !== 'html')) out.push(node);
}

export async function textOfMessage(store: Store, rec: Omit<MessageRoot, 'uid'>): Promise<string> {
  if (rec.size <= READ_WHOLE) return extractText(await store.readBlob(rec.blobId, 0, rec.size, { overlap: true }), rec);
  const leaves: MimeNode[] = [];
  textLeaves(rec.root, leaves);
  let text = '';
  for (const n of leaves) {
    if (text.length >= MAX_EXTRACT_CHARS) break;
    const end = Math.min(n.bodyEnd, n.bodyStart + MAX_EXTRACT_CHARS);
    if (end <= n.bodyStart) continue;
    const raw = await store.readBlob(rec.blobId, n.bodyStart, end);
    const charset = n.params.find(([k]) => k === 'charset')?.[1] ?? null;
    text += decodeCharset(decodeTransferEncoding(raw, n.encoding) ?? raw, charset) + '\n';
  }
  return text;
}
