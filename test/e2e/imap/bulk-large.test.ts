// "Hardening": bulk commands on a big mailbox must not stall everyone. One mailbox of 131,072
// messages (PILLARBOX_BULK_N to change it); while one user runs UID STORE / UID COPY / UID MOVE /
// STORE+EXPUNGE over all of it, another user's NOOP round trip is sampled every ~20 ms from a
// worker thread. The 95th percentile of those round trips must stay under a generous bound, and
// the worst under a looser one (the old one-transaction code held the loop for seconds, so the few
// NOOPs it answered during a command each waited that long); a machine so busy that the OS
// deschedules the server now and then shows up in the worst figure only. The real figures are
// printed. Run alone:
//   node scripts/run-tests.mjs bulk-large
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../../helpers/server.ts';
import { fillSqlite } from '../../helpers/bulk-fill.ts';
import { RawImap } from './raw-client.ts';

const N = Number(process.env.PILLARBOX_BULK_N ?? 131072);
/** Generous: the goal is < 100 ms; the old code stalled 2–9 s. */
const P95_NOOP_MS = Number(process.env.PILLARBOX_BULK_P95_MS ?? 500);
const WORST_NOOP_MS = Number(process.env.PILLARBOX_BULK_WORST_MS ?? 2000);
/** Another user's APPEND (a durable commit) between the bulk command's steps. */
const WORST_APPEND_MS = Number(process.env.PILLARBOX_BULK_WORST_APPEND_MS ?? 2000);

interface Report {
  worst: number;
  count: number;
  median: number;
  p95: number;
  worstAppend: number;
  appends: number;
}

class Sampler {
  readonly w: Worker;
  constructor(port: number) {
    this.w = new Worker(new URL('../../helpers/noop-sampler.ts', import.meta.url), { workerData: { port, user: 'other@example.com', pass: 'pw' } });
  }
  #next<T>(pred: (m: any) => boolean): Promise<T> {
    return new Promise((resolve, reject) => {
      const on = (m: any) => {
        if (!pred(m)) return;
        this.w.off('message', on);
        this.w.off('error', reject);
        resolve(m as T);
      };
      this.w.on('message', on);
      this.w.once('error', reject);
    });
  }
  ready(): Promise<unknown> {
    return this.#next((m) => m.ready);
  }
  mark(): void {
    this.w.postMessage({ cmd: 'mark' });
  }
  report(): Promise<Report> {
    const p = this.#next<Report>((m) => 'worst' in m);
    this.w.postMessage({ cmd: 'report' });
    return p;
  }
  async stop(): Promise<void> {
    const p = this.#next((m) => m.stopped);
    this.w.postMessage({ cmd: 'stop' });
    await p;
    await this.w.terminate();
  }
}

