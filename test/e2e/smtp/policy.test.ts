// Issue 13, the SMTP side: partial local delivery with a DSN, remote recipients and forwards through
// the real Outbound into the store's queue (no queue engine runs here, so entries stay queued),
// SRS reversal, the submission From: check, send limits, the DSN extension, LMTP per-recipient
// replies. Real servers on loopback (the in-process harness: real listeners, SQLite store, TLS),
// real clients (nodemailer, Python smtplib, raw sockets).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { startHarness, mailboxMessages, RawSmtp, type Harness } from '../../unit/smtp/harness.ts';
import { parseMessage } from '../../../src/protocol/mime/parser.ts';
import { parseHeaderBlock, unfoldValue } from '../../../src/protocol/mime/headers.ts';
import { needs } from '../../helpers/external.ts';
import { run } from './util.ts';

let h: Harness;
let bare: Harness;
let lim: Harness;

before(async () => {
  h = await startHarness({
    domains: ['example.com'],
    allowPlaintextLoopback: true,
    outbound: true,
    lmtp: true,
  });
  for (const u of ['adam', 'betty', 'carol']) await h.addUser(`${u}@example.com`, `${u}-pw`);
  await h.addUser('full@example.com', 'full-pw', 6000);
  await h.addUser('tiny@example.com', 'tiny-pw', 1000);
  await h.store.setAlias('adam.alias@example.com', ['adam@example.com']);
  await h.store.setAlias('fwd@example.com', ['carol@example.com', 'friend@remote.example']);
  bare = await startHarness({ domains: ['example.com'], allowPlaintextLoopback: true });
  await bare.addUser('adam@example.com', 'adam-pw');
  await bare.addUser('full@example.com', 'full-pw', 6000);
  lim = await startHarness({ domains: ['example.com'], allowPlaintextLoopback: true, limits: { sendMessagesPerHour: 3, sendRecipientsPerDay: 4 } });
  for (const u of ['limited', 'rcptlimited', 'betty', 'carol', 'adam', 'full', 'tiny']) await lim.addUser(`${u}@example.com`, `${u}-pw`);
});
after(async () => {
  await h.close();
  await bare.close();
  await lim.close();
});

function submit(user: string, port = h.ports.submission) {
  return nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, auth: { user, pass: user.split('@')[0] + '-pw' } });
}

async function fill(address: string, bytes: number) {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: h.ports.smtp, secure: false, ignoreTLS: true });
  await t.sendMail({ envelope: { from: 'filler@elsewhere.example', to: [address] }, raw: `Subject: filler\r\n\r\n${'f'.repeat(bytes)}\r\n` });
  t.close();
}

/** The delivery-status groups of a stored DSN (RFC 3464 §2.1). */
function dsnStatus(raw: Buffer): Array<Map<string, string>> {
  const meta = parseMessage(raw);
  assert.equal(`${meta.root.type}/${meta.root.subtype}`, 'multipart/report');
  const part = meta.root.children![1]!;
  assert.equal(`${part.type}/${part.subtype}`, 'message/delivery-status');
  return raw
    .subarray(part.bodyStart, part.bodyEnd)
    .toString('latin1')
    .split('\r\n\r\n')
    .filter((g) => g.trim())
    .map((g) => new Map(parseHeaderBlock(Buffer.from(g + '\r\n\r\n')).map((f) => [f.name, unfoldValue(f.value)] as [string, string])));
}

test('three local recipients, one mailbox full: two get it (250), the local sender gets a DSN for the third', async () => {
  await fill('full@example.com', 4000);
  const t = submit('adam@example.com');
  const body = 'x'.repeat(2500);
  const info = await t.sendMail({ envelope: { from: 'adam@example.com', to: ['betty@example.com', 'full@example.com', 'carol@example.com'] }, raw: `From: adam@example.com\r\nSubject: three\r\n\r\n${body}\r\n` });
  t.close();
  assert.deepEqual(info.accepted.sort(), ['betty@example.com', 'carol@example.com', 'full@example.com']);
  assert.match(info.response, /^250 /);
  for (const u of ['betty', 'carol']) assert.ok((await mailboxMessages(h.store, `${u}@example.com`)).some((m) => m.includes('Subject: three')), u);
  assert.ok(!(await mailboxMessages(h.store, 'full@example.com')).some((m) => m.includes('Subject: three')));
  const dsn = (await mailboxMessages(h.store, 'adam@example.com')).find((m) => m.includes('multipart/report'));
  assert.ok(dsn, 'DSN in the sender INBOX');
  assert.match(dsn.toString(), /^Return-Path: <>\r\n/);
  assert.match(dsn.toString(), /Auto-Submitted: auto-replied/);
  const [perMessage, rcpt, ...more] = dsnStatus(dsn);
  assert.equal(more.length, 0, 'one recipient reported');
  assert.equal(perMessage!.get('reporting-mta'), 'dns; mx.test.example');
  assert.equal(rcpt!.get('final-recipient'), 'rfc822; full@example.com');
  assert.equal(rcpt!.get('action'), 'failed');
  assert.equal(rcpt!.get('status'), '5.2.2');
  const human = dsn.toString('latin1').replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, x: string) => String.fromCharCode(parseInt(x, 16)));
  assert.match(Buffer.from(human, 'latin1').toString('utf8'), /Your message to full@example\.com could not be delivered: mailbox full — returned to sender\./);
  assert.ok(dsn.includes('Subject: three'), 'the original is returned');
});

