// MTA-STS (RFC 8461) for outbound delivery, and TLS-RPT (RFC 8460) counting.
//
// MTA-STS, per destination domain, before connecting (src/queue/transport.ts SmtpSession.toMx):
// - Discovery (§3.1, §5.1): TXT `_mta-sts.<domain>`; of the records starting `v=STSv1`, exactly
//   one must be there, with an `id` of 1–32 letters/digits. Asked on every new connection (it is
//   one cheap DNS answer); the policy itself comes from the cache while the id is the same and the
//   policy's max_age has not run out.
// - Fetch (§3.3): `https://mta-sts.<domain>/.well-known/mta-sts.txt`, certificate verified for
//   `mta-sts.<domain>` against the system roots (plus `outbound.tlsCa`, for tests), HTTP 200 only,
//   no redirects followed, at most 64 KB (MAX_POLICY_BYTES) and one minute (or less), fresh
//   connection. The port is `outbound.mtaStsPort` (443; tests use a loopback port).
// - Cache (§5.1): in memory, per process, at most MAX_DOMAINS domains; not persisted (a restart
//   fetches again — the cost is one HTTPS request per domain). A cached, unexpired policy is used
//   when the TXT record vanished or the fetch failed (§5.1: "If a valid cached policy exists, use
//   it"); a failed fetch with nothing cached means no policy (deliver as without MTA-STS), and
//   the failure is not retried for FAIL_RETRY_MS.
// - Enforce (§4.1, §5): `enforce` → only MX hosts matching one `mx:` pattern are used, TLS is
//   required and the certificate must be valid for the MX host name; a failure defers the
//   recipients (451 4.7.5, retried like any 4xx). `testing` → delivered as without a policy, the
//   failure only counted and logged (`queue.mta-sts-failure`). `none` → nothing checked.
//
// TLS-RPT: every session to a domain counts one success or one failure (with its RFC 8460 §4.3
// result type) for the policy domain. Every `outbound.tlsReportInterval` (a day) the counts of
// domains publishing `_smtp._tls` TXT `v=TLSRPTv1; rua=…` (§3) are logged as
// `queue.tls-report domain=… success=… failure=… rua=…`, the aggregate JSON report (§4) is queued
// to the record's mailto: addresses (src/queue/tls-report.ts; https: rua not done), and the counts
// are reset. Counts are in memory: a restart loses the period's.

import { request } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { Logger } from '../obs/log.ts';
import type { MxHost } from './mx.ts';
import { composeTlsReport, mailtoAddresses } from './tls-report.ts';

export const MAX_POLICY_BYTES = 64 * 1024; // RFC 8461 §3.3
const MAX_AGE_LIMIT = 31_557_600; // RFC 8461 §3.2: at most one year
const FETCH_TIMEOUT_MS = 60_000; // RFC 8461 §3.3: "a timeout of one minute"
const FAIL_RETRY_MS = 5 * 60_000;
const MAX_DOMAINS = 10_000;
const MAX_MX_PATTERNS = 100;

export type StsMode = 'enforce' | 'testing' | 'none';
export interface StsPolicy { id: string; mode: StsMode; maxAge: number; mx: string[] }

export interface MtaStsOptions {
  resolveTxt(name: string): Promise<string[][]>;
  resolve4(name: string): Promise<string[]>;
  /** HTTPS port of the policy host (443). */
  port: number;
  /** Extra trusted CA (PEM), added to the system roots; tests only. */
  ca: string | null;
  timeoutMs?: number;
  log: Logger;
  now?: () => number;
}

interface Cached { policy: StsPolicy | null; id: string; until: number }

/** The TXT `id` (RFC 8461 §3.1), null when there is no (single, valid) record. */
export function parseStsTxt(records: string[][]): string | null {
  const sts = records.map((r) => r.join('')).filter((r) => r.trimStart().toLowerCase().startsWith('v=stsv1'));
  if (sts.length !== 1) return null; // §3.1: none, or several → no policy
  const fields = sts[0]!.split(';').map((f) => f.trim());
  if (fields[0] !== 'v=STSv1') return null;
  for (const f of fields.slice(1)) {
    const eq = f.indexOf('=');
    if (eq > 0 && f.slice(0, eq).trim() === 'id') {
      const id = f.slice(eq + 1).trim();
      return id.length >= 1 && id.length <= 32 && ALNUM.test(id) ? id : null;
    }
  }
  return null;
}
const ALNUM = /^[A-Za-z0-9]+$/; // linear: one class

