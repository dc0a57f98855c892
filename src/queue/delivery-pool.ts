// Delivery workers: the SMTP client sessions (transport.ts, nodemailer) of the queue engine run on
// worker threads (delivery-worker.ts), so the CPU of sending — nodemailer's command and reply
// handling, the DATA dot-stuffing, TLS, the socket writes — is spent beside the event loop, which
// keeps the SMTP server, the store and the queue state. The outbound benchmark's profile had a
// fifth of the loop's time in the client side.
//
// - What stays on the main thread: every queue state transition (claim, settle, backoff, bounces:
//   src/queue/engine.ts), MX resolution, the MTA-STS policy cache and TLS-RPT counts (the worker
//   gets the policy with the open request and sends its results back). A worker only sends the
//   bytes it is given and answers with the receiver's per-recipient replies: a recipient is marked
//   delivered only after its 250 came back here, exactly as with a session on the loop.
// - A session lives on one worker (the one with the fewest sessions when it was opened); its
//   transactions go there. Messages streamed from their blob (larger than the engine reads whole)
//   use a session on the event loop instead (the engine's choice).
// - A worker that fails or exits fails its transactions in flight with a temporary error (the
//   recipients are deferred and retried; a 250 lost that way repeats the message, as a connection
//   lost after DATA would) and its sessions become unusable. When no worker can start, open()
//   returns null and the engine opens the session on the event loop.
// - Workers start on first use, never keep the process alive, and end with close().

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { MxHost } from './mx.ts';
import type { StsPolicy, TlsResultType } from './mta-sts.ts';
import { TransportError, type DeliverySession, type OutgoingMessage, type RecipientReply, type RelayConfig, type TransportOptions } from './transport.ts';

/** What the worker recorded for the main thread's MTA-STS log and TLS-RPT counts. */
export type DeliveryEvent =
  | { kind: 'log'; event: string; fields: Record<string, string | number | boolean | undefined> }
  | { kind: 'tls'; domain: string; sts: boolean; failure: string | null; policy: StsPolicy | null };

type WireTransport = Omit<TransportOptions, 'mtaSts' | 'tlsReport'>;
type WireMessage = Omit<OutgoingMessage, 'body'>;

export type DeliveryJobBody =
  | { op: 'open'; domain: string; hosts: MxHost[]; relay: RelayConfig | null; transport: WireTransport; sts: { policy: StsPolicy | null; error: string | null }; useSts: boolean; useTlsReport: boolean }
  | { op: 'send'; sid: number; message: WireMessage; body: Uint8Array; deadlineMs: number }
  | { op: 'reset' | 'close' | 'destroy'; sid: number };
export type DeliveryJob = { id: number } & DeliveryJobBody;

export type OpenResult = { ok: true; sid: number; host: string; mxHostname: string; events: DeliveryEvent[] } | { ok: false; code: number; reply: string; events: DeliveryEvent[] };
export type DeliveryReply = { kind: 'reply'; id: number; result: unknown } | { kind: 'reply'; id: number; error: string };
type FromWorker = DeliveryReply | { kind: 'state'; sid: number; usable: false };

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
  sessions: Map<number, RemoteSession>;
}

/** The worker's module: the .ts next to this file from the sources, the .mjs next to the bundle from the build. */
function spawnWorker(): Worker {
  const here = import.meta.url;
  const ext = here.endsWith('.ts') ? '.ts' : '.mjs';
  // V8 would let its young generation grow to 32 MB (the main thread's reaches 128 MB); a
  // transaction's garbage is one message and its replies: 16 MB, as the DKIM signers have.
  return new Worker(new URL(`./delivery-worker${ext}`, here), { name: 'pb-delivery', resourceLimits: { maxYoungGenerationSizeMb: 16 } });
}

export class DeliveryPool {
  readonly #threads: number;
  readonly #slots: Slot[] = [];
  readonly #spawn: () => Worker;
  #nextId = 1;
  #closed = false;

  /** threads: workers at most (default: one core left to the event loop, at least 1, at most 4). */
  constructor(opts: { threads?: number; spawn?: () => Worker } = {}) {
    this.#threads = Math.max(0, opts.threads ?? Math.max(1, Math.min(4, availableParallelism() - 1)));
    this.#spawn = opts.spawn ?? spawnWorker;
  }

  get enabled(): boolean {
    return !this.#closed && this.#threads > 0;
  }

