// Child process of fillStore(): `node fill-worker.ts DATA_DIR JOBS.json`.
// Delivers generated corpus messages through the Store API (stageBlob → parseMessage → deliver),
// exactly what an SMTP delivery stores, then syncs the files to disk.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { openStore, defaultDatabase } from '../../src/store/open.ts';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import { SystemFlag, type NewMessage } from '../../src/store/store.ts';
import { corpusMessage } from './corpus.ts';
import type { FillJob } from './pillarbox.ts';

const [dataDir, jobFile] = process.argv.slice(2) as [string, string];
const jobs = JSON.parse(readFileSync(jobFile, 'utf8')) as FillJob[];
const store = await openStore(defaultDatabase(dataDir), dataDir);
let total = 0;
const t0 = performance.now();
try {
  for (const job of jobs) {
    const targets: Array<{ mailboxId: number }> = [];
    for (const address of job.addresses) {
      const acct = await store.getAccount(address.toLowerCase());
      if (!acct) throw new Error(`no account ${address}`);
      const mb = await store.getMailbox(acct.id, job.mailbox);
      if (!mb) throw new Error(`no mailbox ${job.mailbox} for ${address}`);
      targets.push({ mailboxId: mb.id });
    }
    // Bodies are staged (written) a batch at a time in parallel; deliveries commit in order.
    const BATCH = 64;
    for (let b = job.from; b < job.from + job.count; b += BATCH) {
      const idx: number[] = [];
      for (let i = b; i < Math.min(job.from + job.count, b + BATCH); i++) idx.push(i);
      const prepared = await Promise.all(
        idx.map(async (i) => {
          const { raw } = corpusMessage(i, {
            seed: job.seed ?? 1,
            ...(job.maxBytes ? { maxBytes: job.maxBytes } : {}),
            ...(job.unique ? { extraHeaders: [`X-Bench-Seq: ${i}`] } : {}),
          });
          return { i, meta: parseMessage(raw), staged: await store.stageBlob(raw) };
        }),
      );
      for (const { i, meta, staged } of prepared) {
        try {
          const seen = job.seenEvery && i % job.seenEvery === 0 ? SystemFlag.Seen : 0;
          const t: NewMessage[] = targets.map((x) => ({ mailboxId: x.mailboxId, systemFlags: seen, internalDate: Date.UTC(2024, 0, 1) + i * 60_000 }));
          const res = await store.deliver(staged, meta, t);
          for (const r of res) if (!r.ok) throw new Error(`delivery failed: ${r.reason}`);
        } finally {
          staged.release();
        }
        total += targets.length;
        if (total % 20000 < targets.length) process.stderr.write(`  fill: ${total} messages (${Math.round(total / ((performance.now() - t0) / 1000))}/s)\n`);
      }
    }
  }
} finally {
  await store.close();
}
execFileSync('sync');
