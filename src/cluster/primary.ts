// `pillarbox serve --workers N` (N > 1): the primary process. It serves nothing itself: it has
// made the data folder ready (src/main.ts prepareData: migrations, the start-up recovery of bulk
// operations and garbage collection, the TLS certificate, the SRS secret — once, before any worker
// serves), then forks N workers (node:cluster; each runs `serve` again and binds the same
// listeners: cluster shares the listening sockets, connections are handed out round-robin),
// relays each worker's commit pings to the other workers that have local subscribers of the account
// (the notifier: src/store/sqlite/peers.ts; a worker says so with 'want'; a ping nobody wants
// wakes nobody),
// prints the banner and writes the ports file once every worker listens, restarts a worker that
// died (backoff 100 ms doubling to 5 s, reset after 30 s up), forwards SIGHUP, and on SIGTERM/SIGINT
// asks every worker to drain and stop (a second signal: stop now) and returns once all have exited.
// What must run once per database (journal pruning, the WAL checkpointer) runs in worker 1.

import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../obs/log.ts';
import { WORKER_ENV, type FromWorker, type Ports, type ToWorker } from './messages.ts';

export interface PrimaryOptions {
  count: number;
  log: Logger;
  /** Every worker listens: print the banner (then write the ports file). */
  ready(ports: Ports, tls: string, store: string): void;
  /** Printed on each stop signal. */
  onSignal(sig: NodeJS.Signals, count: number): void;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;
const STABLE_MS = 30_000;

interface Slot {
  id: number;
  worker: Worker | null;
  started: number;
  ready: boolean;
  failures: number;
  timer: NodeJS.Timeout | null;
  /** The accounts whose pings this worker wants (its 'want' messages; empty again at each fork). */
  wants: Set<number>;
}

type Started = { ports: Ports; tls: string; store: string };

/** The primary's state: one slot per worker id, what is stopping, what dead workers left to undo. */
class Workers {
  readonly #o: PrimaryOptions;
  readonly slots: Slot[];
  #stopping = false;
  #stopNow = false;
  failure: { message: string; code: number } | null = null;
  readonly #exited = new Set<Promise<void>>();
  /** Pids of dead workers whose half-done work (a staged COPY) a live worker is to undo. */
  readonly #dead = new Set<number>();

  constructor(o: PrimaryOptions) {
    this.#o = o;
    this.slots = Array.from({ length: o.count }, (_, i) => ({ id: i + 1, worker: null, started: 0, ready: false, failures: 0, timer: null, wants: new Set<number>() }));
  }

  /** A worker that just died may still look connected: the write fails (EPIPE) and is dropped. */
  #send(w: Worker | null, m: ToWorker): void {
    if (w?.isConnected()) w.send(m, undefined, () => {});
  }

