// Loaded into the Pillarbox server with NODE_OPTIONS="--import …/cpu-profiler.mjs" when
// BENCH_PROFILE=DIR is set (node refuses --cpu-prof in NODE_OPTIONS). Starts the V8 CPU profiler
// in-process and writes DIR/pillarbox-<pid>.cpuprofile on SIGTERM/SIGINT or exit.
//
// Worker threads (DKIM signers, delivery workers, SEARCH scanners) do not run NODE_OPTIONS'
// --import, so every Worker made after this is given it in its execArgv, and profiles itself too:
// DIR/pillarbox-<pid>-t<threadId>.cpuprofile. A worker sees no signal and no 'exit' when it is
// terminated, so the main thread tells the workers on a BroadcastChannel when it gets SIGTERM/SIGINT
// (they are idle by then and write at once, before the server's shutdown terminates them).
import { Session } from 'node:inspector';
import { mkdirSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import workerThreads from 'node:worker_threads';

const dir = process.env.BENCH_PROFILE_DIR;
if (dir) {
  const { isMainThread, threadId, BroadcastChannel } = workerThreads;
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: Number(process.env.BENCH_PROFILE_INTERVAL_US ?? 500) });
  session.post('Profiler.start');
  let written = false;
  const write = () => {
    if (written) return;
    written = true;
    session.post('Profiler.stop', (err, res) => {
      if (err) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `pillarbox-${process.pid}${isMainThread ? '' : `-t${threadId}`}.cpuprofile`), JSON.stringify(res.profile));
    });
  };
  const channel = new BroadcastChannel('bench-cpu-profiler');
  channel.unref();
  if (isMainThread) {
    const self = fileURLToPath(import.meta.url);
    const Base = workerThreads.Worker;
    workerThreads.Worker = class ProfiledWorker extends Base {
      constructor(file, options = {}) {
        // A worker inherits the process's execArgv, but refuses per-isolate V8 flags in it
        // (--max-semi-space-size, which every launcher passes): keep only the others.
        const inherited = (options.execArgv ?? process.execArgv).filter((a) => !a.startsWith('--max-semi-space-size') && !a.startsWith('--max-old-space-size'));
        super(file, { ...options, execArgv: [...inherited, '--import', self] });
      }
    };
    syncBuiltinESMExports();
    const all = () => {
      channel.postMessage('write');
      write();
    };
    process.prependListener('SIGTERM', all);
    process.prependListener('SIGINT', all);
    process.on('exit', write);
  } else {
    channel.onmessage = () => write();
  }
}
