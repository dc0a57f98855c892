// The DNS records a hosted domain needs (`pillarbox dns DOMAIN`), in zone-file form (RFC 1035 §5.1),
// with a short comment above each. Loaded into a DNS server as printed, they make mail from and to
// the domain authenticate: the tests load this output into the test DNS server.
//
// Choices:
// - SPF `v=spf1 [ip4:ADDR|ip6:ADDR] mx -all` (RFC 7208): only this server sends for the domain, so
//   everything else fails (-all). With --ip the address is listed first (no lookup for the common
//   case); `mx` keeps it right when the address changes.
// - DMARC `p=quarantine` (RFC 7489 §6.3): a spoof lands in the recipient's junk folder rather than
//   the inbox. Not p=reject from day one: while SPF/DKIM records propagate, or for mail sent
//   through a third party the admin forgot, reject would bounce real mail; once the aggregate
//   reports (rua, to postmaster@ — RFC 5321 §4.5.1 makes that address exist) look clean, raise it
//   to p=reject. Not p=none: that protects nothing (and Gmail/Yahoo want a policy anyway).
//   Relaxed alignment (the default) so mail from sub.domain still aligns.
// - MTA-STS (RFC 8461) in `mode: testing` with the policy text to serve at
//   https://mta-sts.DOMAIN/.well-known/mta-sts.txt (Pillarbox does not serve it): testing tells
//   senders to report but still deliver when TLS to us fails; switch to enforce once the
//   certificate is from a public CA. The id is a hash of the policy text, so it changes exactly
//   when the policy does (RFC 8461 §3.1).
// - TLS-RPT (RFC 8460) reports to postmaster@.
// - SRV records for client setup (RFC 6186, RFC 8314 §5.1: implicit TLS preferred): submissions
//   (465), submission (587), imaps (993), pop3s (995), with the ports the server is configured with.

import { createHash } from 'node:crypto';
import type { DkimKey } from '../store/dkim-keys.ts';
import { publicKeyRecord } from './dkim.ts';

export interface DnsRecordOptions {
  domain: string;
  /** The server's hostname (MX target, SRV target). */
  hostname: string;
  /** The server's public address (IPv4 or IPv6), if known. */
  ip?: string | null;
  /** Every key of the domain: active ones get a TXT record; retired ones a comment. */
  keys: DkimKey[];
  ports?: { submission?: number; submissions?: number; imaps?: number; pop3s?: number };
  ttl?: number;
}

export interface ZoneLine { name: string; type: 'MX' | 'A' | 'AAAA' | 'TXT' | 'SRV'; value: string; comment: string }

export interface DomainRecords {
  records: ZoneLine[];
  /** The MTA-STS policy file text (CRLF lines, RFC 8461 §3.2). */
  mtaStsPolicy: string;
  /** Zone-file text of everything, with comments. */
  zone: string;
}

const fqdn = (n: string) => (n.endsWith('.') ? n : `${n}.`);

/** A TXT value as quoted character-strings of at most 255 bytes each (RFC 1035 §3.3.14); ASCII only. */
export function txtStrings(value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(value.slice(i, i + 255));
  const quoted = parts.map((p) => `"${p.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`);
  return quoted.length === 1 ? quoted[0]! : `( ${quoted.join('\n      ')} )`;
}

function isIPv6(ip: string): boolean {
  return ip.includes(':');
}

export function domainRecords(o: DnsRecordOptions): DomainRecords {
  const d = o.domain.toLowerCase();
  const host = o.hostname.toLowerCase();
  const ttl = o.ttl ?? 3600;
  const rec: ZoneLine[] = [];
  const add = (name: string, type: ZoneLine['type'], value: string, comment: string) => rec.push({ name: fqdn(name), type, value, comment });

  add(d, 'MX', `10 ${fqdn(host)}`, `Mail for ${d} goes to this server (RFC 5321 §5.1).`);
  if (o.ip && (host === d || host.endsWith(`.${d}`))) {
    add(host, isIPv6(o.ip) ? 'AAAA' : 'A', o.ip, `The server's address (${host} is inside ${d}).`);
  }
  const ipMech = o.ip ? `${isIPv6(o.ip) ? 'ip6' : 'ip4'}:${o.ip} ` : '';
  add(d, 'TXT', txtStrings(`v=spf1 ${ipMech}mx -all`), 'SPF (RFC 7208): only this server sends mail for the domain.');
  const active = o.keys.filter((k) => k.active);
  for (const k of active) {
    add(`${k.selector}._domainkey.${d}`, 'TXT', txtStrings(publicKeyRecord(k)), `DKIM key ${k.selector} (${k.algorithm}, RFC 6376 §3.6.1); long values are split into 255-byte strings.`);
  }
  add(`_dmarc.${d}`, 'TXT', txtStrings(`v=DMARC1; p=quarantine; rua=mailto:postmaster@${d}`),
    'DMARC (RFC 7489): mail failing SPF and DKIM alignment goes to junk; raise to p=reject once reports are clean.');
  const policy = [`version: STSv1`, `mode: testing`, `mx: ${host}`, `max_age: 604800`, ''].join('\r\n');
  const id = createHash('sha256').update(policy).digest('hex').slice(0, 20);
  add(`_mta-sts.${d}`, 'TXT', txtStrings(`v=STSv1; id=${id}`), 'MTA-STS (RFC 8461): serve the policy below at https://mta-sts.' + d + '/.well-known/mta-sts.txt.');
  add(`_smtp._tls.${d}`, 'TXT', txtStrings(`v=TLSRPTv1; rua=mailto:postmaster@${d}`), 'TLS-RPT (RFC 8460): where senders report TLS failures.');
  const p = { submissions: 465, submission: 587, imaps: 993, pop3s: 995, ...o.ports };
  const srv = (svc: string, port: number, what: string) => add(`_${svc}._tcp.${d}`, 'SRV', `0 1 ${port} ${fqdn(host)}`, what);
  srv('submissions', p.submissions, 'Client setup (RFC 6186, RFC 8314): sending over implicit TLS.');
  srv('submission', p.submission, 'Sending with STARTTLS.');
  srv('imaps', p.imaps, 'IMAP over implicit TLS.');
  srv('pop3s', p.pop3s, 'POP3 over implicit TLS.');

  const lines: string[] = [`; DNS records for ${d} (served by ${host}); generated by pillarbox dns`, `$TTL ${ttl}`];
  for (const r of rec) {
    lines.push('', `; ${r.comment}`, `${r.name}\t${ttl}\tIN\t${r.type}\t${r.value}`);
  }
  for (const k of o.keys.filter((k) => !k.active)) {
    lines.push('', `; DKIM key ${k.selector} was retired ${new Date(k.retiredAt ?? 0).toISOString().slice(0, 10)}: keep its TXT record a few days`,
      `; for mail signed before, then remove it (and the key: pillarbox dkim retire only stops signing).`);
  }
  if (active.length === 0) lines.push('', `; No active DKIM key for ${d}: run \`pillarbox dkim generate ${d}\`, then print this again.`);
  lines.push('', `; MTA-STS policy file (https://mta-sts.${d}/.well-known/mta-sts.txt, text/plain):`);
  for (const l of policy.split('\r\n')) if (l) lines.push(`;   ${l}`);
  return { records: rec, mtaStsPolicy: policy, zone: lines.join('\n') + '\n' };
}
