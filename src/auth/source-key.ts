// The "source" a login comes from, as throttling counts it: an IPv4 address as it is; an IPv6
// address by its /64 (one subscriber usually gets a whole /64, so counting single IPv6 addresses
// would give an attacker 2^64 fresh sources); an IPv4-mapped IPv6 address (::ffff:192.0.2.1, what
// a dual-stack listener reports for IPv4 clients) as the IPv4 address. IPv6 text is written
// per RFC 5952 §4 (lower case, no leading zeros, the longest run of zero groups as "::").

import { isIPv4, isIPv6 } from 'node:net';

/** The 8 16-bit groups of a valid IPv6 address (node:net isIPv6 already said yes). */
function groups(a: string): number[] {
  let s = a;
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    // Embedded IPv4 in the last 32 bits (RFC 4291 §2.2 form 3).
    const v4 = s.slice(lastColon + 1).split('.').map(Number);
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    s = s.slice(0, lastColon); // "::ffff:1.2.3.4" → "::ffff"; "::1.2.3.4" → ":" → "::"
    if (s.endsWith(':')) s += ':';
  }
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const dbl = s.indexOf('::');
  let out: number[];
  if (dbl >= 0) {
    const head = parse(s.slice(0, dbl));
    const rest = parse(s.slice(dbl + 2));
    out = [...head, ...new Array<number>(8 - tail.length - head.length - rest.length).fill(0), ...rest];
  } else {
    out = parse(s);
  }
  return [...out, ...tail].slice(0, 8);
}

/** RFC 5952 §4.2: the longest run (≥ 2) of zero groups becomes "::", the first one on a tie. */
function format(g: number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < g.length; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < g.length && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/**
 * The throttling key of a remote address: `192.0.2.1`, `2001:db8:1:2::/64`. Accepts a zone
 * (`fe80::1%eth0`), brackets, and a key that is already a /64. Anything else (no address, a
 * Unix socket) is returned trimmed and lower-cased, or `unknown` when empty.
 */
export function sourceKey(address: string): string {
  let a = address.trim();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const pct = a.indexOf('%');
  if (pct >= 0) a = a.slice(0, pct);
  if (a.endsWith('/64')) a = a.slice(0, -3);
  if (isIPv4(a)) return a;
  if (!isIPv6(a)) return a.toLowerCase().slice(0, 100) || 'unknown';
  const g = groups(a);
  // RFC 4291 §2.5.5.2: ::ffff:a.b.c.d is the IPv4 address a.b.c.d.
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
  }
  // ::/64 holds loopback and unspecified, not a subscriber's prefix: keep the address itself.
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0) return format(g);
  return `${format([g[0]!, g[1]!, g[2]!, g[3]!, 0, 0, 0, 0])}/64`;
}

/** True when the text is an IP address or a /64 key (for the admin CLI). */
export function isSourceAddress(text: string): boolean {
  let a = text.trim();
  if (a.endsWith('/64')) a = a.slice(0, -3);
  return isIPv4(a) || isIPv6(a);
}
