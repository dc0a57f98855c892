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
  log?: Logger;
  clock?: Clock;
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

export function createAuthenticator(store: Store, opts: AuthenticatorOptions = {}): ThrottledAuthenticator {
  const policy: ThrottlePolicy = { ...DEFAULT_POLICY, ...opts.policy };
  const log = opts.log ?? NO_LOG;
  const clock = opts.clock ?? realClock;
  const state = new ThrottleState(policy);
  const cache = new LoginCache(60 * 60 * 1000, 100_000);
  const wrong = new WrongPasswords();
  const refreshing = new Map<string, Promise<void>>();
  // Unknown names are checked against this too, so a miss takes as long as a wrong password.
  let dummyHash: Promise<string> | null = null;
  const forgetAfter = () => clock.now() - 10 * policy.halfLifeMs;

  const ready = (async () => {
    await store.loginFailures.prune(forgetAfter());
    const bySource = new Map<string, LoginFailureRow[]>();
    for (const r of await store.loginFailures.list()) (bySource.get(r.ip) ?? bySource.set(r.ip, []).get(r.ip)!).push(r);
    for (const [ip, rows] of bySource) state.replaceSource(ip, rows);
  })().catch((err: unknown) => log.warn('auth.throttle-load-failed', { error: err instanceof Error ? err : String(err) }));

  const sweep = setInterval(() => {
    state.sweep(clock.now());
    store.loginFailures.prune(forgetAfter()).catch(() => {});
  }, SWEEP_MS);
  sweep.unref?.();

  /** Re-reads a source's rows (one read shared by the attempts arriving meanwhile). */
  function refresh(ip: string): Promise<void> {
    let p = refreshing.get(ip);
    if (!p) {
      const v = state.version(ip);
      p = store.loginFailures
        .list({ ip })
        .then((rows) => void state.replaceSource(ip, rows, v))
        .catch((err: unknown) => log.warn('auth.throttle-read-failed', { ip, error: err instanceof Error ? err : String(err) }))
        .finally(() => refreshing.delete(ip));
      refreshing.set(ip, p);
    }
    return p;
  }

  /** Waits until the policy lets the attempt go (reserved) or refuses it; `held`: it had to wait for others. */
  async function admit(ip: string, name: string): Promise<{ d: Exclude<Decision, { kind: 'wait' }>; held: boolean }> {
    const deadline = clock.now() + policy.maxWaitMs;
    for (let held = false; ; held = true) {
      const d = state.reserve(ip, name, clock.now());
      if (d.kind !== 'wait') return { d, held };
      const left = deadline - clock.now();
      if (left <= 0) return { d: { kind: 'refuse', retryAfterMs: policy.delayMs, by: 'pair' }, held };
      const ac = new AbortController();
      await Promise.race([state.settled(ip, name), clock.sleep(left, ac.signal)]);
      ac.abort();
    }
  }

  /** The password check itself: login cache, known-wrong passwords, then scrypt. */
  async function check(name: string, ip: string, password: string): Promise<{ account: Account | null; ok: boolean; repeat: boolean }> {
    const account = name.includes('@') ? await store.getAccount(name) : null;
    const id = account?.id ?? 0;
    const hash = account?.passwordHash ?? '';
    const t = clock.now();
    if (account && cache.has(id, hash, password, t)) return { account, ok: true, repeat: false };
    const wrongKey = `${ip}\0${name}`;
    if (wrong.has(wrongKey, id, hash, password)) return { account, ok: false, repeat: true };
    const ok = account ? await verifyPassword(password, hash) : (await verifyPassword(password, await (dummyHash ??= hashPassword('x'))), false);
    if (ok && account) {
      cache.add(id, hash, password, t);
      wrong.forget(wrongKey);
    } else wrong.add(wrongKey, id, hash, password);
    return { account, ok, repeat: false };
  }

  /** Records the outcome in memory and in the store, before the attempt stops counting as in flight. */
  async function record(ip: string, name: string, ok: boolean): Promise<void> {
    if (ok) {
      if (!state.hasPair(ip, name)) return;
      const stored = state.effectiveName(ip, name);
      state.clearPair(ip, name);
      await store.loginFailures.clear({ ip, username: stored }).catch((err: unknown) => log.warn('auth.throttle-write-failed', { ip, error: err instanceof Error ? err : String(err) }));
      return;
    }
    const stored = state.effectiveName(ip, name);
    try {
      state.applyFailure(await store.loginFailures.record(ip, stored, clock.now(), policy.halfLifeMs));
    } catch (err) {
      log.warn('auth.throttle-write-failed', { ip, error: err instanceof Error ? err : String(err) });
      state.localFailure(ip, stored, clock.now());
    }
  }

  async function login(username: string, password: string, remoteAddress: string): Promise<AuthResult> {
    await ready;
    const name = loginName(username);
    const ip = sourceKey(remoteAddress);
    const logUser = name.slice(0, 200);
    const arrived = clock.now();
    if (state.hasSource(ip)) await refresh(ip);
    const { d, held: waitedForOthers } = await admit(ip, name);
    if (d.kind === 'refuse') {
      const retry = Math.ceil((d.retryAfterMs + policy.delayMs) / 1000);
      log.warn('auth.throttled', { user: logUser, ip: remoteAddress, action: 'refused', by: d.by, failures: round(state.pairScore(ip, name, clock.now())), retryAfter: retry });
      await clock.sleep(policy.failDelayMs);
      return { ok: false, reason: 'throttled', message: `Too many failed logins; try again in ${retry} s` };
    }
    let result: { account: Account | null; ok: boolean; repeat: boolean };
    let waited = 0;
    const held = waitedForOthers || d.at > clock.now();
    try {
      const wait = d.at - clock.now();
      if (wait > 0) {
        log.info('auth.throttled', { user: logUser, ip: remoteAddress, action: 'delayed', by: d.by, wait, failures: round(state.pairScore(ip, name, clock.now())) });
        await clock.sleep(wait);
      }
      waited = clock.now() - arrived;
      result = await check(name, ip, password);
      if (!result.repeat) await record(ip, name, result.ok);
    } finally {
      state.finish(d.ticket);
    }
    if (result.ok && result.account) return { ok: true, account: result.account };
    log.info('auth.login-failed', {
      user: logUser,
      ip: remoteAddress,
      source: ip === remoteAddress ? undefined : ip,
      reason: result.account ? 'wrong-password' : 'unknown-user',
      repeat: result.repeat || undefined,
      failures: round(state.pairScore(ip, name, clock.now())),
      waited,
      held: held || undefined,
      delay: state.currentDelay(ip, name, clock.now()),
    });
    await clock.sleep(policy.failDelayMs);
    return { ok: false, reason: 'invalid', message: 'Invalid username or password' };
  }

  return { login, ready, state, close: () => clearInterval(sweep) };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
