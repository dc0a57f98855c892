// Sequence sets against the selected mailbox (RFC 9051 §9 sequence-set, RFC 5182 "$").
import type { SeqSet } from '../protocol/imap/types.ts';
import type { ImapSession } from './session.ts';
import { ImapBad } from './errors.ts';

/** The UIDs (ascending) a command's set names. Sequence numbers past EXISTS are a BAD. */
export function resolveSet(s: ImapSession, set: SeqSet, uid: boolean): number[] {
  const sel = s.selected!;
  if (set.saved) {
    const have = new Set(sel.uids);
    return s.savedSearch.filter((u) => have.has(u));
  }
  const list = sel.uids;
  const n = list.length;
  if (uid) {
    // Each range is a slice of the ascending UID list, found by binary search (a 100k-message
    // `UID FETCH 1:*` must not test every UID against the set).
    const max = n ? list[n - 1]! : 0;
    const slices = intervals(set.ranges, max).map(([lo, hi]) => [lowerBound(list, lo), lowerBound(list, hi + 1)] as const);
    if (slices.length === 1) return list.slice(slices[0]![0], slices[0]![1]);
    const out: number[] = [];
    for (const [from, to] of slices) for (let i = from; i < to; i++) out.push(list[i]!);
    return out;
  }
  for (const [a, b] of set.ranges) {
    if (a > n || b > n) throw new ImapBad(`Invalid message sequence number (there are ${n} messages)`);
  }
  const out: number[] = [];
  for (const [lo, hi] of intervals(set.ranges, n)) for (let q = Math.max(1, lo); q <= Math.min(hi, n); q++) out.push(list[q - 1]!);
  return out;
}

/** The ranges of a set (`*` = max) as sorted, disjoint [lo, hi] intervals. */
function intervals(ranges: ReadonlyArray<readonly [number, number]>, max: number): Array<[number, number]> {
  const iv = ranges
    .map(([a, b]): [number, number] => {
      const x = a === -1 ? max : a;
      const y = b === -1 ? max : b;
      return [Math.min(x, y), Math.max(x, y)];
    })
    .sort((p, q) => p[0] - q[0]);
  const out: Array<[number, number]> = [];
  for (const r of iv) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}

/** First index whose value is >= v in an ascending list. */
function lowerBound(list: readonly number[], v: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
