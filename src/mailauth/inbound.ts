// Inbound mail authentication on the MX port (issue 13): SPF (RFC 7208), DKIM (RFC 6376, RFC 8463),
// DMARC (RFC 7489 / RFC 9989) through mailauth's authenticate(), with the DNS resolver injected
// (config dnsServers, src/mailauth/resolver.ts). The verdict:
//
//   1. DMARC fail and the author domain's policy is reject     → reject, 550 5.7.1 (RFC 7489 §6.6.2, §10.1)
//   2. the envelope sender's or the From: domain is hosted here and the message passes neither SPF
//      for it nor a DKIM signature aligned with it (relaxed: same organizational domain)
//                                                               → reject, 550 5.7.1 (a local sender is spoofed)
//      ... unless a DNS lookup failed on the way (temperror): then junk, never a permanent refusal
//   3. DMARC fail with policy quarantine                       → junk (RFC 7489 §6.3 p=quarantine)
//   4. otherwise                                               → deliver
//
// Alignment (RFC 7489 §3.1) is mailauth's: relaxed = same organizational domain (Public Suffix
// List), strict (adkim=s / aspf=s) = identical domains. The Authentication-Results field (RFC 8601)
// names our hostname as authserv-id and goes on top of the message; existing fields claiming our
// hostname are returned in `strip` (RFC 8601 §5: a receiver MUST remove them, they are forged).
//
// Bounded work: mailauth reads the message in 64 KB chunks with an event-loop turn between them
// (no long hold); at most MAX_DKIM_SIGNATURES DKIM-Signature fields are verified (the topmost, the
// most recent ones; each costs a DNS lookup and possibly a body hash), the others are left out of
// what mailauth sees; a message over `maxVerifyBytes` (default 64 MiB, above the 50 MiB default
// message size limit) has no signature verified (dkim=none, said so in a comment) since each
// body hash is a pass over the whole body. SPF: 10 DNS-querying terms (RFC 7208 §4.6.4, mailauth),
// SPF_TIME_MS overall; every query times out (resolver.ts); the whole check gives up after
// `timeoutMs` (then junk, with the reason in the header).

import { authenticate, type AuthenticateResult } from 'mailauth';
import { getAlignment } from 'mailauth/lib/tools.js';
import libmime from 'libmime';
import { headerFields, bodyOffset, type HeaderField } from './headers.ts';
import { mailauthResolver } from './resolver.ts';
import type { InboundInput, InboundVerdict } from '../smtp/inbound-port.ts';

// Input and verdict are the SMTP layer's port (src/smtp/inbound-port.ts), which main.ts wires to checkInbound.
export type { InboundInput, InboundVerdict };


export const MAX_DKIM_SIGNATURES = 5;
export const DEFAULT_MAX_VERIFY_BYTES = 64 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 30_000;
const SPF_TIME_MS = 20_000;

export async function checkInbound(o: InboundInput): Promise<InboundVerdict> {
  const fields = headerFields(o.message);
  const strip = forgedResults(o.message, fields, o.hostname);
  const maxBytes = o.maxVerifyBytes ?? DEFAULT_MAX_VERIFY_BYTES;
  const oversize = o.message.length > maxBytes;
  const input = boundedInput(o.message, fields, oversize);
  const authservId = o.hostname;
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  let res: AuthenticateResult | 'timeout';
  try {
    res = await Promise.race([
      authenticate(input, {
        ip: o.ip,
        helo: o.helo,
        sender: o.mailFrom,
        mta: o.hostname,
        resolver: mailauthResolver(o.dnsServers),
        rejectRsaSha1: true, // RFC 8301 §3.1: rsa-sha1 signatures MUST NOT be considered valid
        disableArc: true, // no ARC (issue 13: being retired); DMARC is decided on SPF and DKIM only
        disableBimi: true,
        maxElapsedTime: SPF_TIME_MS,
      } as Parameters<typeof authenticate>[1]),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))),
    ]);
  } finally {
    clearTimeout(timer);
  }
  if (res === 'timeout') {
    return { action: 'junk', reply: null, header: arHeader(authservId, [`none (authentication checks did not finish within ${Math.round(timeoutMs / 1000)} s)`]), strip };
  }
  const parts = resultParts(res, oversize, maxBytes);
  const header = arHeader(authservId, parts);
  return { ...(await decide(res, o)), header, strip };
}

async function decide(res: AuthenticateResult, o: InboundInput): Promise<Pick<InboundVerdict, 'action' | 'reply'>> {
  const dmarc = res.dmarc || null;
  const dmarcFailed = dmarc?.status.result === 'fail';
  if (dmarcFailed && dmarc.policy === 'reject') {
    return { action: 'reject', reply: `5.7.1 DMARC policy of ${ascii(dmarc.domain)} says reject: no aligned SPF or DKIM pass` };
  }
  const spf = res.spf || null;
  const spfPass = spf?.status.result === 'pass';
  const dkimPassing = res.dkim.results.filter((r) => r.status.result === 'pass' && r.signingDomain).map((r) => r.signingDomain!);
  const temp = spf?.status.result === 'temperror' || res.dkim.results.some((r) => r.status.result === 'temperror' || (r.status.result as string) === 'temperr');
  for (const d of await claimedHostedDomains(res, o)) {
    // RFC 7489 §3.1 relaxed alignment with the claimed domain
    const ok = (spfPass && !!spf.domain && !!getAlignment(d, [spf.domain], false)) || !!getAlignment(d, dkimPassing, false);
    if (ok) continue;
    if (temp) return { action: 'junk', reply: null };
    return { action: 'reject', reply: `5.7.1 ${ascii(d)} is a domain of this server: mail claiming it must pass SPF or DKIM for it` };
  }
  if (dmarcFailed && dmarc.policy === 'quarantine') return { action: 'junk', reply: null };
  return { action: 'deliver', reply: null };
}

