// `npm run bench`: the five benchmarks of issue #6 and the two of issue 13 (outbound, queue-restart) and issue 15's imap-persistent one after the other, Pillarbox against Dovecot
// (and Postfix → Dovecot for SMTP), each with its own servers started and stopped; prints every
// table and writes bench/results/<name>.json plus bench/results/summary.json and summary.md.
//
// Sizes: defaults fit in about 15 minutes on 2 cores; see each script's header for its BENCH_*
// variables. `npm run bench -- imap-mixed pop3` (or BENCH_ONLY=imap-mixed,pop3) runs a subset. BENCH_PROFILE=DIR writes a CPU profile of
// every Pillarbox server started (summarise with `npx node bench/profile-summary.ts DIR/*.cpuprofile`).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { idle } from './idle.ts';
import { imapMixed } from './imap-mixed.ts';
import { imapPersistent } from './imap-persistent.ts';
import { largeMailbox } from './large-mailbox.ts';
import { outbound } from './outbound.ts';
import { queueRestart } from './queue-restart.ts';
import { pop3 } from './pop3.ts';
import { smtpIngest } from './smtp-ingest.ts';
import { benchMain, cleanupAll, log, machineInfo, RESULTS_DIR } from './lib/util.ts';
import { ensurePeers } from './lib/peers.ts';

const ALL: Array<[string, () => Promise<string>]> = [
  ['imap-mixed', imapMixed],
  ['imap-persistent', imapPersistent],
  ['idle', idle],
  ['smtp-ingest', smtpIngest],
  ['pop3', pop3],
  ['large-mailbox', largeMailbox],
  ['outbound', outbound],
  ['queue-restart', queueRestart],
];

await benchMain(
  async () => {
    const only = [...process.argv.slice(2), ...(process.env.BENCH_ONLY ?? '').split(',')].filter(Boolean);
    const unknown = only.filter((n) => !ALL.some(([m]) => m === n));
    if (unknown.length) throw new Error(`unknown benchmark ${unknown.join(', ')}; choose from ${ALL.map(([n]) => n).join(', ')}`);
    const chosen = only.length ? ALL.filter(([n]) => only.includes(n)) : ALL;
    const t0 = Date.now();
    ensurePeers();
    const tables: Array<{ name: string; seconds: number; table: string; error?: string }> = [];
    for (const [name, fn] of chosen) {
      const t = Date.now();
      log(`==== ${name}`);
      try {
        const table = await fn();
        tables.push({ name, seconds: (Date.now() - t) / 1000, table });
      } catch (err) {
        log(`${name} failed: ${(err as Error).stack ?? err}`);
        tables.push({ name, seconds: (Date.now() - t) / 1000, table: '', error: (err as Error).message });
      } finally {
        await cleanupAll();
      }
      log(`==== ${name} done in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    }
    const m = machineInfo();
    const total = (Date.now() - t0) / 1000;
    const header = `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}, Dovecot ${m.dovecot}, Postfix ${m.postfix}; whole run ${Math.round(total)} s; load average at the end ${(m.loadAverage as number[]).join(' / ')}.`;
    const md = [`# Pillarbox benchmarks`, '', header, '', ...tables.map((t) => (t.error ? `### ${t.name}\n\nfailed: ${t.error}\n` : t.table))].join('\n');
    writeFileSync(join(RESULTS_DIR, 'summary.md'), md + '\n');
    writeFileSync(join(RESULTS_DIR, 'summary.json'), JSON.stringify({ machine: m, totalSeconds: total, benchmarks: tables }, null, 2) + '\n');
    process.stdout.write(`\n\n${md}\n`);
    log(`all done in ${Math.round(total)} s`);
    if (tables.some((t) => t.error)) process.exitCode = 1;
  },
  { fdLimit: 65536 },
);