/** The policy file (RFC 8461 §3.2): `key: value` lines; throws with the reason when invalid. */
export function parseStsPolicy(text: string, id: string): StsPolicy {
  let version = '';
  let mode = '';
  let maxAge = -1;
  const mx: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (key === 'version' && !version) version = value;
    else if (key === 'mode' && !mode) mode = value;
    else if (key === 'max_age' && maxAge < 0) maxAge = DIGITS.test(value) && value.length <= 10 ? Number(value) : NaN;
    else if (key === 'mx' && mx.length < MAX_MX_PATTERNS && value) mx.push(value.toLowerCase().replace(TRAILING_DOT, ''));
  }
  if (version !== 'STSv1') throw new Error('policy has no "version: STSv1"');
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') throw new Error(`policy mode "${mode}" is not enforce, testing or none`);
  if (!(maxAge >= 0)) throw new Error('policy has no valid max_age');
  if (mode !== 'none' && mx.length === 0) throw new Error('policy has no mx: line');
  return { id, mode, maxAge: Math.min(maxAge, MAX_AGE_LIMIT), mx };
}
const DIGITS = /^[0-9]+$/; // linear
const TRAILING_DOT = /\.$/; // linear

/** RFC 8461 §4.1: `mx.example.com` exactly, or `*.example.com` = exactly one more left-most label. */
export function mxMatches(host: string, policy: StsPolicy): boolean {
  const h = host.toLowerCase().replace(TRAILING_DOT, '');
  return policy.mx.some((p) => {
    if (!p.startsWith('*.')) return p === h;
    const suffix = p.slice(1); // ".example.com"
    return h.endsWith(suffix) && h.length > suffix.length && !h.slice(0, -suffix.length).includes('.');
  });
}

/** The MTA-STS policies of destination domains: discovery, fetch, cache (see the header). */
export class MtaSts {
  readonly #o: MtaStsOptions;
  readonly #cache = new Map<string, Cached>();
  readonly #now: () => number;
  /** Policy files fetched (successfully or not), for logs and tests. */
  fetches = 0;

