// Loop stalls of the server under SMTP ingest with a disk-heavy neighbour (issue 12): Pillarbox
// only (no peer), `stress-ng --hdd 1` beside it for the whole run, the server's loopStallMs at 50;
// prints the msgs/s and the `server.loop-stall` lines (worst, count > 50 ms). A measurement for a
// person, never an assertion: the machine's other load changes the figures.
//
// Env: as smtp-ingest.ts (BENCH_SMTP_MESSAGES default here 6000), STALL_HDD=0 runs without stress-ng,
// STALL_STRACE=FILE writes the main thread's system calls with their durations (strace -T) there.

import { spawn } from 'node:child_process';
import { ingest, ingestParams } from './smtp-ingest.ts';
import { benchLimits, startPillarbox } from './lib/pillarbox.ts';
import { benchAccounts, isMain, log } from './lib/util.ts';

export async function stallDiskLoad(): Promise<void> {
  const p = { ...ingestParams(), messages: Number(process.env.BENCH_SMTP_MESSAGES ?? 6000) };
  const accounts = benchAccounts(p.accounts, 'stall');
  const s = await startPillarbox({ accounts, limits: { ...benchLimits(p.senders + 50), loopStallMs: 50 } });
  // STALL_STRACE=FILE: the server's main thread's system calls with their times (slows it down).
  const trace = process.env.STALL_STRACE ? spawn('strace', ['-T', '-qq', '-e', 'trace=!epoll_wait,epoll_pwait,futex', '-p', String(s.pid), '-o', process.env.STALL_STRACE], { stdio: 'ignore' }) : null;
  const hdd = process.env.STALL_HDD === '0' ? null : spawn('stress-ng', ['--hdd', '1', '--timeout', '90s', '--temp-path', '/tmp'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 3000));
  const r = await ingest(s.ports.smtp, s.ports.imap, accounts, p);
  hdd?.kill('SIGINT');
  trace?.kill('SIGINT');
  const out = s.server.output();
  log(`ingest done (${r.storedSeconds.toFixed(1)} s until all readable); stopping the server`);
  await s.stop();
  const stalls = out.split('\n').filter((l) => l.includes('server.loop-stall'));
  const ms = stalls.map((l) => Number(/\bms=([\d.]+)/.exec(l)?.[1] ?? 0));
  log(`msgs/s stored ${r.storedPerSec.toFixed(0)}, accepted ${r.acceptedPerSec.toFixed(0)}, p99 ${r.p99.toFixed(1)} ms`);
  log(`stalls > 50 ms: ${ms.filter((x) => x > 50).length}, worst ${Math.max(0, ...ms).toFixed(1)} ms`);
  for (const l of stalls) log(l.slice(0, 300));
}

if (isMain(import.meta.url)) await stallDiskLoad();
