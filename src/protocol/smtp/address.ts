// Pure helpers for SMTP envelope addresses (RFC 5321 §4.1.2) and peers. No I/O.

import { isIPv4, isIPv6 } from 'node:net';

export interface SplitAddress {
  /** Local part as given (case kept: RFC 5321 §2.4 says it may be case-sensitive). */
  local: string;
  /** Domain, lower-cased. */
  domain: string;
}

/**
 * Splits `local@domain` at the last `@`. Returns null for anything without both parts. The local
 * part is canonical (canonicalLocalPart: `"alice"@example.com` is alice@example.com).
 */
export function splitAddress(address: string): SplitAddress | null {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return null;
  return { local: canonicalLocalPart(address.slice(0, at)), domain: address.slice(at + 1).toLowerCase() };
}

/** RFC 5322 §3.2.3 atext. */
function isAtext(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) ||
    c === 0x21 || (c >= 0x23 && c <= 0x27) || c === 0x2a || c === 0x2b || c === 0x2d || c === 0x2f ||
    c === 0x3d || c === 0x3f || (c >= 0x5e && c <= 0x60) || (c >= 0x7b && c <= 0x7e) || c >= 0x80 // RFC 6531 UTF-8
  );
}

/** RFC 5321 §4.1.2 Dot-string: Atom *("." Atom). */
export function isDotString(s: string): boolean {
  if (s === '') return false;
  let prevDot = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e) {
      if (prevDot) return false;
      prevDot = true;
    } else if (isAtext(c)) {
      prevDot = false;
    } else {
      return false;
    }
  }
  return !prevDot;
}

/**
 * The canonical form of a local part. RFC 5321 §4.1.2: "all quoted forms MUST be treated as
 * equivalent" — so `"alice"` is `alice`, and `"a\ b"` is `"a b"`. A Quoted-string is unquoted
 * (quoted-pairs resolved); if what is left is a Dot-string it is used bare, otherwise re-quoted with
 * the minimum quoting (only `"` and `\` escaped). Anything else is returned as it is.
 */
export function canonicalLocalPart(local: string): string {
  if (local.length < 2 || local.charCodeAt(0) !== 0x22 || local.charCodeAt(local.length - 1) !== 0x22) return local;
  let content = '';
  for (let i = 1; i < local.length - 1; i++) {
    const c = local[i]!;
    if (c === '\\') {
      if (i + 1 >= local.length - 1) return local; // a dangling backslash: not a Quoted-string
      content += local[++i];
    } else if (c === '"') {
      return local; // an unescaped quote inside: not one Quoted-string
    } else {
      content += c;
    }
  }
  if (isDotString(content)) return content;
  let out = '"';
  for (const c of content) out += c === '"' || c === '\\' ? '\\' + c : c;
  return out + '"';
}

/** True for the reserved local part "postmaster" (RFC 5321 §4.5.1: case-insensitive). */
export function isPostmaster(local: string): boolean {
  return local.length === 10 && local.toLowerCase() === 'postmaster';
}

/** The canonical key for an address: the whole address lower-cased (how the store keeps them). */
export function addressKey(address: string): string {
  return address.toLowerCase();
}

/**
 * Plus-addressing (subaddressing, RFC 5233 style): `user+tag` → { base: 'user', tag: 'tag' }.
 * Only the first `+` splits; an empty base or tag means no subaddress.
 */
export function splitPlus(local: string): { base: string; tag: string } | null {
  const plus = local.indexOf('+');
  if (plus <= 0 || plus === local.length - 1) return null;
  return { base: local.slice(0, plus), tag: local.slice(plus + 1) };
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopback(ip: string): boolean {
  // linear: socket addresses, not client text; anchored, bounded quantifiers.
  const a = ip.replace(/^::ffff:/i, '');
  if (isIPv4(a)) return a.startsWith('127.');
  if (isIPv6(a)) return a === '::1' || /^0{0,4}(:0{0,4}){6}:0{0,3}1$/.test(a);
  return false;
}

/** RFC 5321 §4.1.3 address literal for an IP: `[1.2.3.4]` or `[IPv6:…]`. */
export function addressLiteral(ip: string): string {
  // linear: a socket address; anchored, and `\d+` / `\.` are disjoint (one way to split).
  const a = ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  return isIPv6(a) ? `[IPv6:${a}]` : `[${a}]`;
}
