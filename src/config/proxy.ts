// Config `proxyProtocol`: which listeners expect a PROXY protocol header (src/net/proxy-protocol.ts)
// and from which addresses. Off unless listed; see README "Behind HAProxy".
//
//   "proxyProtocol": { "listeners": ["imap", "imaps", "smtp"], "trusted": ["10.0.0.5", "10.1.0.0/16"],
//                      "timeout": 5000, "maxHeaderBytes": 1024 }
//
// Flags/environment: --proxy-protocol LIST (PILLARBOX_PROXY_PROTOCOL), --proxy-trusted LIST
// (PILLARBOX_PROXY_TRUSTED), comma-separated, replace the file's lists.

import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { V2_MIN_CAP } from '../net/proxy-protocol.ts';

/** Listener names that can take a PROXY header (the ports of config.ts, and LMTP). */
export const PROXY_LISTENERS = ['smtp', 'submission', 'submissions', 'imap', 'imaps', 'pop3', 'pop3s', 'lmtp', 'http'] as const;
export type ProxyListener = (typeof PROXY_LISTENERS)[number];

export interface ProxyProtocolConfig {
  /** Listeners on which every connection from a trusted address must start with a PROXY header. */
  listeners: ProxyListener[];
  /** The proxies: IPs or CIDR ranges ("10.0.0.5", "10.1.0.0/16", "::1", "fd00::/8"). Others are refused there. */
  trusted: string[];
  /** Time a trusted connection gets to send its whole header, ms (Postfix smtpd_upstream_proxy_timeout: 5 s). */
  timeout: number;
  /** Largest header accepted, bytes (v2 with TLVs; v1 is at most 107). At least 232. */
  maxHeaderBytes: number;
}

export const DEFAULT_PROXY_TIMEOUT = 5000;
export const DEFAULT_PROXY_MAX_HEADER = 1024;
/** v2's 16-bit length: 16 + 65535 is the most a header can announce. */
const V2_MAX = 16 + 65535;

export class ProxyConfigError extends Error {}

type Str = (flag: string, envName: string) => string | undefined;

/** config.proxyProtocol, with the flags' lists over the file's; null when no listener is listed. */
export function loadProxyProtocol(file: unknown, str: Str): ProxyProtocolConfig | null {
  if (file !== undefined && file !== null && (typeof file !== 'object' || Array.isArray(file))) throw new ProxyConfigError('config proxyProtocol must be an object {listeners, trusted, …}');
  const f = (file ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(f)) {
    if (!['listeners', 'trusted', 'timeout', 'maxHeaderBytes'].includes(k)) throw new ProxyConfigError(`config proxyProtocol.${k} is not a setting (listeners, trusted, timeout, maxHeaderBytes)`);
  }
  const list = (flag: string, envName: string, key: string): string[] => {
    const v = str(flag, envName);
    if (v !== undefined) return v.split(',').map((x) => x.trim()).filter(Boolean);
    const x = f[key] ?? [];
    if (!Array.isArray(x) || x.some((e) => typeof e !== 'string')) throw new ProxyConfigError(`config proxyProtocol.${key} must be a list of strings`);
    return x as string[];
  };
  const listeners = list('proxy-protocol', 'PILLARBOX_PROXY_PROTOCOL', 'listeners');
  for (const l of listeners) {
    if (!(PROXY_LISTENERS as readonly string[]).includes(l)) throw new ProxyConfigError(`proxy protocol listener "${l}" is not one of ${PROXY_LISTENERS.join(', ')}`);
  }
  const trusted = list('proxy-trusted', 'PILLARBOX_PROXY_TRUSTED', 'trusted');
  for (const t of trusted) parseRange(t);
  const timeout = f.timeout ?? DEFAULT_PROXY_TIMEOUT;
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 1) throw new ProxyConfigError('config proxyProtocol.timeout must be a positive number of ms');
  const maxHeaderBytes = f.maxHeaderBytes ?? DEFAULT_PROXY_MAX_HEADER;
  if (typeof maxHeaderBytes !== 'number' || !Number.isInteger(maxHeaderBytes) || maxHeaderBytes < V2_MIN_CAP || maxHeaderBytes > V2_MAX) {
    throw new ProxyConfigError(`config proxyProtocol.maxHeaderBytes must be a whole number from ${V2_MIN_CAP} to ${V2_MAX}`);
  }
  if (listeners.length === 0) return null;
  // A listener expecting headers from nobody would refuse every connection.
  if (trusted.length === 0) throw new ProxyConfigError('proxy protocol: list the proxies\' addresses in proxyProtocol.trusted (or --proxy-trusted); connections from any other address are refused on those listeners');
  return { listeners: [...new Set(listeners)] as ProxyListener[], trusted, timeout, maxHeaderBytes };
}

/** "10.0.0.0/8", "::1", "fd00::/8", "192.0.2.7" → address, prefix length and family; throws on anything else. */
export function parseRange(s: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const slash = s.indexOf('/');
  const address = slash < 0 ? s : s.slice(0, slash);
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) && !address.includes('%') ? 'ipv6' : null;
  if (!family) throw new ProxyConfigError(`proxy protocol trusted address "${s}" is not an IP address or CIDR range`);
  const bits = family === 'ipv4' ? 32 : 128;
  const p = slash < 0 ? String(bits) : s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(p) || Number(p) > bits) throw new ProxyConfigError(`proxy protocol trusted range "${s}": the prefix must be 0-${bits}`);
  return { address, prefix: Number(p), family };
}

/** The trusted ranges as a matcher; an IPv4-mapped socket address (::ffff:a.b.c.d) counts as IPv4. */
export function trustMatcher(trusted: string[]): (socketAddress: string) => boolean {
  const list = new BlockList();
  for (const t of trusted) {
    const r = parseRange(t);
    list.addSubnet(r.address, r.prefix, r.family);
  }
  return (a) => {
    const ip = a.startsWith('::ffff:') && isIPv4(a.slice(7)) ? a.slice(7) : a;
    if (isIPv4(ip)) return list.check(ip, 'ipv4');
    if (isIPv6(ip)) return list.check(ip, 'ipv6');
    return false;
  };
}
