// Password login for every protocol, with throttling: failures are counted per account and per
// remote IP in a sliding window; past the limit, logins from that IP / for that account are
// refused without checking the password until the window passes. A failed attempt is answered
// after a short delay so guessing is slow even below the limit.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Store } from '../store/store.ts';
import type { Authenticator, AuthResult } from '../net/types.ts';
import { verifyPassword } from './password.ts';

export interface ThrottleOptions {
  /** Failures allowed per window, per account and per IP. */
  maxFailures: number;
  windowMs: number;
  /** Delay before answering a failed attempt. */
  failDelayMs: number;
}

export const DEFAULT_THROTTLE: ThrottleOptions = { maxFailures: 10, windowMs: 5 * 60 * 1000, failDelayMs: 300 };

class FailureCounter {
  readonly #hits = new Map<string, number[]>();
  readonly windowMs: number;
  constructor(windowMs: number) {
    this.windowMs = windowMs;
  }
  count(key: string, t: number): number {
    const list = this.#hits.get(key);
    if (!list) return 0;
    while (list.length && list[0]! <= t - this.windowMs) list.shift();
    if (list.length === 0) this.#hits.delete(key);
    return list.length;
  }
  add(key: string, t: number): void {
    let list = this.#hits.get(key);
    if (!list) this.#hits.set(key, (list = []));
    list.push(t);
    if (list.length > 1000) list.shift();
    if (this.#hits.size > 100_000) this.#hits.delete(this.#hits.keys().next().value as string);
  }
}

/**
 * Remembers recent successful logins so a client that logs in often (phones reconnecting, POP3
 * polling) doesn't pay a full scrypt each time. Only an HMAC under a per-process random key of
 * (account, stored hash, password) is kept, in memory; a password change changes the stored hash
 * and so misses the cache.
 */
class LoginCache {
  readonly #key = randomBytes(32);
  readonly #entries = new Map<number, { mac: Buffer; expires: number }>();
  readonly ttlMs: number;
  readonly max: number;
  constructor(ttlMs: number, max: number) {
    this.ttlMs = ttlMs;
    this.max = max;
  }
  #mac(accountId: number, hash: string, password: string): Buffer {
    return createHmac('sha256', this.#key).update(`${accountId}\0${hash}\0`).update(password, 'utf8').digest();
  }
  has(accountId: number, hash: string, password: string, t: number): boolean {
    const e = this.#entries.get(accountId);
    if (!e || e.expires < t) return false;
    return timingSafeEqual(e.mac, this.#mac(accountId, hash, password));
  }
  add(accountId: number, hash: string, password: string, t: number): void {
    this.#entries.delete(accountId);
    this.#entries.set(accountId, { mac: this.#mac(accountId, hash, password), expires: t + this.ttlMs });
    if (this.#entries.size > this.max) this.#entries.delete(this.#entries.keys().next().value as number);
  }
}

export function createAuthenticator(store: Store, opts: ThrottleOptions = DEFAULT_THROTTLE): Authenticator {
  const failures = new FailureCounter(opts.windowMs);
  const cache = new LoginCache(60 * 60 * 1000, 100_000);
  const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
  return {
    async login(username: string, password: string, remoteAddress: string): Promise<AuthResult> {
      const user = username.trim().toLowerCase();
      const t = Date.now();
      if (failures.count('ip:' + remoteAddress, t) >= opts.maxFailures || failures.count('user:' + user, t) >= opts.maxFailures) {
        await delay(opts.failDelayMs);
        return { ok: false, reason: 'throttled', message: 'Too many failed logins; try again later' };
      }
      const account = user.includes('@') ? await store.getAccount(user) : null;
      const ok = account
        ? cache.has(account.id, account.passwordHash, password, t) || (await verifyPassword(password, account.passwordHash))
        : false;
      if (!account || !ok) {
        failures.add('ip:' + remoteAddress, t);
        failures.add('user:' + user, t);
        await delay(opts.failDelayMs);
        return { ok: false, reason: 'invalid', message: 'Invalid username or password' };
      }
      cache.add(account.id, account.passwordHash, password, t);
      return { ok: true, account };
    },
  };
}
