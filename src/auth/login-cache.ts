// Two small in-memory memories of password outcomes, both as HMACs under a per-process random key
// of (account, stored hash, password) — never a password:
// - LoginCache: recent successful logins, so a client that logs in often (phones reconnecting,
//   POP3 polling) doesn't pay a full scrypt each time.
// - WrongPasswords: the last few wrong passwords per (name, source), so a device retrying an old
//   password is answered without scrypt and does not raise its failure score again (Dovecot's
//   auth penalty skips repeats the same way): one stale phone doesn't escalate, a guesser gains
//   nothing from repeating a guess.
// A password change changes the stored hash, so both miss after it.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const KEY = randomBytes(32);

function mac(accountId: number, hash: string, password: string): Buffer {
  return createHmac('sha256', KEY).update(`${accountId}\0${hash}\0`).update(password, 'utf8').digest();
}

export class LoginCache {
  readonly #entries = new Map<number, { mac: Buffer; expires: number }>();
  readonly ttlMs: number;
  readonly max: number;
  constructor(ttlMs: number, max: number) {
    this.ttlMs = ttlMs;
    this.max = max;
  }
  has(accountId: number, hash: string, password: string, t: number): boolean {
    const e = this.#entries.get(accountId);
    if (!e || e.expires < t) return false;
    return timingSafeEqual(e.mac, mac(accountId, hash, password));
  }
  add(accountId: number, hash: string, password: string, t: number): void {
    this.#entries.delete(accountId);
    this.#entries.set(accountId, { mac: mac(accountId, hash, password), expires: t + this.ttlMs });
    if (this.#entries.size > this.max) this.#entries.delete(this.#entries.keys().next().value as number);
  }
}

export class WrongPasswords {
  readonly #entries = new Map<string, Buffer[]>();
  readonly perKey: number;
  readonly max: number;
  constructor(perKey = 4, max = 50_000) {
    this.perKey = perKey;
    this.max = max;
  }
  has(key: string, accountId: number, hash: string, password: string): boolean {
    const list = this.#entries.get(key);
    if (!list) return false;
    const m = mac(accountId, hash, password);
    return list.some((x) => timingSafeEqual(x, m));
  }
  add(key: string, accountId: number, hash: string, password: string): void {
    const list = this.#entries.get(key) ?? [];
    this.#entries.delete(key);
    list.push(mac(accountId, hash, password));
    if (list.length > this.perKey) list.shift();
    this.#entries.set(key, list);
    if (this.#entries.size > this.max) this.#entries.delete(this.#entries.keys().next().value as string);
  }
  forget(key: string): void {
    this.#entries.delete(key);
  }
}
