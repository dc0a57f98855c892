// The queue engine: takes due recipients from store.queue (leased to this process), delivers
// them per destination domain, and settles each recipient's outcome.
//
// - Claims: `claim` leases batches (one message, one domain, its due recipients) to `owner` (one
//   id per process) for leaseMs = 2 × the transaction deadline, so a crashed process's batches come
//   back after the lease. A batch is started only while its lease has at least one deadline left;
//   otherwise it is handed back (deferred, due now) untried.
// - Concurrency: at most `concurrency` transactions in total and `perDomain` per destination
//   domain; claimed batches wait in a per-domain backlog (bounded by the free total), and domains
//   at their limit are skipped by the next claim. Sessions are reused for the next batch to the
//   same domain (connection reuse), and closed after IDLE_MS idle or REUSE_MAX transactions.
// - Where sessions run: a message read whole (or handed over) goes on a session on a delivery
//   worker thread when there are some (delivery-pool.ts: the SMTP client's CPU beside the loop; its
//   replies come back here and are settled here like any other); a streamed one on a session on the
//   event loop. Idle sessions are reused only for the same kind.
// - A destination that failed to connect or resolve is paused for DEAD_MS (at most retryBase): its
//   batches already claimed fail the same way at once instead of each waiting out the timeouts, and
//   no more are claimed for it until the pause ends (a dead destination costs one connection
//   attempt per pause, not one per message).
// - Hand-off: a message enqueued in this process when there is room for it (one destination, free
//   total and per-domain slots, destination not paused) is enqueued already leased to this engine
//   (reserve → store.queue.enqueue with a lease → take), so it goes out without a claim (one commit
//   less per message); reserve() holds its slot until take() or cancel().
// - Settles: outcomes of finished transactions are committed together, SETTLE_MS after the first
//   or at SETTLE_MAX outcomes (one commit for many deliveries); the recipients stay leased until then,
//   so nothing claims them meanwhile. A crash in that window repeats those deliveries after the lease
//   (the lost-250 case below), it never loses one.
// - Wake-ups: at once on notify() (a message was enqueued in this process), when a transaction
//   ends, and otherwise at the next due time (store stats nextDueAt), at least every MAX_SLEEP_MS
//   (other nodes, expired leases).
// - Outcomes per recipient (src/queue/policy.ts): sent, deferred (backoff), failed (5xx), expired.
//   DSNs (src/queue/bounce.ts) are handed over BEFORE the settle that may remove the message: a
//   crash in between can duplicate a bounce but never lose it. If handing a DSN over fails, the
//   recipients it reports stay queued (deferred) so the bounce is made again next time.
// - Logs: `queue.attempt id=… rcpt=… domain=… result=… reply=…` per recipient and attempt, and
//   `queue.stats messages=… recipients=… oldest_s=…` every statsIntervalMs.
// - Shutdown (stop): nothing new starts; transactions in flight get `graceMs` to finish and
//   settle; the rest are abandoned (connection destroyed, no settle: their lease runs out and they
//   are retried — in SMTP's lost-250 window that may duplicate a message, never lose one); batches
//   still waiting in the backlog are handed back untried.

import { randomBytes } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import type { Readable } from 'node:stream';
import type { Logger } from '../obs/log.ts';
import type { QueueBatch, QueueMessage, QueueStore, RecipientOutcome } from '../store/queue.ts';
import { QUEUE_LIMITS } from '../store/queue-rows.ts';
import { decide, statusOf, verdictOf, type RetryPolicy } from './policy.ts';
import { DestinationError, resolveDestination, type DnsResolver, type MxHost } from './mx.ts';
import { SmtpSession, TransportError, type DeliverySession, type RecipientReply, type RelayConfig, type TransportOptions } from './transport.ts';
import type { DeliveryPool } from './delivery-pool.ts';
import { sendDsn, type BounceItem } from './bounce.ts';
import { outgoingBytes, outgoingStream } from './message.ts';

const IDLE_MS = 5000;
const REUSE_MAX = 1000;
/** Messages up to this size are read whole and handed to the transport as bytes, bigger ones streamed. */
const READ_WHOLE = 256 * 1024;
const DEAD_MS = 30_000;
const MAX_SLEEP_MS = 30_000;
const MIN_SLEEP_MS = 200;
const SETTLE_MS = 10;
const SETTLE_MAX = 200;

