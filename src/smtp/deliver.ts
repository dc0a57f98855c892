// End of DATA: one staged body to every recipient of the transaction (see the header of server.ts
// for the rules). Local accounts through store.deliver; other domains (submission) and forwards
// through the outbound queue (deps.outbound); local recipients whose mailbox cannot take the
// message get a DSN (RFC 3464) instead of failing the others. Everything is durable before the
// caller answers 250.

import { randomUUID } from 'node:crypto';
import type { Account, DeliveryResult, NewMessage, StagedBlob, Store } from '../store/store.ts';
import type { MessageMeta } from '../protocol/mime/types.ts';
import type { QueueRecipientInput } from '../store/queue.ts';
import { parseMessage } from '../protocol/mime/parser.ts';
import { composeDsn, headerBlock, type DsnRecipient } from '../protocol/smtp/dsn.ts';
import type { Srs } from '../protocol/smtp/srs.ts';
import { formatReturnPath } from '../protocol/smtp/trace.ts';
import type { Logger } from '../obs/log.ts';
import type { OutboundPort } from './outbound-port.ts';
import type { LocalTarget, Resolver } from './resolve.ts';
import type { RcptPlan } from './recipients.ts';
import type { SmtpKind } from './connection.ts';
import { SmtpError } from './connection.ts';
import { KeyedLocks } from './locks.ts';

/** Originals above this go back in a DSN as headers only (RET=HDRS), whatever RET asked. */
export const DSN_FULL_MAX = 10 * 1024 * 1024;

export interface Transaction {
  /** `<session>.<n>`, in logs and the 250 text. */
  id: string;
  session: string;
  kind: SmtpKind;
  ip: string;
  /** Envelope sender, '' for <>. */
  from: string;
  /** The authenticated submitter, if any. */
  account: Account | null;
  plans: RcptPlan[];
  envid: string | null;
  ret: 'FULL' | 'HDRS' | null;
  /** The inbound check says junk: local copies go to each account's \Junk mailbox. */
  junk: boolean;
  arrival: Date;
}

/** LMTP: one per RCPT, in order (RFC 2033 §4.2). */
export type RcptOutcome = { ok: true } | { ok: false; code: number; text: string };

export interface DeliveryReport {
  /** The 250 text. */
  text: string;
  perRcpt: RcptOutcome[];
}

interface AccountTarget {
  target: LocalTarget;
  /** Indexes into tx.plans of the RCPTs reaching this account. */
  rcpts: number[];
}

export interface DelivererDeps {
  store: Store;
  log: Logger;
  hostname: string;
  resolver: Resolver;
  srs: Srs;
  outbound?: OutboundPort;
}

export class Deliverer {
  readonly #d: DelivererDeps;
  readonly #locks = new KeyedLocks();

  constructor(d: DelivererDeps) {
    this.#d = d;
  }

