// Child process of provision(): runs the admin CLI's own main() for each argv in JOBS.json, in one
// process (the same code path as `./bin/pillarbox …`, without a process start per command).
// `node provision-worker.ts JOBS.json`; JOBS.json is string[][] (argv lists).

import { readFileSync } from 'node:fs';
import { main } from '../../src/cli/main.ts';

const jobs = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as string[][];
let failed = 0;
// Quiet the per-command output; keep errors.
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = (() => true) as typeof process.stdout.write;
const concurrency = 4;
let next = 0;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < jobs.length) {
      const argv = jobs[next++]!;
      let code: number;
      try {
        code = await main(argv);
      } catch (err) {
        if (/already exists/i.test((err as Error).message)) continue;
        process.stderr.write(`pillarbox ${argv.slice(0, 3).join(' ')}: ${(err as Error).message}\n`);
        code = 1;
      }
      if (code !== 0) {
        failed++;
        process.stderr.write(`pillarbox ${argv.slice(0, 3).join(' ')}: exit ${code}\n`);
      }
    }
  }),
);
process.stdout.write = write;
process.exit(failed ? 1 : 0);
