// SEARCH BODY / TEXT over blob files on worker threads. Scanning a big mailbox is one open, read and
// close per message plus decoding its text: on the event loop that would stall every other session
// for seconds, and on libuv's thread pool each of the three system calls is a round trip (a
// 100,000-message scan took 8 s). Workers read synchronously and decode in parallel, and the event
// loop only hands out chunks and merges the answers.
//
// - Workers (src/obs/worker-pool.ts, one chunk each at a time) start on first use (at most
//   `threads`) and end after `idleMs` without work; they never keep the process alive.
// - Items come in chunks (the store's slices of ~1,000), so a message to a worker stays small and
//   several searches share the workers fairly; answers are put back in item order.
// - Small scans (under `minItems`) and any chunk a worker fails on run on the event loop with the
//   same scanner (../body-search.ts), so a search never fails because a worker could not start.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { WorkerPool, type WorkerReply } from '../../obs/worker-pool.ts';
import { scanBodies, type BodyScanItem } from '../body-search.ts';

export interface ScanJob {
  id: number;
  items: BodyScanItem[];
  needles: string[];
}
export type ScanReply = WorkerReply<number[][]>;

/**
 * The worker's module. Run from the sources, it is the .ts next to this file (Node strips the
 * types); from the build (scripts/build.mjs), the .mjs the build writes next to the
 * bundle.
 */
function spawnWorker(dir: string): Worker {
  // A small young generation: a scan's garbage (one body and its text at a time) dies young, and
  // V8's default lets each worker grow to ~45 MB resident; 4 MB keeps it near 20 MB for a few
  // per cent of scan speed.
  const opts = { name: 'pb-body-scan', workerData: { dir }, resourceLimits: { maxYoungGenerationSizeMb: 4 } };
  const here = import.meta.url;
  const ext = here.endsWith('.ts') ? '.ts' : '.mjs';
  return new Worker(new URL(`./body-scan-worker${ext}`, here), opts);
}

export class BodyScanPool {
  readonly #threads: number;
  readonly #minItems: number;
  readonly #fallback: (blobId: string, start: number, end: number) => Promise<Buffer>;
  readonly #onWorkerError: (err: Error) => void;
  readonly #pool: WorkerPool<Omit<ScanJob, 'id'>, number[][]>;

  constructor(
    dir: string,
    fallbackRead: (blobId: string, start: number, end: number) => Promise<Buffer>,
    opts: { threads?: number; idleMs?: number; minItems?: number; onWorkerError?: (err: Error) => void } = {},
  ) {
    this.#fallback = fallbackRead;
    this.#onWorkerError = opts.onWorkerError ?? (() => {});
    this.#threads = Math.max(1, opts.threads ?? Math.min(4, availableParallelism()));
    this.#minItems = opts.minItems ?? 200;
    this.#pool = new WorkerPool({ spawn: () => spawnWorker(dir), threads: this.#threads, idleMs: opts.idleMs ?? 30_000, name: 'body-scan' });
  }

  /**
   * Per needle, the UIDs of the items whose text contains it (case-insensitively), in item order.
   * `chunks` may be produced lazily (the store reads the plans in slices between event-loop turns):
   * at most two chunks per worker are in flight, so the producer never runs far ahead.
   */
  async scan(chunks: AsyncIterable<BodyScanItem[]> | Iterable<BodyScanItem[]>, needles: readonly string[], total: number): Promise<number[][]> {
    if (needles.length === 0) return [];
    const inThread = this.#pool.closed || total < this.#minItems;
    const parts: Array<Promise<number[][]>> = [];
    let settled = 0;
    for await (const chunk of chunks) {
      if (chunk.length === 0) continue;
      if (inThread) {
        parts.push(Promise.resolve(await scanBodies(this.#fallback, chunk, needles)));
        continue;
      }
      const p = this.#pool.run({ items: chunk, needles: [...needles] }).catch((err: Error) => {
        this.#onWorkerError(err);
        return scanBodies(this.#fallback, chunk, needles);
      });
      p.catch(() => {}); // awaited below
      parts.push(p);
      while (parts.length - settled > 2 * this.#threads) await parts[settled++];
    }
    const results = await Promise.all(parts);
    return needles.map((_, k) => results.flatMap((r) => r[k]!));
  }

  /** Ends the workers; later scans run on the event loop. */
  async close(): Promise<void> {
    await this.#pool.close();
  }
}
