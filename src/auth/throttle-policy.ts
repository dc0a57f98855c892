// Login throttling policy: which password checks may run now, which must wait, which are refused.
// Pure: no timers, no store; every method takes `now`, so tests drive it with their own clock.
//
// The rules (after Dovecot's auth penalty and fail2ban-style decaying scores):
// - Failures are counted per (login name, source) — the source is an IPv4 address or an IPv6 /64
//   (source-key.ts). Each pair's score is +1 per failure and halves every `halfLifeMs`, so the
//   slow-down fades by itself: no fixed lockout.
// - Checks of one pair are spaced: after `freeFailures`, the gap between the starts of two checks
//   is delayMs · 2^(score − freeFailures), at most maxDelayMs. A wrong guess costs the pair time;
//   it costs no other account anything.
// - A source is slowed as a whole only when it is clearly abusive: failures for at least
//   `sourceAbuseNames` distinct names, or a total score of `sourceAbuseFailures`. Then every check
//   from it, for any name, is spaced by the source's own gap. A right password is still checked
//   (late), not refused, unless the source's queue is longer than `maxWaitMs`.
// - A source or pair with no failures is never spaced: its logins go at once.
// - Races: an attempt counts (reserve) before its password is checked and until its result is
//   recorded (finish), so N parallel guesses see each other. Past the free allowance, an attempt
//   whose outcome depends on checks still running waits for them to settle (a success clears the
//   way); once the failures are known, attempts queue at growing gaps; one that would start more
//   than `maxWaitMs` from now is refused with a temporary error, unchecked.

import type { LoginFailureRow } from '../store/login-failures.ts';

export interface ThrottlePolicy {
  /** Failures of one (name, source) pair answered without slowing it. */
  freeFailures: number;
  /** Gap after the first slowed failure; doubles with each further failure. */
  delayMs: number;
  maxDelayMs: number;
  /** Scores halve every half-life. */
  halfLifeMs: number;
  /** A check that would start later than this from now is refused (temporary error). */
  maxWaitMs: number;
  /** Every failed or refused answer waits this long (one connection can't guess fast). */
  failDelayMs: number;
  /** Failures from one source (all names together) before an abusive source is spaced. */
  sourceFreeFailures: number;
  /** Distinct failing names that make a source abusive. */
  sourceAbuseNames: number;
  /** Total failure score that makes a source abusive. */
  sourceAbuseFailures: number;
  /** Names kept per source; further names share the row `*`. */
  maxNamesPerSource: number;
  /** Attempts waiting on one pair or source beyond which new ones are refused at once. */
  maxWaiters: number;
}

export const DEFAULT_POLICY: ThrottlePolicy = {
  freeFailures: 3,
  delayMs: 1000,
  maxDelayMs: 15_000,
  halfLifeMs: 5 * 60_000,
  maxWaitMs: 30_000,
  failDelayMs: 300,
  sourceFreeFailures: 8,
  sourceAbuseNames: 5,
  sourceAbuseFailures: 40,
  maxNamesPerSource: 100,
  maxWaiters: 64,
};

export const OVERFLOW_NAME = '*';

/**
 * A row's score decayed to `now`, to one decimal: a failure a few seconds ago still counts whole
 * (2.9996 would otherwise pass as under 3 free failures).
 */
export function decayed(row: Pick<LoginFailureRow, 'score' | 'lastFailureAt'>, now: number, halfLifeMs: number): number {
  const age = Math.max(0, now - row.lastFailureAt);
  return Math.round(row.score * 0.5 ** (age / Math.max(1, halfLifeMs)) * 10) / 10;
}

/** Spacing of one pair's checks at effective failure count e. */
export function pairGap(p: ThrottlePolicy, e: number): number {
  if (e < p.freeFailures) return 0;
  return Math.round(Math.min(p.maxDelayMs, p.delayMs * 2 ** (e - p.freeFailures)));
}

/** Spacing of an abusive source's checks at effective failure count e (grows half as fast). */
export function sourceGap(p: ThrottlePolicy, e: number): number {
  if (e < p.sourceFreeFailures) return 0;
  return Math.round(Math.min(p.maxDelayMs, (p.delayMs / 2) * 2 ** ((e - p.sourceFreeFailures) / 2)));
}

