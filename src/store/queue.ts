// The outbound queue (issue 13): messages waiting for delivery to other hosts, one row per
// recipient. The store keeps the rows durable and hands out leases; the policy (when to retry,
// when to give up, bounces) lives in src/queue/. Implementations: sqlite/queue.ts, postgres/queue.ts.
//
// Rules every implementation keeps (tested by test/store/queue.test.ts):
// - enqueue takes a blob reference in the same transaction as the insert (and, given `data`, stores
//   the body there too: the body is never behind the rows that point to it); the reference goes
//   when the message leaves the queue, so orphan collection never removes a queued body.
// - A recipient is leased to at most one owner at a time (claim is atomic; PostgreSQL uses
//   FOR UPDATE SKIP LOCKED so several nodes never claim the same recipient).
// - settle only applies to recipients still leased by that owner.
// - Every mutation returns after its commit is durable.

import type { BlobRef } from './store.ts';

/** The largest body store.queue.enqueue takes as `data` (with the rows) instead of a staged blob. */
export const QUEUE_INLINE_BODY = 256 * 1024;

export type Notify = { never: true } | { never?: false; success: boolean; failure: boolean; delay: boolean };
export interface QueueRecipientInput { address: string; orcpt?: string | null; notify?: Notify | null }
export interface QueueMessageInput {
  blob: BlobRef;                 // already durable (stageBlob); the queue takes its own reference (refcount) in the same transaction
  /** Header fields sent in front of the blob's bytes (the DKIM-Signature fields, CRLF-terminated), kept in the
   *  queue row: committed with it, so a queued message is never sent without the signature made for it. */
  prefix?: string | null;
  /** Bytes at the start of the blob that are not sent (the Return-Path field the SMTP layer stored on top). */
  start?: number;
  /** The body itself, not staged (memoryBlob; at most QUEUE_INLINE_BODY bytes): stored in the same
   *  transaction as the rows, so the message is durable with one commit (SQLite: blobs.data; PostgreSQL:
   *  blobs.data as for every body). blob must be memoryBlob(data)'s id and size. */
  data?: Buffer | null;
  mailFrom: string;              // '' = null reverse-path <> (DSNs): never bounced
  envid?: string | null;         // RFC 3461 ENVID
  ret?: 'FULL' | 'HDRS' | null;  // RFC 3461 RET
  accountId?: number | null;     // submitting account (logs, limits), null for forwards/DSNs
  origin: 'submission' | 'forward' | 'dsn' | 'report';
  recipients: QueueRecipientInput[];   // 1..n, address as given (domain = part after the last @, lower-cased)
  now: number;                   // ms epoch; first attempt due at `now`
  expiresAt: number;             // ms epoch (now + outbound.expiry)
  /** Lease the recipients to `owner` until `until` in the same transaction, as a claim would (attempts 1,
   *  nextAttemptAt = until): the enqueuing process delivers them itself without a claim of its own. */
  lease?: { owner: string; until: number } | null;
}
export type RecipientState = 'queued' | 'sent' | 'failed' | 'expired';
export interface QueueRecipient {
  id: number; messageId: string; address: string; domain: string; orcpt: string | null; notify: Notify | null;
  state: RecipientState; attempts: number; nextAttemptAt: number; lastAttemptAt: number | null;
  lastReply: string | null; delayWarned: boolean;
}
export interface QueueMessage {
  id: string;                    // random, URL-safe, ~16 chars; also used in logs and the CLI
  blob: BlobRef; mailFrom: string; envid: string | null; ret: 'FULL' | 'HDRS' | null;
  /** What goes out: `prefix`, then the blob from byte `start`; `size` = its length in bytes. */
  prefix: string; start: number; size: number;
  accountId: number | null; origin: 'submission' | 'forward' | 'dsn' | 'report';
  createdAt: number; expiresAt: number; recipients: QueueRecipient[];
}
/** Due recipients of one message for one destination domain, leased to `owner` until `leaseUntil`. */
export interface QueueBatch { message: QueueMessage; domain: string; recipients: QueueRecipient[]; leaseUntil: number }
export type RecipientOutcome =
  | { recipientId: number; kind: 'sent'; reply: string }
  | { recipientId: number; kind: 'failed' | 'expired'; reply: string }            // final: no more attempts
  | { recipientId: number; kind: 'deferred'; reply: string; nextAttemptAt: number; delayWarned?: boolean };
export interface QueueStore {
  /** One transaction; returns after the commit is durable. */
  enqueue(m: QueueMessageInput): Promise<QueueMessage>;
  /** Leases due recipients (state 'queued', nextAttemptAt <= now, lease free or expired), grouped per
   *  (message, domain), at most `limit` batches; attempts += 1 at claim. PostgreSQL: FOR UPDATE SKIP LOCKED
   *  so two nodes never claim the same recipient. `domains` = skip batches for these (busy) destinations. */
  claim(o: { now: number; owner: string; leaseMs: number; limit: number; skipDomains?: string[] }): Promise<QueueBatch[]>;
  /** Applies outcomes for recipients leased by `owner` (others ignored; returns how many applied); frees the lease;
   *  'sent'/'failed'/'expired' are final. A message whose recipients are all final is removed (with its blob
   *  reference) — unless keepFinal is set in tests. One durable transaction. */
  settle(owner: string, outcomes: RecipientOutcome[], now: number): Promise<number>;
  get(id: string): Promise<QueueMessage | null>;
  list(o?: { limit?: number; afterId?: string }): Promise<QueueMessage[]>;   // oldest first
  /** Makes queued recipients of one message (or all) due now; returns recipients touched. */
  retry(id: string | null, now: number): Promise<number>;
  /** Deletes a message and its recipients (drops the blob reference); false if absent. */
  remove(id: string): Promise<boolean>;
  stats(now: number): Promise<{ messages: number; recipients: number; oldestCreatedAt: number | null; nextDueAt: number | null }>;
  /** When the earliest queued recipient is due (null: none): one index lookup, cheap at any queue size (stats() counts rows). */
  nextDue(): Promise<number | null>;
}
