// WAL checkpoints off the event loop. SQLite's automatic checkpoint (wal_autocheckpoint, every
// 1,000 pages) runs inside the COMMIT that crossed the mark, on the connection that committed:
// ours, on the event loop, where it writes the pages back and fsyncs the WAL and the database file
// (tens to hundreds of ms on a busy disk, for every session). The server turns it off and runs
// this instead: a worker thread with a connection of its own doing a PASSIVE checkpoint every
// `intervalMs` (checkpoint-worker.ts). The WAL stays bounded by what is written in an interval:
// once a checkpoint has copied every frame, the next writer starts the file over from the top and
// fsyncs its new header inside that COMMIT. So that writer is the worker too: it asks, the
// server's batches wait while it writes one row (`pause`, as they wait for a running fdatasync),
// and it says when it is done. (A FULL write() or the admin CLI committing meanwhile waits for
// its lock: rare, and bounded by the worker's one-row transaction. A batch committed between the
// worker's checkpoint and its request restarts the WAL itself, on the loop: strace under disk
// load saw a few a minute, 0.4-9 ms each.)

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
  return new Worker(new URL(`./checkpoint-worker${ext}`, here), { name: 'pb-checkpoint', workerData: { path, intervalMs }, resourceLimits: { maxYoungGenerationSizeMb: 2 } });
}

export class Checkpointer {
  readonly #worker: Worker;
  readonly #exited: Promise<void>;
  readonly #waiting: Array<(r: CheckpointResult | null) => void> = [];

  /** The end of the worker's WAL restart the server's commits wait for, if one runs. */
  #restarted: (() => void) | null = null;
  /** WAL restarts the worker made (tests). */
  restarts = 0;

  #closing = false;

  /**
   * `pause(fn)`: the server's batches wait until fn's promise settles (SqliteCommit.pause);
   * `lost()`: the worker ended without close() (the store goes back to SQLite's own checkpoints).
   */
  constructor(path: string, intervalMs: number, pause: (fn: () => Promise<void>) => void, lost: () => void, log?: Logger) {
    this.#worker = spawn(path, intervalMs);
    this.#worker.unref();
    type Msg = { kind: 'error'; error: string } | { kind: 'result'; result: CheckpointResult | null } | { kind: 'restart' } | { kind: 'restarted' };
    this.#worker.on('message', (m: Msg) => {
      if (m.kind === 'error') log?.warn('store.checkpoint-failed', { error: m.error });
      else if (m.kind === 'result') this.#waiting.shift()?.(m.result);
      else if (m.kind === 'restart') {
        pause(
          () =>
            new Promise<void>((r) => {
              this.#restarted = r;
              this.#worker.postMessage('go');
            }),
        );
      } else {
        this.restarts++;
        this.#endRestart();
      }
    });
    this.#worker.on('error', (err) => log?.error('store.checkpointer-failed', { error: err }));
    this.#exited = new Promise((r) =>
      this.#worker.once('exit', () => {
        this.#endRestart(); // never leave the commits waiting for a worker that is gone
        if (!this.#closing) lost();
        r();
      }),
    );
  }

  #endRestart(): void {
    const r = this.#restarted;
    this.#restarted = null;
    r?.();
  }

  /** One checkpoint now, on the worker (tests). */
  now(): Promise<CheckpointResult | null> {
    return new Promise((r) => {
      this.#waiting.push(r);
      this.#worker.postMessage('now');
    });
  }

  async close(): Promise<void> {
    // Referenced again: an unref'd worker's exit does not keep the process alive until the store is closed.
    this.#closing = true;
    this.#worker.ref();
    this.#worker.postMessage('stop');
    await this.#exited;
    for (const w of this.#waiting.splice(0)) w(null);
  }
}
