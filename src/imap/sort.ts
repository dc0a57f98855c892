// SORT and THREAD over the selected mailbox (RFC 5256 §3): SEARCH first (search-eval.ts), then the
// matches' stored keys from the store in slices, with event-loop turns between slices.

import type { SearchKey } from '../protocol/imap/types.ts';
import type { SortItem } from '../protocol/imap/sort-order.ts';
import { LoopBudget } from '../obs/loop-lag.ts';
import { ImapNo } from './errors.ts';
import { runSearch } from './search-eval.ts';
import type { ImapSession } from './session.ts';

/** UIDs per getSortData call. */
const SLICE = 2000;

/** RFC 5256 §3: US-ASCII and UTF-8 must be implemented; others get NO [BADCHARSET] (RFC 9051 §7.1). */
export function checkCharset(charset: string): void {
  if (charset !== 'UTF-8' && charset !== 'US-ASCII') throw new ImapNo('BADCHARSET (UTF-8 US-ASCII)', `Charset ${charset.slice(0, 64)} is not supported`);
}

export interface Matched {
  /** The matching messages with their keys, in sequence order. */
  items: SortItem[];
  usedModseq: boolean;
  /** UID → MODSEQ of the matches (ESORT MODSEQ, RFC 5267 §3.2 with RFC 7162 §3.1.5). */
  modseqs: Map<number, number>;
}

/** The messages matching `key` with their SORT/THREAD keys (messages expunged meanwhile left out). */
export async function matchWithKeys(s: ImapSession, key: SearchKey, thread: boolean, budget: LoopBudget): Promise<Matched> {
  const sel = s.selected!;
  const r = await runSearch(s, key);
  const items: SortItem[] = [];
  const modseqs = new Map<number, number>();
  for (let i = 0; i < r.uids.length; i += SLICE) {
    await budget.pause();
    const uids = r.uids.slice(i, i + SLICE);
    const data = await s.deps.store.getSortData(sel.mailboxId, uids, { thread });
    // Both ascending by UID: walk them together.
    let k = 0;
    for (const d of data) {
      while (k < uids.length && uids[k]! < d.uid) k++;
      if (uids[k] !== d.uid) continue;
      items.push({ ...d, seq: r.seqs[i + k]! });
      modseqs.set(d.uid, r.modseqs[i + k]!);
    }
  }
  return { items, usedModseq: r.usedModseq, modseqs };
}
