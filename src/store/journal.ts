// The change journal (docs/architecture.md, "Change journal"): every committed Change gets a
// per-account sequence number, assigned and written in the transaction that makes the change
// (sqlite/journal.ts, postgres/journal.ts, called from the one place each backend finalizes a
// transaction's Changes before COMMIT), so no write path can forget it and a failed write leaves
// no entry. `changesSince(account, seq)` reads it back in seq order: what a process that missed a
// bus publication (another server process, another node, a sync API's "what changed since state
// X") pulls. Entries older than the pruning horizon are dropped in bounded steps; asking from
// before it answers "resync".
//
// Here: what both backends share — the row encoding, the pruning rule, and `JournalFollower`, a
// subscriber that takes the bus's in-process Changes when they follow on and pulls from the
// journal when it sees a gap (or is told by a notification that the head moved).

import type { Change, ChangeBus } from './bus.ts';
import { formatRuns } from '../protocol/imap/response.ts';

/**
 * A Change as read back from the journal, with its sequence number and commit time (ms). Message
 * entries say which message changed and its MODSEQ, not its flags or keywords (read those from
 * the store: listMessages changedSince), so entries stay small and a run of them (a COPY of
 * 100,000 messages: consecutive UIDs and MODSEQs) is one row. Every other kind reads back whole.
 */
export type JournalChange = { seq: number; at: number } & (
  | { kind: 'message-added' | 'flags-changed'; accountId: number; mailboxId: number; uid: number; modseq: number; origin?: string }
  | Exclude<Change, { kind: 'message-added' | 'flags-changed' }>
);

export type ChangesSince =
  /** The changes after `since`, in seq order (at most `limit`); `head` the account's latest seq. */
  | { resync: false; changes: JournalChange[]; head: number }
  /**
   * `since` is before the pruning horizon (entries after it were dropped: `floor` is the highest
   * seq no longer kept) or after the head (a journal that was reset): read the state afresh.
   */
  | { resync: true; head: number; floor: number };

/** The journal side of a Store (both backends). */
export interface ChangeJournal {
  /** At most `limit` changes of the account with seq > since (limit clamped to 1..MAX_JOURNAL_PAGE). */
  changesSince(accountId: number, since: number, limit?: number): Promise<ChangesSince>;
  /** The account's latest seq (0: nothing recorded yet). */
  journalHead(accountId: number): Promise<number>;
  /** One bounded pruning pass (see JournalPruneOptions); returns the entries removed. */
  pruneJournal(opts: JournalPruneOptions): Promise<number>;
}

export interface JournalPruneOptions {
  /** Drop entries committed before now - maxAgeMs. */
  maxAgeMs: number;
  /** Keep at most this many entries per account. */
  maxEntries: number;
  /** Rows removed per transaction (default 2000; a row may hold a run of entries); the pass yields to the event loop between them. */
  chunk?: number;
  /** Stop after about this many entries (default: unbounded; the pass ends when nothing is left to drop). */
  budget?: number;
  now?: number;
  /** Checked between chunks: true ends the pass early (shutdown). */
  stop?: () => boolean;
}

export const MAX_JOURNAL_PAGE = 10_000;
export const DEFAULT_PRUNE_CHUNK = 2000;

export function clampPage(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return 1000;
  return Math.min(MAX_JOURNAL_PAGE, Math.max(1, Math.floor(limit)));
}

// ---------------------------------------------------------------- row encoding

/** Kind codes as stored (append only: a stored code never changes meaning). */
const KINDS = [
  'message-added',
  'flags-changed',
  'messages-expunged',
  'mailbox-created',
  'mailbox-renamed',
  'mailbox-deleted',
  'subscription-changed',
  'account-removed',
  'account-created',
  'account-updated',
] as const satisfies ReadonlyArray<Change['kind']>;
const KIND_CODE = new Map<string, number>(KINDS.map((k, i) => [k, i]));

