// A THREAD answer (RFC 5256 §4 `thread-data`) as a flat list of numbers, kept instead of the tree
// (src/imap/thread-cache.ts): a message (its `uid` field, ≥ 0), "(" (OPEN), ")" (CLOSE) and the
// space after a message that has children (SPACE). Each thread is in parentheses; a message with
// one child continues its line ("3 6"), with several nests each child ("3 (4 23)(44 7 96)"); a
// dummy is only its children. Pure.

import type { Placement, ThreadNode } from './thread.ts';

export const OPEN = -1;
export const CLOSE = -2;
export const SPACE = -3;

type Pause = () => Promise<void>;

/** The tokens of `roots` (about `messages` of them), depth-first without recursion, pausing now and then. */
export async function flattenThreads(roots: readonly ThreadNode[], messages: number, pause: Pause): Promise<Int32Array> {
  let out = new Int32Array(messages * 3 + 16);
  let n = 0;
  // A stack of nodes, each with whether "(" goes before it; a null node stands for its ")".
  const nodes: Array<ThreadNode | null> = [];
  const open: number[] = [];
  for (let i = roots.length - 1; i >= 0; i--) {
    nodes.push(null, roots[i]!);
    open.push(0, 1);
  }
  let steps = 0;
  while (nodes.length) {
    if (n + 4 > out.length) {
      const b = new Int32Array(out.length * 2);
      b.set(out);
      out = b;
    }
    if ((++steps & 8191) === 0) await pause();
    const x = nodes.pop()!;
    const o = open.pop()!;
    if (x === null) {
      out[n++] = CLOSE;
      continue;
    }
    if (o) out[n++] = OPEN;
    const kids = x.children;
    if (x.msg !== null) {
      out[n++] = x.msg.uid;
      if (kids.length > 0) out[n++] = SPACE;
    }
    if (kids.length === 1) {
      nodes.push(kids[0]!);
      open.push(0);
    } else {
      for (let i = kids.length - 1; i >= 0; i--) {
        nodes.push(null, kids[i]!);
        open.push(0, 1);
      }
    }
  }
  return out.slice(0, n);
}

/** Where the node starting at `i` ends: the first ")" that closes what encloses it (or the end). */
function nodeEnd(t: Int32Array, i: number): number {
  let depth = 0;
  for (let k = i; k < t.length; k++) {
    const x = t[k]!;
    if (x === OPEN) depth++;
    else if (x === CLOSE) {
      if (depth === 0) return k;
      depth--;
    }
  }
  return t.length;
}

/** From `i`, where the j-th parenthesised group starts, or where the enclosing node ends. */
function groupStart(t: Int32Array, i: number, j: number): number {
  let depth = 0;
  let seen = 0;
  for (let k = i; k < t.length; k++) {
    const x = t[k]!;
    if (x === OPEN) {
      if (depth === 0 && seen++ === j) return k;
      depth++;
    } else if (x === CLOSE) {
      if (depth === 0) return k;
      depth--;
    }
  }
  return t.length;
}

function splice(t: Int32Array, at: number, remove: number, insert: ArrayLike<number>): Int32Array {
  const out = new Int32Array(t.length - remove + insert.length);
  out.set(t.subarray(0, at), 0);
  out.set(insert, at);
  out.set(t.subarray(at + remove), at + insert.length);
  return out;
}

/**
 * The tokens after a message (token `id`, no children) was placed as addReference says: a new
 * thread at `index` among the threads, or a new child at `index` among a message's children
 * (given after the insertion). Scans the tokens once, touches no node; null when the tokens do
 * not have the expected shape (then flatten the threads again).
 */
export function patchTokens(t: Int32Array, placed: Placement, id: number): Int32Array | null {
  const p = placed.parent;
  if (p === null) return splice(t, groupStart(t, 0, placed.index), 0, [OPEN, id, CLOSE]);
  if (p.msg === null) return null;
  const i = t.indexOf(p.msg.uid);
  if (i < 0) return null;
  const before = p.children.length - 1;
  if (before === 0) return t[i + 1] === SPACE ? null : splice(t, i + 1, 0, [SPACE, id]);
  if (t[i + 1] !== SPACE) return null;
  const a = i + 2;
  if (before === 1) {
    // "P c…" becomes "P (c…)(id)" or "P (id)(c…)".
    const e = nodeEnd(t, a);
    const only = Array.from(t.subarray(a, e));
    const both = placed.index === 0 ? [OPEN, id, CLOSE, OPEN, ...only, CLOSE] : [OPEN, ...only, CLOSE, OPEN, id, CLOSE];
    return splice(t, a, e - a, both);
  }
  return splice(t, groupStart(t, a, placed.index), 0, [OPEN, id, CLOSE]);
}
