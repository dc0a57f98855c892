// The event loop serves every user: one long synchronous stretch stalls them all. This file has
// three small tools for that:
//
// - `activity`: cheap labels of what the process is doing ("imap.command=UID MOVE account=…
//   mailbox=…", "store.bulk op=copy …"). Sessions and the store open one around a command or a big
//   operation (`begin()` returns the function that closes it); a stall report names the ones open.
// - `LoopBudget`: for loops over many items (a 131,072-message STORE, EXPUNGE, FETCH answer):
//   `await budget.pause()` yields a full event-loop turn (setImmediate) once the slice has run
//   longer than its budget (default 10 ms), and costs a clock read otherwise. An `await` of a
//   resolved promise yields only to microtasks, never to other sockets' I/O.
// - `startLoopLagMonitor`: a repeating timer that notices when it fired late (drift) and logs
//   `server.loop-stall ms=… doing=…` past a threshold, plus perf_hooks.monitorEventLoopDelay for
//   the percentiles reported at stop (`server.loop-delay`). On Linux the line also says where the
//   stall's time went, from the main thread's /proc schedstat and the GC timeline: `cpu=` ms the
//   thread ran (JavaScript, native code such as SQLite, GC), `gc=` ms of that in V8 GC pauses,
//   `runq=` ms it was runnable but not scheduled (a busy machine, not our code). What is left of the
//   stall (ms - cpu - runq) was spent blocked in a system call on the loop (fsync, a synchronous
//   read). The three cover the whole interval between two ticks (the stall plus one period).

import { closeSync, openSync, readSync } from 'node:fs';
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import type { Logger } from './log.ts';

interface Open {
  label: string;
  since: number;
}

