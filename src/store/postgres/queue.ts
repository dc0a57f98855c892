// QueueStore on PostgreSQL (tables queue_messages, queue_recipients: migration 5), shared by every
// node on the database. Each mutation is one READ COMMITTED transaction, durable at COMMIT
// (synchronous_commit stays on). Claims lock the recipients they lease with FOR UPDATE SKIP
// LOCKED, so two nodes claiming at once never lease the same recipient and never wait for each
// other; a recipient leased by a committed claim fails the claim's re-checked WHERE (its
// next_attempt_at is the lease end). Lock order (schema.ts, migration 5): message rows →
// recipient rows → blob rows; deadlocks the order can't rule out (a retry of the whole queue
// against a settle) are retried.

import type pg from 'pg';
import { StoreError } from '../store.ts';
import type { QueueBatch, QueueMessage, QueueMessageInput, QueueStore, RecipientOutcome } from '../queue.ts';
import { QUEUE_LIMITS, QUEUE_ONLY_META, byMessage, checkInput, checkOutcomes, clampInt, cutReply, newQueueId, settledState, toMessage } from '../queue-rows.ts';
import { PgWrites } from './writes.ts';

type Row = Record<string, any>;
type Client = pg.PoolClient;

const RETRYABLE = new Set(['40001', '40P01']);
const MAX_RETRIES = 8;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pgCode = (err: unknown): string => (typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '');

export interface PgQueueOptions {
  /** The bytes of a body staged in this process and not yet in the database (the store's staging). */
  staged(blobId: string): Buffer | undefined;
  /** Keep messages whose recipients are all final (tests look at the final states). */
  keepFinal?: boolean;
}

export class PgQueue implements QueueStore {
  readonly #pool: pg.Pool;
  readonly #o: PgQueueOptions;
  readonly #wr = new PgWrites(2000);

  constructor(pool: pg.Pool, opts: PgQueueOptions) {
    this.#pool = pool;
    this.#o = opts;
  }