/** What a source's rows add up to at `now`. */
export function sourceSummary(p: ThrottlePolicy, rows: Iterable<LoginFailureRow>, now: number): { score: number; names: number } {
  let score = 0;
  let names = 0;
  for (const r of rows) {
    const s = decayed(r, now, p.halfLifeMs);
    score += s;
    if (s >= 0.5) names += r.username === OVERFLOW_NAME ? p.maxNamesPerSource : 1;
  }
  return { score, names };
}

export function isAbusive(p: ThrottlePolicy, s: { score: number; names: number }): boolean {
  return s.names >= p.sourceAbuseNames || s.score >= p.sourceAbuseFailures;
}

interface Lane {
  /** Attempts reserved and not finished. */
  inflight: number;
  /** Start time of the latest reserved check. */
  last: number;
  waiters: Array<() => void>;
  /** Source lanes: in-flight attempts per name. */
  names?: Map<string, number>;
}

export interface Ticket {
  ip: string;
  name: string;
}

export type Decision =
  | { kind: 'go'; at: number; ticket: Ticket; by: 'none' | 'pair' | 'source' }
  | { kind: 'wait' }
  | { kind: 'refuse'; retryAfterMs: number; by: 'pair' | 'source' };

type Step = { kind: 'go'; at: number } | { kind: 'wait' };

/** One lane's verdict: free, wait for in-flight outcomes, or the earliest start. */
function step(score: number, lane: Lane | undefined, free: number, gap: (e: number) => number, now: number, floor = 0): Step {
  const inflight = lane?.inflight ?? 0;
  const e = score + inflight;
  if (e < free) return { kind: 'go', at: now };
  if (score < free) return { kind: 'wait' };
  return { kind: 'go', at: Math.max(now, Math.max(lane?.last ?? 0, floor) + gap(e)) };
}

interface Source {
  rows: Map<string, LoginFailureRow>;
  /** Bumped by every local change, so a refresh read before it is not applied over it. */
  seq: number;
}

export class ThrottleState {
  readonly policy: ThrottlePolicy;
  readonly #sources = new Map<string, Source>();
  readonly #lanes = new Map<string, Lane>();

  /**
   * `shared`: other processes check logins too (--workers): a pair's checks are also spaced from
   * its last recorded failure (the store's row), not only from this process's last check.
   */
  readonly #shared: boolean;

  constructor(policy: ThrottlePolicy = DEFAULT_POLICY, shared = false) {
    this.policy = policy;
    this.#shared = shared;
  }

  /** True when the source has recorded failures (then a login re-reads them from the store). */
  hasSource(ip: string): boolean {
    return this.#sources.has(ip);
  }

  /** A token for `replaceSource`: the rows read after taking it apply only if nothing changed since. */
  version(ip: string): { source: Source | undefined; seq: number } {
    const source = this.#sources.get(ip);
    return { source, seq: source?.seq ?? 0 };
  }

