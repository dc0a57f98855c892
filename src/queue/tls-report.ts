// The RFC 8460 aggregate report of one policy domain for one period, as a message to its `rua`
// mailto: addresses: the JSON of §4.4, gzipped (§5.1), in a multipart/report with
// report-type="tlsrpt" and the TLS-Report-Domain / TLS-Report-Submitter header fields (§5.3).
// It is queued like any outgoing message (DKIM-signed when the From: domain has keys, §5.3).
// Only mailto: URIs are used; https: reporting (§5.4) is not done.

import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';

export const MAX_RUA = 5;

export interface TlsReportPolicy {
  domain: string;
  policyType: 'sts' | 'no-policy-found';
  /** The policy's lines (RFC 8460 §4.3 "policy-string"), and its mx patterns. */
  policyString: string[];
  mxHost: string[];
  success: number;
  failure: number;
  failureTypes: Array<[string, number]>;
}

/** RFC 8460 §3: the mailto: addresses of a `rua=` value (comma separated URIs), at most MAX_RUA. */
export function mailtoAddresses(rua: string): string[] {
  const out: string[] = [];
  for (const u of rua.split(',')) {
    const t = u.trim();
    if (!t.toLowerCase().startsWith('mailto:')) continue;
    let addr: string;
    try {
      addr = decodeURIComponent(t.slice(7));
    } catch {
      continue;
    }
    const q = addr.indexOf('?');
    if (q >= 0) addr = addr.slice(0, q);
    if (addr.includes('@') && !addr.includes('\r') && !addr.includes('\n') && addr.length <= 254) out.push(addr);
    if (out.length >= MAX_RUA) break;
  }
  return out;
}

/** The report JSON (RFC 8460 §4.4). */
export function reportJson(o: { submitter: string; contact: string; reportId: string; start: number; end: number; policy: TlsReportPolicy }): object {
  const p = o.policy;
  return {
    'organization-name': o.submitter,
    'date-range': { 'start-datetime': new Date(o.start).toISOString(), 'end-datetime': new Date(o.end).toISOString() },
    'contact-info': o.contact,
    'report-id': o.reportId,
    policies: [
      {
        policy: {
          'policy-type': p.policyType,
          ...(p.policyType === 'sts' && p.policyString.length ? { 'policy-string': p.policyString } : {}),
          'policy-domain': p.domain,
          ...(p.mxHost.length ? { 'mx-host': p.mxHost } : {}),
        },
        summary: { 'total-successful-session-count': p.success, 'total-failure-session-count': p.failure },
        ...(p.failureTypes.length ? { 'failure-details': p.failureTypes.map(([t, n]) => ({ 'result-type': t, 'failed-session-count': n })) } : {}),
      },
    ],
  };
}

/** The report message (RFC 8460 §5.3), CRLF line ends. */
export function composeTlsReport(o: { submitter: string; from: string; to: string[]; start: number; end: number; policy: TlsReportPolicy; now?: number }): { message: Buffer; reportId: string } {
  const unique = randomBytes(6).toString('hex');
  const reportId = `${Math.floor(o.start / 1000)}.${unique}@${o.submitter}`;
  const json = JSON.stringify(reportJson({ submitter: o.submitter, contact: o.from, reportId, start: o.start, end: o.end, policy: o.policy }));
  const gz = gzipSync(Buffer.from(json, 'utf8'));
  // §5.1: sender "!" policy-domain "!" begin-timestamp "!" end-timestamp "!" unique-id "." extension
  const filename = `${o.submitter}!${o.policy.domain}!${Math.floor(o.start / 1000)}!${Math.floor(o.end / 1000)}!${unique}.json.gz`;
  const boundary = `tlsrpt-${randomBytes(9).toString('hex')}`;
  const b64 = gz.toString('base64').replace(/.{76}/g, '$&\r\n'); // linear: fixed-width chunks
  const lines = [
    `From: <${o.from}>`,
    `To: ${o.to.map((a) => `<${a}>`).join(', ')}`,
    `Subject: Report Domain: ${o.policy.domain} Submitter: ${o.submitter} Report-ID: <${reportId}>`,
    `Date: ${new Date(o.now ?? Date.now()).toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <tlsrpt.${unique}@${o.submitter}>`,
    `TLS-Report-Domain: ${o.policy.domain}`,
    `TLS-Report-Submitter: ${o.submitter}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    `This is an aggregate TLS report (RFC 8460) from ${o.submitter} for ${o.policy.domain}:`,
    `${o.policy.success} successful and ${o.policy.failure} failed sessions.`,
    '',
    `--${boundary}`,
    'Content-Type: application/tlsrpt+gzip',
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${filename}"`,
    '',
    b64.endsWith('\r\n') ? b64.slice(0, -2) : b64,
    `--${boundary}--`,
    '',
  ];
  return { message: Buffer.from(lines.join('\r\n'), 'utf8'), reportId };
}
