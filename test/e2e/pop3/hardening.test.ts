// POP3 side of the "Hardening" issue against the real server: a client that pipelines without
// reading gets no unbounded output; the AUTHORIZATION state lasts at most preauthTimeout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { probeRoundTrips, rssOf, sampleRss, timed } from '../../helpers/probe.ts';

let srv: TestServer;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pillarbox-pop3-hard-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ limits: { preauthTimeout: 1500 } }));
  srv = await startServer({ dataDir: dir, plaintext: true });
  await srv.addUser('alice@example.test', 'pw');
});
after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function connect(): Promise<{ sock: Socket; text: () => string; closed: Promise<void>; line: () => Promise<string> }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let text = '';
    const waiters: Array<() => void> = [];
    const sock = netConnect({ host: '127.0.0.1', port: srv.ports.pop3 }, () =>
      resolve({
        sock,
        text: () => text,
        closed,
        async line() {
          for (;;) {
            const nl = buf.indexOf('\r\n');
            if (nl >= 0) {
              const l = buf.slice(0, nl);
              buf = buf.slice(nl + 2);
              return l;
            }
            await new Promise<void>((r) => waiters.push(r));
          }
        },
      }),
    );
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      buf += d;
      text += d;
      for (const w of waiters.splice(0)) w();
    });
    sock.on('error', () => {});
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.once('error', reject);
  });
}

test('AUTHORIZATION lasts at most preauthTimeout, also for a client that keeps sending CAPA (old: 10 min of inactivity)', async (t) => {
  const c = await connect();
  await c.line();
  const timer = setInterval(() => c.sock.writable && c.sock.write('CAPA\r\n'), 200);
  const { ms } = await timed(() => Promise.race([c.closed, new Promise((r) => setTimeout(r, 6000))]));
  clearInterval(timer);
  t.diagnostic(`closed after ${ms.toFixed(0)} ms (preauthTimeout 1500)`);
  assert.match(c.text(), /-ERR \[SYS\/TEMP\] Login timeout/);
  assert.ok(ms > 1000 && ms < 4000, `closed after ${ms} ms`);
  // A logged-in session is not affected.
  const u = await connect();
  await u.line();
  u.sock.write('USER alice@example.test\r\nPASS pw\r\n');
  await u.line();
  assert.match(await u.line(), /^\+OK/);
  await new Promise((r) => setTimeout(r, 2000));
  u.sock.write('NOOP\r\n');
  assert.match(await u.line(), /^\+OK/);
  u.sock.destroy();
});

test('pipelined commands without reading: the server does not buffer the replies (1,000,000 × CAPA)', async (t) => {
  const pid = srv.proc.pid!;
  const c = await connect();
  c.sock.pause();
  const start = rssOf(pid);
  const rss = sampleRss(pid);
  const buf = Buffer.from('CAPA\r\n'.repeat(10_000));
  for (let i = 0; i < 100; i++) c.sock.write(buf);
  // Another POP3 client's round trip meanwhile (its login included).
  const probe = probeRoundTrips(async () => {
    const o = await connect();
    await o.line();
    o.sock.write('NOOP\r\nQUIT\r\n');
    await o.line();
    o.sock.destroy();
  });
  await new Promise((r) => setTimeout(r, 1200));
  const r = await probe.stop();
  const grown = rss.stop() - start;
  c.sock.destroy();
  t.diagnostic(`RSS +${(grown / 1048576).toFixed(1)} MB; other client ${r.count} round trips, slowest ${r.maxMs.toFixed(0)} ms`);
  assert.ok(grown < 20 * 1024 * 1024, `RSS grew ${(grown / 1048576).toFixed(1)} MB`);
  assert.ok(r.maxMs < 1500 && r.count > 5);
});