  async #tx<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const c = await this.#pool.connect();
      let broken: Error | undefined;
      try {
        await c.query('BEGIN');
        const r = await fn(c);
        await c.query('COMMIT');
        c.release();
        return r;
      } catch (err) {
        try {
          await c.query('ROLLBACK');
        } catch (e) {
          broken = e as Error;
        }
        c.release(broken);
        if (RETRYABLE.has(pgCode(err)) && attempt < MAX_RETRIES) {
          await sleep(Math.random() * 5 * (attempt + 1));
          continue;
        }
        throw err;
      }
    }
  }

  async enqueue(m: QueueMessageInput): Promise<QueueMessage> {
    const rcpts = checkInput(m);
    const id = newQueueId();
    await this.#tx(async (c) => {
      // The body's reference, in the same transaction as the rows (a staged body is written here).
      const data = m.data ?? this.#o.staged(m.blob.id);
      if (data) {
        await c.query(
          `INSERT INTO blobs (id, size, refcount, meta, data) VALUES ($1, $2, 1, '${QUEUE_ONLY_META}', $3) ON CONFLICT (id) DO UPDATE SET refcount = blobs.refcount + 1`,
          [m.blob.id, data.length, data],
        );
      } else {
        const r = await c.query('UPDATE blobs SET refcount = refcount + 1 WHERE id = $1', [m.blob.id]);
        if (r.rowCount === 0) throw new StoreError('not-found', `blob ${m.blob.id} is neither staged nor stored`);
      }
      await c.query(
        `INSERT INTO queue_messages (id, blob_id, size, mail_from, envid, ret, account_id, origin, created_at, expires_at, prefix, body_start)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [id, m.blob.id, m.blob.size, m.mailFrom, m.envid ?? null, m.ret ?? null, m.accountId ?? null, m.origin, m.now, m.expiresAt, m.prefix ?? '', m.start ?? 0],
      );
      await c.query(
        `INSERT INTO queue_recipients (message_id, address, domain, orcpt, notify, next_attempt_at, lease_owner, lease_until, attempts)
         SELECT $1, r.address, r.domain, r.orcpt, r.notify, $2, $4, $5, $6 FROM ROWS FROM (jsonb_to_recordset($3::jsonb) AS (address text, domain text, orcpt text, notify text)) WITH ORDINALITY AS r(address, domain, orcpt, notify, ord)
         ORDER BY r.ord`,
        [id, m.lease ? m.lease.until : m.now, JSON.stringify(rcpts), m.lease?.owner ?? null, m.lease?.until ?? null, m.lease ? 1 : 0],
      );
    });
    return (await this.get(id))!;
  }

  async claim(o: { now: number; owner: string; leaseMs: number; limit: number; skipDomains?: string[] }): Promise<QueueBatch[]> {
    const limit = clampInt(o.limit, 0, QUEUE_LIMITS.batchesPerClaim, 1);
    if (limit === 0) return [];
    const leaseUntil = o.now + Math.max(1, o.leaseMs);
    const skip = [...new Set((o.skipDomains ?? []).map((d) => d.toLowerCase()))];
    return this.#tx(async (c) => {
      // The oldest due recipients (a bounded window of queue_recipients_due), grouped per (message, domain).
      const groups = (
        await c.query(
          `SELECT message_id, domain FROM (
             SELECT id, message_id, domain, next_attempt_at FROM queue_recipients
             WHERE state = 'queued' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT ${QUEUE_LIMITS.claimWindow}) w
           WHERE NOT (domain = ANY($2::text[]))
           GROUP BY message_id, domain ORDER BY min(next_attempt_at), min(id) LIMIT $3`,
          [o.now, skip, limit],
        )
      ).rows as Row[];
      if (groups.length === 0) return [];
      // Lock what is still due and free; rows another claimer holds are skipped, not waited for.
      const rows = (
        await c.query(
          `SELECT id, message_id, domain FROM queue_recipients
           WHERE (message_id, domain) IN (SELECT * FROM unnest($1::text[], $2::text[]))
             AND state = 'queued' AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
           ORDER BY id FOR UPDATE SKIP LOCKED`,
          [groups.map((g) => g.message_id), groups.map((g) => g.domain), o.now],
        )
      ).rows as Row[];
      const picked = new Map<string, { messageId: string; domain: string; ids: Set<number> }>();
      for (const r of rows) {
        const key = `${r.message_id}\u0000${r.domain}`;
        let g = picked.get(key);
        if (!g) picked.set(key, (g = { messageId: r.message_id, domain: r.domain, ids: new Set() }));
        if (g.ids.size < QUEUE_LIMITS.recipientsPerBatch) g.ids.add(Number(r.id));
      }
      const ids = [...picked.values()].flatMap((g) => [...g.ids]);
      if (ids.length === 0) return [];
      await c.query(
        'UPDATE queue_recipients SET lease_owner = $1, lease_until = $2, next_attempt_at = $2, attempts = attempts + 1 WHERE id = ANY($3::bigint[])',
        [o.owner, leaseUntil, ids],
      );
      const messages = await this.#load(c, [...new Set([...picked.values()].map((g) => g.messageId))]);
      const order = groups.map((g) => `${g.message_id}\u0000${g.domain}`);
      return order.flatMap((key) => {
        const g = picked.get(key);
        const message = g && messages.get(g.messageId);
        if (!g || !message) return [];
        return [{ message, domain: g.domain, recipients: message.recipients.filter((r) => g.ids.has(r.id)), leaseUntil }];
      });
    });
  }

  async settle(owner: string, outcomes: RecipientOutcome[], now: number): Promise<number> {
    checkOutcomes(outcomes);
    if (outcomes.length === 0) return 0;
    const byId = new Map(outcomes.map((o) => [o.recipientId, o]));
    const spec = [...byId.values()].map((o) => ({
      id: o.recipientId,
      state: settledState(o),
      next: o.kind === 'deferred' ? o.nextAttemptAt : now,
      reply: cutReply(o.reply),
      warned: o.kind === 'deferred' && o.delayWarned === true,
    }));
    return this.#tx(async (c) => {
      const mids = (await c.query('SELECT DISTINCT message_id FROM queue_recipients WHERE id = ANY($1::bigint[])', [[...byId.keys()]])).rows.map((r: Row) => r.message_id as string);
      await this.#lockMessages(c, mids);
      const done = await c.query(
        `UPDATE queue_recipients q SET state = u.state, next_attempt_at = u.next, last_attempt_at = $3, last_reply = u.reply,
           delay_warned = q.delay_warned OR u.warned, lease_owner = NULL, lease_until = NULL
         FROM jsonb_to_recordset($1::jsonb) AS u(id bigint, state text, next bigint, reply text, warned boolean)
         WHERE q.id = u.id AND q.lease_owner = $2 AND q.state = 'queued' RETURNING q.message_id`,
        [JSON.stringify(spec), owner, now],
      );
      const touched = [...new Set(done.rows.map((r: Row) => r.message_id as string))];
      if (!this.#o.keepFinal && touched.length > 0) {
        const open = new Set(
          (await c.query("SELECT DISTINCT message_id FROM queue_recipients WHERE message_id = ANY($1::text[]) AND state = 'queued'", [touched])).rows.map(
            (r: Row) => r.message_id as string,
          ),
        );
        await this.#delete(c, touched.filter((id) => !open.has(id)));
      }
      return done.rowCount ?? 0;
    });
  }

  async get(id: string): Promise<QueueMessage | null> {
    const c = await this.#pool.connect();
    try {
      return (await this.#load(c, [id])).get(id) ?? null;
    } finally {
      c.release();
    }
  }

  async list(o: { limit?: number; afterId?: string } = {}): Promise<QueueMessage[]> {
    const limit = clampInt(o.limit, 1, QUEUE_LIMITS.listPage, 100);
    const c = await this.#pool.connect();
    try {
      let after = 0;
      if (o.afterId !== undefined) {
        const r = await c.query('SELECT seq FROM queue_messages WHERE id = $1', [o.afterId]);
        if (r.rowCount === 0) throw new StoreError('not-found', `no queued message ${o.afterId}`);
        after = Number(r.rows[0].seq);
      }
      const ids = (await c.query('SELECT id FROM queue_messages WHERE seq > $1 ORDER BY seq LIMIT $2', [after, limit])).rows.map((r: Row) => r.id as string);
      const loaded = await this.#load(c, ids);
      return ids.flatMap((id) => loaded.get(id) ?? []);
    } finally {
      c.release();
    }
  }

  async retry(id: string | null, now: number): Promise<number> {
    // Leased recipients are being tried right now: left alone (their next_attempt_at is the lease end).
    const free = "state = 'queued' AND next_attempt_at > $1 AND (lease_until IS NULL OR lease_until <= $1)";
    const r =
      id === null
        ? await this.#pool.query(`UPDATE queue_recipients SET next_attempt_at = $1 WHERE ${free}`, [now])
        : await this.#pool.query(`UPDATE queue_recipients SET next_attempt_at = $1 WHERE message_id = $2 AND ${free}`, [now, id]);
    return r.rowCount ?? 0;
  }

  async remove(id: string): Promise<boolean> {
    return this.#tx(async (c) => {
      if ((await this.#lockMessages(c, [id])).length === 0) return false;
      await this.#delete(c, [id]);
      return true;
    });
  }

  async stats(now: number): Promise<{ messages: number; recipients: number; oldestCreatedAt: number | null; nextDueAt: number | null }> {
    void now;
    const r = (
      await this.#pool.query(
        `SELECT (SELECT count(*) FROM queue_messages) AS messages, (SELECT min(created_at) FROM queue_messages) AS oldest,
                (SELECT count(*) FROM queue_recipients WHERE state = 'queued') AS recipients,
                (SELECT min(next_attempt_at) FROM queue_recipients WHERE state = 'queued') AS due`,
      )
    ).rows[0] as Row;
    return {
      messages: Number(r.messages),
      recipients: Number(r.recipients),
      oldestCreatedAt: r.oldest === null ? null : Number(r.oldest),
      nextDueAt: r.due === null ? null : Number(r.due),
    };
  }

  async nextDue(): Promise<number | null> {
    const r = (await this.#pool.query(`SELECT min(next_attempt_at) AS due FROM queue_recipients WHERE state = 'queued'`)).rows[0] as Row;
    return r.due === null ? null : Number(r.due);
  }

  /** Locks message rows in ascending id order (the first step of the lock order); returns those that exist. */
  async #lockMessages(c: Client, ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    return (await c.query('SELECT id FROM queue_messages WHERE id = ANY($1::text[]) ORDER BY id COLLATE "C" FOR UPDATE', [ids])).rows.map((r: Row) => r.id as string);
  }

  /** Removes locked messages, their recipients and their blob references. */
  async #delete(c: Client, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await c.query('DELETE FROM queue_recipients WHERE message_id = ANY($1::text[])', [ids]);
    const gone = await c.query('DELETE FROM queue_messages WHERE id = ANY($1::text[]) RETURNING blob_id', [ids]);
    const deltas = new Map<string, number>();
    for (const r of gone.rows as Row[]) deltas.set(r.blob_id, (deltas.get(r.blob_id) ?? 0) - 1);
    await this.#wr.adjustBlobs(c, deltas);
  }

  /** Messages with all their recipients (each message has at most QUEUE_LIMITS.recipientsPerMessage). */
  async #load(c: Client, ids: string[]): Promise<Map<string, QueueMessage>> {
    const out = new Map<string, QueueMessage>();
    if (ids.length === 0) return out;
    const rows = (await c.query('SELECT * FROM queue_messages WHERE id = ANY($1::text[])', [ids])).rows as Row[];
    const rcpts = byMessage((await c.query('SELECT * FROM queue_recipients WHERE message_id = ANY($1::text[]) ORDER BY id', [ids])).rows as Row[]);
    for (const r of rows) out.set(r.id, toMessage(r, rcpts.get(r.id) ?? []));
    return out;
  }
}
