// How many password checks (scrypt) run at once, process-wide, and how many may wait for one.
//
// Why: one scrypt check at the stored cost (ln=15, r=8, src/auth/password.ts) allocates
// 128·N·r = 32 MiB for its whole run (OpenSSL's V array, malloc'd on a libuv thread) and occupies
// one of libuv's threads — 4 by default, shared with every file write, fsync and dns.lookup. Any
// unauthenticated client can start one (an unknown name is checked against a dummy hash, so a miss
// costs what a wrong password costs), and the throttle spaces (name, source) pairs, not the
// process. Before this gate, concurrent failed logins from fresh names held 4 × 32 = 128 MiB of
// RSS at once (measured: server RSS 148 → 276 MB for 4–32 parallel LOGINs; the IMAP fuzzer's
// seed-12 RSS trip was that on top of its working set) and queued the store's file I/O behind
// them. With the gate: at most `concurrency` × 32 MiB, and libuv threads left for I/O.
//
// Beyond `queue` waiting checks the attempt is refused unchecked ('busy': IMAP NO [UNAVAILABLE],
// POP3 -ERR [SYS/TEMP], SMTP 454 4.7.0), never counted as a failure. A login the login cache
// knows (src/auth/login-cache.ts) costs no check, so returning users get in while a flood runs.

export const BUSY: unique symbol = Symbol('password checks busy');

export class CheckGate {
  readonly concurrency: number;
  readonly queue: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(concurrency: number, queue: number) {
    this.concurrency = Math.max(1, Math.floor(concurrency));
    this.queue = Math.max(0, Math.floor(queue));
  }

  get running(): number {
    return this.#running;
  }
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs `check` when a slot is free (FIFO), or returns BUSY at once when the queue is full. */
  async run<T>(check: () => Promise<T>): Promise<T | typeof BUSY> {
    if (this.#running >= this.concurrency) {
      if (this.#waiting.length >= this.queue) return BUSY;
      // The slot is handed over by release(): #running stays counted across the hand-over.
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else this.#running++;
    try {
      return await check();
    } finally {
      this.#release();
    }
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#running--;
  }
}
