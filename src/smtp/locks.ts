// In-process locks keyed by number (account id). Deliveries to the same account take turns between
// their quota check and their commit, so concurrent SMTP sessions of this process never both pass a
// check that only one of them fits. (The store's own check inside its transaction stays the real
// guard; this only makes the SMTP layer's answer exact.)

export class KeyedLocks {
  readonly #tails = new Map<number, Promise<void>>();

  /** Locks every key (in ascending order, so two callers can't deadlock); resolves to the unlock function. */
  async acquire(keys: Iterable<number>): Promise<() => void> {
    const sorted = [...new Set(keys)].sort((a, b) => a - b);
    const releases: Array<() => void> = [];
    for (const k of sorted) releases.push(await this.#one(k));
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const r of releases.reverse()) r();
    };
  }

  async #one(key: number): Promise<() => void> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.#tails.set(key, tail);
    await prev;
    return () => {
      release();
      // Drop the entry when nobody queued behind us.
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    };
  }
}