  /** Replaces a source's rows with what the store holds (an admin may have cleared them). */
  replaceSource(ip: string, rows: LoginFailureRow[], v?: { source: Source | undefined; seq: number }): boolean {
    if (v && (this.#sources.get(ip) !== v.source || (v.source?.seq ?? 0) !== v.seq)) return false;
    if (rows.length === 0) {
      this.#sources.delete(ip);
      return true;
    }
    const source: Source = { rows: new Map(rows.map((r) => [r.username, r])), seq: (v?.seq ?? 0) + 1 };
    this.#sources.set(ip, source);
    return true;
  }

  /** The name failures of `name` from `ip` are kept under (`*` past the per-source cap). */
  effectiveName(ip: string, name: string): string {
    const s = this.#sources.get(ip);
    if (!s || s.rows.has(name) || s.rows.size < this.policy.maxNamesPerSource) return name;
    return OVERFLOW_NAME;
  }

  pairScore(ip: string, name: string, now: number): number {
    const row = this.#sources.get(ip)?.rows.get(this.effectiveName(ip, name));
    return row ? decayed(row, now, this.policy.halfLifeMs) : 0;
  }

  hasPair(ip: string, name: string): boolean {
    return this.#sources.get(ip)?.rows.has(this.effectiveName(ip, name)) ?? false;
  }

  /** Score and distinct failing names of a source, counting in-flight attempts' names as failing. */
  #sourceNow(ip: string, now: number): { score: number; names: number; inflight: number } {
    const s = this.#sources.get(ip);
    const sum = s ? sourceSummary(this.policy, s.rows.values(), now) : { score: 0, names: 0 };
    const lane = this.#lanes.get('s\0' + ip);
    let names = sum.names;
    if (lane?.names) for (const n of lane.names.keys()) if (!s?.rows.has(n) || decayed(s.rows.get(n)!, now, this.policy.halfLifeMs) < 0.5) names++;
    return { score: sum.score, names, inflight: lane?.inflight ?? 0 };
  }

  /** The gap the next check of this pair would get, given what is recorded (for logs and the CLI). */
  currentDelay(ip: string, name: string, now: number): number {
    const n = this.effectiveName(ip, name);
    const src = this.#sourceNow(ip, now);
    const pg = pairGap(this.policy, this.pairScore(ip, n, now));
    const abusive = isAbusive(this.policy, { score: src.score + src.inflight, names: src.names });
    return Math.max(pg, abusive ? sourceGap(this.policy, src.score) : 0);
  }

  #lane(key: string, source: boolean): Lane {
    let l = this.#lanes.get(key);
    if (!l) this.#lanes.set(key, (l = { inflight: 0, last: 0, waiters: [], ...(source ? { names: new Map() } : {}) }));
    return l;
  }

