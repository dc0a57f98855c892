// Connection limits, timeouts, shutdown, and plaintext AUTH on loopback when the config allows it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { startHarness, mailboxMessages, RawSmtp } from './harness.ts';

test('a silent client and a trickling DATA sender are dropped; another client is unaffected', async () => {
  const h = await startHarness({ limits: { smtpTimeout: 400 } });
  try {
    await h.addUser('adam@example.com', 'pw');
    const silent = await RawSmtp.connect(h.ports.smtp);
    assert.match(await silent.reply(), /^220 /);
    const trickle = await RawSmtp.connect(h.ports.smtp);
    await trickle.reply();
    await trickle.cmd('EHLO slow.test');
    await trickle.cmd('MAIL FROM:<s@elsewhere.example>');
    await trickle.cmd('RCPT TO:<adam@example.com>');
    assert.match(await trickle.cmd('DATA'), /^354/);
    const started = Date.now();
    const timer = setInterval(() => trickle.write('x'), 150);
    // Meanwhile a normal client gets its message through.
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: h.ports.smtp, secure: false, ignoreTLS: true });
    await t.sendMail({ envelope: { from: 'ok@elsewhere.example', to: ['adam@example.com'] }, raw: 'Subject: unaffected\r\n\r\nx\r\n' });
    t.close();
    assert.match(await silent.reply(3000), /^421 4\.4\.2 /);
    assert.match(await trickle.reply(3000), /^421 4\.4\.2 .*too long/);
    clearInterval(timer);
    assert.ok(Date.now() - started < 2500);
    silent.close();
    trickle.close();
    const msgs = await mailboxMessages(h.store, 'adam@example.com');
    assert.equal(msgs.length, 1);
    assert.ok(msgs[0]!.includes('Subject: unaffected'));
  } finally {
    await h.close();
  }
});

test('connections per IP are limited (421 4.7.0)', async () => {
  const h = await startHarness({ limits: { maxConnectionsPerIp: 2 } });
  try {
    const a = await RawSmtp.connect(h.ports.smtp);
    const b = await RawSmtp.connect(h.ports.smtp);
    assert.match(await a.reply(), /^220 /);
    assert.match(await b.reply(), /^220 /);
    const c = await RawSmtp.connect(h.ports.smtp);
    assert.match(await c.reply(), /^421 4\.7\.0 /);
    a.close();
    await new Promise((r) => setTimeout(r, 100));
    const d = await RawSmtp.connect(h.ports.smtp);
    assert.match(await d.reply(), /^220 /);
    for (const x of [b, c, d]) x.close();
  } finally {
    await h.close();
  }
});

test('allowPlaintextLoopback: AUTH is offered on cleartext 587 from loopback; MAIL still needs AUTH', async () => {
  const h = await startHarness({ allowPlaintextLoopback: true });
  try {
    await h.addUser('adam@example.com', 'adam-pw');
    await h.addUser('betty@example.com', 'betty-pw');
    const c = await RawSmtp.connect(h.ports.submission);
    await c.reply();
    assert.match(await c.cmd('EHLO local.test'), /^250[- ]AUTH PLAIN LOGIN$/m);
    assert.match(await c.cmd('MAIL FROM:<adam@example.com>'), /^530 5\.7\.0 Authentication required/);
    c.close();
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: h.ports.submission, secure: false, ignoreTLS: true, auth: { user: 'adam@example.com', pass: 'adam-pw' }, authMethod: 'LOGIN' });
    await t.sendMail({ envelope: { from: 'adam@example.com', to: ['betty@example.com'] }, raw: 'Subject: local tool\r\n\r\nx\r\n' });
    t.close();
    assert.equal((await mailboxMessages(h.store, 'betty@example.com')).length, 1);
  } finally {
    await h.close();
  }
});

test('close(): idle sessions are told 421 4.3.2', async () => {
  const h = await startHarness();
  const c = await RawSmtp.connect(h.ports.smtp);
  await c.reply();
  await c.cmd('EHLO bye.test');
  const closing = h.close();
  assert.match(await c.reply(), /^421 4\.3\.2 /);
  c.close();
  await closing;
});

test('submission: an unauthenticated client gets a bounded number of commands (421 4.7.0)', async () => {
  const h = await startHarness();
  try {
    const c = await RawSmtp.connect(h.ports.submission);
    await c.reply();
    let last = '';
    for (let i = 0; i < 25 && !/^421/.test(last); i++) last = await c.cmd('NOOP');
    assert.match(last, /^421 4\.7\.0 Too many commands without authentication/);
    c.close();
    // MX sessions have no such cap (they never authenticate).
    const m = await RawSmtp.connect(h.ports.smtp);
    await m.reply();
    for (let i = 0; i < 30; i++) assert.match(await m.cmd('NOOP'), /^250/);
    m.close();
  } finally {
    await h.close();
  }
});