/** A slot held for one message enqueued in this process (see the header: hand-off). */
export interface Handoff { key: string; domain: string; leaseUntil: number }

export interface EngineOptions {
  queue: QueueStore;
  readBlob(blobId: string, start?: number, end?: number): Promise<Buffer>;
  streamBlob(blobId: string, start?: number): Readable;
  deliverDsn(dsn: Buffer, to: string): Promise<void>;
  log: Logger;
  hostname: string;
  policy: RetryPolicy;
  concurrency: number;
  perDomain: number;
  /** Transaction deadline, ms (leases are twice this). */
  timeoutMs: number;
  transport: Omit<TransportOptions, 'deadlineMs'>;
  relay: RelayConfig | null;
  resolver: DnsResolver;
  isSelf(hostOrIp: string): boolean;
  /** Delivery workers (delivery-pool.ts): sessions for messages sent from memory run there; none = all on the event loop. */
  delivery?: DeliveryPool | null;
  statsIntervalMs?: number;
  /** How long stop() lets transactions in flight finish, ms. */
  graceMs?: number;
  owner?: string;
  now?: () => number;
}

/** A batch, with the message's outgoing bytes when the sender handed them over (take). */
type Batch = QueueBatch & { bytes?: Buffer | undefined };
/** idle: oldest first, each with when it went idle (Date.now); sweep: the pool's one timer closing those idle for IDLE_MS. */
interface Pool {
  idle: DeliverySession[];
  idleSince: Map<DeliverySession, number>;
  sweep: NodeJS.Timeout | null;
  running: number;
  reserved: number;
  backlog: Batch[];
  dead: { until: number; error: TransportError | DestinationError } | null;
}

export class QueueEngine {
  readonly owner: string;
  readonly #o: EngineOptions;
  readonly #now: () => number;
  readonly #pools = new Map<string, Pool>();
  readonly #inflight = new Set<Promise<void>>();
  readonly #active = new Set<DeliverySession>();
  #running = 0;
  #waiting = 0;
  #pumping = false;
  #pumpDone: Promise<void> = Promise.resolve();
  #again = false;
  #timer: NodeJS.Timeout | null = null;
  #stats: NodeJS.Timeout | null = null;
  #started = false;
  #stopping = false;
  #abandoned = false;
  #outcomes: RecipientOutcome[] = [];
  #settleTimer: NodeJS.Timeout | null = null;
  readonly #settling = new Set<Promise<void>>();

