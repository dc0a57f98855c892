// Issue #3 against the real `pillarbox serve` with real clients: nodemailer, Python's smtplib and
// swaks. Checks what was stored by opening the server's store from the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { ImapFlow } from 'imapflow';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { stored, splitPrepended, run, RawSmtp } from './util.ts';
import { needs } from '../../helpers/external.ts';

let srv: TestServer;
let tmp: string;
let caFile: string;

before(async () => {
  srv = await startServer();
  tmp = mkdtempSync(join(tmpdir(), 'pb-smtp-e2e-'));
  caFile = join(tmp, 'ca.pem');
  writeFileSync(caFile, srv.ca);
  await srv.addUser('adam@example.com', 'adam-secret');
  await srv.addUser('betty@example.com', 'betty-secret');
});
after(async () => {
  await srv?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const tlsOpts = () => ({ ca: [srv.ca], servername: 'localhost' });

test('plain MX delivery on port 25 (nodemailer): 8-bit UTF-8 message stored byte for byte after Return-Path and Received', async () => {
  const raw = Buffer.from(
    'From: Jörg <joerg@elsewhere.example>\r\nTo: adam@example.com\r\nSubject: Grüße aus Köln ✓ 日本語\r\nMIME-Version: 1.0\r\n' +
      'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHallo Adam, schöne Grüße — 日本語のテキスト.\r\n.leading dot line\r\n',
    'utf8',
  );
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: srv.ports.smtp, secure: false, ignoreTLS: true });
  const info = await t.sendMail({ envelope: { from: 'joerg@elsewhere.example', to: ['adam@example.com'] }, raw });
  t.close();
  assert.deepEqual(info.accepted, ['adam@example.com']);
  assert.match(info.response, /^250 2\.0\.0 /);
  const msgs = await stored(srv.dataDir, 'adam@example.com');
  const m = msgs.find((x) => x.includes(Buffer.from('Grüße aus Köln')))!;
  const { returnPath, received, rest } = splitPrepended(m);
  assert.equal(returnPath, 'Return-Path: <joerg@elsewhere.example>');
  assert.match(received, /^Received: from \S+ \(\[127\.0\.0\.1\]\)\r\n\tby localhost \(Pillarbox\) with ESMTP id \S+\r\n\tfor <adam@example\.com>; /);
  assert.ok(rest.equals(raw), 'body identical');
});

test('submission 587: STARTTLS + AUTH PLAIN (nodemailer), a 10 MB attachment stored byte for byte', async () => {
  const attachment = randomBytes(10 * 1024 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n');
  const raw = Buffer.from(
    'From: adam@example.com\r\nTo: betty@example.com\r\nSubject: big one\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n' +
      '--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n' +
      'Content-Disposition: attachment; filename="big.bin"\r\n\r\n' + attachment + '\r\n--b1--\r\n',
  );
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: srv.ports.submission, secure: false, requireTLS: true, auth: { user: 'adam@example.com', pass: 'adam-secret' }, authMethod: 'PLAIN', tls: tlsOpts() });
  const info = await t.sendMail({ envelope: { from: 'adam@example.com', to: ['betty@example.com'] }, raw });
  t.close();
  assert.deepEqual(info.accepted, ['betty@example.com']);
  const m = (await stored(srv.dataDir, 'betty@example.com')).find((x) => x.includes('Subject: big one'))!;
  const { returnPath, received, rest } = splitPrepended(m);
  assert.equal(returnPath, 'Return-Path: <adam@example.com>');
  assert.match(received, /\(using TLSv1\.[23] with cipher \S+\)\r\n\tby localhost \(Pillarbox\) with ESMTPSA id /);
  assert.equal(rest.length, raw.length);
  assert.ok(rest.equals(raw), 'body identical');
});

