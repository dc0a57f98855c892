// THREAD over the selected mailbox (RFC 5256 §3) from the mailbox's key index (sort-index.ts):
// the answer for an exact set of messages is kept with the index, per algorithm, as a flat list
// of tokens (a message's position, "(", ")", " "), so a THREAD of the same messages again (every
// client's refresh) is only the response written out, in UIDs or in the session's sequence
// numbers. Another set (new mail, an expunge, another search) computes it again with the pure
// algorithms of protocol/imap/thread.ts over the index's keys, with event-loop turns.
// Memory (estimated in `bytes`, counted by the key index's registry): 12 bytes per message per
// algorithm for the tokens, and for REFERENCES the kept threads (~400 bytes per message).

import type { SearchKey, ThreadAlgorithm } from '../protocol/imap/types.ts';
import type { SortItem } from '../protocol/imap/sort-order.ts';
import { addReference, orderedSubject, referencesState, type ThreadNode } from '../protocol/imap/thread.ts';
import { LoopBudget } from '../obs/loop-lag.ts';
import type { ImapSession } from './session.ts';
import { wantsOf, type KeyIndex } from './sort-index.ts';
import { NumberWriter, withMatches } from './sort-run.ts';
import { CLOSE, flattenThreads, OPEN, patchTokens, SPACE } from '../protocol/imap/thread-tokens.ts';


/** Estimated bytes per message of a kept answer: the tokens; REFERENCES' kept threads besides. */
const BYTES_TOKENS = 12;
const BYTES_STATE = 400;

interface Cached {
  /** Estimated memory (KeyIndex.bytes). */
  bytes: number;
  gen: number;
  set: Uint32Array;
  tokens: Int32Array;
  /** REFERENCES: what new mail can be added to (addReference) without running it all again. */
  state: Parameters<typeof addReference>[0] | null;
}

/** A THREAD answer: tokens over positions, and the numbers to write for them. */
export interface Threads {
  tokens: Int32Array;
  uidOf: Uint32Array;
  seqOf: Int32Array;
  usedModseq: boolean;
}

function sameSet(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export async function threadMatches(s: ImapSession, algorithm: ThreadAlgorithm, key: SearchKey): Promise<Threads> {
  const budget = new LoopBudget(5);
  const refs = algorithm === 'REFERENCES';
  return withMatches(s, key, wantsOf([], true), budget, async (m) => {
    const ix = m.index;
    let c = ix.threads.get(algorithm) as Cached | undefined;
    if (c && c.gen === ix.gen && !sameSet(c.set, m.positions) && c.state && (await extend(ix, c, m.positions, budget))) {
      // New mail placed into the kept threads.
    } else if (!c || c.gen !== ix.gen || !sameSet(c.set, m.positions)) {
      const items = await itemsOf(ix, m.positions, budget);
      const pause = () => budget.pause();
      const state = refs ? await referencesState(items, pause) : null;
      const roots = state ? state.roots : await orderedSubject(items, pause);
      const bytes = m.positions.length * (BYTES_TOKENS + (state ? BYTES_STATE : 0));
      c = { bytes, gen: ix.gen, set: m.positions, tokens: await flattenThreads(roots, m.positions.length, () => budget.pause()), state };
      ix.threads.set(algorithm, c);
    }
    return { tokens: c.tokens, uidOf: ix.uid, seqOf: m.seqOf, usedModseq: m.usedModseq };
  });
}

/**
 * The cached answer of `c.set` plus messages after all of them (new mail), when each can be
 * placed (addReference); false when not (then the caller computes it all again).
 */
async function extend(ix: KeyIndex, c: Cached, positions: Uint32Array, budget: LoopBudget): Promise<boolean> {
  const old = c.set;
  if (positions.length <= old.length || (old.length && positions[old.length]! <= old[old.length - 1]!)) return false;
  for (let i = 0; i < old.length; i++) if (positions[i] !== old[i]) return false;
  const added = await itemsOf(ix, positions.subarray(old.length), budget);
  let tokens: Int32Array | null = c.tokens;
  for (const m of added) {
    const placed = addReference(c.state!, m);
    if (!placed) {
      c.state = null;
      c.bytes = c.set.length * BYTES_TOKENS;
      return false;
    }
    // A few new messages: their tokens spliced in (no walk of every thread); more: flattened again.
    tokens = tokens && added.length <= 32 ? patchTokens(tokens, placed, m.uid) : null;
  }
  c.tokens = tokens ?? (await flattenThreads(c.state!.roots, positions.length, () => budget.pause()));
  c.set = positions;
  c.bytes = positions.length * (BYTES_TOKENS + BYTES_STATE);
  return true;
}

/** What the algorithms read of each message; `uid` carries the position, `seq` its order. */
async function itemsOf(ix: KeyIndex, positions: Uint32Array, budget: LoopBudget): Promise<SortItem[]> {
  const items = new Array<SortItem>(positions.length);
  const subject = ix.strings.get('subject')!;
  const ids = ix.messageId!;
  const refs = ix.refs!;
  for (let i = 0; i < positions.length; i++) {
    if ((i & 4095) === 4095) await budget.pause();
    const p = positions[i]!;
    items[i] = {
      uid: p,
      seq: p + 1,
      internalDate: ix.internalDate[p]!,
      sent: ix.date[p]!,
      size: 0,
      subject: subject[p]!,
      reply: ix.reply[p] === 1,
      from: '',
      to: '',
      cc: '',
      displayFrom: '',
      displayTo: '',
      messageId: ids[p] ?? null,
      refs: refs[p] as string[],
    };
  }
  return items;
}

/** `* THREAD …` (RFC 5256 §4) in Buffers of about `partBytes`, for writing with turns between. */
export function* threadResponse(t: Threads, uid: boolean, partBytes = 65536): Generator<Buffer> {
  const w = new NumberWriter(partBytes + 64);
  w.ascii(t.tokens.length ? '* THREAD ' : '* THREAD');
  const tokens = t.tokens;
  for (let i = 0; i < tokens.length; i++) {
    const x = tokens[i]!;
    if (x === OPEN) w.byte(0x28);
    else if (x === CLOSE) w.byte(0x29);
    else if (x === SPACE) w.byte(0x20);
    else w.number(uid ? t.uidOf[x]! : t.seqOf[x]!);
    if (w.length >= partBytes) yield w.take();
  }
  w.ascii('\r\n');
  yield w.take();
}
