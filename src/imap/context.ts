// CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): SEARCH / SORT RETURN (UPDATE …) keeps the result
// of the command alive while the mailbox stays selected, and tells the client how it changes:
// `* ESEARCH (TAG "t") [UID] ADDTO (pos set …)` / `REMOVEFROM (pos set …)` (§4.3.2–§4.3.4).
// CANCELUPDATE (§4.3.5) ends one; SELECT, EXAMINE, CLOSE, UNSELECT end them all: the contexts
// belong to the SelectedMailbox (`sel.updates`) and go with it.
//
// Where the work goes (every change costs work for the changed messages only):
// - `note` (synchronous, from the bus through SelectedMailbox.apply): marks the changed UIDs dirty
//   per context — a flag change only for programs with flag/keyword/MODSEQ keys.
// - `#run` (asynchronous, one loop per selected mailbox): decides dirty UIDs in batches of
//   BATCH: flag changes from the change itself when the flags decide (context-eval.ts
//   flagJudge), the rest from one set of store reads per batch (evaluateBatch), an event-loop
//   turn between batches. SORT contexts also read the SORT keys of messages entering the result.
// - emission (`beforeExpunge` / `afterChanges`, called by SelectedMailbox.flushParts when the
//   session reports changes): compares each decision with the result as the client has it.
//   SEARCH contexts answer with position 0 in mailbox order (§4.3.3/§4.3.4 allow it for SEARCH);
//   SORT contexts need the real position: a RankedList (ranked-list.ts) gives it in O(log n)
//   comparisons plus a bounded move, so a change never walks the whole result.
//
// Order on the wire, so sequence numbers are always the client's (§4.3.3, §4.3.4): REMOVEFROM for
// an expunged result comes before the EXPUNGE (or VANISHED) in the same flush, or earlier; ADDTO for
// a new message only once its EXISTS was sent; flag-caused updates after the FETCH they follow.
//
// Limits (§4.3.1 allows refusing; the results of the command itself are still given): at most
// MAX_CONTEXTS live contexts per session, MAX_SORT_CONTEXTS of them SORT, MAX_CONTEXT_RESULTS
// results in all of them; OLDER/YOUNGER programs (RFC 5032 §2: answers change with time alone) are
// refused. A refusal is `* NO [NOUPDATE "tag"] why` after the ESEARCH response.

import type { Change } from '../store/bus.ts';
import type { SearchKey, SortCriterion } from '../protocol/imap/types.ts';
import { formatSeqSet, quotedOrNil } from '../protocol/imap/response.ts';
import { sortComparator, type SortItem } from '../protocol/imap/sort-order.ts';
import { activity, LoopBudget } from '../obs/loop-lag.ts';
import { ImapBad } from './errors.ts';
import { orderedSet } from './esearch.ts';
import type { SelectedMailbox, ResultUpdates } from './selected.ts';
import type { ImapSession } from './session.ts';
import { BATCH, compileProgram, evaluateBatch, flagJudge, type FlagState, type Program } from './context-eval.ts';
import { RankedList } from './ranked-list.ts';

/** Live update contexts per session (Dovecot 2.3 keeps 10). */
export const MAX_CONTEXTS = 10;
/** Of them SORT contexts (each holds its results' SORT keys). */
export const MAX_SORT_CONTEXTS = 3;
/** Results held by a session's contexts together, counted when each is made. */
export const MAX_CONTEXT_RESULTS = 500_000;
/** A tagged reply waits at most this long for decisions still being made (the rest follow later). */
const SETTLE_MS = 1000;
/** ADDTO / REMOVEFROM pairs per ESEARCH line (SORT), numbers per set (SEARCH). */
const PAIRS_PER_LINE = 2000;
const SET_PER_LINE = 16000;

type Dirt = 'flags' | 'full';

interface SortState {
  cmp: (a: SortItem, b: SortItem) => number;
  /** The result as the client has it, in sort order. */
  list: RankedList<SortItem>;
  /** Its members by UID. */
  items: Map<number, SortItem>;
}

