// QueueStore on SQLite (tables queue_messages, queue_recipients: migration 7). Each mutation is one
// IMMEDIATE transaction through the store's write paths (changes.ts: enqueue/claim/settle in the
// group commit, answered once an fdatasync made them durable; the admin commands FULL; blob files
// whose last reference went are removed after the commit); the reads pass the store's read gate. IMMEDIATE transactions also
// serialise this process against the admin CLI, so a claim is atomic and two claimers never lease
// the same recipient. Every call touches a bounded number of rows (QUEUE_LIMITS), so none holds the
// event loop for long; retrying the whole queue runs in steps.

import type { Query, Tx } from './writes.ts';
import { StoreError } from '../store.ts';
import type { QueueBatch, QueueMessage, QueueMessageInput, QueueStore, RecipientOutcome } from '../queue.ts';
import {
  QUEUE_LIMITS,
  QUEUE_ONLY_META,
  byMessage,
  checkInput,
  checkOutcomes,
  clampInt,
  cutReply,
  newQueueId,
  settledState,
  toMessage,
  toRecipient,
} from '../queue-rows.ts';

type Row = Record<string, any>;

export interface SqliteQueueDeps {
  /** The store's prepared-statement cache. */
  q: Query;
  /** One IMMEDIATE transaction; blobs in tx.deadBlobs are removed after the commit. */
  write<T>(fn: (tx: Tx) => T): T;
  /** The store's group commit: fn in its own savepoint of a transaction shared with the writes queued
   *  in the same event-loop turn (one fsync for all), resolved after that commit. Absent: write(). */
  batched?<T>(fn: (tx: Tx) => T): Promise<T>;
  /** Drops n references of a blob (row and file go at 0). */
  unrefBlob(tx: Tx, blobId: string, n: number): void;
  /** Whether the body's file is there (a staged or stored blob). */
  hasBlobFile(blobId: string): boolean;
  /** With peers: no blobs row names the body and its file is gone (peers.ts). */
  fileGone?: (blobId: string) => boolean;
  /** Keep messages whose recipients are all final (tests look at the final states). */
  keepFinal?: boolean;
  /** The store's read gate (changes.ts): fn once no commit waits for its fdatasync. Absent: at once. */
  read?<T>(fn: () => Promise<T>): Promise<T>;
  /** Null, or what a read resuming after an event-loop turn waits for (the same gate). */
  settled?(): Promise<void> | null;
}

const yieldTurn = () => new Promise<void>((r) => setImmediate(r));

export class SqliteQueue implements QueueStore {
  readonly #d: SqliteQueueDeps;
  constructor(deps: SqliteQueueDeps) {
    this.#d = deps;
  }

