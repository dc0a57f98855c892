// IMAP response pieces (RFC 9051 §7): flag lists, dates, sequence sets, mailbox names, status lines.

import { imapString, quoted, isQuotable } from './strings.ts';
import { encodeMailboxUtf7 } from './utf7.ts';
import type { SeqSet } from './types.ts';

const FLAG_NAMES: ReadonlyArray<readonly [string, number]> = [
  ['\\Seen', 1],
  ['\\Answered', 2],
  ['\\Flagged', 4],
  ['\\Deleted', 8],
  ['\\Draft', 16],
];

const SYSTEM_ONLY: readonly string[] = Array.from(
  { length: 32 },
  (_, bits) => '(' + FLAG_NAMES.filter(([, bit]) => bits & bit).map(([n]) => n).join(' ') + ')',
);

/** "(\Seen \Flagged $Label1)" */
export function flagList(systemFlags: number, keywords: readonly string[], recent = false): string {
  // Most messages have no keywords: one of 32 precomputed lists (FETCH FLAGS on a big mailbox).
  if (keywords.length === 0 && !recent && systemFlags >= 0 && systemFlags < 32) return SYSTEM_ONLY[systemFlags]!;
  const out: string[] = [];
  for (const [n, bit] of FLAG_NAMES) if (systemFlags & bit) out.push(n);
  // IMAP4rev1 \Recent (RFC 3501 §2.3.2): a session flag, after the stored system flags (as Dovecot).
  if (recent) out.push('\\Recent');
  out.push(...keywords);
  return '(' + out.join(' ') + ')';
}

const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number) => String(n).padStart(2, '0');

/** INTERNALDATE date-time (RFC 9051 §9), in UTC: "22-Nov-2026 02:21:46 +0000". */
export function internalDate(ms: number): string {
  const d = new Date(ms);
  return `"${p2(d.getUTCDate())}-${MON[d.getUTCMonth()]}-${d.getUTCFullYear()} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} +0000"`;
}

/** Compact sequence set for ascending-or-not numbers: [1,2,3,5] → "1:3,5". Empty → "". */
export function formatSeqSet(nums: readonly number[]): string {
  const sorted = [...nums].sort((a, b) => a - b);
  const parts: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    const start = sorted[i]!;
    let end = start;
    while (i + 1 < sorted.length && (sorted[i + 1] === end + 1 || sorted[i + 1] === end)) end = sorted[++i]!;
    parts.push(start === end ? String(start) : `${start}:${end}`);
    i++;
  }
  return parts.join(',');
}

/**
 * Numbers as a sequence set in the order given, without sorting: each ascending run of
 * consecutive numbers becomes `a:b` ([1,2,3,9] → "1:3,9"; [5,4] → "5,4"). RFC 9051 §9 sequence-set.
 */
export function formatRuns(values: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < values.length; ) {
    let j = i;
    while (j + 1 < values.length && values[j + 1] === values[j]! + 1) j++;
    parts.push(i === j ? String(values[i]) : `${values[i]}:${values[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * Members of a (non-saved) sequence set against a maximum (`*`): calls `fn` for every number in
 * 1..max that the set includes, in ascending order, once each. RFC 9051 §9: a:b == b:a; `*` = max.
 */
export function seqSetMembers(set: SeqSet, max: number): number[] {
  if (set.saved) return [];
  const out = new Set<number>();
  for (let [a, b] of set.ranges) {
    if (a === -1) a = max;
    if (b === -1) b = max;
    let lo = Math.min(a, b);
    const hi = Math.min(Math.max(a, b), max);
    if (lo < 1) lo = 1;
    for (let n = lo; n <= hi; n++) out.add(n);
  }
  return [...out].sort((x, y) => x - y);
}

/** True when `n` is in the set (for UID sets: `*` = the largest UID `max`). */
export function seqSetHas(set: SeqSet, n: number, max: number): boolean {
  if (set.saved) return false;
  for (let [a, b] of set.ranges) {
    if (a === -1) a = max;
    if (b === -1) b = max;
    if (n >= Math.min(a, b) && n <= Math.max(a, b)) return true;
  }
  return false;
}

/** Mailbox name as sent to the client: UTF-8 for IMAP4rev2/UTF8=ACCEPT, else modified UTF-7. */
export function mailboxName(name: string, utf8: boolean): string {
  const wire = utf8 ? name : encodeMailboxUtf7(name);
  return imapString(wire, utf8);
}

/** A quoted string or NIL. */
export function quotedOrNil(s: string | null): string {
  return s === null ? 'NIL' : isQuotable(s, true) ? quoted(s) : imapString(s, true);
}

/** `* OK [CODE] text` etc. Text is made safe (no CR/LF). */
export function statusLine(tag: string, cond: 'OK' | 'NO' | 'BAD' | 'BYE' | 'PREAUTH', code: string | null, text: string): string {
  const t = text.replace(/[\r\n]+/g, ' '); // linear: one class, nothing after it
  return `${tag} ${cond} ${code ? `[${code}] ` : ''}${t}\r\n`;
}
