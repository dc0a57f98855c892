// Worker thread for the large-mailbox tests: another user's IMAP session that sends NOOP every
// ~20 ms, and every tenth time an APPEND (a durable write, which goes through the same group commit
// as the bulk command's steps), and records each round trip. On its own event loop, so the test's
// main thread (which parses a 131,072-line response) does not distort the figures. Messages:
// {cmd:'mark'} starts a new window; {cmd:'report'} answers {worst, count, median, p95, worstAppend,
// appends} for the window; {cmd:'stop'} ends.
import { parentPort, workerData } from 'node:worker_threads';
import { RawImap } from '../e2e/imap/raw-client.ts';

const { port, user, pass } = workerData as { port: number; user: string; pass: string };
const c = await RawImap.connect(port);
await c.login(user, pass);
await c.cmd('SELECT INBOX');
let samples: number[] = [];
let appends: number[] = [];
let stopped = false;
parentPort!.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'mark') {
    samples = [];
    appends = [];
  } else if (m.cmd === 'report') {
    const s = [...samples].sort((a, b) => a - b);
    parentPort!.postMessage({
      worst: s.length ? s[s.length - 1] : 0,
      count: s.length,
      median: s.length ? s[s.length >> 1] : 0,
      p95: s.length ? s[Math.min(s.length - 1, Math.floor(s.length * 0.95))] : 0,
      worstAppend: appends.length ? Math.max(...appends) : 0,
      appends: appends.length,
    });
  } else if (m.cmd === 'stop') stopped = true;
});
parentPort!.postMessage({ ready: true });
for (let i = 1; !stopped; i++) {
  const t = performance.now();
  if (i % 10 === 0) {
    const r = await c.append('INBOX', `Subject: sampler ${i}\r\n\r\nappended while a bulk command runs\r\n`);
    appends.push(performance.now() - t);
    if (!/ OK /.test(r.tagged)) throw new Error(`APPEND failed: ${r.tagged}`);
  } else {
    const r = await c.cmd('NOOP', 60_000);
    samples.push(performance.now() - t);
    if (!/ OK /.test(r.tagged)) throw new Error(`NOOP failed: ${r.tagged}`);
  }
  await new Promise((res) => setTimeout(res, 20));
}
c.close();
parentPort!.postMessage({ stopped: true });