test('MX: one full mailbox, remote sender: 250 for the others, the DSN is queued to the sender with <>', async () => {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: h.ports.smtp, secure: false, ignoreTLS: true });
  const before = (await h.store.queue.list()).length;
  await t.sendMail({ envelope: { from: 'someone@remote.example', to: ['full@example.com', 'betty@example.com'] }, raw: `Subject: mx-partial\r\n\r\n${'y'.repeat(2500)}\r\n` });
  t.close();
  assert.ok((await mailboxMessages(h.store, 'betty@example.com')).some((m) => m.includes('Subject: mx-partial')));
  const queued = (await h.store.queue.list()).slice(before);
  const dsn = queued.find((m) => m.origin === 'dsn');
  assert.ok(dsn, 'a DSN entry in the queue');
  assert.equal(dsn.mailFrom, '', 'never a bounce to <> from a bounce: sent with the null sender');
  assert.deepEqual(dsn.recipients.map((r) => r.address), ['someone@remote.example']);
  const [, rcpt] = dsnStatus(await h.store.readBlob(dsn.blob.id));
  assert.equal(rcpt!.get('status'), '5.2.2');
});

test('without an outbound queue: a remote RCPT on submission gets 451; with a remote sender on MX the old all-or-nothing 452 stays', async () => {
  const c = await RawSmtp.connect(bare.ports.submission);
  await c.reply();
  await c.cmd('EHLO client.example');
  assert.match(await c.cmd(`AUTH PLAIN ${Buffer.from('\0adam@example.com\0adam-pw').toString('base64')}`), /^235/);
  assert.match(await c.cmd('MAIL FROM:<adam@example.com>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<x@remote.example>'), /^451 4\.3\.2 /);
  await c.cmd('QUIT');
  // No queue to send a DSN to a remote sender through: nobody gets a copy, the sender's server retries.
  const mx = nodemailer.createTransport({ host: '127.0.0.1', port: bare.ports.smtp, secure: false, ignoreTLS: true });
  await mx.sendMail({ envelope: { from: 'f@elsewhere.example', to: ['full@example.com'] }, raw: `Subject: filler\r\n\r\n${'f'.repeat(4000)}\r\n` });
  await assert.rejects(
    mx.sendMail({ envelope: { from: 'someone@remote.example', to: ['full@example.com', 'adam@example.com'] }, raw: `Subject: all-or-nothing\r\n\r\n${'y'.repeat(2500)}\r\n` }),
    /452 4\.2\.2 Mailbox full: full@example\.com/,
  );
  mx.close();
  assert.ok(!(await mailboxMessages(bare.store, 'adam@example.com')).some((m) => m.includes('Subject: all-or-nothing')));
});

