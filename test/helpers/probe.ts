// What a user of a busy server notices, measured from outside the server process: another client's
// round trip while something hostile runs, and the server's resident memory (/proc/PID/status).
import { readFileSync } from 'node:fs';

/** Resident set size of a process in bytes (Linux /proc/PID/status VmRSS). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Samples a process's RSS every `everyMs` until stop(); stop() returns the largest sample. */
export function sampleRss(pid: number, everyMs = 50): { stop(): number; max(): number } {
  let max = rssOf(pid);
  const t = setInterval(() => {
    try {
      max = Math.max(max, rssOf(pid));
    } catch {
      /* exited */
    }
  }, everyMs);
  return {
    max: () => max,
    stop() {
      clearInterval(t);
      return max;
    },
  };
}

/**
 * Repeats `roundTrip` (one request and its answer on another connection) until stop(); stop()
 * resolves to the slowest one in ms and how many completed. A round trip still running at stop
 * counts with its time so far, so a server that never answers shows as slow, not as fine.
 */
export function probeRoundTrips(roundTrip: () => Promise<unknown>, pauseMs = 20): { stop(): Promise<{ maxMs: number; count: number }> } {
  let stopped = false;
  let maxMs = 0;
  let count = 0;
  let current = 0;
  const loop = (async () => {
    while (!stopped) {
      current = performance.now();
      await roundTrip();
      maxMs = Math.max(maxMs, performance.now() - current);
      current = 0;
      count++;
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      const pending = current ? performance.now() - current : 0;
      await Promise.race([loop.catch(() => {}), new Promise((r) => setTimeout(r, 100))]);
      return { maxMs: Math.max(maxMs, pending), count };
    },
  };
}

/** Milliseconds `f` takes. */
export async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await f();
  return { ms: performance.now() - t, value };
}
