// Found by `npm run fuzz` (seed 2): a client that closes during an APPEND literal, before the
// store began reading the upload, ended the server (unhandled 'error' on the upload stream).
// The server must live, store nothing, and answer the next client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { RawImap } from './raw-client.ts';
import { startImapServer } from './harness.ts';

function greeted(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port });
    const t = setTimeout(() => reject(new Error('no greeting in 5 s (server gone?)')), 5000);
    s.once('data', () => {
      clearTimeout(t);
      resolve(s);
    });
    s.on('error', () => {});
    s.once('error', reject);
  });
}

test('closing mid APPEND literal (60 ways) leaves the server alive and answering', async (t) => {
  const srv = await startImapServer({ plaintext: true, limits: { maxConnectionsPerIp: 1000 } });
  t.after(() => srv.done());
  await srv.addUser('dan@example.test', 'pw');
  await srv.cli(['user', 'set', 'dan@example.test', 'imap.maxConnections', '100']);
  const msg = 'Subject: cut\r\n\r\n' + 'x'.repeat(20_000) + '\r\n';
  for (let i = 0; i < 60; i++) {
    const s = await greeted(srv.ports.imap);
    const cut = Math.floor((msg.length * ((i * 41) % 100)) / 100);
    s.write('a LOGIN dan@example.test pw\r\n');
    await new Promise<void>((r, j) => {
      setTimeout(() => j(new Error('no LOGIN answer in 10 s (server gone?)')), 10_000).unref();
      let got = '';
      const on = (d: Buffer) => {
        got += d.toString('latin1');
        if (got.includes('a OK')) {
          s.off('data', on);
          r();
        }
      };
      s.on('data', on);
    });
    s.write(`b APPEND INBOX {${msg.length}+}\r\n${msg.slice(0, cut)}`);
    if (i % 3 === 1) await new Promise((r) => setTimeout(r, 5 + (i % 30)));
    if (i % 2) s.resetAndDestroy();
    else s.destroy();
  }
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(srv.proc.exitCode, null, `server exited:\n${srv.output().slice(-3000)}`);
  const c = await RawImap.connect(srv.ports.imap);
  try {
    await c.login('dan@example.test', 'pw');
    const r = await c.cmd('STATUS INBOX (MESSAGES)');
    assert.match(r.lines.join('\n'), /MESSAGES 0/);
  } finally {
    c.close();
  }
});
