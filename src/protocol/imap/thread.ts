// THREAD algorithms (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES over the stored keys
// (sort-keys.ts), and the THREAD response (RFC 5256 §4). Pure. Nothing recurses: a thread may be
// 100,000 messages deep. Long loops call the caller's pause() so the event loop keeps turning.

import { compareKeys } from './sort-keys.ts';
import { sentDate, sortSliced, type SortItem } from './sort-order.ts';

/** A thread node: a message, or a dummy (msg null) standing for a missing or shared parent. */
export interface ThreadNode {
  msg: SortItem | null;
  children: ThreadNode[];
}

type Pause = () => Promise<void>;

/** Work units between two pause() calls (pause() itself yields only once its time slice is used). */
const SLICE = 512;

class Ticker {
  n = 0;
  readonly pause: Pause;
  constructor(pause: Pause) {
    this.pause = pause;
  }
  /** Counts work; true when a pause is due (the caller awaits pause() then: no await per item). */
  due(units = 1): boolean {
    this.n += units;
    if (this.n < SLICE) return false;
    this.n = 0;
    return true;
  }
}

// ------------------------------------------------------------------ ORDEREDSUBJECT

/**
 * RFC 5256 §3 ORDEREDSUBJECT: sorted by base subject then sent date; each run of one subject is a
 * thread whose first message is the parent of all the others (siblings); threads ordered by the
 * sent date of their first message.
 */
export async function orderedSubject(items: readonly SortItem[], pause: Pause): Promise<ThreadNode[]> {
  const bySubject = await sortSliced(items, (a, b) => compareKeys(a.subject, b.subject) || sentDate(a) - sentDate(b) || a.seq - b.seq, pause);
  const threads: ThreadNode[] = [];
  const t = new Ticker(pause);
  for (let i = 0; i < bySubject.length; ) {
    const head = bySubject[i]!;
    const node: ThreadNode = { msg: head, children: [] };
    let j = i + 1;
    for (; j < bySubject.length && bySubject[j]!.subject === head.subject; j++) node.children.push({ msg: bySubject[j]!, children: [] });
    threads.push(node);
    if (t.due(j - i)) await pause();
    i = j;
  }
  return sortSliced(threads, (a, b) => sentDate(a.msg!) - sentDate(b.msg!) || a.msg!.seq - b.msg!.seq, pause);
}

// ------------------------------------------------------------------ REFERENCES

interface Container {
  msg: SortItem | null;
  parent: Container | null;
  /** The parent step 1 gave it (kept for addReference; `parent` changes in step 5). */
  up: Container | null;
  /** While the links are built (step 1): a set, so unlinking is O(1); then `children`. */
  kids: Set<Container> | null;
  children: Container[];
}

/**
 * The children of a container without any, shared (frozen: a push would throw, never corrupt):
 * most containers never get one, and on 100,000 messages an empty array each is 100,000 more
 * objects for the young-generation GC to copy (its pauses are what other clients wait for).
 */
const NO_CHILDREN: Container[] = Object.freeze([]) as unknown as Container[];

const newContainer = (msg: SortItem | null = null): Container => ({ msg, parent: null, up: null, kids: null, children: NO_CHILDREN });

/**
 * Whether `a` is `b` or one of b's descendants (walks up from a). A `b` with no children has no
 * descendants: the common case (a message nobody referenced yet) costs nothing however deep `a` is.
 */
async function isDescendant(a: Container, b: Container, t: Ticker): Promise<boolean> {
  if (a === b) return true;
  if (!b.kids || b.kids.size === 0) return false;
  let steps = 0;
  for (let x: Container | null = a; x; x = x.parent) {
    if (x === b) return true;
    if (++steps === 256) {
      if (t.due(steps)) await t.pause();
      steps = 0;
    }
  }
  return false;
}

function unlink(c: Container): void {
  c.parent?.kids?.delete(c);
  c.parent = null;
}