/** One live context. */
class UpdateContext {
  readonly tag: string;
  readonly uid: boolean;
  readonly program: Program;
  /** SORT: the order (ties by UID: the same order as by sequence number, RFC 5256 §3). */
  readonly sort: SortState | null;
  /** SEARCH: the result as the client has it. */
  readonly shown = new Set<number>();
  /** Between begin and install: the command's own search is running, changes are only noted. */
  building = true;
  /** UIDs to (re)decide, and why. */
  readonly dirty = new Map<number, Dirt>();
  /** Decided, not yet compared with what the client has. */
  readonly decided = new Map<number, boolean>();
  /** SORT: keys of messages decided in, not yet inserted. */
  readonly entering = new Map<number, SortItem>();

  constructor(tag: string, uid: boolean, program: Program, criteria: readonly SortCriterion[] | null) {
    this.tag = tag;
    this.uid = uid;
    this.program = program;
    if (criteria) {
      const cmp = sortComparator(criteria);
      this.sort = { cmp, list: new RankedList(cmp), items: new Map() };
    } else this.sort = null;
  }

  has(uid: number): boolean {
    return this.sort ? this.sort.items.has(uid) : this.shown.has(uid);
  }

  get size(): number {
    return this.sort ? this.sort.items.size : this.shown.size;
  }
}

/** What the handler of a searching command holds between its search and its answer. */
export interface PendingContext {
  /**
   * Makes the context live with the command's result (SEARCH: UIDs ascending; SORT: the items in
   * sort order, taken over). Returns the NOUPDATE text when refused, else null.
   */
  install(result: { uids: readonly number[] } | { items: SortItem[] }): string | null;
  /** The command failed: no context. */
  abort(): void;
}

/** Starts an update context for `tag` (throws BAD on tag reuse, RFC 5267 §4.3). */
export function beginContext(s: ImapSession, tag: string, key: SearchKey, uid: boolean, criteria: readonly SortCriterion[] | null): PendingContext {
  const sel = s.selected!;
  let set = sel.updates as ResultContexts | null;
  if (set?.byTag.has(tag)) throw new ImapBad('Tag reuse: that tag already names an update context (RFC 5267 §4.3)');
  const program = compileProgram(key, sel.uids, s.savedSearch);
  const refuse = (why: string): PendingContext => ({ install: () => why, abort: () => {} });
  if (program.timed) return refuse('OLDER/YOUNGER results change with time alone: search again for a current answer');
  set ??= new ResultContexts(s, sel);
  if (set.byTag.size >= MAX_CONTEXTS) return refuse(`Too many contexts (at most ${MAX_CONTEXTS}): CANCELUPDATE one first`);
  if (criteria && [...set.byTag.values()].filter((c) => c.sort).length >= MAX_SORT_CONTEXTS) return refuse(`Too many SORT contexts (at most ${MAX_SORT_CONTEXTS})`);
  sel.updates = set;
  const ctx = new UpdateContext(tag, uid, program, criteria);
  set.byTag.set(tag, ctx);
  const own = set;
  return {
    install(result) {
      if (own.byTag.get(tag) !== ctx) return 'Mailbox no longer selected';
      const n = 'uids' in result ? result.uids.length : result.items.length;
      if (own.results + n > MAX_CONTEXT_RESULTS) {
        own.byTag.delete(tag);
        return `Too many results to follow (at most ${MAX_CONTEXT_RESULTS} in all contexts)`;
      }
      own.install(ctx, result);
      return null;
    },
    abort() {
      if (own.byTag.get(tag) === ctx) own.byTag.delete(tag);
    },
  };
}

/** CANCELUPDATE (RFC 5267 §4.3.5): the tags that named no live context. */
export function cancelContexts(s: ImapSession, tags: readonly string[]): string[] {
  const set = s.selected?.updates as ResultContexts | null | undefined;
  const unknown: string[] = [];
  for (const t of tags) if (!set?.byTag.delete(t)) unknown.push(t);
  return unknown;
}

/** The update contexts of one selected mailbox. */
export class ResultContexts implements ResultUpdates {
  readonly byTag = new Map<string, UpdateContext>();
  readonly #s: ImapSession;
  readonly #sel: SelectedMailbox;
  /** Latest flags per UID from the bus, for flagJudge. */
  readonly #flags = new Map<number, FlagState>();
  #running: Promise<void> | null = null;

  constructor(s: ImapSession, sel: SelectedMailbox) {
    this.#s = s;
    this.#sel = sel;
  }

