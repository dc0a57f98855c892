// Where mail for a domain goes: RFC 5321 §5.1 destination resolution, against an injectable
// resolver (config `dnsServers` → node:dns promises Resolver with setServers; tests pass a dns2
// server on loopback).
//
// - MX records sorted by preference; hosts of equal preference in random order (§5.1: "the
//   sender-SMTP MUST randomize them to spread the load").
// - No MX (NODATA): the domain itself is the one "implicit MX", its A/AAAA records (§5.1).
// - Null MX (RFC 7505 §3: one MX with preference 0 and exchange "."; node's resolver gives the
//   root as ''): the domain accepts no mail → permanent 5.1.10 (RFC 7505 §4.2), no fallback.
//   A null MX mixed with real ones is a misconfiguration (§3): the real ones are used.
// - MX naming ourselves (§5.1: "if the SMTP client finds its own host name among the MX records,
//   it MUST discard that and every MX of equal or higher preference value"): our hostname, or an
//   address we listen on when the destination port is our MX port. Nothing left → 5.4.6 loop.
// - NXDOMAIN (ENOTFOUND) for the domain → permanent 5.1.2; SERVFAIL, REFUSED, timeouts → temporary
//   4.4.3 (RFC 3463 "directory server failure").
// - An MX host with no address: skipped; if none has one → 5.4.4 (permanent when every lookup
//   said "no such name/record", temporary when one failed).

import { promises as dnsPromises } from 'node:dns';

export interface MxRecord { exchange: string; priority: number }

/** What mx.ts needs of a resolver (node:dns promises Resolver has it). */
export interface DnsResolver {
  resolveMx(name: string): Promise<MxRecord[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
}

export interface MxHost {
  /** Host name (lower-case, no trailing dot), or the domain itself for the implicit MX. */
  exchange: string;
  priority: number;
  /** True for the implicit MX (no MX records: the domain's own addresses). */
  implicit: boolean;
  A: string[];
  AAAA: string[];
}

/** A destination that cannot be used now: `temporary` decides retry vs bounce. */
export class DestinationError extends Error {
  readonly status: string;
  readonly temporary: boolean;
  constructor(status: string, temporary: boolean, message: string) {
    super(message);
    this.status = status;
    this.temporary = temporary;
  }
  /** As a reply line for logs, the queue's lastReply and the DSN's Diagnostic-Code. */
  get reply(): string {
    return `${this.temporary ? 451 : 550} ${this.status} ${this.message}`;
  }
}

/** node:dns Resolver on the given servers ("127.0.0.1:5353", "[::1]:53"); the system's when none. */
export function createDnsResolver(servers?: string[] | null, timeoutMs = 5000): DnsResolver {
  const r = new dnsPromises.Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers && servers.length) r.setServers(servers);
  return r;
}

const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA']);

function code(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? 'EUNKNOWN';
}

function normalize(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** Equal preferences shuffled (Fisher-Yates within each group), groups in ascending order. */
export function orderMx(records: MxRecord[], random: () => number = Math.random): MxRecord[] {
  const sorted = [...records].sort((a, b) => a.priority - b.priority);
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j < sorted.length && sorted[j]!.priority === sorted[i]!.priority) j++;
    for (let k = j - 1; k > i; k--) {
      const x = i + Math.floor(random() * (k - i + 1));
      [sorted[k], sorted[x]] = [sorted[x]!, sorted[k]!];
    }
    i = j;
  }
  return sorted;
}

export interface ResolveOptions {
  resolver: DnsResolver;
  /** Is this host name or address us? (our hostname; our listening addresses on our MX port). */
  isSelf(hostOrIp: string): boolean;
  /** Skip AAAA (hosts without IPv6). */
  ignoreIPv6?: boolean;
  random?: () => number;
}

