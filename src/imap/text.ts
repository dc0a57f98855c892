// The searchable text of a message (SEARCH BODY/TEXT, RFC 9051 §6.4.4), from its text plan (the
// text parts' byte ranges, stored at delivery: src/protocol/mime/text-plan.ts). A message up to
// READ_WHOLE is read in one go; from a bigger one only the span of its text parts, at most
// MAX_EXTRACT_CHARS past the first, so a large attachment is never read.
import type { MessageTextPlan, Store } from '../store/store.ts';
import { extractPlannedText, MAX_EXTRACT_CHARS } from '../protocol/imap/section.ts';

/** Messages up to this size are read whole for SEARCH BODY/TEXT. */
const READ_WHOLE = 2 * 1024 * 1024;

export async function textOfMessage(store: Store, m: Omit<MessageTextPlan, 'uid'>): Promise<string> {
  if (m.plan.length === 0) return '';
  // `overlap`: the caller keeps several reads in flight (see search-eval.ts).
  if (m.size <= READ_WHOLE) return extractPlannedText(await store.readBlob(m.blobId, 0, m.size, { overlap: true }), m.plan);
  let text = '';
  for (const leaf of m.plan) {
    if (text.length >= MAX_EXTRACT_CHARS) break;
    const end = Math.min(leaf[1], leaf[0] + MAX_EXTRACT_CHARS);
    if (end <= leaf[0]) continue;
    const raw = await store.readBlob(m.blobId, leaf[0], end);
    text += (text ? '\n' : '') + extractPlannedText(raw, [[leaf[0], end, leaf[2], leaf[3], leaf[4]]], leaf[0]);
  }
  return text;
}