  get #live(): boolean {
    return this.#s.selected === this.#sel && !this.#s.closed && this.#sel.updates === this;
  }

  get results(): number {
    let n = 0;
    for (const c of this.byTag.values()) n += c.size;
    return n;
  }

  get pending(): boolean {
    if (this.#running) return true;
    for (const c of this.byTag.values()) if (!c.building && (c.decided.size || c.dirty.size)) return true;
    return false;
  }

  install(ctx: UpdateContext, result: { uids: readonly number[] } | { items: SortItem[] }): void {
    if ('items' in result) {
      const sort = ctx.sort!;
      // Ties by UID from here on (sequence order = UID order among the messages present).
      for (const it of result.items) {
        it.seq = it.uid;
        sort.items.set(it.uid, it);
      }
      sort.list = new RankedList(sort.cmp, result.items);
    } else for (const u of result.uids) ctx.shown.add(u);
    ctx.building = false;
    // Messages the session knew of but had not announced were not searched: decide them now.
    for (const u of this.#sel.pendingAdded) ctx.dirty.set(u, 'full');
    if (ctx.dirty.size) this.#kick();
  }

  // ---- changes in (synchronous, from SelectedMailbox.apply)

  note(changes: readonly Change[]): void {
    let any = false;
    for (const c of changes) {
      if (!('mailboxId' in c) || c.mailboxId !== this.#sel.mailboxId) continue;
      if (c.kind === 'message-added') {
        for (const ctx of this.byTag.values()) ctx.dirty.set(c.uid, 'full');
        any = true;
      } else if (c.kind === 'flags-changed') {
        this.#flags.set(c.uid, { systemFlags: c.systemFlags, keywords: c.keywords, modseq: c.modseq });
        for (const ctx of this.byTag.values()) {
          if (ctx.program.dynamic && ctx.dirty.get(c.uid) !== 'full') ctx.dirty.set(c.uid, 'flags');
        }
        any = true;
      } else if (c.kind === 'messages-expunged') {
        // The REMOVEFROM is made at the next flush, from the session's pending expunges.
        for (const u of c.uids) {
          this.#flags.delete(u);
          for (const ctx of this.byTag.values()) ctx.dirty.delete(u);
        }
      }
    }
    if (any) this.#kick();
  }

  #kick(): void {
    if (!this.#running) this.#running = this.#run().finally(() => (this.#running = null));
  }

  /** Waits (up to SETTLE_MS) for the decisions of the changes noted so far. */
  async settle(): Promise<void> {
    if (!this.#running) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#running, new Promise<void>((r) => (timer = setTimeout(r, SETTLE_MS)))]);
    clearTimeout(timer);
  }

  // ---- decisions (asynchronous)

  async #run(): Promise<void> {
    const budget = new LoopBudget();
    const store = this.#s.deps.store;
    const label = `imap.context account=${this.#s.account?.address ?? '-'} mailbox=${this.#sel.name}`;
    while (this.#live) {
      const done = activity.begin(label);
      const work = this.#takeBatch();
      done();
      if (!work) return;
      // IMAP4rev1: a new message's \Recent is known once the session checked it (RECENT / NEW keys).
      if (this.#sel.recentSource) await this.#sel.settleRecent();
      const full = work.filter((w) => w.uids.length);
      if (full.length) {
        const verdicts = await evaluateBatch(store, this.#sel.mailboxId, this.#sel.recent, full.map((w) => ({ program: w.ctx.program, uids: w.uids })));
        full.forEach((w, i) => this.#decide(w.ctx, verdicts[i]!));
      }
      await this.#readSortKeys(work.map((w) => w.ctx));
      if (!this.#live) return;
      this.#ready();
      await budget.pause();
    }
  }

  /**
   * Up to BATCH dirty UIDs (the oldest-noted first, O(BATCH) to pick); decides flag changes the
   * flags alone settle, returns the rest per context for evaluateBatch. Null when nothing is dirty.
   */
  #takeBatch(): Array<{ ctx: UpdateContext; uids: number[] }> | null {
    const ctxs = [...this.byTag.values()].filter((c) => !c.building && c.dirty.size);
    if (ctxs.length === 0) return null;
    const batch = new Set<number>();
    for (const c of ctxs) {
      for (const u of c.dirty.keys()) {
        if (batch.size >= BATCH) break;
        batch.add(u);
      }
    }
    const flags = new Map<number, FlagState>();
    for (const u of batch) {
      const f = this.#flags.get(u);
      if (f) flags.set(u, f);
      this.#flags.delete(u);
    }
    return ctxs.map((ctx) => {
      const rest: number[] = [];
      const quick = new Map<number, boolean>();
      const judge = flagJudge(ctx.program, this.#sel.recent);
      for (const u of batch) {
        const why = ctx.dirty.get(u);
        if (!why) continue;
        ctx.dirty.delete(u);
        const f = why === 'flags' ? flags.get(u) : undefined;
        const v = f ? judge(u, f) : null;
        if (v === null) rest.push(u);
        else quick.set(u, v);
      }
      this.#decide(ctx, quick);
      return { ctx, uids: rest.sort((a, b) => a - b) };
    });
  }

  #decide(ctx: UpdateContext, verdicts: ReadonlyMap<number, boolean>): void {
    if (this.byTag.get(ctx.tag) !== ctx) return; // cancelled meanwhile
    for (const [u, v] of verdicts) {
      if (this.#sel.pendingExpunged.has(u)) continue;
      ctx.decided.set(u, v);
      if (!v) ctx.entering.delete(u);
    }
  }

  /** SORT contexts: the keys of messages decided in (RFC 5256 keys, stored at delivery). */
  async #readSortKeys(ctxs: readonly UpdateContext[]): Promise<void> {
    const want = new Set<number>();
    for (const c of ctxs) {
      if (!c.sort) continue;
      for (const [u, v] of c.decided) if (v && !c.sort.items.has(u) && !c.entering.has(u)) want.add(u);
    }
    if (want.size === 0) return;
    const uids = [...want].sort((a, b) => a - b);
    const data = await this.#s.deps.store.getSortData(this.#sel.mailboxId, uids);
    for (const c of ctxs) {
      if (!c.sort) continue;
      for (const d of data) if (c.decided.get(d.uid) === true && !c.sort.items.has(d.uid)) c.entering.set(d.uid, { ...d, seq: d.uid });
    }
    // Gone from the store meanwhile: not in the result (its expunge follows).
    for (const c of ctxs) for (const u of uids) if (c.decided.get(u) === true && !c.entering.has(u) && c.sort && !c.sort.items.has(u)) c.decided.set(u, false);
  }

  /** Decisions made: during IDLE they go out now (RFC 5267 §4.3.2: at any time). */
  #ready(): void {
    if (this.pending && this.#s.idle.active) this.#s.idle.push();
  }

  // ---- emission (from SelectedMailbox.flushParts)

  /** REMOVEFROM for results about to be reported expunged, numbered as before the expunge (§4.3.4). */
  *beforeExpunge(): Generator<string> {
    const gone = this.#sel.pendingExpunged;
    if (gone.size === 0) return;
    for (const ctx of this.byTag.values()) {
      if (ctx.building) continue;
      const out: number[] = [];
      for (const u of gone) {
        ctx.decided.delete(u);
        ctx.entering.delete(u);
        ctx.dirty.delete(u);
        if (ctx.has(u)) out.push(u);
      }
      if (out.length) yield* this.#lines(ctx, out.sort((a, b) => a - b), []);
    }
  }

  /** ADDTO / REMOVEFROM for decisions about messages the client has been told of (§4.3.3). */
  *afterChanges(): Generator<string> {
    const sel = this.#sel;
    for (const ctx of this.byTag.values()) {
      if (ctx.building || ctx.decided.size === 0) continue;
      const adds: number[] = [];
      const removes: number[] = [];
      for (const [u, v] of ctx.decided) {
        if (!sel.seqOf(u) || sel.pendingExpunged.has(u)) {
          // Not announced yet (its EXISTS comes later) — or gone: the expunge reports it.
          if (!sel.pendingAdded.has(u)) ctx.decided.delete(u);
          continue;
        }
        if (v && ctx.sort && !ctx.entering.has(u) && !ctx.sort.items.has(u)) continue; // keys being read
        ctx.decided.delete(u);
        if (v !== ctx.has(u)) (v ? adds : removes).push(u);
      }
      if (adds.length || removes.length) yield* this.#lines(ctx, removes.sort((a, b) => a - b), adds.sort((a, b) => a - b));
    }
  }

  /** Applies removals then additions to the context's result, as ESEARCH lines. */
  *#lines(ctx: UpdateContext, removes: number[], adds: number[]): Generator<string> {
    const num = (u: number) => (ctx.uid ? u : this.#sel.seqOf(u));
    const head = `* ESEARCH (TAG ${quotedOrNil(ctx.tag)})${ctx.uid ? ' UID' : ''}`;
    if (!ctx.sort) {
      // Position 0, the set in mailbox order (§4.3.3, §4.3.4: allowed and recommended for SEARCH).
      for (const u of removes) ctx.shown.delete(u);
      for (const u of adds) ctx.shown.add(u);
      for (let i = 0; i < Math.max(removes.length, adds.length); i += SET_PER_LINE) {
        const r = removes.slice(i, i + SET_PER_LINE).map(num);
        const a = adds.slice(i, i + SET_PER_LINE).map(num);
        yield `${head}${r.length ? ` REMOVEFROM (0 ${formatSeqSet(r)})` : ''}${a.length ? ` ADDTO (0 ${formatSeqSet(a)})` : ''}\r\n`;
      }
      return;
    }
    const sort = ctx.sort;
    // In slices of PAIRS_PER_LINE, a line each (SelectedMailbox.flushTo gives the event loop a
    // turn between parts). Order within a slice without comparing keys again: removals by their
    // rank now, ascending (the j-th removed sits at rank - j); additions inserted first, then
    // announced by their rank after the slice, ascending (each lands exactly there, §4.3.3).
    for (let i = 0; i < removes.length; i += PAIRS_PER_LINE) {
      const ranked = removes.slice(i, i + PAIRS_PER_LINE).map((u) => {
        const it = sort.items.get(u)!;
        return { it, rank: sort.list.rankOf(it) };
      });
      ranked.sort((x, y) => x.rank - y.rank);
      const pairs: Pair[] = [];
      ranked.forEach(({ it, rank }, j) => {
        sort.list.remove(it);
        sort.items.delete(it.uid);
        pushPair(pairs, 'REMOVEFROM', rank - j + 1, num(it.uid));
      });
      yield head + dataItems(pairs) + '\r\n';
    }
    for (let i = 0; i < adds.length; i += PAIRS_PER_LINE) {
      const slice = adds.slice(i, i + PAIRS_PER_LINE).map((u) => ctx.entering.get(u)!);
      for (const it of slice) {
        ctx.entering.delete(it.uid);
        sort.items.set(it.uid, it);
        sort.list.insert(it);
      }
      const ranked = slice.map((it) => ({ it, rank: sort.list.rankOf(it) })).sort((x, y) => x.rank - y.rank);
      const pairs: Pair[] = [];
      for (const { it, rank } of ranked) pushPair(pairs, 'ADDTO', rank + 1, num(it.uid));
      yield head + dataItems(pairs) + '\r\n';
    }
  }
}

type Pair = { op: 'REMOVEFROM' | 'ADDTO'; pos: number; values: number[] };

/**
 * Appends one result to the pairs: REMOVEFROM at the same position as the last pair removes the
 * result that followed it (§4.3.4); ADDTO right after the last pair's run continues it (§4.3.3).
 */
function pushPair(pairs: Pair[], op: Pair['op'], pos: number, value: number): void {
  const last = pairs[pairs.length - 1];
  if (last && last.op === op && (op === 'REMOVEFROM' ? pos === last.pos : pos === last.pos + last.values.length)) last.values.push(value);
  else pairs.push({ op, pos, values: [value] });
}

/** Consecutive pairs of one kind in one data item: ` REMOVEFROM (p set p set) ADDTO (p set)`. */
function dataItems(pairs: ReadonlyArray<{ op: string; pos: number; values: number[] }>): string {
  let out = '';
  for (let i = 0; i < pairs.length; ) {
    const op = pairs[i]!.op;
    const parts: string[] = [];
    for (; i < pairs.length && pairs[i]!.op === op; i++) parts.push(`${pairs[i]!.pos} ${orderedSet(pairs[i]!.values, true)}`);
    out += ` ${op} (${parts.join(' ')})`;
  }
  return out;
}