async function claimedHostedDomains(res: AuthenticateResult, o: InboundInput): Promise<string[]> {
  const claimed = new Set<string>();
  const env = domainOf(o.mailFrom);
  if (env) claimed.add(env);
  for (const a of res.dkim.headerFrom ?? []) {
    const d = domainOf(a);
    if (d) claimed.add(d);
  }
  const out: string[] = [];
  for (const d of claimed) if (await o.isHosted(d)) out.push(d);
  return out;
}

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  let d = at < 0 ? '' : address.slice(at + 1).trim().toLowerCase();
  while (d.endsWith('.')) d = d.slice(0, -1);
  return d;
}

/** Text for an SMTP reply: printable ASCII only (RFC 5321 §4.2), at most 200 characters. */
function ascii(s: string): string {
  let out = '';
  for (const ch of s.slice(0, 200)) out += ch >= ' ' && ch <= '~' ? ch : '?';
  return out;
}

/** The method results in RFC 8601 §2.2 order of our choosing: spf, dkim (each signature), dmarc. */
function resultParts(res: AuthenticateResult, oversize: boolean, maxBytes: number): string[] {
  const parts: string[] = [];
  if (res.spf) parts.push(res.spf.info);
  if (oversize) parts.push(`dkim=none (message over ${maxBytes} bytes: signatures not verified)`);
  else for (const r of res.dkim.results) if (r.info) parts.push(r.info);
  if (res.dmarc && res.dmarc.info) parts.push(res.dmarc.info);
  return parts.map(headerSafe);
}

/** Control characters (a CR or LF would end the field) become spaces. */
function headerSafe(s: string): string {
  let out = '';
  for (const ch of s) out += ch < ' ' || ch === '\x7f' ? ' ' : ch;
  return out;
}

function arHeader(authservId: string, parts: string[]): string {
  const id = isToken(authservId) ? authservId : `"${authservId.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
  const body = parts.length ? parts.map((p) => libmime.foldLines(p, 160)).join(';\r\n\t') : 'none';
  return `Authentication-Results: ${id};\r\n\t${body}\r\n`;
}

/** RFC 2045 §5.1 token (the authserv-id is a `value`, RFC 8601 §2.2). */
function isToken(s: string): boolean {
  if (!s) return false;
  for (const ch of s) if (ch <= ' ' || ch > '~' || '()<>@,;:\\"/[]?='.includes(ch)) return false;
  return true;
}

// ---- what mailauth is given

/** The message itself, or a copy without the DKIM-Signature fields past the cap (or, oversize, the header block only, without any). */
function boundedInput(message: Buffer, fields: HeaderField[], oversize: boolean): Buffer {
  const sigs = fields.filter((f) => f.name === 'dkim-signature');
  if (!oversize && sigs.length <= MAX_DKIM_SIGNATURES) return message;
  const drop = new Set(oversize ? sigs : sigs.slice(MAX_DKIM_SIGNATURES));
  const chunks: Buffer[] = [];
  let pos = 0;
  for (const f of fields) {
    if (!drop.has(f)) continue;
    chunks.push(message.subarray(pos, f.start));
    pos = f.end;
  }
  const end = oversize ? bodyOffset(message) : message.length;
  chunks.push(message.subarray(pos, end));
  return Buffer.concat(chunks);
}

// ---- forged Authentication-Results (RFC 8601 §5)

/** Ranges of the Authentication-Results fields whose authserv-id is `hostname` (case-insensitive). */
export function forgedResults(message: Buffer, fields: HeaderField[], hostname: string): Array<[number, number]> {
  const want = normHost(hostname);
  const out: Array<[number, number]> = [];
  for (const f of fields) {
    if (f.name !== 'authentication-results') continue;
    const id = authservIdOf(message.toString('latin1', f.valueStart, f.end));
    if (id !== null && normHost(id) === want) out.push([f.start, f.end]);
  }
  return out;
}

function normHost(h: string): string {
  let s = h.trim().toLowerCase();
  while (s.endsWith('.')) s = s.slice(0, -1);
  return s;
}

/**
 * The authserv-id at the start of an Authentication-Results value (RFC 8601 §2.2:
 * [CFWS] authserv-id, a token or quoted-string), one pass: folding white space and nested
 * comments skipped, quoted-pairs honoured. Null when there is none.
 */
export function authservIdOf(v: string): string | null {
  let i = 0;
  const n = v.length;
  // skip CFWS
  while (i < n) {
    const c = v[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      i++;
    } else if (c === '(') {
      let depth = 0;
      for (; i < n; i++) {
        const d = v[i]!;
        if (d === '\\') i++;
        else if (d === '(') depth++;
        else if (d === ')' && --depth === 0) {
          i++;
          break;
        }
      }
    } else break;
  }
  if (i >= n) return null;
  if (v[i] === '"') {
    let s = '';
    for (i++; i < n && v[i] !== '"'; i++) {
      if (v[i] === '\\' && i + 1 < n) i++;
      s += v[i];
    }
    return s;
  }
  let s = '';
  for (; i < n; i++) {
    const c = v[i]!;
    if (c === ';' || c === ' ' || c === '\t' || c === '\r' || c === '\n' || c === '(') break;
    s += c;
  }
  return s || null;
}