  constructor(o: MtaStsOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  /** A policy failure worth a line (testing-mode failures, refused MX hosts). */
  log(event: string, fields: Record<string, string | number | boolean | undefined>): void {
    this.#o.log.warn(event, fields);
  }

  /** The policy that applies to `domain` now, or null (no policy: deliver as without MTA-STS). */
  async policyFor(domain: string): Promise<{ policy: StsPolicy | null; error: string | null }> {
    const d = domain.toLowerCase();
    const now = this.#now();
    const cached = this.#cache.get(d);
    const valid = cached && cached.until > now ? cached : null;
    let id: string | null;
    try {
      id = parseStsTxt(await this.#o.resolveTxt(`_mta-sts.${d}`));
    } catch (err) {
      const c = (err as NodeJS.ErrnoException).code;
      if (c !== 'ENOTFOUND' && c !== 'ENODATA') return { policy: valid?.policy ?? null, error: null }; // DNS trouble: keep what we know
      id = null;
    }
    if (id === null) return { policy: valid?.policy ?? null, error: null }; // §5.1: a valid cached policy still applies
    if (valid && valid.id === id) return { policy: valid.policy, error: null };
    this.fetches++;
    try {
      const policy = parseStsPolicy(await this.#fetch(d), id);
      this.#put(d, { policy, id, until: now + policy.maxAge * 1000 });
      this.#o.log.info('queue.mta-sts-policy', { domain: d, id, mode: policy.mode, max_age: policy.maxAge, mx: policy.mx.join(',') });
      return { policy, error: null };
    } catch (err) {
      const error = (err as Error).message;
      this.#o.log.warn('queue.mta-sts-fetch-failed', { domain: d, id, error });
      if (valid?.policy) return { policy: valid.policy, error }; // §5.1 again
      this.#put(d, { policy: null, id, until: now + FAIL_RETRY_MS });
      return { policy: null, error };
    }
  }

  #put(d: string, c: Cached): void {
    if (this.#cache.size >= MAX_DOMAINS && !this.#cache.has(d)) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(d, c);
  }

  /** RFC 8461 §3.3: the policy file over HTTPS, certificate verified, 200 only, ≤ 64 KB, time-limited. */
  async #fetch(d: string): Promise<string> {
    const host = `mta-sts.${d}`;
    const addrs = await this.#o.resolve4(host).catch(() => [] as string[]);
    if (addrs.length === 0) throw new Error(`policy host ${host} has no address`);
    const timeout = Math.min(FETCH_TIMEOUT_MS, this.#o.timeoutMs ?? FETCH_TIMEOUT_MS);
    return new Promise<string>((resolve, reject) => {
      let done = false;
      const finish = (err: Error | null, body?: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) {
          req.destroy();
          reject(err);
        } else resolve(body!);
      };
      const req = request(
        {
          host: addrs[0],
          port: this.#o.port,
          path: '/.well-known/mta-sts.txt',
          method: 'GET',
          servername: host,
          headers: { host },
          rejectUnauthorized: true,
          ca: this.#o.ca ? [...rootCertificates, this.#o.ca] : undefined,
          agent: false,
        },
        (res) => {
          // §3.3: "HTTP 3xx redirects MUST NOT be followed"; only 200 is a policy.
          if (res.statusCode !== 200) return finish(new Error(`https://${host}/.well-known/mta-sts.txt answered HTTP ${res.statusCode}`));
          if (Number(res.headers['content-length']) > MAX_POLICY_BYTES) return finish(new Error(`policy of ${d} is larger than ${MAX_POLICY_BYTES} bytes`));
          const chunks: Buffer[] = [];
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.length;
            if (n > MAX_POLICY_BYTES) return finish(new Error(`policy of ${d} is larger than ${MAX_POLICY_BYTES} bytes`));
            chunks.push(c);
          });
          res.on('end', () => finish(null, Buffer.concat(chunks).toString('utf8')));
          res.on('error', (e) => finish(e));
        },
      );
      const timer = setTimeout(() => finish(new Error(`fetching the policy of ${d} took more than ${timeout} ms`)), timeout);
      req.on('error', (e) => finish(new Error(`fetching https://${host}/.well-known/mta-sts.txt: ${e.message}`)));
      req.end();
    });
  }
}

/** The MX hosts a policy lets us use (RFC 8461 §4.1), and those it does not. */
export function splitByPolicy(hosts: MxHost[], policy: StsPolicy): { allowed: MxHost[]; refused: MxHost[] } {
  const allowed: MxHost[] = [];
  const refused: MxHost[] = [];
  for (const h of hosts) (mxMatches(h.exchange, policy) ? allowed : refused).push(h);
  return { allowed, refused };
}

/** RFC 8460 §4.3 result types we count. */
export type TlsResultType = 'starttls-not-supported' | 'certificate-host-mismatch' | 'certificate-expired' | 'validation-failure' | 'sts-policy-fetch-error';

/** The RFC 8460 §4.3 result type of a certificate verification error code (node's). */
export function certFailureType(code: string): TlsResultType {
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH') return 'certificate-host-mismatch';
  if (code === 'CERT_HAS_EXPIRED') return 'certificate-expired';
  return 'validation-failure';
}

interface Counts { policy: 'sts' | 'no-policy-found'; sts: StsPolicy | null; success: number; failure: number; types: Map<string, number> }

export interface TlsReportOptions {
  resolveTxt(name: string): Promise<string[][]>;
  log: Logger;
  intervalMs: number;
  /** Our hostname: the report's submitter (RFC 8460 §4.4 organization-name). */
  submitter?: string;
  /** The report's From: and contact-info; no `send`, no mailed reports. */
  from?: string;
  /** Queues one report message (src/queue/tls-report.ts) for `to`. */
  send?(message: Buffer, from: string, to: string[]): Promise<void>;
  now?: () => number;
}

