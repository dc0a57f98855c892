// SMTP sessions against the real servers (in-process, real listeners, real store): greeting and
// extensions, AUTH policy per port, relay refusal, recipient resolution, size and hop limits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import nodemailer from 'nodemailer';
import { startHarness, mailboxMessages, splitPrepended, RawSmtp, type Harness } from './harness.ts';

let h: Harness;

before(async () => {
  h = await startHarness({ limits: { maxMessageSize: 200_000, maxHops: 5, maxRecipients: 5 } });
  await h.addUser('adam@example.com', 'adam-pw');
  await h.addUser('betty@example.com', 'betty-pw');
});
after(async () => {
  await h.close();
});

async function ehlo(port: number): Promise<{ c: RawSmtp; caps: string }> {
  const c = await RawSmtp.connect(port);
  const greet = await c.reply();
  assert.match(greet, /^220 mx\.test\.example ESMTP/);
  const caps = await c.cmd('EHLO client.test');
  return { c, caps };
}

test('MX advertises the extensions, STARTTLS, and no AUTH', async () => {
  const { c, caps } = await ehlo(h.ports.smtp);
  for (const ext of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'STARTTLS', 'SIZE 200000']) assert.match(caps, new RegExp(`^250[- ]${ext}$`, 'm'), ext);
  assert.doesNotMatch(caps, /AUTH/);
  assert.match(await c.cmd('AUTH PLAIN AGFkYW1AZXhhbXBsZS5jb20AYWRhbS1wdw=='), /^502 5\.5\.1 /);
  assert.match(await c.cmd('QUIT'), /^221/);
  c.close();
});

test('submission on cleartext: no AUTH offered; AUTH and MAIL refused until STARTTLS', async () => {
  const { c, caps } = await ehlo(h.ports.submission);
  assert.match(caps, /^250[- ]STARTTLS$/m);
  assert.doesNotMatch(caps, /AUTH/);
  assert.match(await c.cmd('AUTH PLAIN AGFkYW1AZXhhbXBsZS5jb20AYWRhbS1wdw=='), /^530 5\.7\.0 Must issue a STARTTLS command first/);
  assert.match(await c.cmd('AUTH LOGIN'), /^530 5\.7\.0 /);
  assert.match(await c.cmd('MAIL FROM:<adam@example.com>'), /^530 5\.7\.0 Must issue a STARTTLS/);
  c.close();
});

test('relay: unauthenticated mail to another domain is refused 554 5.7.1; unknown local 550 5.1.1', async () => {
  const { c } = await ehlo(h.ports.smtp);
  assert.match(await c.cmd('MAIL FROM:<someone@elsewhere.example>'), /^250 2\.1\.0/);
  assert.match(await c.cmd('RCPT TO:<victim@gmail.example>'), /^554 5\.7\.1 .*Relay access denied/);
  assert.match(await c.cmd('RCPT TO:<nobody@example.com>'), /^550 5\.1\.1 /);
  assert.match(await c.cmd('RCPT TO:<adam@example.com>'), /^250 2\.1\.5/);
  assert.match(await c.cmd('RCPT TO:<ADAM@Example.COM>'), /^250 2\.1\.5/);
  assert.match(await c.cmd('RSET'), /^250/);
  c.close();
});

