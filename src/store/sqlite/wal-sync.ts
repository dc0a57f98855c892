// Durability of a commit made with synchronous=NORMAL, off the event loop. In WAL mode,
// synchronous=FULL is NORMAL plus an fsync of the WAL file inside COMMIT — on the event loop, where
// better-sqlite3 runs everything: the outbound profile had the loop blocked in those fsyncs for
// milliseconds per commit, and every session's reply waited behind them. The queue's commits
// (src/store/sqlite/queue.ts) are made with NORMAL instead and then made durable here: an fdatasync
// of the WAL file on libuv's thread pool (one fsync covers every frame written before it started;
// fsync is per file, any descriptor will do). Their callers are answered, and their after-commit
// work (blob files removed) done, only once it returned.

import { closeSync, fdatasync, openSync, statSync } from 'node:fs';

export class WalSync {
  readonly #path: string;
  #fd: number | null = null;
  #ino = -1;

  constructor(dbPath: string) {
    this.#path = `${dbPath}-wal`;
  }

  /** Resolves once everything written to the WAL so far is on disk. */
  sync(): Promise<void> {
    let fd: number;
    try {
      fd = this.#open();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
  }

  /** The WAL file's descriptor; again when the file is a new one (the last connection to close deletes it). */
  #open(): number {
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
  }
}
