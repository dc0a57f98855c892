// A small pool of worker threads for work kept off the event loop (DKIM signing,
// src/mailauth/dkim-pool.ts; SEARCH BODY scans, src/store/blob/body-scan.ts): the event loop only
// posts jobs and takes the answers back.
//
// - Workers start on first use (at most `threads`), take up to `perWorker` jobs at once, end after
//   `idleMs` without work, and never keep the process alive (unref'd while they have no job).
// - A job goes to the least busy worker with room; a new worker starts when every running one
//   has work and there is room for another.
// - A job is rejected when its worker fails or exits, when no worker can start (and none runs),
//   and when the pool is closed: the caller then does the work on the event loop itself.
// - A worker answers each job with a WorkerReply carrying the job's id.
import { Worker } from 'node:worker_threads';

/** A worker's answer to the job `id`. */
export type WorkerReply<R> = { id: number; result: R } | { id: number; error: string };

export interface WorkerPoolOptions {
  /**
   * Starts one worker. The caller resolves the worker's module against its own import.meta.url:
   * the .ts next to it from the sources, the .mjs the build writes next to the bundle.
   */
  spawn: () => Worker;
  /** At most this many workers. */
  threads: number;
  /** Jobs one worker has at once (default 1). */
  perWorker?: number;
  /** A worker without work ends after this long. */
  idleMs: number;
  /** Names the workers in errors: `${name} worker exited (code)`, `${name} pool closed`. */
  name: string;
}

interface Pending<R> {
  job: { id: number };
  resolve: (r: R) => void;
  reject: (e: Error) => void;
}

interface Slot<R> {
  worker: Worker;
  jobs: Map<number, Pending<R>>;
  idleTimer: NodeJS.Timeout | null;
}

/** Jobs `J` (each posted with its `id`) answered with `R`. */
export class WorkerPool<J extends object, R> {
  readonly #o: Required<WorkerPoolOptions>;
  readonly #slots: Slot<R>[] = [];
  readonly #queue: Pending<R>[] = [];
  #nextId = 1;
  #closed = false;

  constructor(opts: WorkerPoolOptions) {
    this.#o = { perWorker: 1, ...opts };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs `job` on a worker; rejects when no worker could do it (see the header). */
  run(job: J): Promise<R> {
    if (this.#closed) return Promise.reject(new Error(`${this.#o.name} pool closed`));
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ job: { ...job, id: this.#nextId++ }, resolve, reject });
      this.#dispatch();
    });
  }

  #dispatch(): void {
    const { perWorker, threads } = this.#o;
    while (this.#queue.length) {
      let slot = this.#slots.reduce<Slot<R> | null>((best, s) => (s.jobs.size < perWorker && (!best || s.jobs.size < best.jobs.size) ? s : best), null);
      if ((!slot || slot.jobs.size > 0) && this.#slots.length < threads) {
        try {
          slot = this.#spawn();
        } catch (err) {
          // No worker could start: with none running, every queued job goes back to its caller.
          if (this.#slots.length === 0) for (const p of this.#queue.splice(0)) p.reject(err as Error);
          return;
        }
      }
      if (!slot) return;
      const p = this.#queue.shift()!;
      if (slot.idleTimer) clearTimeout(slot.idleTimer);
      slot.idleTimer = null;
      slot.jobs.set(p.job.id, p);
      slot.worker.ref();
      slot.worker.postMessage(p.job);
    }
  }

  #spawn(): Slot<R> {
    const worker = this.#o.spawn();
    const slot: Slot<R> = { worker, jobs: new Map(), idleTimer: null };
    worker.unref();
    worker.on('message', (r: WorkerReply<R>) => {
      const p = slot.jobs.get(r.id);
      slot.jobs.delete(r.id);
      if (slot.jobs.size === 0) {
        worker.unref();
        this.#idle(slot);
      }
      if (p) {
        if ('error' in r) p.reject(new Error(r.error));
        else p.resolve(r.result);
      }
      this.#dispatch();
    });
    const gone = (err: Error) => {
      const i = this.#slots.indexOf(slot);
      if (i >= 0) this.#slots.splice(i, 1);
      if (slot.idleTimer) clearTimeout(slot.idleTimer);
      const jobs = [...slot.jobs.values()];
      slot.jobs.clear();
      for (const p of jobs) p.reject(err);
      this.#dispatch();
    };
    worker.on('error', gone);
    worker.on('exit', (code) => gone(new Error(`${this.#o.name} worker exited (${code})`)));
    this.#slots.push(slot);
    return slot;
  }

  #idle(slot: Slot<R>): void {
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    slot.idleTimer = setTimeout(() => {
      if (slot.jobs.size === 0) void slot.worker.terminate();
    }, this.#o.idleMs);
    slot.idleTimer.unref();
  }

  /** Ends the workers; queued jobs and later ones are rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    const slots = this.#slots.splice(0);
    for (const p of this.#queue.splice(0)) p.reject(new Error(`${this.#o.name} pool closed`));
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