test('SIZE: a declared size above the limit gets 552 at MAIL FROM; an oversized body gets 552 and is not stored', async () => {
  const { c } = await ehlo(h.ports.smtp);
  assert.match(await c.cmd('MAIL FROM:<x@elsewhere.example> SIZE=300000'), /^552 5\.3\.4 /);
  assert.match(await c.cmd('MAIL FROM:<x@elsewhere.example>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<betty@example.com>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  const line = 'x'.repeat(998) + '\r\n';
  c.write('Subject: big\r\n\r\n' + line.repeat(250) + '.\r\n');
  assert.match(await c.reply(), /^552 5\.3\.4 /);
  // The session goes on.
  assert.match(await c.cmd('NOOP'), /^250/);
  c.close();
  assert.equal((await mailboxMessages(h.store, 'betty@example.com')).length, 0);
});

test('too many Received headers: 554 5.4.6', async () => {
  const { c } = await ehlo(h.ports.smtp);
  assert.match(await c.cmd('MAIL FROM:<x@elsewhere.example>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<adam@example.com>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  c.write('Received: from a by b; Sun, 22 Nov 2026 00:00:00 +0000\r\n'.repeat(6) + 'Subject: loop\r\n\r\nbody\r\n.\r\n');
  assert.match(await c.reply(), /^554 5\.4\.6 /);
  assert.match(await c.cmd('MAIL FROM:<x@elsewhere.example>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<adam@example.com>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  c.write('Received: from a by b; Sun, 22 Nov 2026 00:00:00 +0000\r\n'.repeat(5) + 'Subject: five hops\r\n\r\nbody\r\n.\r\n');
  assert.match(await c.reply(), /^250 2\.0\.0 /);
  c.close();
  const msgs = await mailboxMessages(h.store, 'adam@example.com');
  assert.equal(msgs.filter((m) => m.includes('Subject: five hops')).length, 1);
  assert.equal(msgs.filter((m) => m.includes('Subject: loop')).length, 0);
});

test('recipients per message are limited (452 4.5.3)', async () => {
  const { c } = await ehlo(h.ports.smtp);
  assert.match(await c.cmd('MAIL FROM:<x@elsewhere.example>'), /^250/);
  for (let i = 0; i < 5; i++) assert.match(await c.cmd(`RCPT TO:<adam+t${i}@example.com>`), /^250/);
  assert.match(await c.cmd('RCPT TO:<betty@example.com>'), /^452 4\.5\.3 /);
  c.close();
});

test('bare LF and long lines are stored exactly as sent; the trace fields are prepended', async () => {
  const { c } = await ehlo(h.ports.smtp);
  assert.match(await c.cmd('MAIL FROM:<sender@elsewhere.example>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<betty@example.com>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  const body = 'Subject: bare\r\nX-Test: bare-lf\r\n\r\nline one\nline two\r\n' + 'y'.repeat(5000) + '\r\n..dot stuffed\r\n\n.\nnot the end\r\n';
  c.write(body + '.\r\n');
  assert.match(await c.reply(), /^250 2\.0\.0 /);
  c.close();
  const msgs = await mailboxMessages(h.store, 'betty@example.com');
  const m = msgs.find((x) => x.includes('X-Test: bare-lf'));
  assert.ok(m);
  const { returnPath, received, rest } = splitPrepended(m);
  assert.equal(returnPath, 'Return-Path: <sender@elsewhere.example>');
  assert.match(received, /^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.test\.example \(Pillarbox\) with ESMTP id \S+\r\n\tfor <betty@example\.com>; \w{3}, \d+ \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r\n$/);
  assert.equal(rest.toString('latin1'), body.replace('\r\n..dot', '\r\n.dot'));
});

test('STARTTLS on the MX port: Received records the TLS version and cipher', async () => {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: h.ports.smtp, secure: false, requireTLS: true, tls: { ca: [h.ca], servername: 'localhost' } });
  const info = await t.sendMail({ envelope: { from: 'tls@elsewhere.example', to: ['adam@example.com'] }, raw: 'Subject: via starttls\r\n\r\nhello\r\n' });
  assert.equal(info.accepted.length, 1);
  t.close();
  const m = (await mailboxMessages(h.store, 'adam@example.com')).find((x) => x.includes('via starttls'))!;
  const { received } = splitPrepended(m);
  assert.match(received, /\(using TLSv1\.[23] with cipher [A-Z0-9_]+\)/);
  assert.match(received, /with ESMTPS id/);
});

test('implicit TLS (465) with AUTH PLAIN: ESMTPSA, sender must be owned', async () => {
  const sock = tlsConnect({ host: '127.0.0.1', port: h.ports.submissions, ca: [h.ca], servername: 'localhost' });
  await new Promise<void>((r, j) => {
    sock.once('secureConnect', () => r());
    sock.once('error', j);
  });
  const c = new RawSmtp(sock);
  assert.match(await c.reply(), /^220 /);
  const caps = await c.cmd('EHLO client.test');
  assert.match(caps, /^250[- ]AUTH PLAIN LOGIN$/m);
  assert.doesNotMatch(caps, /STARTTLS/);
  assert.match(await c.cmd('MAIL FROM:<adam@example.com>'), /^530 5\.7\.0 Authentication required/);
  assert.match(await c.cmd('AUTH PLAIN ' + Buffer.from('\0adam@example.com\0wrong').toString('base64')), /^535 5\.7\.8 /);
  assert.match(await c.cmd('AUTH PLAIN ' + Buffer.from('\0adam@example.com\0adam-pw').toString('base64')), /^235 2\.7\.0 /);
  assert.match(await c.cmd('MAIL FROM:<betty@example.com>'), /^553 5\.7\.1 /);
  assert.match(await c.cmd('MAIL FROM:<adam+lists@example.com>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<someone@elsewhere.example>'), /^451 4\.3\.2 /);
  assert.match(await c.cmd('RCPT TO:<betty@example.com>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  c.write('Subject: from adam\r\n\r\nhi betty\r\n.\r\n');
  assert.match(await c.reply(), /^250 2\.0\.0 /);
  c.close();
  const m = (await mailboxMessages(h.store, 'betty@example.com')).find((x) => x.includes('Subject: from adam'))!;
  assert.match(splitPrepended(m).received, /with ESMTPSA id/);
  // The cached parse (IMAP ENVELOPE etc.) is of the stored bytes.
  const betty = (await h.store.getAccount('betty@example.com'))!;
  const inbox = (await h.store.getMailbox(betty.id, 'INBOX'))!;
  const recs = await h.store.getMessages(inbox.id, (await h.store.listMessages(inbox.id)).map((x) => x.uid));
  const rec = recs.find((r) => r.meta.envelope.subject === 'from adam')!;
  assert.ok(rec);
  assert.equal(rec.size, m.length);
  assert.equal(rec.meta.root.bodyEnd, m.length);
});

test('SMTPUTF8: a UTF-8 mailbox name is resolved and the message stored as sent', async () => {
  await h.addUser('jörg@example.com', 'jörg-pw');
  const { c } = await ehlo(h.ports.smtp);
  assert.match(await c.cmd('MAIL FROM:<müller@elsewhere.example> SMTPUTF8 BODY=8BITMIME'), /^250/);
  assert.match(await c.cmd('RCPT TO:<JÖRG@example.com>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  const body = Buffer.from('From: müller@elsewhere.example\r\nSubject: Grüße\r\n\r\nÄÖÜ 日本\r\n');
  c.write(Buffer.concat([body, Buffer.from('.\r\n')]));
  assert.match(await c.reply(), /^250 /);
  c.close();
  const [m] = await mailboxMessages(h.store, 'jörg@example.com');
  const { returnPath, rest } = splitPrepended(m!);
  assert.equal(Buffer.from(returnPath, 'latin1').toString('utf8'), 'Return-Path: <müller@elsewhere.example>');
  assert.ok(rest.equals(body));
});
