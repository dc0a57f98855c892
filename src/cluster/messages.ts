// What the primary and its worker processes say to each other over the cluster IPC channel
// (src/cluster/primary.ts, src/cluster/worker.ts). Plain JSON objects.

import type { PortName } from '../config/config.ts';

export type Ports = Record<PortName, number> & { lmtp?: number };

/** Worker → primary. */
export type FromWorker =
  /** Every listener accepts connections. */
  | { t: 'ready'; ports: Ports; tls: string; store: string }
  /** Start-up failed (the CLI's message and exit code). */
  | { t: 'failed'; message: string; code: number }
  /** A commit of this worker is durable: the account's journal head (for the other workers that want it). */
  | { t: 'ping'; a: number; h: number }
  /** This worker now has local subscribers of account `a` (`on`), or none any more: the pings it wants. */
  | { t: 'want'; a: number; on: boolean };

/** Primary → worker. */
export type ToWorker =
  /** Another worker's commit (FromWorker 'ping', forwarded to the workers that want account `a`). */
  | { t: 'ping'; a: number; h: number }
  /**
   * The primary now forwards account `a`'s pings (answers 'want' on): the worker pulls the journal
   * once, for a commit whose ping came before this and was not forwarded.
   */
  | { t: 'wanted'; a: number }
  /** Worker process `pid` died: undo what it left half done in the store (Store.recoverProcess). */
  | { t: 'recover'; pid: number }
  /** Drain and stop; `now`: cut the drain short (a second signal). */
  | { t: 'stop'; now: boolean };

/** The environment variable that tells a forked process it is worker N (1-based). */
export const WORKER_ENV = 'PILLARBOX_WORKER_ID';