/** Addresses of one host name; `temporary` when a lookup failed (not merely empty). */
async function addresses(r: DnsResolver, name: string, ignoreIPv6: boolean): Promise<{ A: string[]; AAAA: string[]; temporary: string | null; nx: boolean }> {
  const one = async (f: () => Promise<string[]>) => {
    try {
      return { list: await f(), err: null as string | null };
    } catch (err) {
      return { list: [] as string[], err: code(err) };
    }
  };
  const [a, aaaa] = await Promise.all([one(() => r.resolve4(name)), ignoreIPv6 ? { list: [], err: 'ENODATA' } : one(() => r.resolve6(name))]);
  const bad = [a.err, aaaa.err].find((e) => e !== null && !NOT_FOUND.has(e)) ?? null;
  return { A: a.list, AAAA: aaaa.list, temporary: bad, nx: a.err === 'ENOTFOUND' };
}

/** RFC 5321 §5.1 for one domain (ASCII / A-label form). Throws DestinationError. */
export async function resolveDestination(domain: string, o: ResolveOptions): Promise<MxHost[]> {
  const d = normalize(domain);
  let records: MxRecord[] = [];
  try {
    records = await o.resolver.resolveMx(d);
  } catch (err) {
    const c = code(err);
    if (c === 'ENOTFOUND') throw new DestinationError('5.1.2', false, `domain ${d} does not exist (NXDOMAIN)`);
    if (c !== 'ENODATA') throw new DestinationError('4.4.3', true, `MX lookup for ${d} failed (${c}); will retry`);
  }
  if (records.length === 0) return implicitMx(d, o);

  // RFC 7505 §3: a lone "0 ." says the domain takes no mail.
  const real = records.filter((r) => normalize(r.exchange) !== '');
  if (real.length === 0) throw new DestinationError('5.1.10', false, `domain ${d} accepts no mail (null MX, RFC 7505)`);

  let ordered = orderMx(real.map((r) => ({ exchange: normalize(r.exchange), priority: r.priority })), o.random);
  // §5.1: drop ourselves and everything not better than us.
  const selfAt = ordered.find((r) => o.isSelf(r.exchange));
  if (selfAt) ordered = ordered.filter((r) => r.priority < selfAt.priority);

  const resolved = await Promise.all(ordered.map(async (r) => ({ r, a: await addresses(o.resolver, r.exchange, o.ignoreIPv6 ?? false) })));
  const hosts: MxHost[] = [];
  let temporary: string | null = null;
  let selfByAddress: number | null = null;
  for (const { r, a } of resolved) {
    if (selfByAddress !== null && r.priority >= selfByAddress) continue;
    if ([...a.A, ...a.AAAA].some((ip) => o.isSelf(ip))) {
      // An MX whose address is ours is ourselves under another name (§5.1 again).
      selfByAddress = r.priority;
      continue;
    }
    temporary ??= a.temporary;
    if (a.A.length || a.AAAA.length) hosts.push({ exchange: r.exchange, priority: r.priority, implicit: false, A: a.A, AAAA: a.AAAA });
  }
  const kept = selfByAddress === null ? hosts : hosts.filter((h) => h.priority < selfByAddress!);
  if (kept.length) return kept;
  if (selfAt || selfByAddress !== null) {
    throw new DestinationError('5.4.6', false, `mail for ${d} loops back to myself (MX points at this server)`);
  }
  if (temporary) throw new DestinationError('4.4.3', true, `address lookup for the MX hosts of ${d} failed (${temporary}); will retry`);
  throw new DestinationError('5.4.4', false, `no MX host of ${d} has an address`);
}

/** §5.1: no MX records → the domain's own A/AAAA as one host of preference 0. */
async function implicitMx(d: string, o: ResolveOptions): Promise<MxHost[]> {
  const a = await addresses(o.resolver, d, o.ignoreIPv6 ?? false);
  if (a.A.length || a.AAAA.length) {
    if ([...a.A, ...a.AAAA].some((ip) => o.isSelf(ip)) || o.isSelf(d)) {
      throw new DestinationError('5.4.6', false, `mail for ${d} loops back to myself (its address is this server)`);
    }
    return [{ exchange: d, priority: 0, implicit: true, A: a.A, AAAA: a.AAAA }];
  }
  if (a.temporary) throw new DestinationError('4.4.3', true, `address lookup for ${d} failed (${a.temporary}); will retry`);
  if (a.nx) throw new DestinationError('5.1.2', false, `domain ${d} does not exist (NXDOMAIN)`);
  throw new DestinationError('5.1.2', false, `domain ${d} has no MX and no address records`);
}
