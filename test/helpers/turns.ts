// The longest event-loop turn of this process, in CPU time of its main thread: a setImmediate
// chain reads process.threadCpuUsage() once per loop iteration, so the largest difference between
// two readings is what one iteration ran (callbacks, timers, I/O, GC). CPU time, not wall time: a
// busy machine that deschedules the process does not make a short turn look long.

export interface TurnWatch {
  /** Stops the chain; the longest turn's CPU ms and how many turns were seen. */
  stop(): { maxMs: number; turns: number };
}

export function watchTurns(): TurnWatch {
  let last = process.threadCpuUsage();
  let maxUs = 0;
  let turns = 0;
  let on = true;
  const tick = () => {
    if (!on) return;
    const now = process.threadCpuUsage();
    const us = now.user - last.user + (now.system - last.system);
    if (us > maxUs) maxUs = us;
    last = now;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  return {
    stop() {
      on = false;
      return { maxMs: maxUs / 1000, turns };
    },
  };
}