  constructor(o: EngineOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.owner = o.owner ?? `${osHostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  }

  get leaseMs(): number {
    return 2 * this.#o.timeoutMs;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const every = this.#o.statsIntervalMs ?? 60_000;
    if (every > 0) {
      this.#stats = setInterval(() => void this.#logStats(), every);
      this.#stats.unref();
    }
    this.notify();
  }

  /** Something was enqueued (or made due): look now. */
  notify(): void {
    if (!this.#started || this.#stopping) return;
    void this.#pump();
  }

  /**
   * Room for one more batch to these recipients' destination now (all of them at one, at most one
   * batch of recipients)? Then a slot is held for it: take() or cancel() must follow.
   */
  reserve(domains: string[]): Handoff | null {
    if (!this.#started || this.#stopping || domains.length === 0 || domains.length > QUEUE_LIMITS.recipientsPerBatch) return null;
    const domain = domains[0]!.toLowerCase();
    const key = this.#key(domain);
    if (domains.some((d) => this.#key(d.toLowerCase()) !== key)) return null;
    if (this.#running + this.#waiting >= this.#o.concurrency) return null;
    const p = this.#pool(key);
    const now = this.#now();
    if (this.#blocked(p, now)) return null;
    this.#waiting++;
    p.reserved++;
    return { key, domain, leaseUntil: now + this.leaseMs };
  }

  /** The message enqueued leased to us (lease.until = h.leaseUntil): into its pool's backlog, started when it has room. */
  take(h: Handoff, message: QueueMessage, body?: Buffer): void {
    const p = this.#pool(h.key);
    p.reserved--;
    const b: Batch = { message, domain: h.domain, recipients: message.recipients.filter((r) => r.state === 'queued'), leaseUntil: h.leaseUntil };
    // The bytes the sender had in memory, exactly what outgoingBytes would read (checked by size).
    if (body && body.length === message.size) b.bytes = body;
    if (this.#stopping) {
      void this.#handBack([b]);
      return;
    }
    p.backlog.push(b);
    this.#drain(h.key);
  }

  /** The enqueue failed: the slot is free again. */
  cancel(h: Handoff): void {
    this.#pool(h.key).reserved--;
    if (!this.#stopping) this.#waiting--;
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#stats) clearInterval(this.#stats);
    const give = [...this.#pools.values()].flatMap((p) => p.backlog.splice(0));
    this.#waiting = 0;
    await this.#pumpDone; // a claim under way finishes; its batches are handed back below
    give.push(...[...this.#pools.values()].flatMap((p) => p.backlog.splice(0)));
    this.#waiting = 0;
    await this.#handBack(give);
    const all = Promise.allSettled([...this.#inflight]);
    let t: NodeJS.Timeout | undefined;
    const done = await Promise.race([all.then(() => true), new Promise<boolean>((r) => (t = setTimeout(() => r(false), this.#o.graceMs ?? 5000)))]);
    clearTimeout(t);
    if (!done) {
      this.#abandoned = true;
      this.#o.log.info('queue.abandoned', { transactions: this.#running });
      for (const s of this.#active) s.destroy();
      await all;
    }
    // Outcomes of finished transactions still waiting for their settle.
    void this.#flushSettles();
    await Promise.allSettled([...this.#settling]);
    for (const p of this.#pools.values()) {
      if (p.sweep) clearTimeout(p.sweep);
      p.sweep = null;
      p.idleSince.clear();
      for (const s of p.idle.splice(0)) s.close();
    }
  }

  #pool(domain: string): Pool {
    let p = this.#pools.get(domain);
    if (!p) this.#pools.set(domain, (p = { idle: [], idleSince: new Map(), sweep: null, running: 0, reserved: 0, backlog: [], dead: null }));
    return p;
  }

  #pump(): Promise<void> {
    if (this.#pumping) {
      this.#again = true;
      return this.#pumpDone;
    }
    this.#pumping = true;
    return (this.#pumpDone = this.#claimLoop());
  }

  async #claimLoop(): Promise<void> {
    let sleep = MAX_SLEEP_MS;
    try {
      do {
        this.#again = false;
        const free = this.#o.concurrency - this.#running - this.#waiting;
        if (free <= 0 || this.#stopping) break;
        const now = this.#now();
        // Busy destinations, and dead ones (nothing is claimed for them until the pause is over).
        const relay = this.#o.relay ? this.#pool('[relay]') : null;
        if (relay && this.#blocked(relay, now)) {
          // The smarthost is every destination: nothing to claim until it has room or its pause ends.
          if (relay.dead && relay.dead.until > now) sleep = Math.max(MIN_SLEEP_MS, relay.dead.until - now);
          break;
        }
        // Nothing due (what we were handed at enqueue is leased, so not due): no claim, which is a
        // write transaction and a durable commit even when it finds nothing. After every
        // transaction this is a read of one index entry instead.
        const due = await this.#o.queue.nextDue();
        if (due === null || due > now) {
          if (!this.#again) sleep = Math.min(MAX_SLEEP_MS, Math.max(MIN_SLEEP_MS, (due ?? now + MAX_SLEEP_MS) - now));
          continue;
        }
        const skipDomains = this.#skip(now);
        const batches = await this.#o.queue.claim({ now, owner: this.owner, leaseMs: this.leaseMs, limit: free, skipDomains });
        for (const b of batches) {
          this.#pool(this.#key(b.domain)).backlog.push(b);
          this.#waiting++;
        }
        for (const key of new Set(batches.map((b) => this.#key(b.domain)))) this.#drain(key);
        if (batches.length >= free) this.#again = true;
        else if (!this.#again) sleep = await this.#sleepFor();
      } while (this.#again && !this.#stopping);
    } catch (err) {
      this.#o.log.error('queue.claim-error', { error: err instanceof Error ? err : String(err) });
      sleep = 5000;
    } finally {
      this.#pumping = false;
    }
    if (this.#stopping) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#pump(), sleep);
    this.#timer.unref();
  }

  /** A pool that takes no new batch now: at its limit, or its destination paused as dead. */
  #blocked(p: Pool, now: number): boolean {
    return p.running + p.reserved + p.backlog.length >= this.#o.perDomain || (p.dead !== null && p.dead.until > now);
  }

  #skip(now: number): string[] {
    return [...this.#pools].filter(([, p]) => this.#blocked(p, now)).map(([d]) => d);
  }

  /** Until the next due recipient (or the end of a dead destination's pause), within bounds. */
  async #sleepFor(): Promise<number> {
    const now = this.#now();
    // Not stats(): it counts every queued row, and this runs after every pass.
    let due = (await this.#o.queue.nextDue()) ?? now + MAX_SLEEP_MS;
    if (due <= now) {
      // Due work we skipped (dead or busy destinations): look again when a pause ends.
      const ends = [...this.#pools.values()].map((p) => p.dead?.until ?? 0).filter((t) => t > now);
      due = ends.length ? Math.min(...ends) : now + MIN_SLEEP_MS;
    }
    return Math.min(MAX_SLEEP_MS, Math.max(MIN_SLEEP_MS, due - now));
  }

  /** With a smarthost every domain shares one pool (and its per-destination limit). */
  #key(domain: string): string {
    return this.#o.relay ? '[relay]' : domain;
  }

  /** Starts backlog batches of one pool while its and the total limits allow. */
  #drain(key: string): void {
    const p = this.#pool(key);
    while (p.backlog.length && p.running < this.#o.perDomain && this.#running < this.#o.concurrency && !this.#stopping) {
      const b = p.backlog.shift()!;
      this.#waiting--;
      p.running++;
      this.#running++;
      const run = this.#deliver(key, b)
        .catch((err) => this.#o.log.error('queue.delivery-error', { id: b.message.id, domain: b.domain, error: err instanceof Error ? err : String(err) }))
        .finally(() => {
          p.running--;
          this.#running--;
          this.#inflight.delete(run);
          if (!this.#stopping) {
            this.#drain(key);
            void this.#pump();
          }
        });
      this.#inflight.add(run);
    }
  }

  /** One batch: destination, transaction, outcomes, DSNs, settle. */
  async #deliver(key: string, b: Batch): Promise<void> {
    const now = this.#now();
    if (b.leaseUntil - now < this.#o.timeoutMs) return this.#handBack([b]);
    const p = this.#pool(key);
    let replies: RecipientReply[];
    let host: string | null = null;
    try {
      if (p.dead && p.dead.until > now) throw p.dead.error;
      const m = b.message;
      const bytes = b.bytes ?? (m.size <= READ_WHOLE ? await outgoingBytes(m, this.#o.readBlob) : null);
      b.bytes = undefined;
      // From memory: a session on a delivery worker when there are some; a stream: one on the loop.
      const s = await this.#session(key, b.domain, p, bytes !== null && !!this.#o.delivery?.enabled);
      host = s.mxHostname;
      this.#active.add(s);
      try {
        replies = await s.send(this.#outgoing(b, bytes), this.#o.timeoutMs);
      } finally {
        this.#active.delete(s);
      }
      this.#release(p, s);
    } catch (err) {
      const e = err instanceof DestinationError || err instanceof TransportError ? err : new TransportError(0, `451 4.4.2 ${(err as Error).message}`);
      const code = e instanceof DestinationError ? (e.temporary ? 451 : 550) : e.code;
      replies = b.recipients.map((r) => ({ id: r.id, code, reply: e.reply }));
    }
    if (this.#abandoned) return; // shutdown cut it: the lease runs out, nothing half-settled
    await this.#settle(b, replies, host);
  }

  /** An idle session to this destination (on a worker or not, as asked), or a new one (MX resolution + connect). */
  async #session(key: string, domain: string, p: Pool, remote: boolean): Promise<DeliverySession> {
    // The newest idle one of the kind asked for; unusable ones of either kind are closed on the way.
    for (;;) {
      const i = p.idle.findLastIndex((x) => !x.usable || x.remote === remote);
      if (i < 0) break;
      const s = p.idle.splice(i, 1)[0]!;
      p.idleSince.delete(s);
      if (s.usable && (await s.reset())) return s;
      s.close();
    }
    const t: TransportOptions = { ...this.#o.transport, deadlineMs: this.#o.timeoutMs };
    try {
      const relay = this.#o.relay;
      const hosts: MxHost[] = relay ? [] : await resolveDestination(domain, { resolver: this.#o.resolver, isSelf: this.#o.isSelf });
      const on = remote ? await this.#o.delivery!.open(domain, hosts, relay, t) : null;
      if (on) return on;
      if (relay) return await SmtpSession.toRelay(relay, t);
      return await SmtpSession.toMx(domain, hosts, t);
    } catch (err) {
      // Permanent DNS answers are per domain and final; remember connection trouble briefly.
      if (err instanceof TransportError || (err instanceof DestinationError && err.temporary)) p.dead = { until: this.#now() + Math.min(DEAD_MS, this.#o.policy.retryBase), error: err };
      throw err;
    }
  }

  #release(p: Pool, s: DeliverySession): void {
    p.dead = null;
    if (this.#stopping || !s.usable || s.sent >= REUSE_MAX) return s.close();
    p.idle.push(s);
    p.idleSince.set(s, Date.now());
    if (!p.sweep) this.#sweepLater(p, IDLE_MS);
  }

  /**
   * Closes the sessions idle for IDLE_MS (one timer per pool, not one per transaction: a session
   * taken again meanwhile is not closed by an older transaction's timer), then waits for the next.
   */
  #sweepLater(p: Pool, ms: number): void {
    p.sweep = setTimeout(() => {
      p.sweep = null;
      const now = Date.now();
      // Oldest first: they were pushed in the order they went idle.
      while (p.idle.length && now - (p.idleSince.get(p.idle[0]!) ?? 0) >= IDLE_MS) {
        const s = p.idle.shift()!;
        p.idleSince.delete(s);
        s.close();
      }
      if (p.idle.length) this.#sweepLater(p, Math.max(10, IDLE_MS - (now - p.idleSince.get(p.idle[0]!)!)));
    }, ms);
    p.sweep.unref();
  }

  #outgoing(b: QueueBatch, bytes: Buffer | null) {
    const m = b.message;
    return {
      mailFrom: m.mailFrom,
      recipients: b.recipients.map((r) => ({ id: r.id, address: r.address, notify: r.notify, orcpt: r.orcpt })),
      size: m.size,
      envid: m.envid,
      ret: m.ret,
      body: () => bytes ?? outgoingStream(m, this.#o.streamBlob),
    };
  }

  /** Outcomes per recipient; DSNs first (see the header); then one settle. */
  async #settle(b: QueueBatch, replies: RecipientReply[], host: string | null): Promise<void> {
    const now = this.#now();
    const m = b.message;
    const outcomes: RecipientOutcome[] = [];
    const failed: BounceItem[] = [];
    const delayed: BounceItem[] = [];
    for (const r of b.recipients) {
      const rep = replies.find((x) => x.id === r.id) ?? { id: r.id, code: 0, reply: '451 4.4.2 no reply for this recipient' };
      const d = decide(verdictOf(rep.code), r, m, now, this.#o.policy);
      const status = d.kind === 'expired' ? '4.4.7' : statusOf(rep.reply, rep.code || 451);
      const item: BounceItem = { recipient: { ...r, lastAttemptAt: now }, action: 'failed', status, reply: rep.reply, remoteMta: host };
      if (d.kind === 'sent') outcomes.push({ recipientId: r.id, kind: 'sent', reply: rep.reply });
      else if (d.kind === 'failed' || d.kind === 'expired') {
        outcomes.push({ recipientId: r.id, kind: d.kind, reply: rep.reply });
        failed.push(item);
      } else {
        outcomes.push({ recipientId: r.id, kind: 'deferred', reply: rep.reply, nextAttemptAt: d.nextAttemptAt, ...(d.warn ? { delayWarned: true } : {}) });
        if (d.warn) delayed.push({ ...item, action: 'delayed' });
      }
      this.#o.log.info('queue.attempt', { id: m.id, rcpt: r.address, domain: b.domain, result: d.kind, attempt: r.attempts, host: host ?? undefined, reply: rep.reply });
    }
    await this.#bounce(b, failed, outcomes, now, 'failed');
    await this.#bounce(b, delayed, outcomes, now, 'delayed');
    this.#settleSoon(outcomes);
  }

  /** Queues outcomes for the next shared settle (see the header). */
  #settleSoon(outcomes: RecipientOutcome[]): void {
    this.#outcomes.push(...outcomes);
    if (this.#outcomes.length >= SETTLE_MAX || this.#stopping) void this.#flushSettles();
    else this.#settleTimer ??= setTimeout(() => void this.#flushSettles(), SETTLE_MS);
  }

  /** One settle for the outcomes gathered so far (in steps of the store's limit). */
  #flushSettles(): Promise<void> {
    if (this.#settleTimer) clearTimeout(this.#settleTimer);
    this.#settleTimer = null;
    const all = this.#outcomes.splice(0);
    if (all.length === 0) return Promise.resolve();
    const run = (async () => {
      for (let i = 0; i < all.length; i += QUEUE_LIMITS.outcomesPerSettle) {
        const part = all.slice(i, i + QUEUE_LIMITS.outcomesPerSettle);
        try {
          await this.#o.queue.settle(this.owner, part, this.#now());
        } catch (err) {
          // Not settled: the leases run out and those recipients are tried again.
          this.#o.log.error('queue.settle-error', { recipients: part.length, error: err instanceof Error ? err : String(err) });
        }
      }
      // Deferred recipients have their next due time only now: the claim loop's sleep follows it.
      if (!this.#stopping) void this.#pump();
    })();
    this.#settling.add(run);
    void run.finally(() => this.#settling.delete(run));
    return run;
  }

  /** Hands one DSN over; on failure the reported recipients stay queued (retried, bounced again). */
  async #bounce(b: QueueBatch, items: BounceItem[], outcomes: RecipientOutcome[], now: number, kind: 'failed' | 'delayed'): Promise<void> {
    if (items.length === 0) return;
    const deps = { hostname: this.#o.hostname, readBlob: this.#o.readBlob, deliverDsn: this.#o.deliverDsn, now: this.#now };
    try {
      const sent = await sendDsn(b.message, items, deps, kind === 'delayed' ? b.message.expiresAt : null);
      if (sent) this.#o.log.info('queue.dsn', { id: b.message.id, kind, to: b.message.mailFrom, rcpts: items.map((i) => i.recipient.address) });
    } catch (err) {
      this.#o.log.error('queue.dsn-error', { id: b.message.id, kind, error: err instanceof Error ? err : String(err) });
      for (const it of items) {
        const i = outcomes.findIndex((o) => o.recipientId === it.recipient.id);
        const o = outcomes[i]!;
        // The bounce could not be made: keep the recipient queued so it is made next time.
        if (kind === 'failed') outcomes[i] = { recipientId: o.recipientId, kind: 'deferred', reply: o.reply, nextAttemptAt: now + this.#o.policy.retryBase };
        else if (o.kind === 'deferred') delete o.delayWarned;
      }
    }
  }

  /**
   * Batches claimed but not started: back to the queue untried and due now (for another node, or
   * this one after a restart). Their claim still counted as an attempt.
   */
  async #handBack(batches: QueueBatch[]): Promise<void> {
    const now = this.#now();
    const outcomes: RecipientOutcome[] = batches.flatMap((b) =>
      b.recipients.map((r) => ({ recipientId: r.id, kind: 'deferred' as const, reply: r.lastReply ?? 'not attempted yet', nextAttemptAt: now })),
    );
    if (outcomes.length === 0) return;
    try {
      await this.#o.queue.settle(this.owner, outcomes, now);
    } catch (err) {
      this.#o.log.warn('queue.hand-back-failed', { recipients: outcomes.length, error: err instanceof Error ? err : String(err) });
    }
  }

  async #logStats(): Promise<void> {
    try {
      const now = this.#now();
      const s = await this.#o.queue.stats(now);
      const oldest = s.oldestCreatedAt === null ? 0 : Math.round((now - s.oldestCreatedAt) / 1000);
      this.#o.log.info('queue.stats', { messages: s.messages, recipients: s.recipients, oldest_s: oldest, running: this.#running });
    } catch (err) {
      this.#o.log.warn('queue.stats-error', { error: err instanceof Error ? err : String(err) });
    }
  }
}