  #q(sql: string) {
    return this.#d.q(sql);
  }

  #read<T>(fn: () => Promise<T>): Promise<T> {
    return this.#d.read ? this.#d.read(fn) : fn();
  }

  /** enqueue/claim/settle come from many sessions and deliveries at once: group commit (one fsync per turn). */
  #batched<T>(fn: (tx: Tx) => T): Promise<T> {
    return this.#d.batched ? this.#d.batched(fn) : Promise.resolve(this.#d.write(fn));
  }

  async enqueue(m: QueueMessageInput): Promise<QueueMessage> {
    const rcpts = checkInput(m);
    // The caller holds the staging pin (or a stored message holds a reference): the file stays.
    // A body given as data goes into the blob row itself (kept only if the row is new).
    const data = m.data ?? null;
    if (!data && !this.#d.hasBlobFile(m.blob.id)) throw new StoreError('not-found', `blob ${m.blob.id} is neither staged nor stored`);
    const id = newQueueId();
    return this.#batched(() => {
      // With peers, another worker may have swept a file no row named (peers.ts): checked under the lock.
      if (!data && this.#d.fileGone?.(m.blob.id)) throw new StoreError('not-found', `blob ${m.blob.id} was removed meanwhile`);
      // The body's reference, in the same transaction as the rows (the file is durable: staged).
      this.#q(`INSERT INTO blobs (id, size, refcount, meta, data) VALUES (?, ?, 1, '${QUEUE_ONLY_META}', ?) ON CONFLICT (id) DO UPDATE SET refcount = refcount + 1`).run(
        m.blob.id,
        m.blob.size,
        data,
      );
      this.#q(
        'INSERT INTO queue_messages (id, blob_id, size, mail_from, envid, ret, account_id, origin, created_at, expires_at, prefix, body_start) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(id, m.blob.id, m.blob.size, m.mailFrom, m.envid ?? null, m.ret ?? null, m.accountId ?? null, m.origin, m.now, m.expiresAt, m.prefix ?? '', m.start ?? 0);
      const ins = this.#q(
        'INSERT INTO queue_recipients (message_id, address, domain, orcpt, notify, next_attempt_at, lease_owner, lease_until, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      );
      const lease = m.lease ?? null;
      // The message as get() would read it back, made from the rows just written (their defaults
      // included: state 'queued', no attempt or reply yet) instead of two more queries per message.
      const row = { id, blob_id: m.blob.id, size: m.blob.size, mail_from: m.mailFrom, envid: m.envid ?? null, ret: m.ret ?? null, account_id: m.accountId ?? null, origin: m.origin, created_at: m.now, expires_at: m.expiresAt, prefix: m.prefix ?? '', body_start: m.start ?? 0 };
      const recipients = rcpts.map((r) => {
        const next = lease ? lease.until : m.now;
        const rid = ins.run(id, r.address, r.domain, r.orcpt, r.notify, next, lease?.owner ?? null, lease?.until ?? null, lease ? 1 : 0).lastInsertRowid;
        return toRecipient({ id: rid, message_id: id, address: r.address, domain: r.domain, orcpt: r.orcpt, notify: r.notify, state: 'queued', attempts: lease ? 1 : 0, next_attempt_at: next, last_attempt_at: null, last_reply: null, delay_warned: 0 });
      });
      return toMessage(row, recipients);
    });
  }

  async claim(o: { now: number; owner: string; leaseMs: number; limit: number; skipDomains?: string[] }): Promise<QueueBatch[]> {
    const limit = clampInt(o.limit, 0, QUEUE_LIMITS.batchesPerClaim, 1);
    if (limit === 0) return [];
    const leaseUntil = o.now + Math.max(1, o.leaseMs);
    const skip = JSON.stringify([...new Set((o.skipDomains ?? []).map((d) => d.toLowerCase()))]);
    return this.#batched(() => {
      // The oldest due recipients (a bounded window of queue_recipients_due), grouped per (message, domain).
      const groups = this.#q(
        `SELECT message_id, domain FROM (
           SELECT id, message_id, domain, next_attempt_at FROM queue_recipients
           WHERE state = 'queued' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ${QUEUE_LIMITS.claimWindow})
         WHERE domain NOT IN (SELECT value FROM json_each(?))
         GROUP BY message_id, domain ORDER BY min(next_attempt_at), min(id) LIMIT CAST(? AS INTEGER)`,
      ).all(o.now, skip, limit) as Row[];
      // INDEXED BY: without ANALYZE statistics SQLite would walk queue_recipients_due (every due row) instead.
      const due = this.#q(
        `SELECT id FROM queue_recipients INDEXED BY queue_recipients_message WHERE message_id = ? AND domain = ? AND state = 'queued' AND next_attempt_at <= ?
         AND (lease_until IS NULL OR lease_until <= ?) ORDER BY id LIMIT ${QUEUE_LIMITS.recipientsPerBatch}`,
      ).pluck();
      const lease = this.#q('UPDATE queue_recipients SET lease_owner = ?, lease_until = ?, next_attempt_at = ?, attempts = attempts + 1 WHERE id = ?');
      const leased: Array<{ messageId: string; domain: string; ids: Set<number> }> = [];
      for (const g of groups) {
        const ids = due.all(g.message_id, g.domain, o.now, o.now) as number[];
        for (const rid of ids) lease.run(o.owner, leaseUntil, leaseUntil, rid);
        if (ids.length) leased.push({ messageId: g.message_id, domain: g.domain, ids: new Set(ids) });
      }
      const messages = this.#load([...new Set(leased.map((l) => l.messageId))]);
      return leased.flatMap((l) => {
        const message = messages.get(l.messageId);
        if (!message) return [];
        return [{ message, domain: l.domain, recipients: message.recipients.filter((r) => l.ids.has(r.id)), leaseUntil }];
      });
    });
  }

  async settle(owner: string, outcomes: RecipientOutcome[], now: number): Promise<number> {
    checkOutcomes(outcomes);
    if (outcomes.length === 0) return 0;
    return this.#batched((tx) => {
      const upd = this.#q(
        `UPDATE queue_recipients SET state = ?, next_attempt_at = ?, last_attempt_at = ?, last_reply = ?, delay_warned = delay_warned | ?,
           lease_owner = NULL, lease_until = NULL
         WHERE id = ? AND lease_owner = ? AND state = 'queued' RETURNING message_id`,
      ).pluck();
      let applied = 0;
      const touched = new Set<string>();
      for (const oc of outcomes) {
        const next = oc.kind === 'deferred' ? oc.nextAttemptAt : now;
        const warned = oc.kind === 'deferred' && oc.delayWarned ? 1 : 0;
        const mid = upd.get(settledState(oc), next, now, cutReply(oc.reply), warned, oc.recipientId, owner) as string | undefined;
        if (mid === undefined) continue;
        applied++;
        touched.add(mid);
      }
      if (!this.#d.keepFinal) {
        const open = this.#q("SELECT 1 FROM queue_recipients INDEXED BY queue_recipients_message WHERE message_id = ? AND state = 'queued' LIMIT 1").pluck();
        for (const mid of touched) if (open.get(mid) === undefined) this.#delete(tx, mid);
      }
      return applied;
    });
  }

  async get(id: string): Promise<QueueMessage | null> {
    return this.#read(async () => this.#load([id]).get(id) ?? null);
  }

  list(o: { limit?: number; afterId?: string } = {}): Promise<QueueMessage[]> {
    return this.#read(async () => this.#list(o));
  }

  #list(o: { limit?: number; afterId?: string }): QueueMessage[] {
    const limit = clampInt(o.limit, 1, QUEUE_LIMITS.listPage, 100);
    let after = 0;
    if (o.afterId !== undefined) {
      const seq = this.#q('SELECT seq FROM queue_messages WHERE id = ?').pluck().get(o.afterId) as number | undefined;
      if (seq === undefined) throw new StoreError('not-found', `no queued message ${o.afterId}`);
      after = seq;
    }
    const ids = this.#q('SELECT id FROM queue_messages WHERE seq > ? ORDER BY seq LIMIT CAST(? AS INTEGER)').pluck().all(after, limit) as string[];
    const loaded = this.#load(ids);
    return ids.flatMap((id) => loaded.get(id) ?? []);
  }

  async retry(id: string | null, now: number): Promise<number> {
    // Leased recipients are being tried right now: left alone (their next_attempt_at is the lease end).
    const free = "state = 'queued' AND next_attempt_at > ? AND (lease_until IS NULL OR lease_until <= ?)";
    if (id !== null) {
      return this.#d.write(() => this.#q(`UPDATE queue_recipients INDEXED BY queue_recipients_message SET next_attempt_at = ? WHERE message_id = ? AND ${free}`).run(now, id, now, now).changes);
    }
    let total = 0;
    for (;;) {
      const n = this.#d.write(
        () =>
          this.#q(
            `UPDATE queue_recipients SET next_attempt_at = ? WHERE id IN (
               SELECT id FROM queue_recipients WHERE ${free} ORDER BY state, next_attempt_at LIMIT ${QUEUE_LIMITS.retryStep})`,
          ).run(now, now, now).changes,
      );
      total += n;
      if (n < QUEUE_LIMITS.retryStep) return total;
      await yieldTurn();
    }
  }

  async remove(id: string): Promise<boolean> {
    return this.#d.write((tx) => this.#delete(tx, id));
  }

  stats(now: number): Promise<{ messages: number; recipients: number; oldestCreatedAt: number | null; nextDueAt: number | null }> {
    void now;
    return this.#read(() => this.#stats());
  }

  async #stats(): Promise<{ messages: number; recipients: number; oldestCreatedAt: number | null; nextDueAt: number | null }> {
    const oldest = this.#q('SELECT created_at FROM queue_messages ORDER BY seq LIMIT 1').pluck().get() as number | undefined;
    const due = this.#q("SELECT min(next_attempt_at) FROM queue_recipients WHERE state = 'queued'").pluck().get() as number | null;
    // Counting a big queue is a walk of every row: in rowid ranges, an event-loop turn between them.
    const messages = await this.#countInSteps('SELECT count(*) FROM queue_messages WHERE seq > ? AND seq <= ?', 'SELECT max(seq) FROM queue_messages');
    const recipients = await this.#countInSteps(
      "SELECT count(*) FROM queue_recipients WHERE id > ? AND id <= ? AND state = 'queued'",
      'SELECT max(id) FROM queue_recipients',
    );
    return { messages, recipients, oldestCreatedAt: oldest ?? null, nextDueAt: due ?? null };
  }

  nextDue(): Promise<number | null> {
    return this.#read(async () => (this.#q("SELECT min(next_attempt_at) FROM queue_recipients WHERE state = 'queued'").pluck().get() as number | null) ?? null);
  }

  async #countInSteps(countSql: string, maxSql: string): Promise<number> {
    const max = (this.#q(maxSql).pluck().get() as number | null) ?? 0;
    const count = this.#q(countSql).pluck();
    let n = 0;
    for (let from = 0; from < max; from += QUEUE_LIMITS.countStep) {
      if (from > 0) {
        await yieldTurn();
        const g = this.#d.settled?.();
        if (g) await g;
      }
      n += count.get(from, from + QUEUE_LIMITS.countStep) as number;
    }
    return n;
  }

  /** Removes a message, its recipients and its blob reference inside the caller's transaction. */
  #delete(tx: Tx, id: string): boolean {
    const blob = this.#q('SELECT blob_id FROM queue_messages WHERE id = ?').pluck().get(id) as string | undefined;
    if (blob === undefined) return false;
    this.#q('DELETE FROM queue_recipients WHERE message_id = ?').run(id);
    this.#q('DELETE FROM queue_messages WHERE id = ?').run(id);
    this.#d.unrefBlob(tx, blob, 1);
    return true;
  }

  /** Messages with all their recipients (each message has at most QUEUE_LIMITS.recipientsPerMessage). */
  #load(ids: string[]): Map<string, QueueMessage> {
    const out = new Map<string, QueueMessage>();
    if (ids.length === 0) return out;
    const json = JSON.stringify(ids);
    const rows = this.#q('SELECT * FROM queue_messages WHERE id IN (SELECT value FROM json_each(?))').all(json) as Row[];
    const rcpts = byMessage(this.#q('SELECT * FROM queue_recipients WHERE message_id IN (SELECT value FROM json_each(?)) ORDER BY id').all(json) as Row[]);
    for (const r of rows) out.set(r.id, toMessage(r, rcpts.get(r.id) ?? []));
    return out;
  }
}
