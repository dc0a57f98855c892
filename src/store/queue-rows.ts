// What both queue backends (sqlite/queue.ts, postgres/queue.ts) share: the limits, input checks,
// message ids and the row → object mapping. The contract itself is src/store/queue.ts.

import { randomBytes } from 'node:crypto';
import { StoreError, blobIdOf } from './store.ts';
import { QUEUE_INLINE_BODY, type Notify, type QueueMessage, type QueueMessageInput, type QueueRecipient, type RecipientOutcome, type RecipientState } from './queue.ts';

type Row = Record<string, any>;

export const QUEUE_LIMITS = {
  /** Recipients of one queued message (the SMTP sessions accept fewer per transaction). */
  recipientsPerMessage: 1000,
  /** RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients per transaction; a batch never has more. */
  recipientsPerBatch: 100,
  /** Batches per claim call. */
  batchesPerClaim: 200,
  /** Due recipients a claim looks at (oldest due first) to form its batches: bounds the work of one claim. */
  claimWindow: 2000,
  /** Outcomes per settle call. */
  outcomesPerSettle: 1000,
  /** Messages per list page (default 100). */
  listPage: 500,
  /** RFC 5321 §4.5.3.1.3: a path is at most 256 octets (with its angle brackets). */
  addressLength: 256,
  /** RFC 3461 §4.4: ENVID at most 100 characters. */
  envidLength: 100,
  /** RFC 3461 §4.2 ORCPT: bounded by the command line (RFC 5321 §4.5.3.1.4, 512 + extensions). */
  orcptLength: 1000,
  /** A body enqueued with its bytes (QueueMessageInput.data) is at most this big; bigger ones are staged as files. */
  inlineBody: QUEUE_INLINE_BODY,
  /** Header fields kept in front of a queued body (DKIM-Signature fields: a few hundred bytes per key). */
  prefixLength: 64 * 1024,
  /** A remote reply kept as lastReply is cut to this many characters. */
  replyLength: 2000,
  /** Rows counted per step by stats() on SQLite (rowid ranges, an event-loop turn between). */
  countStep: 5000,
  /** Recipients a retry of the whole queue makes due per transaction (SQLite: one short step each). */
  retryStep: 1000,
} as const;

/**
 * Random, 16 characters (96 bits) of letters and digits. base64url's '-' and '_' are mapped to
 * 'x' and 'z' (93 bits left): an ID starting with '-' was read as an option by
 * `pillarbox queue show ID`, and '_' is awkward to double-click-select in a terminal.
 */
export function newQueueId(): string {
  return randomBytes(12).toString('base64url').replaceAll('-', 'x').replaceAll('_', 'z');
}

export interface CheckedRecipient {
  address: string;
  domain: string;
  orcpt: string | null;
  notify: string | null;
}

function tooLong(what: string, v: string, max: number): void {
  if (v.length > max) throw new StoreError('limit', `${what} longer than ${max} characters`);
}

/** Validates an enqueue; returns the recipients as stored. */
export function checkInput(m: QueueMessageInput): CheckedRecipient[] {
  const n = m.recipients.length;
  if (n === 0) throw new StoreError('invalid', 'a queued message needs at least one recipient');
  if (n > QUEUE_LIMITS.recipientsPerMessage) throw new StoreError('limit', `more than ${QUEUE_LIMITS.recipientsPerMessage} recipients`);
  if (!['submission', 'forward', 'dsn', 'report'].includes(m.origin)) throw new StoreError('invalid', `bad origin ${String(m.origin)}`);
  if (m.ret != null && m.ret !== 'FULL' && m.ret !== 'HDRS') throw new StoreError('invalid', `bad RET ${String(m.ret)}`);
  if (!Number.isFinite(m.now) || !Number.isFinite(m.expiresAt)) throw new StoreError('invalid', 'now and expiresAt must be times');
  if (m.lease && (!Number.isFinite(m.lease.until) || m.lease.until <= m.now || !m.lease.owner)) throw new StoreError('invalid', 'a lease needs an owner and an end after now');
  tooLong('MAIL FROM address', m.mailFrom, QUEUE_LIMITS.addressLength);
  if (m.envid != null) tooLong('ENVID', m.envid, QUEUE_LIMITS.envidLength);
  if (m.prefix != null) {
    tooLong('prefix', m.prefix, QUEUE_LIMITS.prefixLength);
    // Whole header lines only (RFC 5322 §2.2): it is sent in front of the message's own fields.
    if (m.prefix !== '' && !m.prefix.endsWith('\r\n')) throw new StoreError('invalid', 'prefix must end with CRLF');
  }
  if (m.data) {
    if (m.data.length > QUEUE_LIMITS.inlineBody) throw new StoreError('limit', `a body given with the rows is at most ${QUEUE_LIMITS.inlineBody} bytes`);
    if (m.data.length !== m.blob.size || blobIdOf(m.data) !== m.blob.id) throw new StoreError('invalid', 'data does not match the blob reference');
  }
  const start = m.start ?? 0;
  if (!Number.isInteger(start) || start < 0 || start > m.blob.size) throw new StoreError('invalid', `start ${String(m.start)} is outside the body (${m.blob.size} bytes)`);
  return m.recipients.map((r) => {
    tooLong('recipient address', r.address, QUEUE_LIMITS.addressLength);
    if (r.orcpt != null) tooLong('ORCPT', r.orcpt, QUEUE_LIMITS.orcptLength);
    const at = r.address.lastIndexOf('@');
    const domain = at < 0 ? '' : r.address.slice(at + 1).toLowerCase();
    if (domain === '') throw new StoreError('invalid', `recipient ${r.address} has no domain`);
    return { address: r.address, domain, orcpt: r.orcpt ?? null, notify: r.notify ? JSON.stringify(r.notify) : null };
  });
}

