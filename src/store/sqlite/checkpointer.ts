// WAL checkpoints off the event loop. SQLite's automatic checkpoint (wal_autocheckpoint, every
// 1,000 pages) runs inside the COMMIT that crossed the mark, on the connection that committed:
// ours, on the event loop, where it writes the pages back and fsyncs the WAL and the database file
// (tens to hundreds of ms on a busy disk, for every session). The server turns it off and runs
// this instead: a worker thread with a connection of its own doing a PASSIVE checkpoint every
// `intervalMs` (checkpoint-worker.ts). The WAL stays bounded by what is written in an interval:
// once a checkpoint has copied every frame, the next writer starts the file over from the top.
// (That restart writes a new WAL header, which SQLite fsyncs in that COMMIT: one fsync on the
// loop per interval under a steady load, instead of one per checkpoint and per FULL commit.)

import { Worker } from 'node:worker_threads';
import type { Logger } from '../../obs/log.ts';

export interface CheckpointResult {
  /** 1 if a lock kept the checkpoint from copying every frame. */
  busy: number;
  /** Frames in the WAL. */
  log: number;
  /** Frames of it now in the database file. */
  checkpointed: number;
}

/**
 * The worker's module. Run from the sources, it is the .ts next to this file (Node strips the
 * types); from the build (scripts/build.mjs), the .mjs the build writes next to the bundle.
 */
function spawn(path: string, intervalMs: number): Worker {
  const here = import.meta.url;
  const ext = here.endsWith('.ts') ? '.ts' : '.mjs';
  return new Worker(new URL(`./checkpoint-worker${ext}`, here), { workerData: { path, intervalMs }, resourceLimits: { maxYoungGenerationSizeMb: 2 } });
}

export class Checkpointer {
  readonly #worker: Worker;
  readonly #exited: Promise<void>;
  readonly #waiting: Array<(r: CheckpointResult | null) => void> = [];

  constructor(path: string, intervalMs: number, log?: Logger) {
    this.#worker = spawn(path, intervalMs);
    this.#worker.unref();
    this.#worker.on('message', (m: { kind: 'error'; error: string } | { kind: 'result'; result: CheckpointResult | null }) => {
      if (m.kind === 'error') log?.warn('store.checkpoint-failed', { error: m.error });
      else this.#waiting.shift()?.(m.result);
    });
    this.#worker.on('error', (err) => log?.error('store.checkpointer-failed', { error: err }));
    this.#exited = new Promise((r) => this.#worker.once('exit', () => r()));
  }

  /** One checkpoint now, on the worker (tests). */
  now(): Promise<CheckpointResult | null> {
    return new Promise((r) => {
      this.#waiting.push(r);
      this.#worker.postMessage('now');
    });
  }

  async close(): Promise<void> {
    this.#worker.postMessage('stop');
    await this.#exited;
    for (const w of this.#waiting.splice(0)) w(null);
  }
}
