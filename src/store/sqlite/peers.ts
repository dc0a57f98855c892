// Several server processes on one SQLite file and blob folder (`--workers N`, src/cluster/): what
// the SQLite store does differently when it has peers (SqliteStoreOptions.peers).
//
// - The notifier: after a commit is durable and its Changes are published here, the account's new
//   journal head goes to the peers (`RelayBus`, one message per account and event-loop turn, sent
//   by the caller's `relay`: process.send to the primary, which forwards it). A peer's ping is
//   handed to the bus's `notify` and the store's bus is a FollowingBus (src/store/follow-bus.ts),
//   exactly as on PostgreSQL: the follower pulls the journal and `sqliteReadFlags` fills in the
//   current flags of the pulled message entries.
// - The read gate across processes (`ForeignCommits`): another process commits with
//   synchronous=NORMAL and is durable only after its own fdatasync, but its rows are visible here at
//   once. `PRAGMA data_version` (changes only when another connection committed) says whether
//   anything came from elsewhere since the last check; if so, reads wait for one fdatasync of the
//   WAL from here (fsync is per file: it covers every frame any process wrote before it started),
//   then check again (a commit during the sync: another round, at most MAX_ROUNDS). See
//   docs/architecture.md "Durability (SQLite)" for the window that leaves.
// - Body files: a pin (a body staged and not referenced yet) is in its process's memory, so a
//   file whose last reference went is not unlinked at once: the commit records it in dead_blobs
//   (`deferDeadBlobs`, before COMMIT), and `DeadBlobSweeper` unlinks those older than GRACE_MS
//   that no blobs row names again, inside a write transaction (under the lock, so no peer can
//   add a reference between the check and the unlink). A new blobs row checks, under the lock,
//   that its file is still there (MessageWrites.fileGone): a body staged here whose file a peer
//   swept makes its write fail (a temporary error), never a reference to a missing file.

import type Database from 'better-sqlite3';
import type { Change, ChangeBus, ChangeListener } from '../bus.ts';
import { FollowingBus, flagKey, type ReadFlags, type ResyncSource } from '../follow-bus.ts';
import type { ChangeJournal } from '../journal.ts';
import type { Logger } from '../../obs/log.ts';
import type { WalSync } from './wal-sync.ts';
import type { Query, Tx } from './writes.ts';
import type { FsBlobStore } from '../blob/fs-blob-store.ts';

/** What a store with peers is given: how to tell them an account's journal moved. */
export interface SqlitePeers {
  /** Called after a durable commit, per account: its journal head now. */
  relay(accountId: number, head: number): void;
  /**
   * The account got its first local subscriber (`on`) or lost its last: the pings this process
   * needs (the FollowingBus's `interest`). Absent: every ping is handed to every process.
   */
  want?(accountId: number, on: boolean): void;
}

/**
 * busy_timeout with peers, ms: what a read or a FULL write() may wait on the loop for a peer's
 * write lock (held for one group commit, a bulk step of at most ~10 ms, or a WAL restart).
 */
export const PEER_BUSY_MS = 50;

/** The bus sessions subscribe to when peers commit too: their changes pulled from the journal on a ping. */
export function followPeers(
  inner: ChangeBus,
  store: Pick<ChangeJournal, 'changesSince' | 'journalHead'> & ResyncSource,
  q: Query,
  read: <T>(fn: () => Promise<T>) => Promise<T>,
  log?: Logger,
  want?: (accountId: number, on: boolean) => void,
): FollowingBus {
  return new FollowingBus(inner, { changesSince: (a, s, l) => store.changesSince(a, s, l), journalHead: (a) => store.journalHead(a) }, sqliteReadFlags(q, read), {
    resync: store,
    onResync: (accountId, head) => log?.warn('store.follow-resync', { account: accountId, head }),
    ...(want ? { interest: want } : {}),
  });
}

/** Publishes to the inner bus, then relays each account's new head to the peers (batched per turn). */
export class RelayBus implements ChangeBus {
  readonly #inner: ChangeBus;
  readonly #relay: (accountId: number, head: number) => void;
  readonly #heads = new Map<number, number>();
  #scheduled = false;

  constructor(inner: ChangeBus, relay: (accountId: number, head: number) => void) {
    this.#inner = inner;
    this.#relay = relay;
  }