/**
 * One journal row but for account and time: `n` consecutive entries ending at `seq` — for n > 1
 * a run of one kind in one mailbox whose UIDs and MODSEQs go up by one from `uid` and `modseq`,
 * with the same `data`.
 */
export interface JournalRow {
  seq: number;
  n: number;
  kind: number;
  mailboxId: number | null;
  uid: number | null;
  modseq: number | null;
  /** The entry's other fields as JSON (expunged UIDs as a sequence set, "1:5,9"), or null. */
  data: string | null;
}

/** Fields kept in columns, and those a message entry leaves out (state: read it from the store). */
const COLUMNS = new Set(['kind', 'accountId', 'mailboxId', 'uid', 'modseq', 'seq']);
const STATE = new Set(['keywords', 'systemFlags']);
const MESSAGE_KINDS = new Set(['message-added', 'flags-changed']);

function encodeData(c: Change): string | null {
  const r = c as Record<string, unknown>;
  const skip = MESSAGE_KINDS.has(c.kind);
  let rest: Record<string, unknown> | null = null;
  for (const k in r) {
    if (COLUMNS.has(k) || r[k] === undefined || (skip && STATE.has(k))) continue;
    (rest ??= {})[k] = k === 'uids' ? formatRuns(r[k] as number[]) : r[k];
  }
  return rest ? JSON.stringify(rest) : null;
}

let lastOrigin: string | undefined;
let lastOriginData: string | null = null;
function originData(origin: string | undefined): string | null {
  if (origin === undefined) return null;
  if (origin !== lastOrigin) {
    lastOrigin = origin;
    lastOriginData = JSON.stringify({ origin });
  }
  return lastOriginData;
}

/**
 * One account's changes of a transaction, in order, numbered from `first`, as rows (runs of
 * message entries folded into one). Sets each Change's seq.
 */
export function journalRows(list: readonly Change[], first: number): JournalRow[] {
  const rows: JournalRow[] = [];
  let prev: JournalRow | null = null;
  let seq = first;
  for (const c of list) {
    const code = KIND_CODE.get(c.kind);
    if (code === undefined) throw new Error(`change journal: unknown change kind ${c.kind}`);
    c.seq = seq;
    const r = c as { mailboxId?: number; uid?: number; modseq?: number };
    // A message entry's data is its origin alone: no JSON.stringify per entry of a long run.
    const data = MESSAGE_KINDS.has(c.kind) ? originData(c.origin) : encodeData(c);
    if (
      prev !== null &&
      prev.kind === code &&
      MESSAGE_KINDS.has(c.kind) &&
      prev.mailboxId === r.mailboxId &&
      prev.uid! + prev.n === r.uid &&
      prev.modseq! + prev.n === r.modseq &&
      prev.data === data
    ) {
      prev.n++;
      prev.seq = seq++;
      continue;
    }
    prev = { seq: seq++, n: 1, kind: code, mailboxId: r.mailboxId ?? null, uid: r.uid ?? null, modseq: r.modseq ?? null, data };
    rows.push(prev);
  }
  return rows;
}

/** A row's entries with seq > since, at most `max` of them. */
export function expandRow(accountId: number, at: number, row: JournalRow, since: number, max: number): JournalChange[] {
  const kind = KINDS[row.kind];
  if (kind === undefined) throw new Error(`change journal: unknown kind code ${row.kind}`);
  const base: Record<string, unknown> = row.data === null ? {} : JSON.parse(row.data);
  if (kind === 'messages-expunged') base.uids = parseUidSet(base.uids as string);
  const out: JournalChange[] = [];
  const firstSeq = row.seq - row.n + 1;
  for (let k = Math.max(0, since + 1 - firstSeq); k < row.n && out.length < max; k++) {
    const c: Record<string, unknown> = { kind, accountId };
    if (row.mailboxId !== null) c.mailboxId = Number(row.mailboxId);
    if (row.uid !== null) c.uid = Number(row.uid) + k;
    if (row.modseq !== null) c.modseq = Number(row.modseq) + k;
    Object.assign(c, base);
    c.seq = firstSeq + k;
    c.at = at;
    out.push(c as JournalChange);
  }
  return out;
}