test('Python smtplib: STARTTLS on 25, STARTTLS + AUTH LOGIN on 587, implicit TLS + AUTH PLAIN on 465', needs('python3'), async () => {
  const py = `
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.check_hostname = False
mx, sub, subs = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = smtplib.SMTP('127.0.0.1', mx); s.ehlo('py.test'); s.starttls(context=ctx); s.ehlo('py.test')
assert 'auth' not in s.esmtp_features, s.esmtp_features
s.sendmail('py@elsewhere.example', ['betty@example.com'], b'Subject: py mx starttls\\r\\n\\r\\nhello\\r\\n'); s.quit()
s = smtplib.SMTP('127.0.0.1', sub); s.ehlo('py.test')
assert 'auth' not in s.esmtp_features, s.esmtp_features
s.starttls(context=ctx); s.ehlo('py.test')
assert 'PLAIN' in s.esmtp_features['auth'] and 'LOGIN' in s.esmtp_features['auth']
s.user, s.password = 'betty@example.com', 'betty-secret'
code, resp = s.auth('LOGIN', s.auth_login, initial_response_ok=False)
assert code == 235, (code, resp)
s.sendmail('betty@example.com', ['adam@example.com'], b'Subject: py submission login\\r\\n\\r\\nhello\\r\\n'); s.quit()
s = smtplib.SMTP_SSL('127.0.0.1', subs, context=ctx); s.ehlo('py.test')
assert 'starttls' not in s.esmtp_features
s.user, s.password = 'adam@example.com', 'adam-secret'
code, resp = s.auth('PLAIN', s.auth_plain)
assert code == 235, (code, resp)
try:
    s.sendmail('betty@example.com', ['adam@example.com'], b'Subject: forged\\r\\n\\r\\nx\\r\\n')
    raise SystemExit('forged sender accepted')
except smtplib.SMTPSenderRefused as e:
    assert e.smtp_code == 553, e
s.sendmail('adam@example.com', ['betty@example.com'], b'Subject: py submissions plain\\r\\n\\r\\nhello\\r\\n'); s.quit()
print('PYOK')
`;
  const r = await run('python3', ['-c', py, caFile, String(srv.ports.smtp), String(srv.ports.submission), String(srv.ports.submissions)]);
  assert.match(r.out, /PYOK/, r.out);
  const betty = await stored(srv.dataDir, 'betty@example.com');
  const adam = await stored(srv.dataDir, 'adam@example.com');
  assert.ok(betty.some((m) => m.includes('Subject: py mx starttls')));
  assert.ok(adam.some((m) => m.includes('Subject: py submission login')));
  assert.ok(betty.some((m) => m.includes('Subject: py submissions plain')));
  assert.ok(!adam.some((m) => m.includes('Subject: forged')));
});

test('swaks: relay attempts are refused (554 5.7.1) on 25 and without AUTH on 587; AUTH needs TLS on 587', needs('swaks'), async () => {
  const base = ['--server', '127.0.0.1', '--helo', 'swaks.test', '--h-Subject', 'relay test', '--body', 'x'];
  const r1 = await run('swaks', [...base, '--port', String(srv.ports.smtp), '--from', 'spammer@elsewhere.example', '--to', 'victim@other.example']);
  assert.notEqual(r1.code, 0);
  assert.match(r1.out, /<\*\* 554 5\.7\.1 .*Relay access denied/);
  // A hosted sender address doesn't help.
  const r2 = await run('swaks', [...base, '--port', String(srv.ports.smtp), '--from', 'adam@example.com', '--to', 'victim@other.example']);
  assert.match(r2.out, /<\*\* 554 5\.7\.1 /);
  // 587 without STARTTLS: AUTH is not offered, and MAIL without it is refused.
  const r3 = await run('swaks', [...base, '--port', String(srv.ports.submission), '--from', 'adam@example.com', '--to', 'victim@other.example', '--auth', 'PLAIN', '--auth-user', 'adam@example.com', '--auth-password', 'adam-secret']);
  assert.notEqual(r3.code, 0);
  assert.doesNotMatch(r3.out, /<-\s+235/);
  const r4 = await run('swaks', [...base, '--port', String(srv.ports.submission), '--from', 'adam@example.com', '--to', 'victim@other.example']);
  assert.match(r4.out, /<\*\* 530 5\.7\.0 /);
  // With STARTTLS and AUTH, a local recipient works.
  const r5 = await run('swaks', [...base, '--port', String(srv.ports.submission), '--tls', '--auth', 'LOGIN', '--auth-user', 'adam@example.com', '--auth-password', 'adam-secret', '--from', 'adam@example.com', '--to', 'betty@example.com', '--h-Subject', 'via swaks']);
  assert.equal(r5.code, 0, r5.out);
  assert.match(r5.out, /<~\s+235 2\.7\.0 /);
  assert.ok((await stored(srv.dataDir, 'betty@example.com')).some((m) => m.includes('Subject: via swaks')));
});

