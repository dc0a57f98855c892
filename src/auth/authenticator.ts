// Password login for every protocol (IMAP LOGIN/AUTHENTICATE, POP3 USER/PASS/AUTH, SMTP AUTH),
// throttled by the policy in throttle-policy.ts: failures per (login name, source) space that
// pair's checks; a clearly abusive source is spaced as a whole; a source with no failures is
// never held. Every attempt is reserved before its password is checked, so parallel guesses
// can't all be checked at once.
//
// State: the failure rows live in the store (store.loginFailures), shared with the admin CLI
// (`pillarbox throttle list|clear`); this process keeps them in memory too, loaded at start, so a
// login from a source without failures costs no store round trip. A login from a source with
// failures re-reads that source's rows first (one indexed read), so an admin's `throttle clear`
// takes effect at the next attempt. Failures are written through at once (they are rare: each
// one cost a password check).

import type { Logger } from '../obs/log.ts';
import type { Account, Store } from '../store/store.ts';
import type { LoginFailureRow } from '../store/login-failures.ts';
import type { Authenticator, AuthResult } from '../net/types.ts';
import { hashPassword, verifyPassword } from './password.ts';
import { LoginCache, WrongPasswords } from './login-cache.ts';
import { sourceKey } from './source-key.ts';
import { BUSY, CheckGate } from './check-gate.ts';
import { DEFAULT_POLICY, ThrottleState, type Decision, type ThrottlePolicy } from './throttle-policy.ts';

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or at once when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const t = setTimeout(done, Math.max(0, ms));
      function done() {
        clearTimeout(t);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    }),
};

export interface AuthenticatorOptions {
  policy?: Partial<ThrottlePolicy>;
  /** Password checks at once, process-wide, and how many may wait (src/auth/check-gate.ts); default 2 and 100. */
  checks?: { concurrency: number; queue: number };
  log?: Logger;
  clock?: Clock;
  /** Other processes log in over the same store (--workers): re-read the source's failures at every login. */
  shared?: boolean;
}

/** What main.ts passes from config.limits: the password-check gate (shared out between `workers` processes). */
export function checksFromLimits(l: { passwordChecks: number; passwordCheckQueue: number }, workers = 1): { concurrency: number; queue: number } {
  return { concurrency: Math.max(1, Math.floor(l.passwordChecks / workers)), queue: Math.max(1, Math.ceil(l.passwordCheckQueue / workers)) };
}

/** What main.ts passes from config.limits. */
export function policyFromLimits(l: { loginThrottleDelay: number; loginThrottleMaxDelay: number; loginThrottleHalfLife: number; loginFailDelay: number }): Partial<ThrottlePolicy> {
  return {
    delayMs: l.loginThrottleDelay,
    maxDelayMs: l.loginThrottleMaxDelay,
    maxWaitMs: 2 * l.loginThrottleMaxDelay,
    halfLifeMs: l.loginThrottleHalfLife,
    failDelayMs: l.loginFailDelay,
  };
}

/** The login name as failures are counted: trimmed, lower-cased, bounded. */
export function loginName(username: string): string {
  return username.trim().toLowerCase().slice(0, 256);
}

const NO_LOG: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const SWEEP_MS = 60_000;

export interface ThrottledAuthenticator extends Authenticator {
  /** Resolves once the failure rows are loaded from the store. */
  readonly ready: Promise<void>;
  readonly state: ThrottleState;
  /** Stops the periodic sweep. */
  close(): void;
}

const errText = (err: unknown) => (err instanceof Error ? err : String(err));

class ThrottledLogin implements ThrottledAuthenticator {
  readonly state: ThrottleState;
  readonly ready: Promise<void>;
  readonly #store: Store;
  readonly #policy: ThrottlePolicy;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #cache = new LoginCache(60 * 60 * 1000, 100_000);
  readonly #wrong = new WrongPasswords();
  readonly #refreshing = new Map<string, Promise<void>>();
  readonly #sweep: NodeJS.Timeout;
  readonly #gate: CheckGate;
  readonly #shared: boolean;
  /** Unknown names are checked against this too, so a miss takes as long as a wrong password. */
  #dummyHash: Promise<string> | null = null;