test('submission to other domains: one queue entry for all remote recipients, with RET/ENVID/NOTIFY/ORCPT (RFC 3461)', async () => {
  const c = await RawSmtp.connect(h.ports.submission);
  await c.reply();
  assert.match(await c.cmd('EHLO client.example'), /250[- ]DSN/);
  assert.match(await c.cmd(`AUTH PLAIN ${Buffer.from('\0adam@example.com\0adam-pw').toString('base64')}`), /^235/);
  assert.match(await c.cmd('MAIL FROM:<adam@example.com> RET=HDRS ENVID=env+2B1'), /^250/);
  assert.match(await c.cmd('RCPT TO:<x@remote.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;X+2Bq@remote.example'), /^250/);
  assert.match(await c.cmd('RCPT TO:<y@other.example> NOTIFY=NEVER'), /^250/);
  assert.match(await c.cmd('RCPT TO:<betty@example.com>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  const reply = await c.cmd('From: Adam <adam@example.com>\r\nSubject: out\r\n\r\nhello world\r\n.');
  assert.match(reply, /^250 2\.0\.0 OK: delivered as .*queued as /);
  await c.cmd('QUIT');
  const m = (await h.store.queue.list()).find((q) => q.origin === 'submission' && q.envid === 'env+1');
  assert.ok(m, 'queued');
  assert.equal(m.mailFrom, 'adam@example.com');
  assert.equal(m.ret, 'HDRS');
  assert.equal(m.accountId, (await h.store.getAccount('adam@example.com'))!.id);
  const byAddr = new Map(m.recipients.map((r) => [r.address, r]));
  assert.deepEqual([...byAddr.keys()].sort(), ['x@remote.example', 'y@other.example']);
  assert.equal(byAddr.get('x@remote.example')!.orcpt, 'rfc822;X+q@remote.example');
  assert.deepEqual(byAddr.get('x@remote.example')!.notify, { success: false, failure: true, delay: true });
  assert.deepEqual(byAddr.get('y@other.example')!.notify, { never: true });
  assert.ok((await mailboxMessages(h.store, 'betty@example.com')).some((b) => b.includes('Subject: out')), 'the local copy too');
});

test('MX: relay stays denied; an alias with an outside target forwards with an SRS sender; a bounce to it reaches the sender', async () => {
  const mx = nodemailer.createTransport({ host: '127.0.0.1', port: h.ports.smtp, secure: false, ignoreTLS: true });
  await assert.rejects(mx.sendMail({ envelope: { from: 'a@remote.example', to: ['b@elsewhere.example'] }, raw: 'Subject: relay\r\n\r\nx\r\n' }), /554 5\.7\.1/);
  await mx.sendMail({ envelope: { from: 'orig@sender.example', to: ['fwd@example.com'] }, raw: 'Subject: forwarded\r\n\r\nfwd\r\n' });
  assert.ok((await mailboxMessages(h.store, 'carol@example.com')).some((b) => b.includes('Subject: forwarded')), 'local target');
  const fw = (await h.store.queue.list()).find((q) => q.origin === 'forward' && q.recipients.some((r) => r.address === 'friend@remote.example'));
  assert.ok(fw, 'forward queued');
  assert.match(fw.mailFrom, /^SRS0=[A-Z2-7]{6}=[A-Z2-7]{2}=sender\.example=orig@mx\.test\.example$/);
  // The remote side bounces to the SRS address: it goes back out to the original sender, as <>.
  await mx.sendMail({ envelope: { from: '', to: [fw.mailFrom] }, raw: 'Subject: bounce of forwarded\r\n\r\nno\r\n' });
  const back = (await h.store.queue.list()).find((q) => q.recipients.some((r) => r.address === 'orig@sender.example'));
  assert.ok(back, 'the bounce is routed to the original sender');
  assert.equal(back.mailFrom, '');
  // A local original sender gets it in the INBOX.
  const t = submit('adam@example.com');
  await t.sendMail({ envelope: { from: 'adam@example.com', to: ['fwd@example.com'] }, raw: 'From: adam@example.com\r\nSubject: fwd-local\r\n\r\nx\r\n' });
  t.close();
  const fw2 = (await h.store.queue.list()).find((q) => q.origin === 'forward' && q.mailFrom.includes('=example.com=adam@'));
  assert.ok(fw2);
  await mx.sendMail({ envelope: { from: '', to: [fw2.mailFrom] }, raw: 'Subject: srs-bounce-local\r\n\r\nno\r\n' });
  assert.ok((await mailboxMessages(h.store, 'adam@example.com')).some((b) => b.includes('Subject: srs-bounce-local')));
  // Tampered: refused.
  const bad = fw2.mailFrom.replace('=adam@', '=betty@');
  await assert.rejects(mx.sendMail({ envelope: { from: '', to: [bad] }, raw: 'Subject: x\r\n\r\nx\r\n' }), /550 5\.7\.1/);
  mx.close();
});

test('submission: a From: that is not the user is refused 550 5.7.1; an alias of theirs is fine (nodemailer)', async () => {
  const t = submit('adam@example.com');
  await assert.rejects(
    t.sendMail({ envelope: { from: 'adam@example.com', to: ['betty@example.com'] }, raw: 'From: Betty <betty@example.com>\r\nSubject: spoof\r\n\r\nx\r\n' }),
    /550 5\.7\.1 From: <betty@example\.com> is not an address of adam@example\.com/,
  );
  assert.ok(!(await mailboxMessages(h.store, 'betty@example.com')).some((b) => b.includes('Subject: spoof')));
  await t.sendMail({ envelope: { from: 'adam@example.com', to: ['betty@example.com'] }, raw: 'From: Adam <adam.alias@example.com>\r\nSubject: alias-from\r\n\r\nx\r\n' });
  t.close();
  assert.ok((await mailboxMessages(h.store, 'betty@example.com')).some((b) => b.includes('Subject: alias-from')));
});

test('submission From: check with Python smtplib', needs('python3'), async () => {
  const py = `
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', ${h.ports.submission})
s.ehlo('py.example'); s.login('adam@example.com', 'adam-pw')
try:
    s.sendmail('adam@example.com', ['betty@example.com'], 'From: carol@example.com\\r\\nSubject: py spoof\\r\\n\\r\\nx\\r\\n')
    print('accepted')
except smtplib.SMTPDataError as e:
    print(e.smtp_code, e.smtp_error.decode())
s.quit()
`;
  const r = await run('python3', ['-c', py]);
  assert.match(r.out, /^550 5\.7\.1 From: <carol@example\.com>/m);
});

test('send limits: messages per hour at MAIL FROM, recipients per day at RCPT (450 4.7.1)', async () => {
  const t = submit('limited@example.com', lim.ports.submission);
  for (let i = 0; i < 3; i++) await t.sendMail({ envelope: { from: 'limited@example.com', to: ['betty@example.com'] }, raw: `From: limited@example.com\r\nSubject: n${i}\r\n\r\nx\r\n` });
  await assert.rejects(t.sendMail({ envelope: { from: 'limited@example.com', to: ['betty@example.com'] }, raw: 'From: limited@example.com\r\nSubject: n3\r\n\r\nx\r\n' }), /450 4\.7\.1 Sending limit reached: at most 3 messages per hour/);
  t.close();
  const r = submit('rcptlimited@example.com', lim.ports.submission);
  const info = await r.sendMail({
    envelope: { from: 'rcptlimited@example.com', to: ['betty@example.com', 'carol@example.com', 'adam@example.com', 'full@example.com', 'tiny@example.com'] },
    raw: 'From: rcptlimited@example.com\r\nSubject: many\r\n\r\nx\r\n',
  });
  assert.equal(info.accepted.length, 4);
  assert.deepEqual(info.rejected, ['tiny@example.com']);
  await assert.rejects(r.sendMail({ envelope: { from: 'rcptlimited@example.com', to: ['betty@example.com'] }, raw: 'From: rcptlimited@example.com\r\nSubject: more\r\n\r\nx\r\n' }), /450 4\.7\.1 Sending limit reached: at most 4 recipients per day/);
  r.close();
});

test('LMTP: one reply per recipient after DATA (250 / 452 / 552), 550 at RCPT for unknown users', async () => {
  const c = await RawSmtp.connect(h.ports.lmtp);
  assert.match(await c.reply(), /^220 .*LMTP/);
  assert.match(await c.cmd('LHLO mta.example'), /^250/);
  assert.match(await c.cmd('MAIL FROM:<someone@remote.example>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<betty@example.com>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<full@example.com>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<tiny@example.com>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<nobody@example.com>'), /^550 5\.1\.1 /);
  assert.match(await c.cmd('RCPT TO:<x@remote.example>'), /^550 5\.1\.2 /);
  assert.match(await c.cmd('DATA'), /^354/);
  c.write(`Subject: lmtp\r\n\r\n${'z'.repeat(2500)}\r\n.\r\n`);
  assert.match(await c.reply(), /^250 /);
  assert.match(await c.reply(), /^452 4\.2\.2 /);
  assert.match(await c.reply(), /^552 5\.2\.2 /);
  await c.cmd('QUIT');
  assert.ok((await mailboxMessages(h.store, 'betty@example.com')).some((b) => b.includes('Subject: lmtp')));
  assert.ok(!(await mailboxMessages(h.store, 'full@example.com')).some((b) => b.includes('Subject: lmtp')));
  assert.ok(!(await mailboxMessages(h.store, 'adam@example.com')).some((b) => b.includes('lmtp') && b.includes('multipart/report')), 'no DSN from LMTP');
});
