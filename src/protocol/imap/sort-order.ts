// SORT ordering (RFC 5256 §3, RFC 5957 §4) over the stored keys (sort-keys.ts), and a merge sort
// that yields to the caller between slices, so ordering 100,000 messages never holds the event
// loop for more than a slice. Pure: the caller passes its own pause().

import { compareKeys, type SortKeys } from './sort-keys.ts';
import type { SortCriterion } from './types.ts';

/** One message to order: its keys, INTERNALDATE, size and sequence number. */
export interface SortItem extends SortKeys {
  uid: number;
  seq: number;
  internalDate: number;
  size: number;
}

/** RFC 5256 §2.2: the sent date, or INTERNALDATE when it cannot be determined. */
export const sentDate = (m: { sent: number | null; internalDate: number }): number => m.sent ?? m.internalDate;

type Cmp = (a: SortItem, b: SortItem) => number;

function one(key: SortCriterion['key']): Cmp {
  switch (key) {
    case 'ARRIVAL':
      return (a, b) => a.internalDate - b.internalDate;
    case 'DATE':
      return (a, b) => sentDate(a) - sentDate(b);
    case 'SIZE':
      return (a, b) => a.size - b.size;
    case 'SUBJECT':
      return (a, b) => compareKeys(a.subject, b.subject);
    case 'FROM':
      return (a, b) => compareKeys(a.from, b.from);
    case 'TO':
      return (a, b) => compareKeys(a.to, b.to);
    case 'CC':
      return (a, b) => compareKeys(a.cc, b.cc);
    case 'DISPLAYFROM':
      return (a, b) => compareKeys(a.displayFrom, b.displayFrom);
    case 'DISPLAYTO':
      return (a, b) => compareKeys(a.displayTo, b.displayTo);
  }
}

/**
 * The order of a sort program: each criterion in priority order (REVERSE flips that one only),
 * then the implicit sequence number, never reversed (RFC 5256 §3). The empty string sorts first.
 */
export function sortComparator(criteria: readonly SortCriterion[]): Cmp {
  const cmps = criteria.map((c) => {
    const f = one(c.key);
    return c.reverse ? (a: SortItem, b: SortItem) => f(b, a) : f;
  });
  return (a, b) => {
    for (const f of cmps) {
      const r = f(a, b);
      if (r !== 0) return r;
    }
    return a.seq - b.seq;
  };
}

/** Elements sorted by the engine per run, and merged per slice between two pause() calls. */
const RUN = 4096;
const SLICE = 16384;

interface Merge<T> {
  src: T[];
  dst: T[];
  i: number;
  mid: number;
  j: number;
  hi: number;
  k: number;
}

/** Merges up to `n` elements of src[i..mid) and src[j..hi) into dst[k..); synchronous, so V8 optimises it. */
function mergeSome<T>(m: Merge<T>, cmp: (a: T, b: T) => number, n: number): void {
  const { src, dst, mid, hi } = m;
  let { i, j, k } = m;
  const stop = Math.min(k + n, hi);
  while (k < stop) {
    if (i < mid && (j >= hi || cmp(src[j]!, src[i]!) >= 0)) dst[k++] = src[i++]!;
    else dst[k++] = src[j++]!;
  }
  m.i = i;
  m.j = j;
  m.k = k;
}

/**
 * Stable merge sort of `items` (a new array), calling `pause()` between slices of work: runs of
 * RUN sorted by the engine's (stable) sort, then merged pairwise SLICE elements at a time.
 */
export async function sortSliced<T>(items: readonly T[], cmp: (a: T, b: T) => number, pause: () => Promise<void>): Promise<T[]> {
  const n = items.length;
  if (n <= RUN) return items.slice().sort(cmp);
  let src: T[] = new Array(n);
  for (let i = 0; i < n; i += RUN) {
    const run = items.slice(i, i + RUN).sort(cmp);
    for (let k = 0; k < run.length; k++) src[i + k] = run[k]!;
    await pause();
  }
  let dst: T[] = new Array(n);
  for (let width = RUN; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n);
      const m: Merge<T> = { src, dst, i: lo, mid, j: mid, hi: Math.min(lo + 2 * width, n), k: lo };
      while (m.k < m.hi) {
        mergeSome(m, cmp, SLICE);
        await pause();
      }
    }
    [src, dst] = [dst, src];
  }
  return src;
}