/** Validates settle outcomes. */
export function checkOutcomes(outcomes: RecipientOutcome[]): void {
  if (outcomes.length > QUEUE_LIMITS.outcomesPerSettle) throw new StoreError('limit', `more than ${QUEUE_LIMITS.outcomesPerSettle} outcomes in one settle`);
  for (const o of outcomes) {
    if (!['sent', 'failed', 'expired', 'deferred'].includes(o.kind)) throw new StoreError('invalid', `bad outcome ${String((o as { kind: unknown }).kind)}`);
    if (o.kind === 'deferred' && !Number.isFinite(o.nextAttemptAt)) throw new StoreError('invalid', 'a deferred outcome needs nextAttemptAt');
  }
}

export const cutReply = (s: string): string => (s.length > QUEUE_LIMITS.replyLength ? s.slice(0, QUEUE_LIMITS.replyLength) : s);

/** The state a settled recipient ends in. */
export const settledState = (o: RecipientOutcome): RecipientState => (o.kind === 'deferred' ? 'queued' : o.kind);

export function clampInt(v: number | undefined, min: number, max: number, dflt: number): number {
  if (v === undefined || !Number.isFinite(v)) return dflt;
  return Math.min(max, Math.max(min, Math.trunc(v)));
}

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export function toRecipient(r: Row): QueueRecipient {
  return {
    id: num(r.id),
    messageId: r.message_id,
    address: r.address,
    domain: r.domain,
    orcpt: r.orcpt ?? null,
    notify: r.notify ? (JSON.parse(r.notify) as Notify) : null,
    state: r.state as RecipientState,
    attempts: num(r.attempts),
    nextAttemptAt: num(r.next_attempt_at),
    lastAttemptAt: numOrNull(r.last_attempt_at),
    lastReply: r.last_reply ?? null,
    delayWarned: r.delay_warned === true || r.delay_warned === 1,
  };
}

export function toMessage(r: Row, recipients: QueueRecipient[]): QueueMessage {
  const prefix: string = r.prefix ?? '';
  const start = num(r.body_start ?? 0);
  return {
    id: r.id,
    blob: { id: r.blob_id, size: num(r.size) },
    prefix,
    start,
    size: Buffer.byteLength(prefix, 'utf8') + num(r.size) - start,
    mailFrom: r.mail_from,
    envid: r.envid ?? null,
    ret: (r.ret ?? null) as QueueMessage['ret'],
    accountId: numOrNull(r.account_id),
    origin: r.origin as QueueMessage['origin'],
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
    recipients,
  };
}

/** Groups recipient rows by message id, keeping their order. */
export function byMessage(rows: Row[]): Map<string, QueueRecipient[]> {
  const m = new Map<string, QueueRecipient[]>();
  for (const r of rows) {
    const rc = toRecipient(r);
    const list = m.get(rc.messageId);
    if (list) list.push(rc);
    else m.set(rc.messageId, [rc]);
  }
  return m;
}

/** Meta of a blob row the queue created: valid JSON (PostgreSQL casts meta to json), filled in by the first delivery. */
export const QUEUE_ONLY_META = 'null';
