// DNS resolver injection (config `dnsServers`, e.g. ["127.0.0.1:5353"]): every lookup the mail
// authentication checks (and the outbound queue) make goes through a node:dns Resolver pointed at
// those servers, so tests run against a DNS server on loopback and nothing leaves the machine.
// Without servers: the system's resolvers (/etc/resolv.conf).

import { promises as dnsp } from 'node:dns';

/** Per query: 2.5 s, 2 tries (c-ares doubles the timeout on the retry). */
const TIMEOUT_MS = 2500;
const TRIES = 2;

const cache = new Map<string, dnsp.Resolver>();

/** One Resolver per server list (c-ares keeps its sockets and cache per Resolver). */
export function nodeResolver(servers?: readonly string[] | null): dnsp.Resolver {
  const key = servers?.length ? servers.join(',') : '';
  let r = cache.get(key);
  if (!r) {
    r = new dnsp.Resolver({ timeout: TIMEOUT_MS, tries: TRIES });
    if (servers?.length) r.setServers([...servers]);
    cache.set(key, r);
  }
  return r;
}

/** mailauth's resolver shape: (name, rrtype) → what dns.promises.resolve returns. */
export type MailauthResolver = (name: string, rrtype: string) => Promise<any>;

export function mailauthResolver(servers?: readonly string[] | null): MailauthResolver {
  const r = nodeResolver(servers);
  return (name, rrtype) => r.resolve(name, rrtype as 'TXT');
}