  fork(slot: Slot, onReady: (m: Extract<FromWorker, { t: 'ready' }>) => void): Worker {
    const w = cluster.fork({ [WORKER_ENV]: String(slot.id), PILLARBOX_WORKERS: String(this.#o.count) });
    Object.assign(slot, { worker: w, ready: false, started: Date.now(), wants: new Set<number>() });
    w.on('error', (err) => this.#o.log.warn('server.worker-channel-error', { worker: slot.id, error: err }));
    w.on('message', (m: FromWorker) => {
      if (m.t === 'ping') {
        for (const s of this.slots) if (s !== slot && s.wants.has(m.a)) this.#send(s.worker, m);
      } else if (m.t === 'want') {
        if (slot.worker !== w) return; // a message of the worker this slot had before
        if (!m.on) slot.wants.delete(m.a);
        else if (!slot.wants.has(m.a)) {
          slot.wants.add(m.a);
          this.#send(w, { t: 'wanted', a: m.a });
        }
      } else if (m.t === 'ready') {
        slot.ready = true;
        onReady(m);
        this.#recover();
      } else if (m.t === 'failed') this.failure ??= { message: m.message, code: m.code };
    });
    const done = new Promise<void>((r) => w.once('exit', (code, signal) => (r(), this.#exit(slot, w, done, code, signal))));
    this.#exited.add(done);
    if (this.#stopping) this.#send(w, { t: 'stop', now: this.#stopNow });
    return w;
  }

  #exit(slot: Slot, w: Worker, done: Promise<void>, code: number | null, signal: string | null): void {
    this.#exited.delete(done);
    if (slot.worker === w) Object.assign(slot, { worker: null, ready: false });
    if (this.#stopping) return;
    this.#o.log.warn('server.worker-exited', { worker: slot.id, pid: w.process.pid, code, signal });
    if (w.process.pid) this.#dead.add(w.process.pid);
    this.#recover();
    this.#restart(slot);
  }

  #recover(): void {
    const live = this.slots.find((s) => s.ready && s.worker?.isConnected());
    if (!live) return; // the next worker to be ready does it
    for (const pid of this.#dead) this.#send(live.worker, { t: 'recover', pid });
    this.#dead.clear();
  }

  #restart(slot: Slot): void {
    if (Date.now() - slot.started > STABLE_MS) slot.failures = 0;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** slot.failures++);
    slot.timer = setTimeout(() => {
      slot.timer = null;
      if (this.#stopping) return;
      const w = this.fork(slot, () => this.#o.log.info('server.worker-restarted', { worker: slot.id, pid: w.process.pid }));
    }, delay);
  }

  /** Every worker ready (with the same ports), or null at the first failure. */
  start(): Promise<Started | null> {
    return new Promise((resolve) => {
      let ready = 0;
      let first: Started | null = null;
      for (const slot of this.slots) {
        const w = this.fork(slot, (m) => {
          this.#o.log.info('server.worker-ready', { worker: slot.id, pid: w.process.pid });
          first ??= { ports: m.ports, tls: m.tls, store: m.store };
          if (JSON.stringify(m.ports) !== JSON.stringify(first.ports)) {
            this.failure ??= { message: `worker ${slot.id} bound other ports than worker 1 (${JSON.stringify(m.ports)})`, code: 70 };
            resolve(null);
          } else if (++ready === this.#o.count) resolve(first);
        });
        w.once('exit', () => {
          if (ready < this.#o.count) resolve(null);
        });
      }
    });
  }

  /** Asks every worker to stop (`now`: cut the drain short); resolves once all have exited. */
  async stop(now: boolean): Promise<void> {
    this.#stopping = true;
    this.#stopNow ||= now;
    for (const s of this.slots) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = null;
      this.#send(s.worker, { t: 'stop', now: this.#stopNow });
    }
    while (this.#exited.size) await Promise.all([...this.#exited]);
  }
}

/** Runs the workers until a stop signal; resolves with the exit code (a start-up failure's, or 0). */
export async function runPrimary(o: PrimaryOptions): Promise<number> {
  const workers = new Workers(o);
  const started = await workers.start();
  if (!started) {
    await workers.stop(true);
    const f = workers.failure;
    throw Object.assign(new Error(f?.message ?? 'a worker process exited during start-up'), { exitCode: f?.code ?? 70 });
  }
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  let count = 0;
  let stopped: Promise<void> | null = null;
  let stoppedNow: () => void;
  const allStopped = new Promise<void>((r) => (stoppedNow = r));
  const onSignal = (sig: NodeJS.Signals) => {
    o.onSignal(sig, ++count);
    const p = workers.stop(count > 1);
    stopped ??= p.then(() => stoppedNow());
  };
  const onHup = () => {
    for (const s of workers.slots) s.worker?.process.kill('SIGHUP');
  };
  for (const s of signals) process.on(s, onSignal);
  process.on('SIGHUP', onHup);
  o.ready(started.ports, started.tls, started.store);
  await allStopped;
  for (const s of signals) process.off(s, onSignal);
  process.off('SIGHUP', onHup);
  return 0;
}