  publish(changes: readonly Change[]): void {
    this.#inner.publish(changes);
    for (const c of changes) {
      if (c.seq === undefined) continue;
      if ((this.#heads.get(c.accountId) ?? 0) < c.seq) this.#heads.set(c.accountId, c.seq);
    }
    if (this.#heads.size && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  #flush(): void {
    this.#scheduled = false;
    const heads = [...this.#heads];
    this.#heads.clear();
    for (const [a, h] of heads) {
      try {
        this.#relay(a, h);
      } catch (err) {
        console.error('change relay failed:', err);
      }
    }
  }

  subscribe(accountId: number, listener: ChangeListener): () => void {
    return this.#inner.subscribe(accountId, listener);
  }

  notify(accountId: number, head: number): void {
    this.#inner.notify(accountId, head);
  }

  onNotify(accountId: number, listener: (head: number) => void): () => void {
    return this.#inner.onNotify(accountId, listener);
  }
}

/** Current flags and keywords of messages by (mailbox, UID): point reads on the primary key. */
export function sqliteReadFlags(q: Query, read: <T>(fn: () => Promise<T>) => Promise<T>): ReadFlags {
  return (keys) =>
    read(async () => {
      const st = q('SELECT system_flags, keywords FROM messages WHERE mailbox_id = ? AND uid = ?').raw();
      const out = new Map<string, { systemFlags: number; keywords: string[] }>();
      for (const k of keys) {
        const r = st.get(k.mailboxId, k.uid) as [number, string] | undefined;
        if (r) out.set(flagKey(k.mailboxId, k.uid), { systemFlags: r[0], keywords: JSON.parse(r[1]) as string[] });
      }
      return out;
    });
}

/** Rounds of "sync, then check again" before a read goes on while other processes keep committing. */
const MAX_ROUNDS = 3;

/** Other processes' commits, made durable before this process reads them (see the header). */
export class ForeignCommits {
  readonly #version: Database.Statement;
  readonly #walSync: WalSync;
  #verified: number;
  #syncing: Promise<void> | null = null;
  /** fdatasyncs made for other processes' commits (tests, metrics). */
  syncs = 0;

  constructor(db: Database.Database, walSync: WalSync) {
    this.#version = db.prepare('PRAGMA data_version').pluck();
    this.#walSync = walSync;
    this.#verified = this.#version.get() as number;
  }

  /** Null when nothing was committed elsewhere since the last check; else resolves once it is durable. */
  check(): Promise<void> | null {
    if (this.#syncing) return this.#syncing;
    if ((this.#version.get() as number) <= this.#verified) return null;
    return (this.#syncing = this.#sync().finally(() => (this.#syncing = null)));
  }

  /** data_version now (it only grows, within a connection): read before an fdatasync of this process's own. */
  version(): number {
    return this.#version.get() as number;
  }

  /** This process's own fdatasync, started after `v` was read, returned: everything `v` counted is durable. */
  covered(v: number): void {
    if (v > this.#verified) this.#verified = v;
  }

  async #sync(): Promise<void> {
    for (let i = 0; i < MAX_ROUNDS; i++) {
      const v = this.#version.get() as number;
      if (v <= this.#verified) return;
      this.syncs++;
      await this.#walSync.sync();
      this.#verified = v;
    }
  }
}

/** Inside the write transaction, before COMMIT: the commit's dead body files become dead_blobs rows. */
export function deferDeadBlobs(q: Query, tx: Tx): void {
  if (tx.deadBlobs.length === 0) return;
  const ins = q('INSERT INTO dead_blobs (id, at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at');
  const at = Date.now();
  for (const id of tx.deadBlobs) ins.run(id, at);
  tx.deadBlobs.length = 0;
}

/** How long a dead body file stays (a peer's stage-to-commit is far shorter), and how often the sweep runs. */
export const DEAD_BLOB_GRACE_MS = 60_000;
const SWEEP_EVERY_MS = 30_000;
const SWEEP_STEP = 200;
const STEP_MS = 10;

/** Unlinks dead body files no row names any more (see the header). */
export class DeadBlobSweeper {
  readonly #q: Query;
  readonly #blobs: FsBlobStore;
  readonly #batched: <T>(fn: (tx: Tx) => T) => Promise<T>;
  readonly #timer: NodeJS.Timeout;
  #running: Promise<number> | null = null;

  constructor(q: Query, blobs: FsBlobStore, batched: <T>(fn: (tx: Tx) => T) => Promise<T>, log?: Logger) {
    this.#q = q;
    this.#blobs = blobs;
    this.#batched = batched;
    this.#timer = setInterval(() => {
      if (!this.#running) this.sweep().catch((err) => log?.warn('store.blob-sweep-failed', { error: err instanceof Error ? err : String(err) }));
    }, SWEEP_EVERY_MS);
    this.#timer.unref();
  }

  /** One pass (steps of SWEEP_STEP rows, each a write of the group commit); returns the files removed. */
  sweep(graceMs = DEAD_BLOB_GRACE_MS): Promise<number> {
    const run = async () => {
      let removed = 0;
      let after = '';
      for (;;) {
        const r = await this.#batched(() => this.#step(Date.now() - graceMs, after));
        removed += r.removed;
        if (r.last === null) return removed;
        after = r.last;
      }
    };
    return (this.#running ??= run().finally(() => (this.#running = null)));
  }

  #step(before: number, after: string): { removed: number; last: string | null } {
    const rows = this.#q('SELECT id FROM dead_blobs WHERE id > ? AND at < ? ORDER BY id LIMIT CAST(? AS INTEGER)').pluck().all(after, before, SWEEP_STEP) as string[];
    const named = this.#q('SELECT 1 FROM blobs WHERE id = ?').pluck();
    const del = this.#q('DELETE FROM dead_blobs WHERE id = ?');
    let removed = 0;
    // Unlinks run under the write lock, on the loop: a step also stops after STEP_MS (a slow disk).
    const until = performance.now() + STEP_MS;
    for (let i = 0; i < rows.length; i++) {
      const id = rows[i]!;
      if (named.get(id) !== undefined) del.run(id); // referenced again: the file stays
      else if (this.#blobs.unlinkNow(id)) {
        del.run(id);
        removed++;
      } // pinned here: the next pass
      if (i + 1 < rows.length && performance.now() > until) return { removed, last: id };
    }
    return { removed, last: rows.length === SWEEP_STEP ? rows[rows.length - 1]! : null };
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running?.catch(() => 0);
  }
}
