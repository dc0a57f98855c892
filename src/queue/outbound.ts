// Outbound: what the SMTP sessions hand outside mail to (the OutboundPort of
// src/smtp/outbound-port.ts, OUTBOUND-SPEC.md), and where the engine's DSNs go.
//
// send(): DKIM signature (see signHook) kept in the queue row in front of the received blob → one
// durable store.queue.enqueue → the engine is told at once. Resolves after the commit, so the caller's 250
// follows a durable queue entry (RFC 5321 §6.1).
// deliverDsn(): a DSN to an address hosted here goes straight into INBOX of every account that
// address resolves to (alias, plus-address, catch-all: the same resolution as SMTP RCPT), with
// `Return-Path: <>`; to anyone else it is queued with the null reverse-path (never bounced again).

import type { Logger } from '../obs/log.ts';
import type { Store, BlobRef, NewMessage } from '../store/store.ts';
import type { QueueMessage, QueueRecipientInput } from '../store/queue.ts';
import type { Handoff } from './engine.ts';
import { Resolver } from '../smtp/resolve.ts';
import { createMetaSink } from '../smtp/meta.ts';
import { formatReturnPath } from '../protocol/smtp/trace.ts';
import type { OutboundPort } from '../smtp/outbound-port.ts';
import { expiresAt, type RetryPolicy } from './policy.ts';

export interface SendRequest {
  /** data: the body in memory (memoryBlob, not staged): enqueued with the rows (QueueMessageInput.data). */
  blob: BlobRef & { data?: Buffer };
  mailFrom: string;
  recipients: QueueRecipientInput[];
  accountId: number | null;
  origin: 'submission' | 'forward' | 'report';
  envid?: string | null;
  ret?: 'FULL' | 'HDRS' | null;
}

/**
 * DKIM: returns the DKIM-Signature header field(s) to prepend to this message, or null (no key for
 * the From: domain). src/queue/wiring.ts makes it from src/mailauth/dkim.ts and store.dkimKeys.
 */
export type SignHook = (message: Buffer, o: { mailFrom: string }) => Promise<string | null>;

export interface OutboundOptions {
  store: Store;
  log: Logger;
  hostname: string;
  postmaster?: string | null;
  policy: RetryPolicy;
  maxMessageSize: number;
  sign?: SignHook | null;
}

/**
 * RFC 5321 §4.4: Return-Path is added at final delivery; a message being relayed SHOULD NOT carry
 * one. The SMTP layer stores one on top of every message; the queue skips it when sending. Returns
 * where the message proper starts (0: no Return-Path on top).
 */
export function returnPathEnd(m: Buffer): number {
  if (m.subarray(0, 12).toString('latin1').toLowerCase() !== 'return-path:') return 0;
  let i = 0;
  // The field and its folded continuation lines (a line starting with SP/HTAB continues it).
  for (;;) {
    const nl = m.indexOf(0x0a, i);
    if (nl < 0) return 0;
    i = nl + 1;
    if (m[i] !== 0x20 && m[i] !== 0x09) return i;
  }
}

/** Bytes read to find the Return-Path when the message is not signed (ours is one short line). */
const RETURN_PATH_READ = 4096;

/** What Outbound needs of the engine (QueueEngine). */
export interface QueueFeed {
  readonly owner: string;
  notify(): void;
  reserve(domains: string[]): Handoff | null;
  /** body: the message's bytes as they go out (prefix + blob from start), when the sender has them in memory. */
  take(h: Handoff, m: QueueMessage, body?: Buffer): void;
  cancel(h: Handoff): void;
}

const domainOf = (address: string): string => address.slice(address.lastIndexOf('@') + 1).toLowerCase();

export class Outbound implements OutboundPort {
  readonly #o: OutboundOptions;
  readonly #resolver: Resolver;
  #feed: QueueFeed | null = null;

  constructor(o: OutboundOptions) {
    this.#o = o;
    this.#resolver = new Resolver(o.store, { hostname: o.hostname, postmaster: o.postmaster ?? null });
  }

  /** The engine: woken after each enqueue, or handed the message directly (see QueueFeed). */
  attach(feed: QueueFeed): void {
    this.#feed = feed;
  }