test(`bulk commands on ${N} messages do not stall another user`, { timeout: 900_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pillarbox-bulk-'));
  const t0 = performance.now();
  await fillSqlite(dataDir, ['big@example.com', 'other@example.com'], { address: 'big@example.com', mailbox: 'INBOX', count: N });
  console.log(`# filled ${N} messages in ${Math.round(performance.now() - t0)} ms`);
  const server = await startServer({ dataDir, plaintext: true });
  const sampler = new Sampler(server.ports.imap);
  const big = await RawImap.connect(server.ports.imap);
  const figures: Array<{ phase: string; ms: number; worst: number; median: number; p95: number; samples: number; worstAppend: number; appends: number }> = [];
  try {
    await sampler.ready();
    await big.login('big@example.com', 'pw');
    const phase = async (name: string, command: string, check: (r: Awaited<ReturnType<RawImap['cmd']>>) => void) => {
      await new Promise((r) => setTimeout(r, 100));
      sampler.mark();
      const t = performance.now();
      const r = await big.cmd(command, 120_000);
      const ms = performance.now() - t;
      await new Promise((res) => setTimeout(res, 60)); // one more sample after the end
      const rep = await sampler.report();
      figures.push({ phase: name, ms: Math.round(ms), worst: Math.round(rep.worst), median: Math.round(rep.median), p95: Math.round(rep.p95), samples: rep.count, worstAppend: Math.round(rep.worstAppend), appends: rep.appends });
      console.log(
        `# ${name}: ${Math.round(ms)} ms; other user's NOOP worst ${rep.worst.toFixed(1)} ms, median ${rep.median.toFixed(1)} ms (${rep.count} samples); APPEND worst ${rep.worstAppend.toFixed(1)} ms (${rep.appends})`,
      );
      assert.match(r.tagged, / OK /, `${name}: ${r.tagged}`);
      check(r);
    };
    const count = (r: { lines: string[] }, re: RegExp) => r.lines.filter((l) => re.test(l)).length;

    await phase('SELECT INBOX', 'SELECT INBOX', (r) => assert.ok(r.lines.includes(`* ${N} EXISTS`)));
    await phase('UID STORE 1:* +FLAGS (\\Seen)', 'UID STORE 1:* +FLAGS (\\Seen)', (r) => assert.equal(count(r, /^\* \d+ FETCH \(UID \d+ FLAGS \(\\Seen \\Recent\)\)$/), N)); // IMAP4rev1: the first session has \Recent (RFC 3501 §2.3.2)
    await phase('UID COPY 1:* Archive', 'UID COPY 1:* Archive', (r) => assert.match(r.tagged, new RegExp(`COPYUID \\d+ 1:${N} 1:${N}\\]`)));
    await phase('UID MOVE 1:* Trash', 'UID MOVE 1:* Trash', (r) => {
      assert.ok(r.lines.some((l) => new RegExp(`^\\* OK \\[COPYUID \\d+ 1:${N} 1:${N}\\]`).test(l)), 'COPYUID before the EXPUNGEs');
      assert.equal(count(r, /^\* \d+ EXPUNGE$/), N);
    });
    const st = await big.cmd('STATUS INBOX (MESSAGES)');
    assert.ok(st.lines.some((l) => /^\* STATUS "?INBOX"? \(MESSAGES 0\)$/.test(l)), st.lines.join('\n'));
    await phase('SELECT Trash', 'SELECT Trash', (r) => assert.ok(r.lines.includes(`* ${N} EXISTS`)));
    await phase('STORE 1:* +FLAGS.SILENT (\\Deleted)', 'STORE 1:* +FLAGS.SILENT (\\Deleted)', () => {});
    await phase('EXPUNGE', 'EXPUNGE', (r) => assert.equal(count(r, /^\* \d+ EXPUNGE$/), N));
    const st2 = await big.cmd('STATUS Archive (MESSAGES)');
    assert.ok(st2.lines.some((l) => new RegExp(`^\\* STATUS "?Archive"? \\(MESSAGES ${N}\\)$`).test(l)), st2.lines.join('\n'));
    await phase('DELETE Archive', 'DELETE Archive', () => {});
  } finally {
    big.close();
    await sampler.stop().catch(() => {});
    await server.stop();
    // What the server's event-loop monitor saw (src/obs/loop-lag.ts).
    for (const l of server.output().split('\n')) if (/server\.loop-(stall|delay)/.test(l)) console.log('# server: ' + l.slice(0, 300));
    rmSync(dataDir, { recursive: true, force: true });
  }
  console.log('# figures ' + JSON.stringify(figures));
  for (const f of figures) {
    assert.ok(f.p95 < P95_NOOP_MS, `${f.phase}: another user's NOOP p95 ${f.p95} ms (bound ${P95_NOOP_MS} ms)`);
    assert.ok(f.worst < WORST_NOOP_MS, `${f.phase}: another user's NOOP waited ${f.worst} ms (bound ${WORST_NOOP_MS} ms)`);
    assert.ok(f.worstAppend < WORST_APPEND_MS, `${f.phase}: another user's APPEND took ${f.worstAppend} ms (bound ${WORST_APPEND_MS} ms)`);
  }
});