  /**
   * A session to the first MX host (or the smarthost) that greets us, on a worker; TransportError
   * as SmtpSession.toMx/toRelay would throw; null when no worker is available.
   */
  async open(domain: string, hosts: MxHost[], relay: RelayConfig | null, t: TransportOptions): Promise<RemoteSession | null> {
    const slot = this.#slot();
    if (!slot) return null;
    const sts = !relay && t.mtaSts ? await t.mtaSts.policyFor(domain) : { policy: null, error: null };
    const { mtaSts, tlsReport, ...transport } = t;
    const r = (await this.#call(slot, { op: 'open', domain, hosts, relay, transport, sts, useSts: !!mtaSts && !relay, useTlsReport: !!tlsReport })) as OpenResult;
    for (const e of r.events) {
      if (e.kind === 'log') mtaSts?.log(e.event, e.fields);
      else tlsReport?.record(e.domain, e.sts, e.failure as TlsResultType | null, e.policy);
    }
    if (!r.ok) throw new TransportError(r.code, r.reply);
    const s = new RemoteSession(this, slot, r.sid, r.host, r.mxHostname);
    slot.sessions.set(r.sid, s);
    return s;
  }

  /** @internal RemoteSession's calls to its worker. */
  call(slot: Slot, job: Exclude<DeliveryJobBody, { op: 'open' }>): Promise<unknown> {
    if (!this.#slots.includes(slot)) return Promise.reject(new Error('delivery worker gone'));
    return this.#call(slot, job);
  }

  #call(slot: Slot, job: DeliveryJobBody): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ ...job, id });
    });
  }

  /** The worker with the fewest sessions, a new one while there is room; null: none can run. */
  #slot(): Slot | null {
    if (!this.enabled) return null;
    const best = this.#slots.reduce<Slot | null>((b, s) => (!b || s.sessions.size < b.sessions.size ? s : b), null);
    if (best && (best.sessions.size === 0 || this.#slots.length >= this.#threads)) return best;
    try {
      return this.#start();
    } catch {
      return best;
    }
  }

  #start(): Slot {
    const worker = this.#spawn();
    const slot: Slot = { worker, pending: new Map(), sessions: new Map() };
    worker.unref();
    worker.on('message', (m: FromWorker) => {
      if (m.kind === 'state') {
        slot.sessions.get(m.sid)?.gone();
        return;
      }
      const p = slot.pending.get(m.id);
      slot.pending.delete(m.id);
      if (!p) return;
      if ('error' in m) p.reject(new Error(m.error));
      else p.resolve(m.result);
    });
    const gone = (err: Error) => {
      const i = this.#slots.indexOf(slot);
      if (i < 0) return;
      this.#slots.splice(i, 1);
      for (const s of slot.sessions.values()) s.gone();
      slot.sessions.clear();
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
    };
    worker.on('error', gone);
    worker.on('exit', (code) => gone(new Error(`delivery worker exited (${code})`)));
    this.#slots.push(slot);
    return slot;
  }

  /** @internal A session closed: its worker forgets it. */
  forget(slot: Slot, sid: number): void {
    slot.sessions.delete(sid);
  }

  /** Ends the workers (their sessions are closed by the engine first: those QUITs get up to a second). */
  async close(): Promise<void> {
    this.#closed = true;
    const waiting = this.#slots.flatMap((s) =>
      [...s.pending.values()].map(
        (p) =>
          new Promise<void>((done) => {
            const { resolve, reject } = p;
            p.resolve = (v) => (resolve(v), done());
            p.reject = (e) => (reject(e), done());
          }),
      ),
    );
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(waiting), new Promise<void>((r) => (t = setTimeout(r, 1000)))]);
    clearTimeout(t);
    const slots = this.#slots.splice(0);
    for (const slot of slots) {
      for (const s of slot.sessions.values()) s.gone();
      for (const p of slot.pending.values()) p.reject(new Error('delivery pool closed'));
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}

/** A session on a delivery worker, used by the engine like an SmtpSession. */
export class RemoteSession implements DeliverySession {
  readonly remote = true;
  readonly host: string;
  readonly mxHostname: string;
  readonly #pool: DeliveryPool;
  readonly #slot: Slot;
  readonly #sid: number;
  #usable = true;
  /** The last transaction failed part-way (reset() sends RSET then, else it needs no round trip). */
  #dirty = false;
  sent = 0;

  constructor(pool: DeliveryPool, slot: Slot, sid: number, host: string, mxHostname: string) {
    this.#pool = pool;
    this.#slot = slot;
    this.#sid = sid;
    this.host = host;
    this.mxHostname = mxHostname;
  }

  get usable(): boolean {
    return this.#usable;
  }

  /** @internal The connection ended (or the worker did). */
  gone(): void {
    this.#usable = false;
  }

  /** One transaction on the worker; the body must be in memory (the engine streams big ones on the loop). */
  async send(m: OutgoingMessage, deadlineMs: number): Promise<RecipientReply[]> {
    const body = m.body();
    if (!Buffer.isBuffer(body)) {
      body.destroy();
      throw new TransportError(0, '451 4.3.0 a streamed message cannot go to a delivery worker');
    }
    const { body: _, ...message } = m;
    const r = (await this.#pool.call(this.#slot, { op: 'send', sid: this.#sid, message, body, deadlineMs })) as { replies: RecipientReply[]; usable: boolean; sent: number; dirty: boolean };
    this.sent = r.sent;
    this.#dirty = r.dirty;
    if (!r.usable) this.#usable = false;
    return r.replies;
  }

  async reset(): Promise<boolean> {
    if (!this.#usable) return false;
    if (!this.#dirty) return true;
    try {
      const ok = (await this.#pool.call(this.#slot, { op: 'reset', sid: this.#sid })) as boolean;
      if (!ok) this.#usable = false;
      this.#dirty = false;
      return ok;
    } catch {
      this.#usable = false;
      return false;
    }
  }

  close(): void {
    this.#end('close');
  }

  destroy(): void {
    this.#end('destroy');
  }

  #end(op: 'close' | 'destroy'): void {
    this.#usable = false;
    this.#pool.forget(this.#slot, this.#sid);
    this.#pool.call(this.#slot, { op, sid: this.#sid }).catch(() => {});
  }
}