  async deliver(blob: StagedBlob, meta: MessageMeta, tx: Transaction): Promise<DeliveryReport> {
    const accounts = this.#accounts(tx);
    // A body kept in memory for the queue (memoryBlob) must be a file before a mailbox takes it.
    if (blob.data && accounts.size > 0) {
      const staged = await this.#d.store.stageBlob(blob.data, { maxBytes: blob.data.length });
      try {
        return await this.deliver(staged, meta, tx);
      } finally {
        staged.release();
      }
    }
    const remote = collect(tx.plans, 'remote');
    const forward = collect(tx.plans, 'forward');
    if (accounts.size === 0 && remote.length === 0 && forward.length === 0) throw new SmtpError(554, '5.5.1 No valid recipients');
    const unlock = await this.#locks.acquire(accounts.keys());
    try {
      const { fit, full, temporary } = await this.#checkQuotas(accounts, blob.size);
      const lmtp = tx.kind === 'lmtp';
      const failedRcpts = new Set<number>();
      for (const a of full) for (const r of a.rcpts) failedRcpts.add(r);
      // LMTP: a RCPT is all or nothing (its own reply); SMTP: everyone who fits gets it.
      const deliverTo = lmtp ? fit.filter((a) => a.rcpts.some((r) => !failedRcpts.has(r))) : fit;
      if (!lmtp && full.length > 0) await this.#partialAllowed(tx, full, fit.length + remote.length + forward.length, blob.size, temporary);
      const queued = await this.#sendRemote(blob, tx, remote, forward);
      const refused = await this.#deliverLocal(blob, meta, tx, deliverTo);
      const failed = [...full, ...refused];
      for (const a of refused) for (const r of a.rcpts) failedRcpts.add(r);
      if (!lmtp && failed.length > 0) await this.#bounce(blob, tx, failed);
      this.#log(tx, meta, blob, deliverTo.filter((a) => !refused.includes(a)), queued, failed);
      const parts = [deliverTo.length > refused.length ? `delivered as ${tx.id}` : '', ...queued.map((q) => `queued as ${q}`)].filter(Boolean);
      return {
        text: `2.0.0 OK: ${parts.join(', ') || `accepted as ${tx.id}`}`,
        perRcpt: tx.plans.map((_, i) => (failedRcpts.has(i) ? this.#rcptFailure(blob.size, failed, i) : { ok: true })),
      };
    } finally {
      unlock();
    }
  }

  /** One target per account, the first RCPT's mailbox choice winning (adam and adam+work → one copy). */
  #accounts(tx: Transaction): Map<number, AccountTarget> {
    const m = new Map<number, AccountTarget>();
    tx.plans.forEach((p, i) => {
      for (const t of p.local) {
        const a = m.get(t.account.id);
        if (a) {
          if (!a.rcpts.includes(i)) a.rcpts.push(i);
        } else m.set(t.account.id, { target: t, rcpts: [i] });
      }
    });
    return m;
  }

  /** Every account checked again with the real size, under the lock (see the header of server.ts). */
  async #checkQuotas(accounts: Map<number, AccountTarget>, size: number) {
    const fit: AccountTarget[] = [];
    const full: AccountTarget[] = [];
    let temporary = false;
    for (const a of accounts.values()) {
      const acc = await this.#d.store.getAccountById(a.target.account.id);
      if (!acc) throw new SmtpError(451, '4.3.0 A recipient account disappeared; try again later');
      a.target = { ...a.target, account: acc };
      if (acc.quota > 0 && acc.usedBytes + size > acc.quota) {
        full.push(a);
        if (size <= acc.quota) temporary = true;
      } else fit.push(a);
    }
    return { fit, full, temporary };
  }

  /**
   * SMTP with mailboxes that cannot take the message: fine when someone else gets it and the sender
   * can be told (DSN into a local sender's INBOX or through the queue; a null sender or NOTIFY
   * without FAILURE asks for no DSN). Else the old answer for the whole message: 452 4.2.2 (552 5.2.2
   * if it can never fit), and the sending server retries or bounces itself.
   */
  async #partialAllowed(tx: Transaction, full: AccountTarget[], others: number, size: number, temporary: boolean): Promise<void> {
    if (others > 0) {
      const dsnWanted = tx.from !== '' && this.#dsnRecipients(tx, full, size).length > 0;
      if (!dsnWanted || tx.account || this.#d.outbound || (await this.#senderInboxes(tx)).length > 0) return;
    }
    const addresses = full.map((a) => a.target.account.address).join(', ');
    this.#d.log.info('smtp.quota', { session: tx.session, ip: tx.ip, accounts: addresses, size, code: temporary ? 452 : 552 });
    if (temporary) throw new SmtpError(452, `4.2.2 Mailbox full: ${addresses}`);
    throw new SmtpError(552, `5.2.2 Message is larger than the mailbox quota: ${addresses}`);
  }