/** What is running now; read when a stall is reported. */
export class Activity {
  readonly #open = new Map<number, Open>();
  #next = 1;
  /** The last operation that ended, and when (a stall is often noticed just after it ended). */
  #lastEnded: { label: string; at: number } | null = null;
  readonly now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.now = now;
  }

  /** Opens a label; call the returned function when the operation ends (idempotent). */
  begin(label: string): () => void {
    const id = this.#next++;
    this.#open.set(id, { label, since: this.now() });
    return () => {
      const o = this.#open.get(id);
      if (!o) return;
      this.#open.delete(id);
      this.#lastEnded = { label: o.label, at: this.now() };
    };
  }

  /** Runs fn (sync or async) under a label. */
  run<T>(label: string, fn: () => T): T {
    const end = this.begin(label);
    let async = false;
    try {
      const r = fn();
      if (r instanceof Promise) {
        async = true;
        return r.finally(end) as T;
      }
      return r;
    } finally {
      if (!async) end();
    }
  }

  /**
   * What was going on in a stall that ended at `at` and lasted `ms`: the operations open now that
   * were open when it began (newest first), else the one that ended during it.
   */
  describe(at: number, ms: number): string {
    const start = at - ms;
    const open = [...this.#open.values()].filter((o) => o.since <= start + 1).sort((a, b) => b.since - a.since);
    if (open.length) return open.slice(0, 3).map((o) => o.label).join('; ') + (open.length > 3 ? ` (+${open.length - 3} more)` : '');
    const any = [...this.#open.values()].sort((a, b) => b.since - a.since);
    if (any.length) return any[0]!.label;
    if (this.#lastEnded && this.#lastEnded.at >= start) return this.#lastEnded.label;
    return 'unknown';
  }

  get openCount(): number {
    return this.#open.size;
  }
}

/** The process-wide activity labels. */
export const activity = new Activity();

/** Yields a whole event-loop turn (other sockets' I/O and timers run). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Time slicing for long loops: `await budget.pause()` between items or slices. */
export class LoopBudget {
  #start = performance.now();
  readonly ms: number;
  constructor(ms = 10) {
    this.ms = ms;
  }

  /** True when the current slice has used its budget. */
  get spent(): boolean {
    return performance.now() - this.#start >= this.ms;
  }

  /** Yields a turn if the slice ran over its budget (then a new slice starts). */
  async pause(): Promise<void> {
    if (!this.spent) return;
    await nextTurn();
    this.#start = performance.now();
  }
}

/** The main thread's CPU and run-queue time so far (ns), from /proc/thread-self/schedstat (Linux). */
class SchedStat {
  readonly #fd: number;
  readonly #buf = Buffer.alloc(96);
  private constructor(fd: number) {
    this.#fd = fd;
  }
  /** Opened on the calling thread (the loop); null where there is no schedstat. */
  static open(): SchedStat | null {
    try {
      const s = new SchedStat(openSync('/proc/thread-self/schedstat', 'r'));
      return s.read() ? s : (s.close(), null);
    } catch {
      return null;
    }
  }
  /** [cpu ns, run-queue wait ns], or null. */
  read(): [number, number] | null {
    try {
      const n = readSync(this.#fd, this.#buf, 0, this.#buf.length, 0);
      const f = this.#buf.toString('latin1', 0, n).split(' ');
      const cpu = Number(f[0]);
      const wait = Number(f[1]);
      return Number.isFinite(cpu) && Number.isFinite(wait) ? [cpu, wait] : null;
    } catch {
      return null;
    }
  }
  close(): void {
    try {
      closeSync(this.#fd);
    } catch {
      /* closed */
    }
  }
}

export interface LoopLagMonitor {
  stop(): void;
}

export interface LoopLagOptions {
  /** Log a stall when the loop was blocked at least this long (ms); 0 turns the monitor off. */
  thresholdMs: number;
  /** How often the drift timer fires (ms; default min(50, threshold / 2)). */
  intervalMs?: number;
  activity?: Activity;
  /** For tests: the clock and timer functions. */
  now?: () => number;
  setInterval?: (fn: () => void, ms: number) => { unref?(): void };
  clearInterval?: (t: any) => void;
}

/**
 * Starts the monitor: a timer every `intervalMs` compares when it fired with when it should have;
 * a lateness of `thresholdMs` or more is a stall, logged once with the labels open in it.
 */
export function startLoopLagMonitor(log: Logger, opts: LoopLagOptions): LoopLagMonitor {
  if (!(opts.thresholdMs > 0)) return { stop() {} };
  const now = opts.now ?? (() => performance.now());
  const act = opts.activity ?? activity;
  const every = Math.max(5, opts.intervalMs ?? Math.min(50, Math.floor(opts.thresholdMs / 2)));
  const setI = opts.setInterval ?? setInterval;
  const clearI: (t: any) => void = opts.clearInterval ?? ((t) => clearInterval(t));
  const histogram = opts.now ? null : monitorEventLoopDelay({ resolution: 10 });
  histogram?.enable();
  // Where a stall's time went (real clock only): the thread's schedstat, GC pauses (ms, by end time).
  const sched = opts.now ? null : SchedStat.open();
  const gcs: Array<[end: number, ms: number]> = [];
  const gcObserver = sched ? new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push([e.startTime + e.duration, e.duration]);
    if (gcs.length > 256) gcs.splice(0, gcs.length - 256);
  }) : null;
  gcObserver?.observe({ entryTypes: ['gc'] });
  let last = now();
  let lastSched = sched?.read() ?? null;
  let stalls = 0;
  let worst = 0;
  const timer = setI(() => {
    const t = now();
    const late = t - last - every;
    const from = last;
    last = t;
    const prev = lastSched;
    lastSched = sched?.read() ?? null;
    if (late < opts.thresholdMs) return;
    stalls++;
    if (late > worst) worst = late;
    const fields: Record<string, unknown> = { ms: Math.round(late), doing: act.describe(t, late) };
    if (prev && lastSched) {
      fields.cpu = Math.round((lastSched[0] - prev[0]) / 1e6);
      fields.runq = Math.round((lastSched[1] - prev[1]) / 1e6);
      // GC entries are delivered after the pause; the ones that ended in this interval so far.
      fields.gc = Math.round(gcs.reduce((sum, [end, d]) => (end >= from && end <= t ? sum + d : sum), 0));
    }
    log.warn('server.loop-stall', fields);
  }, every);
  timer.unref?.();
  return {
    stop() {
      clearI(timer);
      gcObserver?.disconnect();
      sched?.close();
      if (histogram) {
        histogram.disable();
        const ms = (ns: number) => Math.round(ns / 1e5) / 10;
        log.info('server.loop-delay', { p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max), stalls, worst: Math.round(worst) });
      }
    },
  };
}
