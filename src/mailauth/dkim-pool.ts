// DKIM signing (./dkim.ts) on worker threads. A profile of the outbound benchmark put an eighth of
// the event loop's time in signing (RSA-2048 and ed25519 per message, mailauth's canonicalisation
// and each PEM parsed again): on a worker it runs beside the sessions, on another core when there
// is one, and the event loop only posts the message and takes the header fields back.
//
// - Workers start on first use (at most `threads`), take up to PER_WORKER jobs at once (the next
//   message is already there when one is signed), end after `idleMs` without work, and never keep
//   the process alive.
// - A job whose worker could not start, failed or exited is signed on the event loop with the same
//   signer, so a message is never sent unsigned because of the pool; after close() too.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { DkimKey } from '../store/dkim-keys.ts';
import { signWithKeys, type SignResult } from './dkim.ts';

export interface SignJob {
  id: number;
  message: Uint8Array;
  domain: string;
  keys: DkimKey[];
  now: number;
}
export type SignReply = { id: number; result: SignResult } | { id: number; error: string };

/** Jobs one worker has at once. */
const PER_WORKER = 4;

interface Job {
  job: SignJob;
  resolve: (r: SignResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, Job>;
  idleTimer: NodeJS.Timeout | null;
}

/** The worker's module: the .ts next to this file from the sources, the .mjs next to the bundle from the build. */
function spawnWorker(): Worker {
  const here = import.meta.url;
  const ext = here.endsWith('.ts') ? '.ts' : '.mjs';
  // A small young generation: a job's garbage (one message) dies young.
  return new Worker(new URL(`./dkim-worker${ext}`, here), { resourceLimits: { maxYoungGenerationSizeMb: 4 } });
}

export class DkimSignerPool {
  readonly #threads: number;
  readonly #idleMs: number;
  readonly #onWorkerError: (err: Error) => void;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  #nextId = 1;
  #closed = false;

  constructor(opts: { threads?: number; idleMs?: number; onWorkerError?: (err: Error) => void } = {}) {
    this.#threads = Math.max(0, opts.threads ?? Math.min(4, availableParallelism()));
    this.#idleMs = opts.idleMs ?? 30_000;
    this.#onWorkerError = opts.onWorkerError ?? (() => {});
  }

  /** Signs `message` for `domain` with `keys` (see signWithKeys). */
  async sign(message: Buffer, domain: string, keys: DkimKey[], now = Date.now()): Promise<SignResult> {
    if (keys.length === 0) return { headers: '', selectors: [], errors: [] };
    if (this.#closed || this.#threads === 0) return signWithKeys(message, domain, keys, now);
    const job: SignJob = { id: this.#nextId++, message, domain, keys, now };
    try {
      return await new Promise<SignResult>((resolve, reject) => {
        this.#queue.push({ job, resolve, reject });
        this.#dispatch();
      });
    } catch (err) {
      if (!this.#closed) this.#onWorkerError(err as Error);
      return signWithKeys(message, domain, keys, now);
    }
  }

  #dispatch(): void {
    while (this.#queue.length) {
      let slot = this.#slots.reduce<Slot | null>((best, s) => (s.jobs.size < PER_WORKER && (!best || s.jobs.size < best.jobs.size) ? s : best), null);
      if ((!slot || slot.jobs.size > 0) && this.#slots.length < this.#threads) {
        try {
          slot = this.#spawn();
        } catch (err) {
          // No worker could start: with none running, every queued job is signed on the event loop.
          if (this.#slots.length === 0) for (const j of this.#queue.splice(0)) j.reject(err as Error);
          return;
        }
      }
      if (!slot) return;
      const j = this.#queue.shift()!;
      if (slot.idleTimer) clearTimeout(slot.idleTimer);
      slot.idleTimer = null;
      slot.jobs.set(j.job.id, j);
      slot.worker.ref();
      slot.worker.postMessage(j.job);
    }
  }

  #spawn(): Slot {
    const worker = spawnWorker();
    const slot: Slot = { worker, jobs: new Map(), idleTimer: null };
    worker.unref();
    worker.on('message', (r: SignReply) => {
      const j = slot.jobs.get(r.id);
      slot.jobs.delete(r.id);
      if (slot.jobs.size === 0) {
        worker.unref();
        this.#idle(slot);
      }
      if (j) {
        if ('error' in r) j.reject(new Error(r.error));
        else j.resolve(r.result);
      }
      this.#dispatch();
    });
    const gone = (err: Error) => {
      const i = this.#slots.indexOf(slot);
      if (i >= 0) this.#slots.splice(i, 1);
      if (slot.idleTimer) clearTimeout(slot.idleTimer);
      const jobs = [...slot.jobs.values()];
      slot.jobs.clear();
      for (const j of jobs) j.reject(err);
      this.#dispatch();
    };
    worker.on('error', gone);
    worker.on('exit', (code) => gone(new Error(`DKIM worker exited (${code})`)));
    this.#slots.push(slot);
    return slot;
  }

  #idle(slot: Slot): void {
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    slot.idleTimer = setTimeout(() => {
      if (slot.jobs.size === 0) void slot.worker.terminate();
    }, this.#idleMs);
    slot.idleTimer.unref();
  }

  /** Ends the workers; jobs still queued or in flight, and later ones, are signed on the event loop. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const j of this.#queue.splice(0)) j.reject(new Error('DKIM signer pool closed'));
    const slots = this.#slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
