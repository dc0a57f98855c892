// `pillarbox serve --workers N` (N > 1): the primary process. It serves nothing itself: it has
// made the data folder ready (src/main.ts prepareData: migrations, the start-up recovery of bulk
// operations and garbage collection, the TLS certificate, the SRS secret — once, before any worker
// serves), then forks N workers (node:cluster; each runs `serve` again and binds the same
// listeners: cluster shares the listening sockets, connections are handed out round-robin),
// relays each worker's commit pings to the others (the notifier: src/store/sqlite/peers.ts),
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
}

/** Runs the workers until a stop signal; resolves with the exit code (a start-up failure's, or 0). */
export async function runPrimary(o: PrimaryOptions): Promise<number> {
  const slots: Slot[] = Array.from({ length: o.count }, (_, i) => ({ id: i + 1, worker: null, started: 0, ready: false, failures: 0, timer: null }));
  let stopping = false;
  let stopNow = false;
  let firstFailure: { message: string; code: number } | null = null;
  const exited = new Set<Promise<void>>();
  // A worker that just died may still look connected: the write fails (EPIPE) and is dropped.
  const send = (w: Worker | null, m: ToWorker) => {
    if (w?.isConnected()) w.send(m, undefined, () => {});
  };

  const fork = (slot: Slot, onReady: (m: Extract<FromWorker, { t: 'ready' }>) => void): Worker => {
    const w = cluster.fork({ [WORKER_ENV]: String(slot.id), PILLARBOX_WORKERS: String(o.count) });
    slot.worker = w;
    slot.ready = false;
    slot.started = Date.now();
    w.on('error', (err) => o.log.warn('server.worker-channel-error', { worker: slot.id, error: err }));
    w.on('message', (m: FromWorker) => {
      if (m.t === 'ping') {
        for (const s of slots) if (s !== slot) send(s.worker, m);
      } else if (m.t === 'ready') {
        slot.ready = true;
        onReady(m);
        recover();
      }
      else if (m.t === 'failed') firstFailure ??= { message: m.message, code: m.code };
    });
    const done = new Promise<void>((r) =>
      w.once('exit', (code, signal) => {
        r();
        exited.delete(done);
        if (slot.worker === w) {
          slot.worker = null;
          slot.ready = false;
        }
        if (stopping) return;
        o.log.warn('server.worker-exited', { worker: slot.id, pid: w.process.pid, code, signal });
        if (w.process.pid) dead.add(w.process.pid);
        recover();
        restart(slot);
      }),
    );
    exited.add(done);
    if (stopping) send(w, { t: 'stop', now: stopNow });
    return w;
  };

  // Pids of dead workers whose half-done work (a staged COPY) a live worker is to undo.
  const dead = new Set<number>();
  const recover = () => {
    const live = slots.find((s) => s.ready && s.worker?.isConnected());
    if (!live) return; // the next worker to be ready does it
    for (const pid of dead) send(live.worker, { t: 'recover', pid });
    dead.clear();
  };

  const restart = (slot: Slot) => {
    if (Date.now() - slot.started > STABLE_MS) slot.failures = 0;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** slot.failures++);
    slot.timer = setTimeout(() => {
      slot.timer = null;
      if (stopping) return;
      const w = fork(slot, () => o.log.info('server.worker-restarted', { worker: slot.id, pid: w.process.pid }));
    }, delay);
  };

  // Start: every worker ready, or the first failure (the others are stopped).
  const started = await new Promise<{ ports: Ports; tls: string; store: string } | null>((resolve) => {
    let ready = 0;
    let first: { ports: Ports; tls: string; store: string } | null = null;
    for (const slot of slots) {
      const w = fork(slot, (m) => {
        o.log.info('server.worker-ready', { worker: slot.id, pid: w.process.pid });
        first ??= { ports: m.ports, tls: m.tls, store: m.store };
        if (JSON.stringify(m.ports) !== JSON.stringify(first.ports)) {
          firstFailure ??= { message: `worker ${slot.id} bound other ports than worker 1 (${JSON.stringify(m.ports)})`, code: 70 };
          resolve(null);
        } else if (++ready === o.count) resolve(first);
      });
      w.once('exit', () => {
        if (ready < o.count) resolve(null);
      });
    }
  });
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  let stopped!: () => void;
  const allStopped = new Promise<void>((r) => (stopped = r));
  const stopAll = (now: boolean) => {
    stopping = true;
    stopNow ||= now;
    for (const s of slots) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = null;
      send(s.worker, { t: 'stop', now: stopNow });
    }
    void (async () => {
      while (exited.size) await Promise.all([...exited]);
      stopped();
    })();
  };
  if (!started) {
    stopAll(true);
    await allStopped;
    const f = firstFailure as { message: string; code: number } | null;
    if (f) throw Object.assign(new Error(f.message), { exitCode: f.code });
    throw Object.assign(new Error('a worker process exited during start-up'), { exitCode: 70 });
  }
  let count = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    count++;
    o.onSignal(sig, count);
    stopAll(count > 1);
  };
  const onHup = () => {
    for (const s of slots) s.worker?.process.kill('SIGHUP');
  };
  for (const s of signals) process.on(s, onSignal);
  process.on('SIGHUP', onHup);
  o.ready(started.ports, started.tls, started.store);
  await allStopped;
  for (const s of signals) process.off(s, onSignal);
  process.off('SIGHUP', onHup);
  return 0;
}
