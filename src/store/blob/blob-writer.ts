// Bodies that arrived whole in memory (under STAGE_BUFFER: nearly every APPEND and delivery) are
// written to disk on worker threads (blob-write-worker.ts), one round trip for the whole
// write-fsync-rename-fsync sequence instead of one per step (fs-blob-store.ts `stage`).
// A job that fails for any reason (a worker that cannot start or dies, an I/O error) is rejected
// and the caller does the same steps on the event loop's thread pool, as without the writer:
// what the worker did is harmless to repeat (a temp file of its own, the same bytes renamed over).
import { Worker } from 'node:worker_threads';
import { WorkerPool } from '../../obs/worker-pool.ts';

/** One body to write: its bytes (transferred, not copied), the temp path, the final path and its folder. */
export interface WriteJob {
  data: ArrayBuffer;
  tmp: string;
  final: string;
  folder: string;
}

/** The worker's module: the .ts next to this file from the sources, the .mjs next to the bundle (scripts/build.mjs). */
function spawnWorker(): Worker {
  const here = import.meta.url;
  const ext = here.endsWith('.ts') ? '.ts' : '.mjs';
  // Small: a job's garbage is one body.
  return new Worker(new URL(`./blob-write-worker${ext}`, here), { name: 'pb-blob-write', resourceLimits: { maxYoungGenerationSizeMb: 2 } });
}

export class BlobWriter {
  readonly #pool: WorkerPool<WriteJob, true>;
  /** Bodies written by the workers, and jobs that failed (then written by the caller): tests, metrics. */
  written = 0;
  failed = 0;

  /** `threads`: bodies written (and fsync'd) at once; each worker ends after `idleMs` without work. */
  constructor(threads = 2, idleMs = 30_000) {
    this.#pool = new WorkerPool({ spawn: spawnWorker, threads, perWorker: 2, idleMs, name: 'blob-write' });
  }

  /** Writes `bufs` (size bytes in all) to `final` through `tmp`; durable, folder included, when it resolves. */
  write(bufs: readonly Buffer[], size: number, tmp: string, final: string, folder: string): Promise<true> {
    // One fresh ArrayBuffer, handed over whole: a Buffer is often a view of a bigger shared one.
    const data = new Uint8Array(size);
    let off = 0;
    for (const b of bufs) {
      data.set(b, off);
      off += b.length;
    }
    return this.#pool.run({ data: data.buffer, tmp, final, folder }, [data.buffer]).then(
      (r) => (this.written++, r),
      (err: unknown) => {
        this.failed++;
        throw err;
      },
    );
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}