  /** One queue entry for the remote recipients, one for the forwards (SRS sender); before any 250. */
  async #sendRemote(blob: StagedBlob, tx: Transaction, remote: QueueRecipientInput[], forward: QueueRecipientInput[]): Promise<string[]> {
    const out = this.#d.outbound;
    if (remote.length + forward.length === 0) return [];
    if (!out) throw new SmtpError(451, '4.3.2 delivery to other domains is not available yet; try again later');
    const ids: string[] = [];
    if (remote.length > 0) {
      const r = await out.send({ blob, mailFrom: tx.from, recipients: remote, accountId: tx.account?.id ?? null, origin: 'submission', envid: tx.envid, ret: tx.ret });
      ids.push(r.queueId);
    }
    if (forward.length > 0) {
      const mailFrom = tx.from === '' ? '' : this.#d.srs.forward(tx.from, this.#d.hostname);
      const r = await out.send({ blob, mailFrom, recipients: forward, accountId: null, origin: 'forward', envid: tx.envid, ret: tx.ret });
      ids.push(r.queueId);
    }
    return ids;
  }

  /** store.deliver into each account's mailbox (\Junk when so judged); returns the accounts the store refused (quota race). */
  async #deliverLocal(blob: StagedBlob, meta: MessageMeta, tx: Transaction, targets: AccountTarget[]): Promise<AccountTarget[]> {
    if (targets.length === 0) return [];
    const store = this.#d.store;
    const mailboxes: number[] = [];
    for (const a of targets) mailboxes.push(tx.junk ? await this.#junkMailbox(a.target) : a.target.mailboxId);
    let results: DeliveryResult[] = await store.deliver(blob, meta, mailboxes.map((mailboxId) => ({ mailboxId })), { origin: 'smtp' });
    // A plus-address folder deleted since RCPT: fall back to INBOX.
    const missing = results.filter((r) => !r.ok && r.reason === 'no-mailbox');
    if (missing.length) {
      const retry: NewMessage[] = [];
      for (const r of missing) {
        const a = targets[mailboxes.indexOf(r.mailboxId)];
        const inbox = a ? await store.getMailbox(a.target.account.id, 'INBOX') : null;
        if (inbox) retry.push({ mailboxId: inbox.id });
      }
      const kept = results.filter((r) => r.ok || r.reason !== 'no-mailbox');
      results = [...kept, ...(retry.length ? await store.deliver(blob, meta, retry, { origin: 'smtp' }) : [])];
    }
    const refusedIds = new Set(results.filter((r) => !r.ok && r.reason === 'quota').map((r) => r.accountId));
    if (refusedIds.size) this.#d.log.warn('smtp.delivery-partial', { session: tx.session, id: tx.id, refused: refusedIds.size });
    return targets.filter((a) => refusedIds.has(a.target.account.id));
  }

  async #junkMailbox(t: LocalTarget): Promise<number> {
    const store = this.#d.store;
    const all = await store.listMailboxes(t.account.id);
    const junk = all.find((m) => m.specialUse === '\\Junk');
    if (junk) return junk.id;
    try {
      return (await store.createMailbox(t.account.id, 'Junk', { specialUse: '\\Junk' })).id;
    } catch {
      return (await store.getMailbox(t.account.id, 'INBOX'))?.id ?? t.mailboxId;
    }
  }

  /** DSN recipients for the accounts that did not get the message (RFC 3461 §4.1: only where NOTIFY includes FAILURE, the default). */
  #dsnRecipients(tx: Transaction, failed: AccountTarget[], size: number): DsnRecipient[] {
    const out: DsnRecipient[] = [];
    for (const a of failed) {
      const wanted = a.rcpts.filter((i) => {
        const n = tx.plans[i]!.notify;
        return !n || (!n.never && n.failure);
      });
      if (wanted.length === 0) continue;
      const plan = tx.plans[wanted[0]!]!;
      const address = a.target.account.address;
      const original = plan.orcpt ?? (plan.address.toLowerCase() !== address ? `rfc822;${plan.address}` : null);
      // RFC 3463 §3.3: 5.2.2 mailbox full; 5.2.3 larger than the mailbox can ever take.
      const tooBig = a.target.account.quota > 0 && size > a.target.account.quota;
      out.push({
        finalRecipient: `rfc822;${address}`,
        originalRecipient: original,
        action: 'failed',
        status: tooBig ? '5.2.3' : '5.2.2',
        diagnostic: tooBig ? '552 5.2.3 message is larger than the mailbox quota' : '552 5.2.2 mailbox full',
        lastAttempt: new Date(),
      });
    }
    return out;
  }

  /** The DSN for local recipients that could not take the message, durable before the 250. Never to <>. */
  async #bounce(blob: StagedBlob, tx: Transaction, failed: AccountTarget[]): Promise<void> {
    const recipients = this.#dsnRecipients(tx, failed, blob.size);
    if (recipients.length === 0) return;
    if (tx.from === '') {
      this.#d.log.info('smtp.dsn-suppressed', { session: tx.session, id: tx.id, reason: 'null sender', recipients: recipients.length });
      return;
    }
    const store = this.#d.store;
    const ret = tx.ret === 'HDRS' || blob.size > DSN_FULL_MAX ? 'HDRS' : 'FULL';
    const original = ret === 'FULL' ? await store.readBlob(blob.id) : headerBlock(await store.readBlob(blob.id, 0, Math.min(blob.size, 256 * 1024)));
    const hostname = this.#d.hostname;
    const dsn = composeDsn({
      reportingMta: hostname,
      from: `MAILER-DAEMON@${hostname}`,
      to: tx.from,
      envid: tx.envid,
      arrivalDate: tx.arrival,
      recipients,
      original,
      ret,
      now: new Date(),
      messageId: `${randomUUID()}@${hostname}`,
    });
    const local = await this.#senderInboxes(tx);
    if (local.length > 0) {
      // RFC 5321 §4.4: the final delivery adds Return-Path; a DSN's reverse-path is null (RFC 3464 §2).
      const stored = Buffer.concat([Buffer.from(formatReturnPath(''), 'utf8'), dsn]);
      const staged = await store.stageBlob(stored);
      try {
        await store.deliver(staged, parseMessage(stored), local.map((mailboxId) => ({ mailboxId })), { origin: 'smtp' });
      } finally {
        staged.release();
      }
    } else if (this.#d.outbound) {
      await this.#d.outbound.deliverDsn(dsn, tx.from);
    }
    this.#d.log.info('smtp.dsn', { session: tx.session, id: tx.id, to: tx.from, recipients: recipients.map((r) => r.finalRecipient), local: local.length > 0 });
  }

  /** INBOX of the sender when the sender is ours: the submitter, else whoever the address resolves to. */
  async #senderInboxes(tx: Transaction): Promise<number[]> {
    const store = this.#d.store;
    const accounts: Account[] = [];
    if (tx.account) accounts.push(tx.account);
    else {
      const res = await this.#d.resolver.resolve(tx.from);
      if (res.kind === 'local') for (const t of res.targets.slice(0, 10)) accounts.push(t.account);
    }
    const out: number[] = [];
    for (const a of accounts) {
      const inbox = await store.getMailbox(a.id, 'INBOX');
      if (inbox) out.push(inbox.id);
    }
    return out;
  }

  #rcptFailure(size: number, failed: AccountTarget[], i: number): RcptOutcome {
    const a = failed.find((f) => f.rcpts.includes(i));
    const quota = a?.target.account.quota ?? 0;
    if (quota > 0 && size > quota) return { ok: false, code: 552, text: '5.2.2 Message is larger than the mailbox quota' };
    return { ok: false, code: 452, text: '4.2.2 Mailbox full' };
  }

  #log(tx: Transaction, meta: MessageMeta, blob: StagedBlob, delivered: AccountTarget[], queued: string[], failed: AccountTarget[]): void {
    this.#d.log.info('smtp.delivered', {
      session: tx.session,
      listener: tx.kind,
      ip: tx.ip,
      id: tx.id,
      msgid: meta.envelope.messageId ?? undefined,
      size: blob.size,
      from: tx.from || '<>',
      to: tx.plans.map((p) => p.address),
      mailboxes: delivered.map((a) => `${a.target.account.address}/${tx.junk ? 'Junk' : a.target.mailbox}`),
      queued: queued.length ? queued : undefined,
      failed: failed.length ? failed.map((a) => a.target.account.address) : undefined,
    });
  }
}

/** The remote or forward recipients of all RCPTs, each address once, with its DSN parameters. */
function collect(plans: RcptPlan[], which: 'remote' | 'forward'): QueueRecipientInput[] {
  const seen = new Set<string>();
  const out: QueueRecipientInput[] = [];
  for (const p of plans) {
    for (const address of p[which]) {
      const k = address.toLowerCase();
      if (seen.has(k)) continue;
      seen.add(k);
      // ORCPT/NOTIFY belong to the RCPT as given; for an alias's targets the NOTIFY carries over (RFC 3461 §6.2).
      out.push({ address, orcpt: which === 'remote' ? p.orcpt : p.orcpt ?? `rfc822;${p.address}`, notify: p.notify });
    }
  }
  return out;
}
