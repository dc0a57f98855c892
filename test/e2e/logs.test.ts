// What an operator reads: `pillarbox serve --log-file FILE --log-format json` writes one JSON line
// per connection, login, refused recipient and delivery, with the fields they need (who, from
// where, what answer) — and nothing of it on stderr. SIGHUP reopens the file (logrotate).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawSmtp } from '../helpers/smtp.ts';
import { RawImap } from './imap/raw-client.ts';

type Line = Record<string, unknown> & { time: string; level: string; event: string };

let srv: TestServer;
let dir: string;
let logFile: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pillarbox-logs-'));
  logFile = join(dir, 'pillarbox.log');
  srv = await startServer({ plaintext: true, args: ['--log-file', logFile, '--log-format', 'json'] });
  await srv.addUser('adam@example.com', 'adam-pw-1');
  await srv.addUser('small@example.com', 'small-pw-1', { quota: '1KB' });
});
after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function lines(file = logFile): Line[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

/** Waits (bounded) for a line matching every given field; returns it. */
async function waitFor(fields: Record<string, unknown>, file = logFile): Promise<Line> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const hit = lines(file).find((l) => Object.entries(fields).every(([k, v]) => l[k] === v));
    if (hit) return hit;
    if (Date.now() > deadline) assert.fail(`no log line with ${JSON.stringify(fields)} in:\n${readFileSync(file, 'utf8')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('every line is {"time","level","event",…}; nothing goes to stderr', async () => {
  const ready = await waitFor({ event: 'server.ready' });
  assert.deepEqual(Object.keys(ready).slice(0, 3), ['time', 'level', 'event']);
  assert.ok(!Number.isNaN(Date.parse(ready.time)));
  assert.equal(ready.level, 'info');
  assert.equal(ready.imap, srv.ports.imap);
  assert.doesNotMatch(srv.output(), /server\.ready|"event"/);
});

test('refused recipients: relay denied and unknown user (nodemailer), over quota (SIZE at MAIL FROM)', async () => {
  const mx = nodemailer.createTransport({ host: '127.0.0.1', port: srv.ports.smtp, secure: false, ignoreTLS: true });
  await assert.rejects(mx.sendMail({ from: 'spammer@elsewhere.example', to: 'victim@other.example', subject: 'relay?', text: 'x' }), /554/);
  await assert.rejects(mx.sendMail({ from: 'someone@elsewhere.example', to: 'nobody@example.com', subject: 'hi', text: 'x' }), /550/);
  mx.close();
  const relay = await waitFor({ event: 'smtp.rcpt-refused', reason: 'relay-denied' });
  assert.equal(relay.from, 'spammer@elsewhere.example');
  assert.equal(relay.to, 'victim@other.example');
  assert.equal(relay.ip, '127.0.0.1');
  assert.equal(relay.code, 554);
  assert.equal(relay.listener, 'mx');
  const unknown = await waitFor({ event: 'smtp.rcpt-refused', reason: 'unknown-user' });
  assert.equal(unknown.to, 'nobody@example.com');
  assert.equal(unknown.from, 'someone@elsewhere.example');
  assert.equal(unknown.code, 550);

  const c = await RawSmtp.connect(srv.ports.smtp);
  try {
    await c.reply();
    await c.cmd('EHLO client.example');
    assert.match(await c.cmd('MAIL FROM:<big@elsewhere.example> SIZE=5000'), /^250/);
    assert.match(await c.cmd('RCPT TO:<small@example.com>'), /^552/);
    await c.cmd('QUIT');
  } finally {
    c.close();
  }
  const quota = await waitFor({ event: 'smtp.rcpt-refused', reason: 'over-quota' });
  assert.equal(quota.to, 'small@example.com');
  assert.equal(quota.from, 'big@elsewhere.example');
  assert.equal(quota.code, 552);
  assert.equal(quota.ip, '127.0.0.1');
});

test('a delivery: message id, size, recipients, mailboxes, client ip', async () => {
  const mx = nodemailer.createTransport({ host: '127.0.0.1', port: srv.ports.smtp, secure: false, ignoreTLS: true });
  const info = await mx.sendMail({ from: 'friend@elsewhere.example', to: 'adam+work@example.com', subject: 'logged', text: 'hello', messageId: '<log-test-1@elsewhere.example>' });
  mx.close();
  assert.match(info.response, /^250/);
  const d = await waitFor({ event: 'smtp.delivered', msgid: '<log-test-1@elsewhere.example>' });
  assert.equal(d.from, 'friend@elsewhere.example');
  assert.deepEqual(d.to, ['adam+work@example.com']);
  assert.deepEqual(d.mailboxes, ['adam@example.com/INBOX'], 'no Work folder: INBOX');
  assert.equal(typeof d.size, 'number');
  assert.ok((d.size as number) > 100);
  assert.equal(d.ip, '127.0.0.1');
});

test('logins: failure (with the reason) and success, for IMAP, SMTP AUTH and POP3', async () => {
  const c = await RawImap.connect(srv.ports.imap);
  try {
    const bad = await c.cmd('LOGIN adam@example.com wrong-password');
    assert.match(bad.tagged, / NO /);
    await c.login('adam@example.com', 'adam-pw-1');
  } finally {
    c.close();
  }
  const fail = await waitFor({ event: 'imap.login-failed', user: 'adam@example.com' });
  assert.equal(fail.reason, 'invalid');
  assert.equal(fail.ip, '127.0.0.1');
  assert.equal(fail.protocol, 'imap');
  const ok = await waitFor({ event: 'imap.login', user: 'adam@example.com' });
  assert.equal(ok.protocol, 'imap');
  assert.equal(ok.ip, '127.0.0.1');

  const sub = (pass: string) => nodemailer.createTransport({ host: '127.0.0.1', port: srv.ports.submission, secure: false, ignoreTLS: true, auth: { user: 'adam@example.com', pass } });
  const wrong = sub('nope');
  await assert.rejects(wrong.verify(), /535/);
  wrong.close();
  const right = sub('adam-pw-1');
  assert.equal(await right.verify(), true);
  right.close();
  const sf = await waitFor({ event: 'smtp.login-failed', user: 'adam@example.com' });
  assert.equal(sf.reason, 'invalid');
  assert.equal(sf.protocol, 'smtp');
  assert.equal(sf.listener, 'submission');
  assert.equal((await waitFor({ event: 'smtp.login', user: 'adam@example.com' })).ip, '127.0.0.1');

  const replies = await pop3(['USER adam@example.com', 'PASS wrong', 'USER adam@example.com', 'PASS adam-pw-1', 'QUIT']);
  assert.match(replies, /-ERR \[AUTH\][\s\S]*\+OK Logged in/);
  assert.equal((await waitFor({ event: 'pop3.login-failed', user: 'adam@example.com' })).reason, 'invalid');
  assert.equal((await waitFor({ event: 'pop3.login', user: 'adam@example.com' })).protocol, 'pop3');
});

test('connections: open (listener, remote ip:port, tls) and close (duration, bytes, reason)', async () => {
  const s = netConnect(srv.ports.pop3, '127.0.0.1');
  await new Promise((r) => s.once('data', r));
  const remote = `127.0.0.1:${s.localPort}`;
  s.end('QUIT\r\n');
  await new Promise((r) => s.once('close', r));
  const open = await waitFor({ event: 'net.open', remote });
  assert.equal(open.listener, 'pop3');
  assert.equal(open.tls, false);
  const close = await waitFor({ event: 'net.close', remote });
  assert.equal(close.listener, 'pop3');
  assert.equal(typeof close.durationMs, 'number');
  assert.equal(close.bytesIn, 6);
  assert.ok((close.bytesOut as number) > 10);
  assert.ok(['client', 'server'].includes(close.reason as string), String(close.reason));
});

test('SIGHUP reopens the log file (logrotate moved it): new lines in a new file, the server keeps running', async () => {
  renameSync(logFile, logFile + '.1');
  process.kill(srv.proc.pid!, 'SIGHUP');
  // The signal is handled asynchronously: log in until a line shows up in the new file.
  const deadline = Date.now() + 15_000;
  while (!lines().some((l) => l.event === 'imap.login')) {
    assert.ok(Date.now() < deadline, 'no line in the reopened file');
    const c = await RawImap.connect(srv.ports.imap);
    await c.login('adam@example.com', 'adam-pw-1');
    c.close();
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(srv.proc.exitCode, null, 'still running');
  assert.ok(lines(logFile + '.1').some((l) => l.event === 'server.ready'), 'the old file keeps the old lines');
});

function pop3(cmds: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect(srv.ports.pop3, '127.0.0.1');
    s.setEncoding('latin1');
    let buf = '';
    let sent = 0;
    s.on('data', (d) => {
      buf += d;
      // One command per reply line received.
      while (buf.split('\r\n').length - 1 > sent && sent < cmds.length) s.write(cmds[sent++] + '\r\n');
    });
    s.on('error', reject);
    s.on('close', () => resolve(buf));
  });
}