/** A link of step 1 (kids set). */
function linkRef(parent: Container, child: Container): void {
  child.parent = parent;
  (parent.kids ??= new Set()).add(child);
}

/** A link after step 1. */
function link(parent: Container, child: Container): void {
  child.parent = parent;
  if (parent.children === NO_CHILDREN) parent.children = [child];
  else parent.children.push(child);
}

/** Step 1: containers linked by the references, one per Message-ID; returns every container. */
async function buildContainers(items: readonly SortItem[], t: Ticker, byId: Map<string, Container>): Promise<Container[]> {
  const all: Container[] = [];
  const get = (id: string): Container => {
    let c = byId.get(id);
    if (!c) {
      c = newContainer();
      byId.set(id, c);
      all.push(c);
    }
    return c;
  };
  for (const m of items) {
    if (t.due(1 + m.refs.length)) await t.pause();
    // A message without a valid Message-ID, or with one an earlier message has, gets a unique one.
    let own: Container;
    const known = m.messageId === null ? undefined : byId.get(m.messageId);
    if (m.messageId !== null && (!known || known.msg === null)) {
      own = get(m.messageId);
      own.msg = m;
    } else {
      own = newContainer(m);
      all.push(own);
    }
    // (A) each reference the parent of the next, unless it has a parent or that makes a loop.
    let prev: Container | null = null;
    for (const id of m.refs) {
      const c = get(id);
      if (prev && prev !== c && c.parent === null && !(await isDescendant(prev, c, t))) linkRef(prev, c);
      prev = c;
    }
    // (B) the last reference is the parent of this message (replacing a parent from 1.A).
    unlink(own);
    if (prev && prev !== own && !(await isDescendant(prev, own, t))) linkRef(prev, own);
  }
  for (const c of all) {
    if (t.due()) await t.pause();
    if (c.kids) c.children = [...c.kids];
    c.kids = null;
    c.up = c.parent;
  }
  return all;
}

/** Post-order walk (children before parents) without recursion; `visit` is synchronous. */
async function postOrder(roots: Container[], t: Ticker, visit: (c: Container) => void): Promise<void> {
  // Two parallel stacks (node, and whether its children are already on the stack): no tuple per
  // node for the GC to copy.
  const stack: Container[] = [];
  const expanded: boolean[] = [];
  for (let i = roots.length - 1; i >= 0; i--) {
    stack.push(roots[i]!);
    expanded.push(false);
  }
  while (stack.length) {
    const c = stack.pop()!;
    if (expanded.pop()) {
      visit(c);
      continue;
    }
    stack.push(c);
    expanded.push(true);
    for (let i = c.children.length - 1; i >= 0; i--) {
      stack.push(c.children[i]!);
      expanded.push(false);
    }
    if (t.due()) await t.pause();
  }
}

/**
 * Step 3: dummies without children go; a dummy with children is replaced by them, except under
 * the root where it stays when it has several. Children are pruned before their parent.
 */
function pruneList(list: Container[], atRoot: boolean): Container[] {
  // Nothing to prune (no dummy among them, the usual case): the same list, no copy.
  let dummy = false;
  for (const c of list) if (c.msg === null) dummy = true;
  if (!dummy) return list;
  const out: Container[] = [];
  for (const c of list) {
    if (c.msg !== null) out.push(c);
    else if (c.children.length === 0) continue;
    else if (!atRoot || c.children.length === 1) for (const k of c.children) out.push(k);
    else out.push(c);
  }
  return out;
}

/** The message a node sorts by: itself, or a dummy's first child (RFC 5256 §3 steps 4 and 6). */
function sortMsg(c: Container): SortItem | null {
  let x: Container | undefined = c;
  while (x && x.msg === null) x = x.children[0];
  return x?.msg ?? null;
}

function byDate(a: Container, b: Container): number {
  const x = sortMsg(a);
  const y = sortMsg(b);
  if (!x || !y) return x ? 1 : y ? -1 : 0;
  return sentDate(x) - sentDate(y) || x.seq - y.seq;
}