test('AUTH refused on a cleartext 587 connection even when the client insists', async () => {
  const c = await RawSmtp.connect(srv.ports.submission);
  assert.match(await c.reply(), /^220 /);
  const caps = await c.cmd('EHLO raw.test');
  assert.doesNotMatch(caps, /AUTH/);
  assert.match(await c.cmd('AUTH PLAIN ' + Buffer.from('\0adam@example.com\0adam-secret').toString('base64')), /^530 5\.7\.0 Must issue a STARTTLS command first/);
  assert.match(await c.cmd('AUTH LOGIN'), /^530 5\.7\.0 /);
  c.close();
});

test('a message delivered by SMTP reaches an IMAP client waiting in IDLE (imapflow), with the cached parse', async () => {
  const client = new ImapFlow({ host: '127.0.0.1', port: srv.ports.imaps, secure: true, tls: { ca: [srv.ca], servername: 'localhost' }, auth: { user: 'adam@example.com', pass: 'adam-secret' }, logger: false, autoIdleDelay: 100 });
  await client.connect();
  try {
    const box = await client.mailboxOpen('INBOX');
    const deadline = Date.now() + 5000;
    while (!client.idling) {
      if (Date.now() > deadline) throw new Error('client never entered IDLE');
      await new Promise((r) => setTimeout(r, 20));
    }
    const before = box.exists; // imapflow updates `box` in place
    const arrived = new Promise<number>((resolve) => client.once('exists', (d: { count: number }) => resolve(d.count)));
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: srv.ports.smtp, secure: false, ignoreTLS: true });
    await t.sendMail({ envelope: { from: 'live@elsewhere.example', to: ['adam@example.com'] }, raw: 'From: Live <live@elsewhere.example>\r\nSubject: live delivery\r\n\r\nnow\r\n' });
    t.close();
    let timer: NodeJS.Timeout | undefined;
    const count = await Promise.race([arrived, new Promise<number>((_, j) => (timer = setTimeout(() => j(new Error('no EXISTS within 5 s')), 5000)))]);
    clearTimeout(timer);
    assert.equal(count, before + 1);
    const msg = await client.fetchOne(String(count), { envelope: true, source: true });
    assert.ok(msg);
    assert.equal(msg.envelope?.subject, 'live delivery');
    assert.equal(msg.envelope?.from?.[0]?.address, 'live@elsewhere.example');
    assert.match(msg.source!.toString(), /^Return-Path: <live@elsewhere\.example>\r\nReceived: from /);
  } finally {
    await client.logout();
  }
});

// Throttling itself (454 4.7.0 when refused, delays) is tested in test/e2e/throttle/.
test('wrong passwords are refused with 535 5.7.8; the right one still logs in after them', async () => {
  const c = await RawSmtp.connect(srv.ports.submissions, { tls: { ca: srv.ca } });
  assert.match(await c.reply(), /^220 /);
  await c.cmd('EHLO raw.test');
  for (let i = 0; i < 3; i++) {
    assert.match(await c.cmd('AUTH PLAIN ' + Buffer.from(`\0betty@example.com\0guess-${i}`).toString('base64')), /^535 5\.7\.8 /);
  }
  assert.match(await c.cmd('AUTH PLAIN ' + Buffer.from('\0betty@example.com\0betty-secret').toString('base64')), /^235 /);
  c.close();
});
