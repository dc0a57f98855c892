// A client that pipelines MAIL/RCPT/DATA and part of the message, then closes the connection
// (issue 12, `smtp-close-crash`): the DATA stream of smtp-server errs as the socket goes, and an
// 'error' without a listener would end the process for every user. The server must live, log the
// cut-off DATA, store nothing, and answer the next client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { RawSmtp } from './util.ts';

let srv: TestServer;
let dir: string;
const USER = 'carol@example.test';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pillarbox-smtp-close-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ limits: { maxConnectionsPerIp: 1000 } }));
  srv = await startServer({ dataDir: dir, plaintext: true });
  await srv.addUser(USER, 'pw');
});
after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Connected and greeted (smtp-server drops a client that talks before its 220). */
function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port });
    s.once('data', () => resolve(s));
    s.on('error', () => {});
    s.once('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('closing mid pipelined DATA (80 ways) leaves the server alive and answering', async () => {
  const body = 'Subject: cut off\r\nFrom: x@elsewhere.test\r\n\r\n' + 'line of the message\r\n'.repeat(5000);
  for (let i = 0; i < 80; i++) {
    const s = await open(srv.ports.smtp);
    const head = `EHLO c${i}.test\r\nMAIL FROM:<x@elsewhere.test>\r\nRCPT TO:<${USER}>\r\n${i % 3 === 0 ? `RCPT TO:<${USER}>\r\n` : ''}DATA\r\n`;
    const cut = Math.floor((body.length * ((i * 37) % 100)) / 100);
    s.write(head + body.slice(0, cut));
    // Destroyed at once, after the 354, or after part of the body was read.
    if (i % 4 === 1) await sleep(5);
    if (i % 4 === 2) await sleep(30);
    if (i % 2 === 0) s.destroy();
    else s.resetAndDestroy();
    if (i % 20 === 0) await sleep(50);
  }
  await sleep(500);
  const aborted = srv.output().split('\n').filter((l) => l.includes('smtp.data-aborted')).length;
  assert.ok(aborted > 20, `only ${aborted} DATA transfers were cut off`);
  assert.equal(srv.proc.exitCode, null, `server exited:\n${srv.output().slice(-3000)}`);
  assert.equal(srv.proc.signalCode, null);
  assert.doesNotMatch(srv.output(), /Unhandled|uncaught|ERR_STREAM/i);

  // The next client is served and its message stored.
  const c = await RawSmtp.connect(srv.ports.smtp);
  try {
    assert.match(await c.reply(), /^220/);
    assert.match(await c.cmd('EHLO next.test'), /^250/);
    assert.match(await c.cmd('MAIL FROM:<x@elsewhere.test>'), /^250/);
    assert.match(await c.cmd(`RCPT TO:<${USER}>`), /^250/);
    assert.match(await c.cmd('DATA'), /^354/);
    c.write('Subject: after\r\n\r\nstill here\r\n.\r\n');
    assert.match(await c.reply(), /^250/);
  } finally {
    c.close();
  }
  // None of the cut-off messages was stored: only "after".
  const l = await srv.cli(['user', 'show', USER, '--json']);
  assert.equal(l.code, 0, l.stderr);
  assert.equal((JSON.parse(l.stdout) as { messages: number }).messages, 1);
});