/**
 * Siblings in byDate order. Beyond a few, each one's sort message is looked up once and its sent
 * date and sequence number copied into two arrays, which the comparisons then read (a 100,000-node
 * root sorts without chasing a node and a message per comparison).
 */
async function sortSiblings(list: Container[], pause: Pause): Promise<Container[]> {
  if (list.length <= 2048) return sortSmall(list);
  await pause();
  const k = await dateKeys(list, pause);
  return permute(list, await sortSliced(k.idx, k.cmp, pause));
}

/** sortSiblings for at most a few thousand siblings, synchronously (inside a post-order visit). */
function sortSmall(list: Container[]): Container[] {
  if (list.length <= 8) return list.sort(byDate);
  const k = dateKeysSync(list);
  return permute(list, k.idx.sort(k.cmp));
}

type DateKeys = { idx: number[]; cmp: (a: number, b: number) => number };

/** dateKeys of a long list, pausing every few thousand (each lookup may miss the CPU's caches). */
async function dateKeys(list: readonly Container[], pause: Pause): Promise<DateKeys> {
  const k = dateKeysSync(list, 0);
  for (let i = 0; i < list.length; i += 4096) {
    k.fill(i, Math.min(list.length, i + 4096));
    await pause();
  }
  return k;
}

function dateKeysSync(list: readonly Container[], upTo = list.length): DateKeys & { fill(from: number, to: number): void } {
  const n = list.length;
  const date = new Float64Array(n);
  const seq = new Float64Array(n);
  const idx = new Array<number>(n);
  const fill = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const m = sortMsg(list[i]!);
      // No message under it (byDate: first, in the order they came): the lowest key, all equal.
      date[i] = m ? sentDate(m) : -Number.MAX_VALUE;
      seq[i] = m ? m.seq : 0;
      idx[i] = i;
    }
  };
  fill(0, upTo);
  return { idx, cmp: (a, b) => date[a]! - date[b]! || seq[a]! - seq[b]!, fill };
}

function permute<T>(list: readonly T[], order: readonly number[]): T[] {
  const out = new Array<T>(order.length);
  for (let i = 0; i < order.length; i++) out[i] = list[order[i]!]!;
  return out;
}

/** The thread subject (step 5.B.i): the base subject of the message, or of a dummy's first child. */
function threadSubject(c: Container): string {
  return sortMsg(c)?.subject ?? '';
}

/** Step 5: top-level threads with the same base subject are gathered. */
async function mergeSubjects(root: Container[], t: Ticker, table: Map<string, Container>): Promise<Container[]> {
  // Each top-level node's thread subject, looked up once (nothing below changes it in this step).
  const subjects = new Array<string>(root.length);
  for (let i = 0; i < root.length; i++) {
    const c = root[i]!;
    if (t.due()) await t.pause();
    const s = (subjects[i] = threadSubject(c));
    if (s === '') continue;
    const old = table.get(s);
    if (!old) table.set(s, c);
    else if (old.msg !== null && (c.msg === null || (old.msg.reply && !c.msg.reply))) table.set(s, c);
  }
  const gone = new Set<Container>();
  const replaced = new Map<Container, Container>();
  // Parent links are kept from here on: a top-level node merged under another one has a parent.
  for (const c of root) c.parent = null;
  for (let i = 0; i < root.length; i++) {
    const c = root[i]!;
    if (t.due()) await t.pause();
    if (c.parent !== null) continue;
    const s = subjects[i]!;
    if (s === '') continue;
    const old = table.get(s)!;
    if (old === c) continue;
    gone.add(c);
    if (old.msg === null && c.msg === null) {
      for (const k of c.children) link(old, k);
      c.children = NO_CHILDREN;
    } else if (old.msg === null || (c.msg!.reply && !old.msg.reply)) {
      link(old, c);
    } else {
      const d = newContainer();
      replaced.set(old, d);
      link(d, old);
      link(d, c);
      table.set(s, d);
    }
  }
  // The new dummies take the place of the message they were made for.
  const out: Container[] = [];
  for (const c of root) {
    if (t.due()) await t.pause();
    if (gone.has(c)) continue;
    out.push(replaced.get(c) ?? c);
  }
  return out;
}

