// SEARCH BODY / TEXT over message bodies (RFC 9051 §6.4.4: "messages that contain the specified
// string in the body of the message", case-insensitive substring). What is searched is each
// message's text plan (src/protocol/mime/text-plan.ts: the text/* parts, also inside attached
// messages, stored at delivery), transfer- and charset-decoded, HTML tags stripped.
//
// One scanner, two ways of reading: the file store runs it on worker threads with synchronous
// reads (blob/body-scan.ts), every backend can run it on the event loop with asynchronous reads
// (scanBodies below). Both read the same ranges (readsFor) and match the same text (matchInto).

import type { TextLeaf } from '../protocol/mime/types.ts';
import { extractPlannedText, MAX_EXTRACT_CHARS } from '../protocol/imap/section.ts';
import { StoreError } from './store.ts';

/** One message to scan: its blob, size and text plan (or the plan's JSON, as stored). */
export interface BodyScanItem {
  uid: number;
  blobId: string;
  size: number;
  plan: TextLeaf[] | string;
}

/** What readsFor and textFrom need: the size and the parsed plan. */
export interface ScanTarget {
  size: number;
  plan: TextLeaf[];
}

export function scanTarget(item: Pick<BodyScanItem, 'size' | 'plan'>): ScanTarget {
  return { size: item.size, plan: typeof item.plan === 'string' ? (JSON.parse(item.plan) as TextLeaf[]) : item.plan };
}

/** Messages up to this size are read whole; from a bigger one only its text parts (capped). */
const READ_WHOLE = 2 * 1024 * 1024;

/**
 * A large message's text leaves, each cut to at most MAX_EXTRACT_CHARS bytes (empty ones left out):
 * what is read of it, so an attachment is never read.
 */
function clippedLeaves(plan: readonly TextLeaf[]): TextLeaf[] {
  const out: TextLeaf[] = [];
  for (const [start, end, encoding, charset, html] of plan) {
    const e = Math.min(end, start + MAX_EXTRACT_CHARS);
    if (e > start) out.push([start, e, encoding, charset, html]);
  }
  return out;
}

/** The byte ranges [start, end) of the blob that hold the message's searchable text. */
export function readsFor(item: ScanTarget): Array<[number, number]> {
  if (item.plan.length === 0) return [];
  if (item.size <= READ_WHOLE) return [[0, item.size]];
  return clippedLeaves(item.plan).map(([start, end]) => [start, end]);
}

/** The searchable text, from the buffers readsFor's ranges gave (in the same order). */
export function textFrom(item: ScanTarget, bufs: Buffer[]): string {
  if (item.plan.length === 0) return '';
  if (item.size <= READ_WHOLE) return extractPlannedText(bufs[0]!, item.plan);
  const parts: string[] = [];
  let total = 0;
  const leaves = clippedLeaves(item.plan);
  for (let k = 0; k < leaves.length && total < MAX_EXTRACT_CHARS; k++) {
    const t = extractPlannedText(bufs[k]!, [leaves[k]!], leaves[k]![0]);
    total += t.length;
    parts.push(t);
  }
  return parts.join('\n');
}

/** Needles as matchInto compares them (RFC 9051 §6.4.4: case-insensitive). */
export function foldNeedles(needles: readonly string[]): string[] {
  return needles.map((n) => n.toLowerCase());
}

/** Adds uid to hits[i] for every folded needle i the text contains. */
export function matchInto(text: string, folded: readonly string[], uid: number, hits: number[][]): void {
  if (folded.length === 0) return;
  const hay = text.toLowerCase();
  for (let i = 0; i < folded.length; i++) if (hay.includes(folded[i]!)) hits[i]!.push(uid);
}

/**
 * The event-loop scanner: up to `window` messages read ahead (the reads overlap each other and the
 * matching of earlier ones), each matched and dropped in order, so memory stays bounded. A body
 * gone meanwhile (StoreError 'not-found': expunged elsewhere, its blob removed) matches nothing;
 * any other read error fails the scan. Returns, per needle, the matching UIDs in the items' order.
 */
export async function scanBodies(
  read: (blobId: string, start: number, end: number) => Promise<Buffer>,
  items: readonly BodyScanItem[],
  needles: readonly string[],
  window = 16,
): Promise<number[][]> {
  const folded = foldNeedles(needles);
  const hits = folded.map((): number[] => []);
  const texts: Array<Promise<string | null> | undefined> = [];
  const start = (j: number): void => {
    const it = items[j]!;
    const target = scanTarget(it);
    const p = Promise.all(readsFor(target).map(([a, b]) => read(it.blobId, a, b))).then(
      (bufs) => textFrom(target, bufs),
      (err: unknown) => {
        if (err instanceof StoreError && err.code === 'not-found') return null;
        throw err;
      },
    );
    p.catch(() => {}); // rejects when awaited below, in order
    texts[j] = p;
  };
  for (let j = 0; j < Math.min(window, items.length); j++) start(j);
  for (let j = 0; j < items.length; j++) {
    const text = await texts[j]!;
    texts[j] = undefined;
    if (j + window < items.length) start(j + window);
    if (text !== null) matchInto(text, folded, items[j]!.uid, hits);
  }
  return hits;
}
