// Pure helpers for SMTP envelope addresses (RFC 5321 §4.1.2) and peers. No I/O.

import { isIPv4, isIPv6 } from 'node:net';

export interface SplitAddress {
  /** Local part as given (case kept: RFC 5321 §2.4 says it may be case-sensitive). */
  local: string;
  /** Domain, lower-cased. */
  domain: string;
}

/** Splits `local@domain` at the last `@`. Returns null for anything without both parts. */
export function splitAddress(address: string): SplitAddress | null {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return null;
  return { local: address.slice(0, at), domain: address.slice(at + 1).toLowerCase() };
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
  const a = ip.replace(/^::ffff:/i, '');
  if (isIPv4(a)) return a.startsWith('127.');
  if (isIPv6(a)) return a === '::1' || /^0{0,4}(:0{0,4}){6}:0{0,3}1$/.test(a);
  return false;
}

/** RFC 5321 §4.1.3 address literal for an IP: `[1.2.3.4]` or `[IPv6:…]`. */
export function addressLiteral(ip: string): string {
  const a = ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  return isIPv6(a) ? `[IPv6:${a}]` : `[${a}]`;
}
