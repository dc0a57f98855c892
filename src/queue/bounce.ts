// Bounces and delay warnings (RFC 3464 DSNs, composed by src/protocol/smtp/dsn.ts) for queued
// messages, honouring what the sender asked for at submission (RFC 3461):
//
// - Never to the null reverse-path: a message with MAIL FROM:<> (a DSN itself) is never bounced
//   (RFC 5321 §4.5.5, RFC 3461 §6.2); its failures are only logged.
// - NOTIFY (§4.1): NEVER → nothing; a list → only the events named; absent → failures and delays
//   (the "FAILURE,DELAY" default the RFC allows).
// - RET (§4.3): HDRS → the header block; FULL → the whole message; absent → the whole message up to
//   FULL_LIMIT bytes, else the header block. Delay warnings always carry the headers only.
// - ENVID (§4.4) and ORCPT (§4.2) are echoed as Original-Envelope-Id and Original-Recipient.
// - One DSN per (message, kind): all recipients that failed in one attempt share it.
//
// Ordering: the engine calls this before the settle that may remove the message, so a crash in
// between never loses a bounce; it may send the same bounce twice (the retry after the crash
// fails again and bounces again). RFC 3461 §6.2 accepts duplicates over losses.

import { randomBytes } from 'node:crypto';
import { composeDsn, headerBlock, type DsnAction, type DsnRecipient } from '../protocol/smtp/dsn.ts';
import type { Notify, QueueMessage, QueueRecipient } from '../store/queue.ts';
import { outgoingBytes } from './message.ts';

/** Without RET, messages up to this size come back whole. */
export const FULL_LIMIT = 256 * 1024;
/** Bytes read to find the header block for RET=HDRS (the MIME parser's header cap). */
const HEADER_READ = 256 * 1024;

export interface BounceItem {
  recipient: QueueRecipient;
  action: Extract<DsnAction, 'failed' | 'delayed'>;
  status: string;
  reply: string;
  remoteMta: string | null;
}

export interface BounceDeps {
  hostname: string;
  readBlob(blobId: string, start?: number, end?: number): Promise<Buffer>;
  deliverDsn(dsn: Buffer, to: string): Promise<void>;
  now(): number;
}

/** Does this recipient's NOTIFY ask for a report of this kind? */
export function wants(n: Notify | null, action: 'failed' | 'delayed'): boolean {
  if (!n) return true;
  if (n.never) return false;
  return action === 'failed' ? n.failure : n.delay;
}

/** Which of `items` get reported (null sender: none). */
export function reportable(m: QueueMessage, items: BounceItem[]): BounceItem[] {
  if (m.mailFrom === '') return [];
  return items.filter((i) => wants(i.recipient.notify, i.action));
}

/**
 * Builds and hands over the DSN for `items` (all of one action). Returns false when nothing was
 * to be sent. Throws if delivering it failed (the caller then doesn't settle; the attempt runs again).
 */
export async function sendDsn(m: QueueMessage, items: BounceItem[], d: BounceDeps, willRetryUntil: number | null = null): Promise<boolean> {
  const list = reportable(m, items);
  if (list.length === 0) return false;
  const delayed = list.every((i) => i.action === 'delayed');
  const ret: 'FULL' | 'HDRS' = delayed ? 'HDRS' : (m.ret ?? (m.size <= FULL_LIMIT ? 'FULL' : 'HDRS'));
  const original = ret === 'FULL' ? await outgoingBytes(m, d.readBlob) : headerBlock(await outgoingBytes(m, d.readBlob, HEADER_READ));
  const now = new Date(d.now());
  const recipients: DsnRecipient[] = list.map((i) => ({
    finalRecipient: `rfc822;${i.recipient.address}`,
    originalRecipient: i.recipient.orcpt,
    action: i.action,
    status: i.status,
    remoteMta: i.remoteMta ? `dns;${i.remoteMta}` : null,
    diagnostic: i.reply,
    lastAttempt: i.recipient.lastAttemptAt ? new Date(i.recipient.lastAttemptAt) : now,
    willRetryUntil: i.action === 'delayed' && willRetryUntil ? new Date(willRetryUntil) : null,
  }));
  const dsn = composeDsn({
    reportingMta: d.hostname,
    from: `MAILER-DAEMON@${d.hostname}`,
    to: m.mailFrom,
    envid: m.envid,
    arrivalDate: new Date(m.createdAt),
    recipients,
    original,
    ret,
    now,
    messageId: `${randomBytes(9).toString('base64url')}.dsn.${m.id}@${d.hostname}`,
  });
  await d.deliverDsn(dsn, m.mailFrom);
  return true;
}