  /** Decides one attempt; a 'go' reserves it until `finish(ticket)`. */
  reserve(ip: string, rawName: string, now: number): Decision {
    const p = this.policy;
    const name = this.effectiveName(ip, rawName);
    const pairKey = `p\0${ip}\0${name}`;
    const srcKey = 's\0' + ip;
    const pairLane = this.#lanes.get(pairKey);
    const srcLane = this.#lanes.get(srcKey);
    const floor = this.#shared ? (this.#sources.get(ip)?.rows.get(name)?.lastFailureAt ?? 0) : 0;
    const pd = step(this.pairScore(ip, name, now), pairLane, p.freeFailures, (e) => pairGap(p, e), now, floor);
    const src = this.#sourceNow(ip, now);
    const newName = !(srcLane?.names?.has(name) ?? false) && !(this.#sources.get(ip)?.rows.has(name) ?? false);
    const abusive = isAbusive(p, { score: src.score + src.inflight, names: src.names + (newName ? 1 : 0) });
    const sd: Step = abusive ? step(src.score, srcLane, p.sourceFreeFailures, (e) => sourceGap(p, e), now) : { kind: 'go', at: now };
    const at = Math.max(pd.kind === 'go' ? pd.at : now, sd.kind === 'go' ? sd.at : now);
    const by = sd.kind === 'go' && sd.at === at && at > now ? 'source' : 'pair';
    if (at - now > p.maxWaitMs) return { kind: 'refuse', retryAfterMs: at - now - p.maxWaitMs, by };
    if (pd.kind === 'wait' || sd.kind === 'wait') {
      const waiting = Math.max(pairLane?.waiters.length ?? 0, srcLane?.waiters.length ?? 0);
      if (waiting >= p.maxWaiters) return { kind: 'refuse', retryAfterMs: p.delayMs, by: pd.kind === 'wait' ? 'pair' : 'source' };
      return { kind: 'wait' };
    }
    const pl = this.#lane(pairKey, false);
    const sl = this.#lane(srcKey, true);
    pl.inflight++;
    sl.inflight++;
    sl.names!.set(name, (sl.names!.get(name) ?? 0) + 1);
    pl.last = Math.max(pl.last, at);
    sl.last = Math.max(sl.last, at);
    return { kind: 'go', at, ticket: { ip, name }, by: at > now ? by : 'none' };
  }

  /** Resolves when an attempt on this pair or its source finishes (then decide again); `signal`: gave up. */
  settled(ip: string, rawName: string, signal?: AbortSignal): Promise<void> {
    const name = this.effectiveName(ip, rawName);
    const lanes = [this.#lane(`p\0${ip}\0${name}`, false), this.#lane('s\0' + ip, true)];
    return new Promise((resolve) => {
      for (const l of lanes) l.waiters.push(resolve);
      signal?.addEventListener(
        'abort',
        () => {
          for (const l of lanes) l.waiters = l.waiters.filter((w) => w !== resolve);
          resolve();
        },
        { once: true },
      );
    });
  }

  #wake(l: Lane | undefined): void {
    if (!l || l.waiters.length === 0) return;
    const w = l.waiters;
    l.waiters = [];
    for (const f of w) f();
  }

  /** The attempt's result is recorded (failure applied or pair cleared): it no longer counts as in flight. */
  finish(t: Ticket): void {
    const pairKey = `p\0${t.ip}\0${t.name}`;
    const pl = this.#lanes.get(pairKey);
    const sl = this.#lanes.get('s\0' + t.ip);
    if (pl) pl.inflight = Math.max(0, pl.inflight - 1);
    if (sl) {
      sl.inflight = Math.max(0, sl.inflight - 1);
      const n = (sl.names!.get(t.name) ?? 1) - 1;
      if (n > 0) sl.names!.set(t.name, n);
      else sl.names!.delete(t.name);
    }
    this.#wake(pl);
    this.#wake(sl);
    // A lane's `last` only matters once its key has failures: a clean login leaves nothing behind.
    const idle = (l: Lane | undefined) => l && l.inflight === 0 && l.waiters.length === 0;
    const source = this.#sources.get(t.ip);
    if (idle(pl) && !source?.rows.has(t.name)) this.#lanes.delete(pairKey);
    if (idle(sl) && !source) this.#lanes.delete('s\0' + t.ip);
  }

  /** A failure as the store recorded it. */
  applyFailure(row: LoginFailureRow): void {
    let s = this.#sources.get(row.ip);
    if (!s) this.#sources.set(row.ip, (s = { rows: new Map(), seq: 0 }));
    s.rows.set(row.username, row);
    s.seq++;
  }

  /** A failure the store could not record (kept in memory only). */
  localFailure(ip: string, name: string, now: number): LoginFailureRow {
    const prev = this.#sources.get(ip)?.rows.get(name);
    const row: LoginFailureRow = prev
      ? { ...prev, score: decayed(prev, now, this.policy.halfLifeMs) + 1, failures: prev.failures + 1, lastFailureAt: Math.max(prev.lastFailureAt, now) }
      : { ip, username: name, score: 1, failures: 1, firstFailureAt: now, lastFailureAt: now };
    this.applyFailure(row);
    return row;
  }

  /** A right password: the pair's failures are forgiven (the source's others stay). */
  clearPair(ip: string, rawName: string): void {
    const s = this.#sources.get(ip);
    if (!s) return;
    s.rows.delete(this.effectiveName(ip, rawName));
    s.seq++;
    if (s.rows.size === 0) this.#sources.delete(ip);
  }

  /** Forgets decayed rows, idle lanes, and the oldest sources past `maxSources`. */
  sweep(now: number, maxSources = 100_000): void {
    const p = this.policy;
    for (const [ip, s] of this.#sources) {
      for (const [n, r] of s.rows) if (decayed(r, now, p.halfLifeMs) < 0.05) s.rows.delete(n);
      if (s.rows.size === 0) this.#sources.delete(ip);
    }
    for (const [k, l] of this.#lanes) if (l.inflight === 0 && l.waiters.length === 0 && now - l.last > p.maxDelayMs + p.maxWaitMs) this.#lanes.delete(k);
    if (this.#sources.size > maxSources) {
      const newest = (s: Source) => Math.max(...[...s.rows.values()].map((r) => r.lastFailureAt));
      const order = [...this.#sources].sort((a, b) => newest(a[1]) - newest(b[1]));
      for (const [ip] of order.slice(0, this.#sources.size - maxSources)) this.#sources.delete(ip);
    }
  }

  /** Sizes, for tests and diagnostics. */
  stats(): { sources: number; lanes: number } {
    return { sources: this.#sources.size, lanes: this.#lanes.size };
  }
}
