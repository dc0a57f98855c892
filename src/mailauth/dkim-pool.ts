// DKIM signing (./dkim.ts) on worker threads. A profile of the outbound benchmark put an eighth of
// the event loop's time in signing (RSA-2048 and ed25519 per message, mailauth's canonicalisation
// and each PEM parsed again): on a worker it runs beside the sessions, on another core when there
// is one, and the event loop only posts the message and takes the header fields back.
//
// - Workers (src/obs/worker-pool.ts) start on first use (at most `threads`), take up to PER_WORKER
//   jobs at once (the next message is already there when one is signed), end after `idleMs`
//   without work, and never keep the process alive.
// - A job whose worker could not start, failed or exited is signed on the event loop with the same
//   signer, so a message is never sent unsigned because of the pool; after close() too.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { WorkerPool, type WorkerReply } from '../obs/worker-pool.ts';
import type { DkimKey } from '../store/dkim-keys.ts';
import { signWithKeys, type SignResult } from './dkim.ts';

export interface SignJob {
  id: number;
  message: Uint8Array;
  domain: string;
  keys: DkimKey[];
  now: number;
}
export type SignReply = WorkerReply<SignResult>;

/** Jobs one worker has at once. */
const PER_WORKER = 4;

/**
 * The worker's young generation, MB. A job's garbage (one message) dies young, but with PER_WORKER
 * jobs in flight a small one fills while they are still alive: at 4 MB the signing pool measured
 * 0.78–0.88 ms of CPU per 10 KB message (all threads, parallel scavenges included), at 16 MB
 * 0.72–0.80, a quarter as many scavenges; the cost is up to 12 MB more per worker.
 */
const YOUNG_MB = 16;

/** The worker's module: the .ts next to this file from the sources, the .mjs next to the bundle from the build. */
function spawnWorker(): Worker {
  const here = import.meta.url;
  const ext = here.endsWith('.ts') ? '.ts' : '.mjs';
  return new Worker(new URL(`./dkim-worker${ext}`, here), { name: 'pb-dkim', resourceLimits: { maxYoungGenerationSizeMb: YOUNG_MB } });
}

export class DkimSignerPool {
  readonly #threads: number;
  readonly #onWorkerError: (err: Error) => void;
  readonly #pool: WorkerPool<Omit<SignJob, 'id'>, SignResult>;

  constructor(opts: { threads?: number; idleMs?: number; onWorkerError?: (err: Error) => void } = {}) {
    this.#threads = Math.max(0, opts.threads ?? Math.min(4, availableParallelism()));
    this.#onWorkerError = opts.onWorkerError ?? (() => {});
    this.#pool = new WorkerPool({ spawn: spawnWorker, threads: this.#threads, perWorker: PER_WORKER, idleMs: opts.idleMs ?? 30_000, name: 'DKIM' });
  }

  /** Signs `message` for `domain` with `keys` (see signWithKeys). */
  async sign(message: Buffer, domain: string, keys: DkimKey[], now = Date.now()): Promise<SignResult> {
    if (keys.length === 0) return { headers: '', selectors: [], errors: [] };
    if (this.#pool.closed || this.#threads === 0) return signWithKeys(message, domain, keys, now);
    try {
      return await this.#pool.run({ message, domain, keys, now });
    } catch (err) {
      if (!this.#pool.closed) this.#onWorkerError(err as Error);
      return signWithKeys(message, domain, keys, now);
    }
  }

  /** Ends the workers; jobs still queued or in flight, and later ones, are signed on the event loop. */
  async close(): Promise<void> {
    await this.#pool.close();
  }
}
