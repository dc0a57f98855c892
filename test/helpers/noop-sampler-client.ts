// The other user's NOOP round trips, sampled every ~20 ms from a worker thread
// (noop-sampler.ts), so the test's own event loop never delays a sample.
import { Worker } from 'node:worker_threads';

export type NoopReport = { worst: number; count: number; median: number; p95: number };

/** Starts the sampler for other@example.com (password "pw") on an IMAP port. */
export function noopSampler(port: number) {
  const w = new Worker(new URL('./noop-sampler.ts', import.meta.url), { workerData: { port, user: 'other@example.com', pass: 'pw' } });
  const next = <T>(pred: (m: any) => boolean) =>
    new Promise<T>((resolve, reject) => {
      const on = (m: any) => {
        if (!pred(m)) return;
        w.off('message', on);
        resolve(m as T);
      };
      w.on('message', on);
      w.once('error', reject);
    });
  return {
    ready: () => next((m) => m.ready),
    mark: () => w.postMessage({ cmd: 'mark' }),
    report: () => {
      const p = next<NoopReport>((m) => 'worst' in m);
      w.postMessage({ cmd: 'report' });
      return p;
    },
    stop: async () => {
      const p = next((m) => m.stopped);
      w.postMessage({ cmd: 'stop' });
      await p;
      await w.terminate();
    },
  };
}

/**
 * The loop CPU time (ms) of each `server.loop-stall` line in a server's output (loopStallMs set in
 * its config; src/obs/loop-lag.ts): what load cannot fake, unlike a round trip, since a busy
 * machine adds runq= time to a stall and not cpu=.
 */
export function stallCpus(output: string): number[] {
  return output
    .split('\n')
    .filter((l) => l.includes('server.loop-stall'))
    .map((l) => Number(/ cpu=(\d+)/.exec(l)?.[1] ?? 0));
}