/** RFC 5256 §3 REFERENCES, steps 1–6. */
export async function references(items: readonly SortItem[], pause: Pause): Promise<ThreadNode[]> {
  return (await referencesState(items, pause)).roots;
}

/**
 * What REFERENCES leaves behind for addReference: the step 1 containers by Message-ID (with their
 * step 1 parents), the threads (containers are ThreadNodes), the base subjects step 5 gathered.
 */
export interface ReferencesState {
  readonly roots: ThreadNode[];
  readonly byId: Map<string, Container>;
  /** Step 5's table: every base subject a top-level thread had (its values are not used later). */
  readonly subjects: Map<string, Container>;
  lastSeq: number;
}

/** references(), and the state a later message can be added to (addReference). */
export async function referencesState(items: readonly SortItem[], pause: Pause): Promise<ReferencesState & { roots: Container[] }> {
  const t = new Ticker(pause);
  const byId = new Map<string, Container>();
  const all = await buildContainers(items, t, byId);
  // (2) the root set
  let root: Container[] = [];
  for (const c of all) {
    if (t.due()) await t.pause();
    if (c.parent === null) root.push(c);
  }
  // (3) prune dummies, children first
  await postOrder(root, t, (c) => {
    c.children = pruneList(c.children, false);
  });
  root = pruneList(root, true);
  // (4) top-level siblings by sent date (a dummy by its first child, its children sorted first)
  for (const c of root) if (c.msg === null) c.children = await sortSiblings(c.children, pause);
  root = await sortSiblings(root, pause);
  // (5) gather threads by base subject
  const subjects = new Map<string, Container>();
  root = await mergeSubjects(root, t, subjects);
  // (6) every set of siblings by sent date, the deepest first
  // Small sibling sets sorted during the walk; big ones (more than a slice) afterwards, in slices.
  const big: Container[] = [];
  await postOrder(root, t, (c) => {
    if (c.children.length > 2048) big.push(c);
    else if (c.children.length > 1) c.children = sortSmall(c.children);
  });
  for (const c of big) c.children = await sortSiblings(c.children, pause);
  root = await sortSiblings(root, pause);
  // A container is a ThreadNode (its msg and children); the other fields stay for addReference.
  let lastSeq = 0;
  for (const m of items) if (m.seq > lastSeq) lastSeq = m.seq;
  return { roots: root, byId, subjects, lastSeq };
}

/** Steps up from `a` (step 1 parents) before addReference gives up on a loop check. */
const MAX_WALK = 4096;

/**
 * Adds a message that comes after every message of `state` (a higher sequence number) when
 * RFC 5256 §3's six steps would only place it, changing nothing else — the usual new mail:
 * - a reply whose references all name messages or dummies already linked the way step 1.A would
 *   link them (nothing new to link), the last one a message: it joins that message's children,
 *   in sent-date order (step 6);
 * - a message without references whose base subject no other thread has (step 5 gathers
 *   nothing): a thread of its own, in sent-date order among the threads (step 6).
 * Anything else (its Message-ID named before it came, a new reference, a shared subject, …)
 * returns null and changes nothing: the caller runs references() again. Synchronous; costs the
 * references' step 1 parent chains and two binary searches.
 */