/** The answer from rows (ascending, ending after `since`): at most `max` entries, or resync if the first is missing. */
export function journalPage(accountId: number, since: number, head: number, floor: number, max: number, rows: ReadonlyArray<Record<string, any>>): ChangesSince {
  const changes: JournalChange[] = [];
  for (const r of rows) {
    if (changes.length >= max) break;
    const row = { seq: Number(r.seq), n: Number(r.n), kind: Number(r.kind), mailboxId: r.mailbox_id, uid: r.uid, modseq: r.modseq, data: r.data };
    for (const c of expandRow(accountId, Number(r.at), row, since, max - changes.length)) changes.push(c);
  }
  // Pruned meanwhile past `since` (the floor moves before entries go): resync.
  if (since < head && (changes.length === 0 || changes[0]!.seq !== since + 1)) return { resync: true, head, floor: Math.max(floor, since + 1) };
  return { resync: false, changes, head: Math.max(head, changes.at(-1)?.seq ?? 0) };
}

function parseUidSet(s: string): number[] {
  const out: number[] = [];
  if (!s) return out;
  for (const part of s.split(',')) {
    const colon = part.indexOf(':');
    if (colon < 0) out.push(Number(part));
    else for (let u = Number(part.slice(0, colon)), end = Number(part.slice(colon + 1)); u <= end; u++) out.push(u);
  }
  return out;
}

/** Groups changes by account, keeping their order (each account's changes get consecutive seqs). */
export function byAccount(changes: readonly Change[], from = 0): Map<number, Change[]> {
  const m = new Map<number, Change[]>();
  for (let i = from; i < changes.length; i++) {
    const c = changes[i]!;
    let l = m.get(c.accountId);
    if (!l) m.set(c.accountId, (l = []));
    l.push(c);
  }
  return m;
}

/** The fields an updateAccount patch sets, for its account-updated Change. */
export function changedFields(patch: { passwordHash?: string; quota?: number; settings?: unknown }): Array<'password' | 'quota' | 'settings'> {
  const f: Array<'password' | 'quota' | 'settings'> = [];
  if (patch.passwordHash !== undefined) f.push('password');
  if (patch.quota !== undefined) f.push('quota');
  if (patch.settings !== undefined) f.push('settings');
  return f;
}

// ---------------------------------------------------------------- pruning

/**
 * The highest seq to drop from an account's oldest entries (ascending `rows`): a prefix only, so
 * what is kept never has a hole, and every entry <= the new floor is gone.
 */
export function prunePrefix(rows: ReadonlyArray<{ seq: number; at: number }>, head: number, cutoffAt: number, maxEntries: number): number {
  let last = 0;
  for (const r of rows) {
    if (r.at >= cutoffAt && r.seq > head - maxEntries) break;
    last = r.seq;
  }
  return last;
}

// ---------------------------------------------------------------- following

/** Bus Changes (the fast path, whole) or journal entries (pulled: message state left to read from the store). */
export type FollowListener = (changes: readonly Change[] | readonly JournalChange[]) => void;

/** What a follower reads: a Store, or a second Store on the same data (another process). */
export type JournalSource = Pick<ChangeJournal, 'changesSince'>;

/**
 * Follows one account's changes in seq order from `from`, each change delivered once. In-process
 * the bus's Changes arrive with their seq and are passed on as they are when they follow on (the
 * fast path: no read); a publication past the next seq (a commit this process never published,
 * another process's) or a `poke(head)` (a notification: "account A moved to N") makes it pull the
 * missing entries from the journal. Changes at or below what was delivered are dropped. When the
 * journal no longer has what is missing, `onResync` is called and following goes on from the head.
 */
