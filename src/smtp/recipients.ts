// RCPT TO policy: where one recipient goes, or why it is refused. Shared by the MX, submission and
// LMTP (src/lmtp/server.ts).
//
// - Our domains: resolve.ts (accounts, aliases, +tags, catch-all, postmaster). Unknown: 550 5.1.1.
//   Quota at RCPT: a mailbox already full gets 452 4.2.2, a declared SIZE above the quota 552 5.2.2.
// - Other domains: submission (authenticated) with an outbound queue → queued; without one 451;
//   unauthenticated (MX, LMTP) → relay denied (554 5.7.1 / LMTP 550 5.1.2).
// - Alias targets in other domains: forwarded (SRS sender) when there is an outbound queue; without
//   one the whole recipient gets 451, so none of its targets is served half.
// - SRS0=…/SRS1=…@<hostname> (src/protocol/smtp/srs.ts): reversed; a local original sender gets the
//   mail in their INBOX, a remote one through the queue (as a forward). A bad hash or an expired
//   address: 550 5.7.1.

import type { Notify } from '../store/queue.ts';
import { splitAddress } from '../protocol/smtp/address.ts';
import { isSrsLocal, type Srs } from '../protocol/smtp/srs.ts';
import type { LocalTarget, Resolution, Resolver } from './resolve.ts';
import type { SmtpKind } from './connection.ts';

/** Where one accepted RCPT goes. */
export interface RcptPlan {
  /** The RCPT address (the domainless postmaster: the address it resolved as). */
  address: string;
  local: LocalTarget[];
  /** Other domains, sent with the envelope sender as given (submission). */
  remote: string[];
  /** Other domains reached by forwarding (alias targets, reversed SRS): sent with an SRS sender. */
  forward: string[];
  /** RFC 3461 NOTIFY and ORCPT (xtext-decoded) of the RCPT. */
  notify: Notify | null;
  orcpt: string | null;
}

export class Refusal extends Error {
  readonly code: number;
  readonly reason: string;
  readonly rcpt: string;
  constructor(code: number, text: string, reason: string, rcpt: string) {
    super(text);
    this.code = code;
    this.reason = reason;
    this.rcpt = rcpt;
  }
}

export interface RcptContext {
  kind: SmtpKind;
  authenticated: boolean;
  /** SIZE= of MAIL FROM (RFC 1870), 0 if not given. */
  declaredSize: number;
  /** An outbound queue exists (deps.outbound). */
  outbound: boolean;
  notify: Notify | null;
  orcpt: string | null;
}

export class RecipientPolicy {
  readonly #resolver: Resolver;
  readonly #srs: Srs;
  readonly #hostname: string;

  constructor(resolver: Resolver, srs: Srs, hostname: string) {
    this.#resolver = resolver;
    this.#srs = srs;
    this.#hostname = hostname.toLowerCase();
  }

  /** The plan for one RCPT, or a Refusal thrown. */
  async accept(address: string, ctx: RcptContext): Promise<RcptPlan> {
    const plan = (rcpt: string, local: LocalTarget[], remote: string[], forward: string[]): RcptPlan => ({
      address: rcpt,
      local,
      remote,
      forward,
      notify: ctx.notify,
      orcpt: ctx.orcpt,
    });
    const parts = splitAddress(address);
    if (parts && parts.domain.toLowerCase() === this.#hostname && isSrsLocal(parts.local)) return this.#srsPlan(address, ctx, plan);

    let rcpt = address;
    let res: Resolution;
    if (rcpt.toLowerCase() === 'postmaster') {
      // RFC 5321 §4.1.1.3 / §4.5.1: the domainless "postmaster" must be accepted (resolve.ts).
      ({ res, address: rcpt } = await this.#resolver.postmaster());
    } else {
      res = await this.#resolver.resolve(rcpt);
    }
    if (res.kind === 'not-hosted') {
      if (ctx.kind === 'lmtp') throw new Refusal(550, `5.1.2 <${rcpt}>: not a domain of this server`, 'not-hosted', rcpt);
      if (!ctx.authenticated) throw new Refusal(554, `5.7.1 <${rcpt}>: Relay access denied`, 'relay-denied', rcpt);
      if (!ctx.outbound) {
        throw new Refusal(451, `4.3.2 <${rcpt}>: delivery to other domains is not available yet; try again later`, 'no-outbound', rcpt);
      }
      return plan(rcpt, [], [rcpt], []);
    }
    if (res.kind === 'unknown') throw new Refusal(550, `5.1.1 <${rcpt}>: no such user here`, 'unknown-user', rcpt);
    if (res.external.length > 0 && !ctx.outbound) {
      throw new Refusal(451, `4.3.2 <${rcpt}>: forwards to other domains, which is not available yet; try again later`, 'external-forward', rcpt);
    }
    this.#checkQuota(rcpt, res.targets, ctx.declaredSize);
    return plan(rcpt, res.targets, [], res.external);
  }

  /** RCPT-time quota: only a mailbox already full (or a declared SIZE that can never fit) is refused. */
  #checkQuota(rcpt: string, targets: LocalTarget[], declaredSize: number): void {
    for (const t of targets) {
      const q = t.account.quota;
      if (q <= 0) continue;
      if (declaredSize > q) throw new Refusal(552, `5.2.2 <${rcpt}>: message is larger than the mailbox quota`, 'over-quota', rcpt);
      if (t.account.usedBytes >= q || t.account.usedBytes + declaredSize > q) throw new Refusal(452, `4.2.2 <${rcpt}>: mailbox full`, 'over-quota', rcpt);
    }
  }

  async #srsPlan(address: string, ctx: RcptContext, plan: (r: string, l: LocalTarget[], rm: string[], f: string[]) => RcptPlan): Promise<RcptPlan> {
    const back = this.#srs.reverse(address);
    if (!back.ok) throw new Refusal(550, `5.7.1 <${address}>: not a valid return address of this server (${back.reason})`, `srs-${back.reason}`, address);
    const res = await this.#resolver.resolve(back.address);
    if (res.kind === 'local') {
      // Only the original sender's mailboxes: a bounce is never forwarded on from here.
      this.#checkQuota(address, res.targets, ctx.declaredSize);
      return plan(address, res.targets, [], []);
    }
    if (res.kind === 'unknown') throw new Refusal(550, `5.1.1 <${address}>: the original sender no longer exists`, 'srs-unknown', address);
    if (!ctx.outbound) throw new Refusal(451, `4.3.2 <${address}>: delivery to other domains is not available yet; try again later`, 'no-outbound', address);
    return plan(address, [], [], [back.address]);
  }
}

/** RFC 3461 §4.1 NOTIFY values (upper case, as smtp-server gives them) → the queue's Notify. */
export function parseNotify(values: string[] | undefined): Notify | null {
  if (!values || values.length === 0) return null;
  if (values.includes('NEVER')) return { never: true };
  return { success: values.includes('SUCCESS'), failure: values.includes('FAILURE'), delay: values.includes('DELAY') };
}

/** RFC 3461 §4: xtext ("+" HEXCHAR HEXCHAR for the escaped octets) decoded; octets read as UTF-8. */
export function decodeXtext(s: string): string {
  const bytes: number[] = [];
  const hex = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 43 && i + 2 < s.length && hex(s.charCodeAt(i + 1)) && hex(s.charCodeAt(i + 2))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(...Buffer.from(s[i]!, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}
