// Re-evaluating an update context's search program (RFC 5267 §4.3) on the messages that changed,
// never on the whole mailbox (RFC 5267 Appendix B: "on a new message, the server can simply test
// for matches against all current UPDATE context search programs"; on a flag change, compare the
// message's match before and after). The keys themselves are matched by search-eval.ts's `match`,
// so a context and a fresh SEARCH can never disagree.
//
// - freezeKey: message sequence numbers in the program, and `*`, are evaluated when the command is
//   received (RFC 5267 §4.3, citing the errata to RFC 3501): a sequence set becomes the UID ranges
//   it covered then, `*` the highest UID then; `$` (RFC 5182) the saved result then.
// - flagJudge: for a flag change, the program with only the flags known (from the change): AND,
//   OR and NOT in three values, so `UNSEEN UNDELETED …` on a \Deleted message needs no store read.
// - evaluateBatch: the messages still undecided, with every store read done once per batch of
//   at most BATCH messages for all contexts together (summaries, search headers, body scan, thread ids).

import type { SearchKey, SeqSet } from '../protocol/imap/types.ts';
import { parseThreadObjectId, type MessageSummary, type Store } from '../store/store.ts';
import { match, needs, type Ctx, type Need } from './search-eval.ts';

/** Messages per store read when contexts are re-evaluated. */
export const BATCH = 500;

/** A context's program, ready for re-evaluation. */
export interface Program {
  key: SearchKey;
  need: Need;
  /** `*` of UID sets as it was when the command was received. */
  maxUid: number;
  /** `$` as it was when the command was received. */
  saved: ReadonlySet<number>;
  /** Flags, keywords or MODSEQ in the program: a flag change can change the answer. */
  dynamic: boolean;
  /** OLDER / YOUNGER (RFC 5032): the answer changes with time alone (contexts refuse these). */
  timed: boolean;
}

export interface FlagState {
  systemFlags: number;
  keywords: readonly string[];
  modseq: number;
}

/** The program of a searching command as seen by a session with `uids` (its sequence map). */
export function compileProgram(key: SearchKey, uids: readonly number[], saved: readonly number[]): Program {
  const maxUid = uids.length ? uids[uids.length - 1]! : 0;
  const flags = { dynamic: false, timed: false };
  const frozen = freezeKey(key, uids, maxUid, flags, 0);
  const need: Need = { headerKeys: [], meta: false, fields: false, bodyNeedles: new Set(), modseq: false, threadKeys: [] };
  needs(frozen, need);
  return { key: frozen, need, maxUid, saved: new Set(saved), dynamic: flags.dynamic, timed: flags.timed };
}

function freezeKey(k: SearchKey, uids: readonly number[], maxUid: number, f: { dynamic: boolean; timed: boolean }, depth: number): SearchKey {
  const sub = (x: SearchKey) => freezeKey(x, uids, maxUid, f, depth + 1);
  switch (k.k) {
    case 'and':
      return { k: 'and', keys: k.keys.map(sub) };
    case 'or':
      return { k: 'or', a: sub(k.a), b: sub(k.b) };
    case 'not':
      return { k: 'not', key: sub(k.key) };
    case 'flag':
    case 'keyword':
    case 'modseq':
      f.dynamic = true;
      return k;
    case 'within':
      f.timed = true;
      return k;
    case 'seq':
      return k.set.saved ? k : { k: 'uid', set: seqToUidRanges(k.set, uids) };
    case 'uid':
      return k.set.saved ? k : { k: 'uid', set: { saved: false, ranges: k.set.ranges.map(([a, b]) => [a === -1 ? maxUid : a, b === -1 ? maxUid : b]) } };
    default:
      return k;
  }
}

/** The UIDs a sequence set named, as UID ranges: contiguous sequence numbers are contiguous in UID order. */
function seqToUidRanges(set: Extract<SeqSet, { saved: false }>, uids: readonly number[]): SeqSet {
  const n = uids.length;
  const ranges: Array<[number, number]> = [];
  for (const [a0, b0] of set.ranges) {
    const a = a0 === -1 ? n : a0;
    const b = b0 === -1 ? n : b0;
    const lo = Math.max(1, Math.min(a, b));
    const hi = Math.min(n, Math.max(a, b));
    if (lo <= hi) ranges.push([uids[lo - 1]!, uids[hi - 1]!]);
  }
  return { saved: false, ranges };
}