export function addReference(state: ReferencesState & { roots: Container[] }, m: SortItem): Placement | null {
  if (m.seq <= state.lastSeq) return null;
  const id = m.messageId;
  // Named by an earlier message (a dummy now) or naming itself: step 1 would relink.
  if (id !== null && (state.byId.get(id)?.msg === null || m.refs.includes(id))) return null;
  let prev: Container | null = null;
  // References all new (dummies step 1 makes, each the parent of the next, the last this one's):
  // step 3 prunes that chain away, leaving the message at the root as if it had none.
  let fresh: Map<string, Container> | null = null;
  let known = false;
  for (const r of m.refs) {
    let c = state.byId.get(r);
    if (c) {
      if (fresh) return null;
      known = true;
    } else {
      if (known) return null;
      fresh ??= new Map();
      c = fresh.get(r);
      if (!c) fresh.set(r, (c = newContainer()));
    }
    // Step 1.A links c under prev when c has no parent and prev is not c or below it.
    if (prev && prev !== c && c.up === null) {
      const below = isBelow(prev, c);
      if (below === null) return null; // too deep to tell here
      if (!below) {
        if (!fresh) return null; // a new link among kept containers
        c.up = prev;
      }
    }
    prev = c;
  }
  const own = newContainer(m);
  let placed: Placement;
  if (prev === null || fresh) {
    // Its own thread, unless step 5 would gather it with one of the same base subject.
    if (m.subject !== '' && state.subjects.has(m.subject)) return null;
    placed = { parent: null, index: insertByDate(state.roots, own) };
    if (m.subject !== '') state.subjects.set(m.subject, own);
    own.up = prev;
    if (fresh) for (const [r, c] of fresh) state.byId.set(r, c);
  } else {
    if (prev.msg === null) return null; // under a dummy: step 3 would prune differently
    own.up = prev;
    own.parent = prev;
    if (prev.children === NO_CHILDREN) prev.children = [];
    placed = { parent: prev, index: insertByDate(prev.children, own) };
  }
  if (id !== null && !state.byId.has(id)) state.byId.set(id, own);
  state.lastSeq = m.seq;
  return placed;
}

/** Whether `a` is `b` or below it by step 1 parents; null past MAX_WALK steps. */
function isBelow(a: Container, b: Container): boolean | null {
  let steps = 0;
  for (let x: Container | null = a; x; x = x.up) {
    if (x === b) return true;
    if (++steps > MAX_WALK) return null;
  }
  return false;
}

/** Where addReference put a message: among the threads (parent null) or a message's children. */
export interface Placement {
  parent: ThreadNode | null;
  /** Its index among those siblings (in sent-date order). */
  index: number;
}

/** Inserts `c` into siblings sorted by byDate (step 6), after any equal; returns its index. */
function insertByDate(list: Container[], c: Container): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (byDate(list[mid]!, c) <= 0) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, c);
  return lo;
}

// ------------------------------------------------------------------ the THREAD response (RFC 5256 §4)

/**
 * `thread-data` without the leading "THREAD": for each thread `"(" thread-members / thread-nested
 * ")"`; a message with one child continues its line ("3 6"), with several nests each child's
 * sub-thread ("3 6 (4 23)(44 7 96)"); a dummy is only its children ("(3)(5)").
 */
export function formatThreads(roots: readonly ThreadNode[], num: (m: SortItem) => number): string {
  return [...formatThreadParts(roots, num)].join('');
}

/** formatThreads in pieces of about `partChars` characters, so a caller can write (and yield) between them. */
export function* formatThreadParts(roots: readonly ThreadNode[], num: (m: SortItem) => number, partChars = 65536): Generator<string> {
  let parts: string[] = [];
  let size = 0;
  const stack: Array<ThreadNode | string> = [];
  for (let i = roots.length - 1; i >= 0; i--) stack.push(')', roots[i]!, '(');
  while (stack.length) {
    if (size >= partChars) {
      yield parts.join('');
      parts = [];
      size = 0;
    }
    const x = stack.pop()!;
    if (typeof x === 'string') {
      parts.push(x);
      size++;
      continue;
    }
    const kids = x.children;
    if (x.msg !== null) {
      const t = String(num(x.msg));
      parts.push(t);
      size += t.length;
      if (kids.length > 0) parts.push(' ');
    }
    if (kids.length === 1) stack.push(kids[0]!);
    else for (let i = kids.length - 1; i >= 0; i--) stack.push(')', kids[i]!, '(');
  }
  if (parts.length) yield parts.join('');
}
