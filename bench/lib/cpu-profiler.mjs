// Loaded into the Pillarbox server with NODE_OPTIONS="--import …/cpu-profiler.mjs" when
// BENCH_PROFILE=DIR is set (node refuses --cpu-prof in NODE_OPTIONS). Starts the V8 CPU profiler
// in-process and writes DIR/pillarbox-<pid>.cpuprofile on SIGTERM/SIGINT or exit.
import { Session } from 'node:inspector';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.BENCH_PROFILE_DIR;
if (dir) {
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
      writeFileSync(join(dir, `pillarbox-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  };
  process.prependListener('SIGTERM', write);
  process.prependListener('SIGINT', write);
  process.on('exit', write);
}