export class JournalFollower {
  readonly #source: JournalSource;
  readonly #accountId: number;
  readonly #listener: FollowListener;
  readonly #onResync: (head: number) => void;
  #seq: number;
  /** A notification came while a read was under way: read once more. */
  #again = false;
  #pulling: Promise<void> | null = null;
  #unsubscribe: (() => void) | null = null;
  /** Entries read from the journal (for tests and metrics: 0 while the fast path keeps up). */
  pulled = 0;

  constructor(
    source: JournalSource,
    accountId: number,
    from: number,
    listener: FollowListener,
    onResync: (head: number) => void = () => {},
  ) {
    this.#source = source;
    this.#accountId = accountId;
    this.#seq = from;
    this.#listener = listener;
    this.#onResync = onResync;
  }

  /** The last seq delivered. */
  get seq(): number {
    return this.#seq;
  }

  /** Subscribes to the bus's publications and notifications of the account. */
  attach(bus: ChangeBus): this {
    const a = bus.subscribe(this.#accountId, (changes) => this.offer(changes));
    const b = bus.onNotify(this.#accountId, () => this.#kick());
    this.#unsubscribe = () => (a(), b());
    return this;
  }

  detach(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }

  /** A publication: delivered at once if it follows on, otherwise a pull. */
  offer(changes: readonly Change[]): void {
    if (changes.length === 0) return;
    const first = changes[0]!.seq;
    const last = changes[changes.length - 1]!.seq;
    if (first === undefined || last === undefined) return this.#kick();
    if (last <= this.#seq) return; // pulled already
    if (first !== this.#seq + 1) return this.#kick();
    this.#seq = last;
    this.#listener(changes);
  }

  /** A pull nobody awaits: a failed read is logged (the next notification or gap reads again), never an unhandled rejection. */
  #kick(): void {
    this.poke().catch((err) => console.error(`change follower: account ${this.#accountId}: journal read failed:`, err));
  }

  /** A notification: the account's head moved (to `_head`). Resolves once caught up with the journal. */
  poke(_head?: number): Promise<void> {
    if (this.#pulling) {
      this.#again = true;
      return this.#pulling;
    }
    return (this.#pulling = this.#pull().finally(() => (this.#pulling = null)));
  }

  async #pull(): Promise<void> {
    for (;;) {
      this.#again = false;
      const r = await this.#source.changesSince(this.#accountId, this.#seq);
      if (r.resync) {
        this.#seq = r.head;
        this.#onResync(r.head);
      } else {
        const fresh = r.changes.filter((c) => c.seq > this.#seq);
        if (fresh.length) {
          this.pulled += fresh.length;
          this.#seq = fresh[fresh.length - 1]!.seq;
          this.#listener(fresh);
        } else if (!this.#again) return; // nothing newer is readable (yet)
      }
      if (!this.#again && this.#seq >= r.head) return;
    }
  }
}

// ---------------------------------------------------------------- periodic pruning

export interface JournalPruning {
  /** Ends the timer and waits for a pass under way (which stops at its next chunk). */
  stop(): Promise<void>;
}

/**
 * Prunes the journal every `intervalMs` (0: never), off the hot path: a pass is a series of
 * bounded transactions (JournalPruneOptions.chunk) with event-loop turns between them.
 */
export function startJournalPruning(
  store: Pick<ChangeJournal, 'pruneJournal'>,
  o: { maxAgeMs: number; maxEntries: number; intervalMs: number; onError?: (err: unknown) => void; onPruned?: (n: number, ms: number) => void },
): JournalPruning {
  let stopped = false;
  let running: Promise<void> | null = null;
  const pass = () => {
    if (running || stopped) return;
    const t = Date.now();
    running = store
      .pruneJournal({ maxAgeMs: o.maxAgeMs, maxEntries: o.maxEntries, stop: () => stopped })
      .then((n) => void (n > 0 && o.onPruned?.(n, Date.now() - t)), (err) => o.onError?.(err))
      .finally(() => (running = null));
  };
  const timer = o.intervalMs > 0 ? setInterval(pass, o.intervalMs) : null;
  timer?.unref();
  return {
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