  constructor(store: Store, opts: AuthenticatorOptions) {
    this.#store = store;
    this.#policy = { ...DEFAULT_POLICY, ...opts.policy };
    this.#log = opts.log ?? NO_LOG;
    this.#clock = opts.clock ?? realClock;
    this.#shared = opts.shared ?? false;
    this.state = new ThrottleState(this.#policy, this.#shared);
    this.#gate = new CheckGate(opts.checks?.concurrency ?? 2, opts.checks?.queue ?? 100);
    this.ready = this.#load().catch((err: unknown) => this.#log.warn('auth.throttle-load-failed', { error: errText(err) }));
    this.#sweep = setInterval(() => {
      this.state.sweep(this.#clock.now());
      store.loginFailures.prune(this.#forgetBefore()).catch(() => {});
    }, SWEEP_MS);
    this.#sweep.unref?.();
  }

  close(): void {
    clearInterval(this.#sweep);
  }

  /** Rows older than ten half-lives have decayed to nothing (1/1024 of their score). */
  #forgetBefore(): number {
    return this.#clock.now() - 10 * this.#policy.halfLifeMs;
  }

  async #load(): Promise<void> {
    await this.#store.loginFailures.prune(this.#forgetBefore());
    const bySource = new Map<string, LoginFailureRow[]>();
    for (const r of await this.#store.loginFailures.list()) (bySource.get(r.ip) ?? bySource.set(r.ip, []).get(r.ip)!).push(r);
    for (const [ip, rows] of bySource) this.state.replaceSource(ip, rows);
  }

  /** Re-reads a source's rows (one read shared by the attempts arriving meanwhile). */
  #refresh(ip: string): Promise<void> {
    let p = this.#refreshing.get(ip);
    if (!p) {
      const v = this.state.version(ip);
      p = this.#store.loginFailures
        .list({ ip })
        .then((rows) => void this.state.replaceSource(ip, rows, v))
        .catch((err: unknown) => this.#log.warn('auth.throttle-read-failed', { ip, error: errText(err) }))
        .finally(() => this.#refreshing.delete(ip));
      this.#refreshing.set(ip, p);
    }
    return p;
  }

  /** Waits until the policy lets the attempt go (reserved) or refuses it; `held`: it had to wait for others. */
  async #admit(ip: string, name: string): Promise<{ d: Exclude<Decision, { kind: 'wait' }>; held: boolean }> {
    const deadline = this.#clock.now() + this.#policy.maxWaitMs;
    for (let held = false; ; held = true) {
      const d = this.state.reserve(ip, name, this.#clock.now());
      if (d.kind !== 'wait') return { d, held };
      const left = deadline - this.#clock.now();
      if (left <= 0) return { d: { kind: 'refuse', retryAfterMs: this.#policy.delayMs, by: 'pair' }, held };
      const ac = new AbortController();
      await Promise.race([this.state.settled(ip, name, ac.signal), this.#clock.sleep(left, ac.signal)]);
      ac.abort(); // whichever lost: the timer is cleared, the waiter leaves the lanes' lists
    }
  }

  /**
   * The password check itself: login cache, known-wrong passwords, then scrypt, through the gate
   * (`busy`: the gate's queue was full, nothing was checked).
   */
  async #check(name: string, ip: string, password: string): Promise<{ account: Account | null; ok: boolean; repeat: boolean; busy?: boolean }> {
    const account = name.includes('@') ? await this.#store.getAccount(name) : null;
    const id = account?.id ?? 0;
    const hash = account?.passwordHash ?? '';
    const t = this.#clock.now();
    if (account && this.#cache.has(id, hash, password, t)) return { account, ok: true, repeat: false };
    const wrongKey = `${ip}\0${name}`;
    if (this.#wrong.has(wrongKey, id, hash, password)) return { account, ok: false, repeat: true };
    const checked = await this.#gate.run(async () => {
      if (account) return verifyPassword(password, hash);
      // The dummy hash is made inside a slot too: it is a scrypt run like any other.
      await verifyPassword(password, await (this.#dummyHash ??= hashPassword('x')));
      return false;
    });
    if (checked === BUSY) return { account, ok: false, repeat: false, busy: true };
    const ok = checked;
    if (ok && account) {
      this.#cache.add(id, hash, password, t);
      this.#wrong.forget(wrongKey);
    } else this.#wrong.add(wrongKey, id, hash, password);
    return { account, ok, repeat: false };
  }

  /** Records the outcome in memory and in the store, before the attempt stops counting as in flight. */
  async #record(ip: string, name: string, ok: boolean): Promise<void> {
    const stored = this.state.effectiveName(ip, name);
    if (ok) {
      if (!this.state.hasPair(ip, name)) return;
      this.state.clearPair(ip, name);
      await this.#store.loginFailures.clear({ ip, username: stored }).catch((err: unknown) => this.#log.warn('auth.throttle-write-failed', { ip, error: errText(err) }));
      return;
    }
    try {
      this.state.applyFailure(await this.#store.loginFailures.record(ip, stored, this.#clock.now(), this.#policy.halfLifeMs));
    } catch (err) {
      this.#log.warn('auth.throttle-write-failed', { ip, error: errText(err) });
      this.state.localFailure(ip, stored, this.#clock.now());
    }
  }

  async login(username: string, password: string, remoteAddress: string): Promise<AuthResult> {
    await this.ready;
    const name = loginName(username);
    const ip = sourceKey(remoteAddress);
    const logUser = name.slice(0, 200);
    const now = () => this.#clock.now();
    const arrived = now();
    if (this.#shared || this.state.hasSource(ip)) await this.#refresh(ip);
    const { d, held: waitedForOthers } = await this.#admit(ip, name);
    if (d.kind === 'refuse') {
      const retry = Math.ceil((d.retryAfterMs + this.#policy.delayMs) / 1000);
      this.#log.warn('auth.throttled', { user: logUser, ip: remoteAddress, action: 'refused', by: d.by, failures: round(this.state.pairScore(ip, name, now())), retryAfter: retry });
      await this.#clock.sleep(this.#policy.failDelayMs);
      return { ok: false, reason: 'throttled', message: `Too many failed logins; try again in ${retry} s` };
    }
    let result: { account: Account | null; ok: boolean; repeat: boolean; busy?: boolean };
    let waited = 0;
    const held = waitedForOthers || d.at > now();
    try {
      const wait = d.at - now();
      if (wait > 0) {
        this.#log.info('auth.throttled', { user: logUser, ip: remoteAddress, action: 'delayed', by: d.by, wait, failures: round(this.state.pairScore(ip, name, now())) });
        await this.#clock.sleep(wait);
      }
      waited = now() - arrived;
      result = await this.#check(name, ip, password);
      if (!result.repeat && !result.busy) await this.#record(ip, name, result.ok);
    } finally {
      this.state.finish(d.ticket);
    }
    if (result.ok && result.account) return { ok: true, account: result.account };
    if (result.busy) {
      this.#log.warn('auth.busy', { user: logUser, ip: remoteAddress, running: this.#gate.running, waiting: this.#gate.waiting, limit: this.#gate.concurrency, queue: this.#gate.queue });
      await this.#clock.sleep(this.#policy.failDelayMs);
      return { ok: false, reason: 'busy', message: 'Too many logins being checked; try again in a few seconds' };
    }
    this.#log.info('auth.login-failed', {
      user: logUser,
      ip: remoteAddress,
      source: ip === remoteAddress ? undefined : ip,
      reason: result.account ? 'wrong-password' : 'unknown-user',
      repeat: result.repeat || undefined,
      failures: round(this.state.pairScore(ip, name, now())),
      waited,
      held: held || undefined,
      delay: this.state.currentDelay(ip, name, now()),
    });
    await this.#clock.sleep(this.#policy.failDelayMs);
    return { ok: false, reason: 'invalid', message: 'Invalid username or password' };
  }
}

export function createAuthenticator(store: Store, opts: AuthenticatorOptions = {}): ThrottledAuthenticator {
  return new ThrottledLogin(store, opts);
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
