// Worker thread: another user's session that sends NOOP every ~20 ms and records each round trip,
// on its own event loop (the bench's main thread parses 100,000-number responses). For the
// large-mailbox SORT/THREAD rows: how long the server kept other sessions waiting meanwhile.
// Messages: {cmd:'mark'} starts a window, {cmd:'report'} answers {worst, median, count}, {cmd:'stop'}.
import { parentPort, workerData } from 'node:worker_threads';
import { ImapConn } from './imap-client.ts';

const { port, user, pass } = workerData as { port: number; user: string; pass: string };
const c = await ImapConn.connect(port);
await c.login(user, pass);
let samples: number[] = [];
let stopped = false;
parentPort!.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'mark') samples = [];
  else if (m.cmd === 'report') {
    const s = [...samples].sort((a, b) => a - b);
    parentPort!.postMessage({ worst: s.length ? s[s.length - 1] : 0, median: s.length ? s[s.length >> 1] : 0, count: s.length });
  } else if (m.cmd === 'stop') stopped = true;
});
parentPort!.postMessage({ ready: true });
while (!stopped) {
  const t = performance.now();
  await c.ok('NOOP');
  samples.push(performance.now() - t);
  await new Promise((r) => setTimeout(r, 20));
}
await c.logout().catch(() => {});
parentPort!.close();