/** TLS-RPT counts per policy domain, logged, mailed and reset every interval (see the header). */
export class TlsReport {
  readonly #m = new Map<string, Counts>();
  readonly #o: TlsReportOptions;
  readonly #now: () => number;
  #start: number;
  #timer: NodeJS.Timeout | null = null;

  constructor(o: TlsReportOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#start = this.#now();
  }

  start(): void {
    if (this.#o.intervalMs <= 0 || this.#timer) return;
    this.#start = this.#now();
    this.#timer = setInterval(() => void this.flush(), this.#o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  record(domain: string, sts: boolean, failure: TlsResultType | null, policy?: StsPolicy | null): void {
    const d = domain.toLowerCase();
    let c = this.#m.get(d);
    if (!c) {
      if (this.#m.size >= MAX_DOMAINS) return; // bounded; the next interval starts afresh
      this.#m.set(d, (c = { policy: sts ? 'sts' : 'no-policy-found', sts: null, success: 0, failure: 0, types: new Map() }));
    }
    if (sts) c.policy = 'sts';
    if (policy) c.sts = policy;
    if (failure === null) c.success++;
    else {
      c.failure++;
      c.types.set(failure, (c.types.get(failure) ?? 0) + 1);
    }
  }

  /** One `queue.tls-report` line (and report mail) per domain that publishes a TLSRPT record, then resets. */
  async flush(): Promise<void> {
    const all = [...this.#m];
    this.#m.clear();
    const start = this.#start;
    const end = (this.#start = this.#now());
    for (const [d, c] of all) {
      const rua = await this.#rua(d);
      if (rua === null) continue; // RFC 8460 §3: no record, no report
      const types = [...c.types].map(([t, n]) => `${t}:${n}`).join(',');
      this.#o.log.info('queue.tls-report', { domain: d, policy: c.policy, success: c.success, failure: c.failure, failure_types: types || undefined, rua });
      await this.#mail(d, c, rua, start, end);
    }
  }

  async #mail(d: string, c: Counts, rua: string, start: number, end: number): Promise<void> {
    const to = mailtoAddresses(rua);
    if (!this.#o.send || !this.#o.from || to.length === 0) return;
    const p = c.sts;
    const policyString = p ? ['version: STSv1', `mode: ${p.mode}`, ...p.mx.map((m) => `mx: ${m}`), `max_age: ${p.maxAge}`] : [];
    const { message, reportId } = composeTlsReport({
      submitter: this.#o.submitter ?? 'localhost',
      from: this.#o.from,
      to,
      start,
      end,
      policy: { domain: d, policyType: c.policy, policyString, mxHost: p?.mx ?? [], success: c.success, failure: c.failure, failureTypes: [...c.types] },
    });
    try {
      await this.#o.send(message, this.#o.from, to);
      this.#o.log.info('queue.tls-report-sent', { domain: d, to: to.join(','), report_id: reportId });
    } catch (err) {
      this.#o.log.warn('queue.tls-report-error', { domain: d, error: err instanceof Error ? err.message : String(err) });
    }
  }

  /** RFC 8460 §3: TXT `_smtp._tls.<domain>` `v=TLSRPTv1; rua=…`; null when none (or several). */
  async #rua(d: string): Promise<string | null> {
    let recs: string[][];
    try {
      recs = await this.#o.resolveTxt(`_smtp._tls.${d}`);
    } catch {
      return null;
    }
    const rpt = recs.map((r) => r.join('')).filter((r) => r.trimStart().startsWith('v=TLSRPTv1'));
    if (rpt.length !== 1) return null;
    for (const f of rpt[0]!.split(';')) {
      const eq = f.indexOf('=');
      if (eq > 0 && f.slice(0, eq).trim() === 'rua') return f.slice(eq + 1).trim() || null;
    }
    return null;
  }
}
