// Sender Rewriting Scheme (Shevek's SRS, as in libsrs2): when we forward a message to another
// domain, the envelope sender becomes an address of ours so the destination's SPF check (RFC 7208)
// sees our domain, and a bounce to it can be routed back to the original sender.
//
//   SRS0=HHHHHH=TT=orig-domain=orig-local@our-domain          (first forwarder: us)
//   SRS1=HHHHHH=first-fwd-domain==HHHHHH=TT=dom=local@our-domain   (re-forwarding an SRS0/SRS1 address)
//
// Decisions:
// - HH… = the first 6 characters of base32(HMAC-SHA256(secret, lower-cased rest)): base32 is case-
//   insensitive, so a relay that lower-cases local parts cannot break the check. Only we check our
//   hashes, so the scheme needs no interoperable hash function.
// - TT = days since the epoch mod 1024, two base32 characters; a timestamp more than MAX_AGE_DAYS
//   old (or in the future) is refused: bounces are answered within days, and an old SRS address
//   cannot be used to relay forever.
// - An address already in our own domain, and the null sender, are not rewritten.
// - Parsing is one pass of indexOf: no RegExp on the address.

import { createHmac, timingSafeEqual } from 'node:crypto';

export const MAX_AGE_DAYS = 21;
const HASH_LENGTH = 6;
const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const DAY_MS = 86_400_000;
/** RFC 5321 §4.5.3.1.3: a path is at most 256 octets; longer addresses are not rewritten into. */
const MAX_ADDRESS = 256;

export type SrsReverse =
  | { ok: true; address: string }
  | { ok: false; reason: 'not-srs' | 'malformed' | 'bad-hash' | 'expired' };

function base32(buf: Buffer, chars: number): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of buf) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5 && out.length < chars) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length >= chars) break;
    value &= 0xff;
  }
  return out;
}

function split(address: string): { local: string; domain: string } | null {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return null;
  return { local: address.slice(0, at), domain: address.slice(at + 1) };
}

/** "SRS0" / "SRS1" followed by one of the separators SRS allows (=, + or -), case-insensitive. */
function srsKind(local: string): 0 | 1 | null {
  if (local.length < 5) return null;
  const head = local.slice(0, 4).toUpperCase();
  const sep = local[4];
  if (sep !== '=' && sep !== '+' && sep !== '-') return null;
  return head === 'SRS0' ? 0 : head === 'SRS1' ? 1 : null;
}

export class Srs {
  readonly #secret: Buffer;

  constructor(secret: string | Buffer) {
    if (secret.length < 16) throw new RangeError('SRS secret must be at least 16 bytes');
    this.#secret = Buffer.isBuffer(secret) ? secret : Buffer.from(secret, 'utf8');
  }

  #hash(...parts: string[]): string {
    const h = createHmac('sha256', this.#secret);
    for (const p of parts) h.update(p.toLowerCase() + '\0');
    return base32(h.digest(), HASH_LENGTH);
  }

  #check(given: string, ...parts: string[]): boolean {
    const want = Buffer.from(this.#hash(...parts));
    const got = Buffer.from(given.toUpperCase());
    return got.length === want.length && timingSafeEqual(got, want);
  }

  /** The envelope sender to use when forwarding mail from `address` out of `ourDomain`. */
  forward(address: string, ourDomain: string, now = Date.now()): string {
    if (address === '') return '';
    const parts = split(address);
    if (!parts) return address;
    const ours = ourDomain.toLowerCase();
    if (parts.domain.toLowerCase() === ours) return address;
    const kind = srsKind(parts.local);
    let local: string;
    if (kind === 0) {
      // Re-forwarding an SRS0 address: SRS1 keeps the first forwarder's domain and its opaque part.
      const opaque = parts.local.slice(4); // "=HHH=TT=dom=local"
      local = `SRS1=${this.#hash(parts.domain, opaque)}=${parts.domain}=${opaque}`;
    } else if (kind === 1) {
      // SRS1=HHH=first==opaque: the first forwarder stays, only the hash is ours.
      const rest = parts.local.slice(5);
      const eq = rest.indexOf('=');
      const sep2 = eq < 0 ? -1 : rest.indexOf('=', eq + 1);
      if (sep2 < 0) return this.#srs0(parts, ours, now);
      const first = rest.slice(eq + 1, sep2);
      const opaque = rest.slice(sep2 + 1);
      local = `SRS1=${this.#hash(first, opaque)}=${first}=${opaque}`;
    } else {
      return this.#srs0(parts, ours, now);
    }
    const out = `${local}@${ours}`;
    return out.length > MAX_ADDRESS ? address : out;
  }

  #srs0(parts: { local: string; domain: string }, ours: string, now: number): string {
    const days = Math.floor(now / DAY_MS) % 1024;
    const tt = B32[days >> 5]! + B32[days & 31]!;
    const out = `SRS0=${this.#hash(tt, parts.domain, parts.local)}=${tt}=${parts.domain}=${parts.local}@${ours}`;
    return out.length > MAX_ADDRESS ? `${parts.local}@${parts.domain}` : out;
  }

  /**
   * Where a bounce to our SRS address goes: SRS0 → the original sender (hash and age checked);
   * SRS1 → the SRS0 address at the first forwarder (hash checked).
   */
  reverse(address: string, now = Date.now()): SrsReverse {
    const parts = split(address);
    if (!parts) return { ok: false, reason: 'not-srs' };
    const kind = srsKind(parts.local);
    if (kind === null) return { ok: false, reason: 'not-srs' };
    const rest = parts.local.slice(5);
    const e1 = rest.indexOf('=');
    if (e1 <= 0) return { ok: false, reason: 'malformed' };
    const hash = rest.slice(0, e1);
    if (kind === 1) {
      const e2 = rest.indexOf('=', e1 + 1);
      if (e2 <= e1 + 1) return { ok: false, reason: 'malformed' };
      const first = rest.slice(e1 + 1, e2);
      const opaque = rest.slice(e2 + 1);
      if (opaque === '' || !this.#check(hash, first, opaque)) return { ok: false, reason: opaque === '' ? 'malformed' : 'bad-hash' };
      return { ok: true, address: `SRS0${opaque}@${first}` };
    }
    const e2 = rest.indexOf('=', e1 + 1);
    const e3 = e2 < 0 ? -1 : rest.indexOf('=', e2 + 1);
    if (e3 < 0) return { ok: false, reason: 'malformed' };
    const tt = rest.slice(e1 + 1, e2);
    const domain = rest.slice(e2 + 1, e3);
    const local = rest.slice(e3 + 1);
    if (tt.length !== 2 || domain === '' || local === '') return { ok: false, reason: 'malformed' };
    if (!this.#check(hash, tt, domain, local)) return { ok: false, reason: 'bad-hash' };
    const hi = B32.indexOf(tt[0]!.toUpperCase());
    const lo = B32.indexOf(tt[1]!.toUpperCase());
    if (hi < 0 || lo < 0) return { ok: false, reason: 'malformed' };
    const age = (Math.floor(now / DAY_MS) - ((hi << 5) | lo) + 1024) % 1024;
    if (age > MAX_AGE_DAYS) return { ok: false, reason: 'expired' };
    return { ok: true, address: `${local}@${domain}` };
  }
}

/** True for local parts that look like SRS addresses (SRS0=…, SRS1=…). */
export function isSrsLocal(local: string): boolean {
  return srsKind(local) !== null;
}