/** The evaluation frame `match` needs, for one program. */
function frame(p: Program, recent: ReadonlySet<number>): Ctx {
  return {
    seq: 0,
    msg: undefined as unknown as MessageSummary,
    recent,
    sd: null,
    headerText: null,
    maxSeq: 0,
    maxUid: p.maxUid,
    now: Date.now(),
    saved: p.saved as Set<number>,
    headerHits: new Map(),
    bodyHits: new Map(),
  };
}

/**
 * A judge of the program for messages whose flags are known: its answer, or null when it depends
 * on more than flags, UID and \Recent (then the message is read: evaluateBatch).
 */
export function flagJudge(p: Program, recent: ReadonlySet<number>): (uid: number, f: FlagState) => boolean | null {
  const c = frame(p, recent);
  return (uid, f) => {
    c.msg = { uid, modseq: f.modseq, systemFlags: f.systemFlags, keywords: f.keywords as string[] } as MessageSummary;
    return tri(p.key, c, 0);
  };
}

function tri(k: SearchKey, c: Ctx, depth: number): boolean | null {
  switch (k.k) {
    case 'and': {
      let unknown = false;
      for (const x of k.keys) {
        const v = tri(x, c, depth + 1);
        if (v === false) return false;
        if (v === null) unknown = true;
      }
      return unknown ? null : true;
    }
    case 'or': {
      const a = tri(k.a, c, depth + 1);
      if (a === true) return true;
      const b = tri(k.b, c, depth + 1);
      if (b === true) return true;
      return a === null || b === null ? null : false;
    }
    case 'not': {
      const v = tri(k.key, c, depth + 1);
      return v === null ? null : !v;
    }
    case 'all':
    case 'flag':
    case 'keyword':
    case 'modseq':
    case 'recent':
    case 'uid':
    case 'seq':
      return match(k, c);
    default:
      return null;
  }
}

/** One batch to evaluate: each program with the UIDs (ascending) it must decide. */
export interface BatchItem {
  program: Program;
  uids: number[];
}

/**
 * Reads what the programs need for the batch's messages (each kind of read once, for the union of
 * the UIDs) and decides every (program, UID). A message gone from the store matches nothing.
 */
export async function evaluateBatch(store: Store, mailboxId: number, recent: ReadonlySet<number>, items: readonly BatchItem[]): Promise<Map<number, boolean>[]> {
  const all = [...new Set(items.flatMap((x) => x.uids))].sort((a, b) => a - b);
  let meta = false;
  let fields = false;
  const needles = new Set<string>();
  let threads = false;
  for (const { program: p } of items) {
    meta ||= p.need.meta || p.need.headerKeys.length > 0;
    fields ||= p.need.fields;
    for (const n of p.need.bodyNeedles) needles.add(n);
    threads ||= p.need.threadKeys.length > 0;
  }
  const msgs = new Map<number, MessageSummary>((await store.getMessages(mailboxId, all)).map((m) => [m.uid, m]));
  const sds = meta ? new Map((await store.getSearchData(mailboxId, all, { fields })).map((d) => [d.uid, d])) : null;
  const bodyHits = new Map<string, Set<number>>();
  if (needles.size) {
    const list = [...needles];
    const hits = await store.matchBody(mailboxId, all, list);
    list.forEach((n, i) => bodyHits.set(n, new Set(hits[i])));
  }
  const threadOf = threads ? await store.getThreadIds(mailboxId, all) : null;
  return items.map(({ program: p, uids }) => {
    const c = frame(p, recent);
    c.bodyHits = bodyHits;
    for (const k of p.need.threadKeys) {
      const t = parseThreadObjectId(k.id);
      c.headerHits.set(k, new Set(uids.filter((u) => t !== null && threadOf?.get(u) === t)));
    }
    const out = new Map<number, boolean>();
    for (const uid of uids) {
      const msg = msgs.get(uid);
      if (!msg) {
        out.set(uid, false);
        continue;
      }
      c.msg = msg;
      c.sd = sds?.get(uid) ?? null;
      c.headerText = null;
      out.set(uid, match(p.key, c));
    }
    return out;
  });
}
