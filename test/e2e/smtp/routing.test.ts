// Issue #3 routing against the real `pillarbox serve`, provisioned through the admin CLI: alias
// fan-out (one stored body), plus-addressing into a folder made by an IMAP client, catch-all,
// unknown recipients, and quotas under concurrency.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { ImapFlow } from 'imapflow';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { stored, withStore, run, RawSmtp } from './util.ts';
import { needs } from '../../helpers/external.ts';

let srv: TestServer;

before(async () => {
  srv = await startServer();
  for (const u of ['adam', 'betty', 'support']) await srv.addUser(`${u}@example.com`, `${u}-pw`);
  await srv.addUser('full@example.com', 'full-pw', { quota: '8KB' });
  await srv.addUser('race@example.com', 'race-pw', { quota: '20KB' });
  const cli = async (args: string[]) => {
    const r = await srv.cli(args);
    assert.equal(r.code, 0, r.stderr);
  };
  await cli(['alias', 'add', 'support@example.com', 'support@example.com', 'adam@example.com', 'betty@example.com']);
  await cli(['domain', 'add', 'catch.example']);
  await cli(['alias', 'add', '@catch.example', 'betty@example.com']);
});
after(async () => {
  await srv?.stop();
});

function mx() {
  return nodemailer.createTransport({ host: '127.0.0.1', port: srv.ports.smtp, secure: false, ignoreTLS: true });
}
async function send(to: string[], raw: string) {
  const t = mx();
  try {
    return await t.sendMail({ envelope: { from: 'sender@elsewhere.example', to }, raw });
  } finally {
    t.close();
  }
}

test('support@ → support@, adam@, betty@: one stored body in three mailboxes', async () => {
  await send(['support@example.com'], 'Subject: ticket 1\r\n\r\nplease help\r\n');
  await withStore(srv.dataDir, async (s) => {
    const blobs = new Set<string>();
    for (const u of ['support', 'adam', 'betty']) {
      const acc = (await s.getAccount(`${u}@example.com`))!;
      const inbox = (await s.getMailbox(acc.id, 'INBOX'))!;
      const recs = await s.getMessages(inbox.id, (await s.listMessages(inbox.id)).map((m) => m.uid));
      const r = recs.find((x) => x.meta.envelope.subject === 'ticket 1');
      assert.ok(r, `${u} got it`);
      blobs.add(r.blobId);
    }
    assert.equal(blobs.size, 1);
  });
});

test('plus-addressing: into a folder the user made over IMAP, else INBOX (swaks)', needs('swaks'), async () => {
  const imap = new ImapFlow({ host: '127.0.0.1', port: srv.ports.imaps, secure: true, tls: { ca: [srv.ca], servername: 'localhost' }, auth: { user: 'adam@example.com', pass: 'adam-pw' }, logger: false });
  await imap.connect();
  await imap.mailboxCreate('Receipts');
  await imap.logout();
  const swaks = (to: string, subject: string) =>
    run('swaks', ['--server', '127.0.0.1', '--port', String(srv.ports.smtp), '--from', 'shop@elsewhere.example', '--to', to, '--h-Subject', subject, '--body', 'x']);
  assert.equal((await swaks('adam+receipts@example.com', 'order 42')).code, 0);
  assert.equal((await swaks('adam+newsletter@example.com', 'weekly news')).code, 0);
  assert.ok((await stored(srv.dataDir, 'adam@example.com', 'Receipts')).some((m) => m.includes('Subject: order 42')));
  const inbox = await stored(srv.dataDir, 'adam@example.com');
  assert.ok(inbox.some((m) => m.includes('Subject: weekly news')));
  assert.ok(!inbox.some((m) => m.includes('Subject: order 42')));
});

test('catch-all of catch.example; unknown recipient of example.com gets 550 5.1.1', async () => {
  await send(['anything-at-all@catch.example'], 'Subject: caught one\r\n\r\nx\r\n');
  assert.ok((await stored(srv.dataDir, 'betty@example.com')).some((m) => m.includes('Subject: caught one')));
  const c = await RawSmtp.connect(srv.ports.smtp);
  await c.reply();
  await c.cmd('EHLO t.test');
  await c.cmd('MAIL FROM:<x@elsewhere.example>');
  assert.match(await c.cmd('RCPT TO:<nobody@example.com>'), /^550 5\.1\.1 /);
  c.close();
});

test('a full mailbox: its recipient gets 452 4.2.2 while the second recipient receives the message', async () => {
  await send(['full@example.com'], `Subject: filler 1\r\n\r\n${'f'.repeat(3000)}\r\n`);
  await send(['full@example.com'], `Subject: filler 2\r\n\r\n${'f'.repeat(3000)}\r\n`);
  // Nearly full (8 KB quota, ~6.6 KB used): a sender that declares SIZE (RFC 1870, as MTAs do)
  // learns at RCPT time, for that recipient only.
  const c = await RawSmtp.connect(srv.ports.smtp);
  await c.reply();
  await c.cmd('EHLO mta.test');
  assert.match(await c.cmd('MAIL FROM:<x@elsewhere.example> SIZE=3000'), /^250/);
  assert.match(await c.cmd('RCPT TO:<full@example.com>'), /^452 4\.2\.2 /);
  assert.match(await c.cmd('RCPT TO:<betty@example.com>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  c.write('Subject: declared size\r\n\r\n' + 'd'.repeat(2900) + '\r\n.\r\n');
  assert.match(await c.reply(), /^250 2\.0\.0 /);
  c.close();
  // Filled to its quota exactly: refused at RCPT whatever the sender declares.
  const used = await withStore(srv.dataDir, async (s) => (await s.getAccount('full@example.com'))!.usedBytes);
  const q = await srv.cli(['user', 'quota', 'full@example.com', String(used)]);
  assert.equal(q.code, 0, q.stderr);
  const t = mx();
  try {
    const info = await t.sendMail({ envelope: { from: 'sender@elsewhere.example', to: ['full@example.com', 'betty@example.com'] }, raw: 'Subject: two recipients\r\n\r\n' + 'x'.repeat(3000) + '\r\n' });
    assert.deepEqual(info.accepted, ['betty@example.com']);
    assert.deepEqual(info.rejected, ['full@example.com']);
    assert.match(String((info as unknown as { rejectedErrors: Error[] }).rejectedErrors[0]), /452 4\.2\.2/);
  } finally {
    t.close();
  }
  const betty = await stored(srv.dataDir, 'betty@example.com');
  assert.ok(betty.some((m) => m.includes('Subject: two recipients')));
  assert.ok(betty.some((m) => m.includes('Subject: declared size')));
  await withStore(srv.dataDir, async (s) => {
    const a = (await s.getAccount('full@example.com'))!;
    assert.equal(a.messageCount, 2);
    assert.ok(a.usedBytes <= a.quota, `${a.usedBytes} > ${a.quota}`);
  });
});

test('20 concurrent senders into a 20 KB quota: usage never above it, every 250 stored', async () => {
  let accepted = 0;
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, async (_, i) => {
      await send(['race@example.com'], `Subject: race ${i}\r\n\r\n${'r'.repeat(2500)}\r\n`);
      accepted++;
    }),
  );
  for (const r of results) if (r.status === 'rejected') assert.match(String(r.reason), /452 4\.2\.2/);
  await withStore(srv.dataDir, async (s) => {
    const a = (await s.getAccount('race@example.com'))!;
    assert.ok(a.usedBytes <= a.quota, `${a.usedBytes} > ${a.quota}`);
    assert.equal(a.messageCount, accepted);
  });
  assert.ok(accepted >= 4 && accepted < 20, `accepted ${accepted}`);
});