  #notify(): void {
    this.#feed?.notify();
  }

  async send(o: SendRequest): Promise<{ queueId: string }> {
    const { store } = this.#o;
    // The received blob is queued as it is: the signature goes in the queue row (prefix, sent in
    // front, RFC 6376 §5.6) and the Return-Path is skipped (start). One body per message (a small one
    // held in memory goes into the queue's own commit: blob.data), and the signature commits with
    // the queue entry, so it can never go out unsigned.
    const sign = this.#o.sign;
    const data = o.blob.data ?? null;
    const head = data ?? (await store.readBlob(o.blob.id, 0, sign ? o.blob.size : Math.min(o.blob.size, RETURN_PATH_READ)));
    const start = returnPathEnd(head);
    const prefix = sign ? await sign(head.subarray(start), { mailFrom: o.mailFrom }) : null;
    const now = Date.now();
    // Room in the engine: enqueued already leased to it, and handed over without a claim.
    const slot = this.#feed?.reserve(o.recipients.map((r) => domainOf(r.address))) ?? null;
    let m: QueueMessage;
    try {
      m = await store.queue.enqueue({
        blob: { id: o.blob.id, size: o.blob.size },
        data,
        prefix,
        start,
        lease: slot ? { owner: this.#feed!.owner, until: slot.leaseUntil } : null,
        mailFrom: o.mailFrom,
        envid: o.envid ?? null,
        ret: o.ret ?? null,
        accountId: o.accountId,
        origin: o.origin,
        recipients: o.recipients,
        now,
        expiresAt: expiresAt(now, this.#o.policy),
      });
    } catch (err) {
      if (slot) this.#feed!.cancel(slot);
      throw err;
    }
    this.#o.log.info('queue.enqueued', { id: m.id, from: o.mailFrom || '<>', rcpts: o.recipients.length, size: m.size, origin: o.origin, signed: !!prefix });
    // A body in memory goes along (the engine need not read back what it was just handed).
    if (slot) this.#feed!.take(slot, m, data ? (prefix ? Buffer.concat([Buffer.from(prefix, 'utf8'), data.subarray(start)]) : data.subarray(start)) : undefined);
    else this.#notify();
    return { queueId: m.id };
  }

  async deliverDsn(dsn: Buffer, to: string): Promise<void> {
    if (to === '') throw new Error('deliverDsn: never to the null reverse-path');
    const res = await this.#resolver.resolve(to);
    if (res.kind === 'not-hosted') return this.#queueDsn(dsn, [to]);
    if (res.kind === 'unknown') {
      this.#o.log.warn('queue.dsn-dropped', { to, reason: 'no such local address' });
      return;
    }
    const { store } = this.#o;
    const body = Buffer.concat([Buffer.from(formatReturnPath(''), 'utf8'), dsn]);
    const targets: NewMessage[] = [];
    const seen = new Set<number>();
    for (const t of res.targets) {
      if (seen.has(t.account.id)) continue;
      seen.add(t.account.id);
      const inbox = await store.getMailbox(t.account.id, 'INBOX');
      if (inbox) targets.push({ mailboxId: inbox.id });
    }
    if (targets.length) {
      const meta = createMetaSink();
      meta.write(body);
      const blob = await store.stageBlob(body, { maxBytes: body.length });
      try {
        const results = await store.deliver(blob, meta.end(), targets, { origin: 'queue' });
        const failed = results.filter((r) => !r.ok).length;
        // A DSN is small; a mailbox too full even for it keeps its owner from ever hearing: log it.
        if (failed) this.#o.log.warn('queue.dsn-not-stored', { to, failed, reason: 'mailbox full' });
      } finally {
        blob.release();
      }
    }
    if (res.external.length) await this.#queueDsn(dsn, res.external);
  }

  async #queueDsn(dsn: Buffer, to: string[]): Promise<void> {
    const { store } = this.#o;
    const blob = await store.stageBlob(dsn, { maxBytes: dsn.length });
    try {
      const now = Date.now();
      const m = await store.queue.enqueue({
        blob: { id: blob.id, size: blob.size },
        mailFrom: '',
        accountId: null,
        origin: 'dsn',
        recipients: to.map((address) => ({ address })),
        now,
        expiresAt: expiresAt(now, this.#o.policy),
      });
      this.#o.log.info('queue.enqueued', { id: m.id, from: '<>', rcpts: to.length, size: blob.size, origin: 'dsn' });
      this.#notify();
    } finally {
      blob.release();
    }
  }
}
