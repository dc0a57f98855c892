// Durability of a commit made with synchronous=NORMAL, off the event loop. In WAL mode,
// synchronous=FULL is NORMAL plus an fsync of the WAL file inside COMMIT — on the event loop, where
// better-sqlite3 runs everything: the outbound profile had the loop blocked in those fsyncs for
// milliseconds per commit, and every session's reply waited behind them. The queue's commits
// (src/store/sqlite/queue.ts) are made with NORMAL instead and then made durable here: an fdatasync
// of the WAL file on libuv's thread pool (one fsync covers every frame written before it started;
// fsync is per file, any descriptor will do). Their callers are answered, and their after-commit
// work (blob files removed) done, only once it returned.

import { closeSync, fdatasync, openSync, statSync } from 'node:fs';

const noop = (): void => {};

export class WalSync {
  readonly #path: string;
  #fd: number | null = null;
  #ino = -1;

  constructor(dbPath: string) {
    this.#path = `${dbPath}-wal`;
  }

  /** The fdatasync running now, if any (settles when it is done, never rejects). */
  get running(): Promise<void> | null {
    return this.#running ? this.#running.then(noop, noop) : null;
  }

  /** The fdatasync running now, and the one that starts after it for the callers since. */
  #running: Promise<void> | null = null;
  #next: Promise<void> | null = null;

  /**
   * Resolves once everything written to the WAL so far is on disk. A call while an fdatasync runs
   * cannot count on it (it may have started before this caller's frames were written): it waits
   * for the next one, which every such caller shares (one fdatasync, one thread-pool round trip).
   */
  sync(): Promise<void> {
    if (!this.#running) return (this.#running = this.#start());
    return (this.#next ??= this.#running.then(
      () => this.#chain(),
      () => this.#chain(),
    ));
  }

  /** The queued fdatasync becomes the running one. */
  #chain(): Promise<void> {
    this.#next = null;
    return (this.#running = this.#start());
  }

  #start(): Promise<void> {
    const p = new Promise<void>((resolve, reject) => {
      let fd: number;
      try {
        fd = this.#open();
      } catch (err) {
        reject(err as Error);
        return;
      }
      fdatasync(fd, (err) => (err ? reject(err) : resolve()));
    });
    const done = () => {
      if (this.#running === p) this.#running = null;
    };
    p.then(done, done);
    return p;
  }

  /** When the path was last checked against the descriptor (performance.now()). */
  #checkedAt = -Infinity;

  /**
   * The WAL file's descriptor; again when the file is a new one (the last connection to close
   * deletes it). While the store's own connection is open SQLite keeps the file, so the path is
   * looked up again at most once a second, not per fdatasync: that statSync on the loop was ~1.5% of
   * its CPU under bench/imap-persistent.ts.
   */
  #open(): number {
    const t = performance.now();
    if (this.#fd !== null && t - this.#checkedAt < 1000) return this.#fd;
    this.#checkedAt = t;
    const ino = statSync(this.#path).ino;
    if (this.#fd === null || ino !== this.#ino) {
      if (this.#fd !== null) closeSync(this.#fd);
      this.#fd = null;
      this.#fd = openSync(this.#path, 'r');
      this.#ino = ino;
    }
    return this.#fd;
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
    this.#checkedAt = -Infinity;
  }
}
