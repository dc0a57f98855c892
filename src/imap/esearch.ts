// The ESEARCH response (RFC 4731 §3.1; the IMAP4rev2 answer form, RFC 9051 §7.3.4) of SEARCH and
// of an extended SORT (ESORT, RFC 5267 §3), with PARTIAL (RFC 9394 §3.1), SEARCHRES SAVE
// (RFC 5182, with RFC 9394 §3.2's table) and CONDSTORE's MODSEQ (RFC 7162 §3.1.10).

import type { PartialRange, SearchReturn } from '../protocol/imap/types.ts';
import { formatRuns, formatSeqSet, quotedOrNil } from '../protocol/imap/response.ts';

/** A result: the numbers answered (sequence numbers or UIDs), their UIDs and MODSEQs, in result order. */
export interface ResultSet {
  values: readonly number[];
  uids: readonly number[];
  modseqs: readonly number[];
  /** In sort order (ESORT): MIN/MAX are the first/last, sets keep the order. Else ascending. */
  sorted: boolean;
}

/** [start, end) of the PARTIAL positions that exist among n results, or null (RFC 9394 §3.1). */
export function partialSlice(p: PartialRange, n: number): [number, number] | null {
  const [start, end] = p.last ? [Math.max(0, n - p.hi), n - p.lo + 1] : [p.lo - 1, Math.min(p.hi, n)];
  return start < end ? [start, end] : null;
}

/**
 * Numbers in the given order as a sequence-set: only ascending runs become ranges (RFC 5267 §3.2:
 * "12:10 SHOULD be avoided"); an ascending result gets the usual compact form.
 */
export function orderedSet(values: readonly number[], sorted: boolean): string {
  return sorted ? formatRuns(values) : formatSeqSet(values);
}

export interface EsearchAnswer {
  /** The `* ESEARCH` line, or null when none is due (SAVE alone, RFC 5182 §2.4). */
  line: string | null;
  /** With SAVE: the UIDs `$` now stands for. */
  saved: number[] | null;
}

export function esearch(tag: string, uid: boolean, returns: readonly SearchReturn[], partial: PartialRange | null, r: ResultSet, usedModseq: boolean, update = false): EsearchAnswer {
  let opts = returns;
  // RFC 4731 §3.1: RETURN () means ALL — not RETURN (UPDATE) (RFC 5267 §4.3; as Dovecot 2.3).
  if (opts.length === 0 && !partial && !update) opts = ['ALL'];
  const n = r.values.length;
  const has = (o: SearchReturn) => opts.includes(o);
  const slice = partial ? partialSlice(partial, n) : null;
  // The messages returned (for SAVE and MODSEQ): all with ALL or COUNT, else MIN/MAX/PARTIAL's.
  // RFC 5182 §2.4: SAVE alone saves the whole result, as ALL would.
  const saveOnly = opts.length === 1 && has('SAVE') && !partial;
  const every = has('ALL') || has('COUNT') || saveOnly;
  const picked = new Set<number>();
  if (!every && n) {
    if (has('MIN')) picked.add(0);
    if (has('MAX')) picked.add(n - 1);
    if (slice) for (let i = slice[0]; i < slice[1]; i++) picked.add(i);
  }
  const saved = has('SAVE') ? (every ? [...r.uids] : [...picked].map((i) => r.uids[i]!)) : null;
  // RFC 5182 §2.4: SAVE alone produces no ESEARCH response.
  if (saveOnly) return { line: null, saved };
  let out = `* ESEARCH (TAG ${quotedOrNil(tag)})${uid ? ' UID' : ''}`;
  if (n) {
    if (has('MIN')) out += ` MIN ${r.values[0]}`;
    if (has('MAX')) out += ` MAX ${r.values[n - 1]}`;
  }
  if (has('COUNT')) out += ` COUNT ${n}`;
  if (has('ALL') && n) out += ` ALL ${orderedSet(r.values, r.sorted)}`;
  if (partial) out += ` PARTIAL (${partial.text} ${slice ? orderedSet(r.values.slice(slice[0], slice[1]), r.sorted) : 'NIL'})`;
  if (usedModseq && n) {
    // RFC 7162 §3.1.10 with RFC 4731 §3.2: the highest MODSEQ of the messages returned.
    let m = 0;
    if (every) for (const x of r.modseqs) m = Math.max(m, x);
    else for (const i of picked) m = Math.max(m, r.modseqs[i]!);
    if (m) out += ` MODSEQ ${m}`;
  }
  return { line: out + '\r\n', saved };
}
