// Where mail goes: aliases (fan-out, loops, external targets), plus-addressing, catch-all, quotas.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { StoreError } from '../../../src/store/store.ts';
import { startHarness, mailboxMessages, RawSmtp, type Harness } from './harness.ts';

let h: Harness;

before(async () => {
  h = await startHarness({ domains: ['example.com', 'catch.example'] });
  for (const u of ['adam', 'betty', 'carol', 'dave']) await h.addUser(`${u}@example.com`, `${u}-pw`);
  await h.addUser('full@example.com', 'full-pw', 5000);
  await h.addUser('tiny@example.com', 'tiny-pw', 4000);
});
after(async () => {
  await h.close();
});

async function send(to: string[], raw: string, from = 'sender@elsewhere.example') {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: h.ports.smtp, secure: false, ignoreTLS: true });
  try {
    return await t.sendMail({ envelope: { from, to }, raw });
  } finally {
    t.close();
  }
}

async function latest(address: string, mailbox = 'INBOX') {
  const acc = (await h.store.getAccount(address))!;
  const mb = (await h.store.getMailbox(acc.id, mailbox))!;
  return (await h.store.listMessages(mb.id)).at(-1);
}

test('alias fan-out stores one body in three mailboxes; an alias may list itself', async () => {
  await h.store.setAlias('team@example.com', ['team@example.com', 'adam@example.com', 'betty@example.com', 'carol@example.com']);
  const info = await send(['team@example.com'], 'Subject: fan-out\r\n\r\nto the team\r\n');
  assert.deepEqual(info.accepted, ['team@example.com']);
  const ids = await Promise.all(['adam', 'betty', 'carol'].map(async (u) => (await latest(`${u}@example.com`))!.blobId));
  assert.equal(new Set(ids).size, 1, 'one stored body');
  for (const u of ['adam', 'betty', 'carol']) assert.ok((await mailboxMessages(h.store, `${u}@example.com`)).some((m) => m.includes('to the team')));
});

test('alias that names its own account (support@ → support@, adam@, betty@) reaches all three', async (t) => {
  await h.addUser('support@example.com', 'support-pw');
  try {
    await h.store.setAlias('support@example.com', ['support@example.com', 'adam@example.com', 'betty@example.com']);
  } catch (err) {
    if (err instanceof StoreError && err.code === 'exists') return t.skip('the store refuses an alias on an account address');
    throw err;
  }
  await send(['support@example.com'], 'Subject: support case\r\n\r\nhelp\r\n');
  for (const u of ['support', 'adam', 'betty']) assert.ok((await mailboxMessages(h.store, `${u}@example.com`)).some((m) => m.includes('Subject: support case')), u);
});

test('alias loops terminate and each account gets one copy', async () => {
  await h.store.setAlias('loop1@example.com', ['loop2@example.com', 'dave@example.com']);
  await h.store.setAlias('loop2@example.com', ['loop1@example.com', 'dave@example.com', 'loop2@example.com']);
  const before = (await mailboxMessages(h.store, 'dave@example.com')).length;
  await send(['loop1@example.com', 'loop2@example.com', 'dave@example.com'], 'Subject: loop\r\n\r\nround\r\n');
  assert.equal((await mailboxMessages(h.store, 'dave@example.com')).length, before + 1);
});

test('alias with an external target: a clear temporary refusal until the outbound queue exists', async () => {
  await h.store.setAlias('fwd@example.com', ['someone@elsewhere.example']);
  const c = await RawSmtp.connect(h.ports.smtp);
  await c.reply();
  await c.cmd('EHLO client.test');
  assert.match(await c.cmd('MAIL FROM:<x@elsewhere.example>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<fwd@example.com>'), /^451 4\.3\.2 /);
  c.close();
});

test('plus-addressing: into an existing folder (any case), else INBOX', async () => {
  const adam = (await h.store.getAccount('adam@example.com'))!;
  await h.store.createMailbox(adam.id, 'Work');
  await send(['adam+work@example.com'], 'Subject: plus folder\r\n\r\nwork stuff\r\n');
  await send(['adam+nosuch@example.com'], 'Subject: plus inbox\r\n\r\nother stuff\r\n');
  assert.ok((await mailboxMessages(h.store, 'adam@example.com', 'Work')).some((m) => m.includes('Subject: plus folder')));
  assert.ok((await mailboxMessages(h.store, 'adam@example.com')).some((m) => m.includes('Subject: plus inbox')));
  assert.ok(!(await mailboxMessages(h.store, 'adam@example.com')).some((m) => m.includes('Subject: plus folder')));
});

test('catch-all takes unknown addresses of its domain only', async () => {
  await h.store.setAlias('@catch.example', ['betty@example.com']);
  await send(['whatever@catch.example'], 'Subject: caught\r\n\r\nx\r\n');
  assert.ok((await mailboxMessages(h.store, 'betty@example.com')).some((m) => m.includes('Subject: caught')));
  await assert.rejects(send(['whatever@example.com'], 'Subject: not caught\r\n\r\nx\r\n'), /550/);
});

test('quota: a full mailbox gets 452 at RCPT while the other recipient gets the message', async () => {
  await send(['full@example.com'], 'Subject: filler\r\n\r\n' + 'f'.repeat(4200) + '\r\n');
  const acc = (await h.store.getAccount('full@example.com'))!;
  assert.ok(acc.usedBytes <= acc.quota);
  const c = await RawSmtp.connect(h.ports.smtp);
  await c.reply();
  await c.cmd('EHLO client.test');
  assert.match(await c.cmd('MAIL FROM:<x@elsewhere.example> SIZE=9000'), /^250/);
  assert.match(await c.cmd('RCPT TO:<tiny@example.com>'), /^552 5\.2\.2 /, 'declared size above the whole quota');
  assert.match(await c.cmd('RSET'), /^250/);
  assert.match(await c.cmd('MAIL FROM:<x@elsewhere.example> SIZE=1000'), /^250/);
  assert.match(await c.cmd('RCPT TO:<full@example.com>'), /^452 4\.2\.2 /);
  assert.match(await c.cmd('RCPT TO:<carol@example.com>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  c.write('Subject: partly full\r\n\r\n' + 'p'.repeat(900) + '\r\n.\r\n');
  assert.match(await c.reply(), /^250 /);
  c.close();
  assert.ok((await mailboxMessages(h.store, 'carol@example.com')).some((m) => m.includes('Subject: partly full')));
  assert.ok(!(await mailboxMessages(h.store, 'full@example.com')).some((m) => m.includes('Subject: partly full')));
});

test('quota under 20 concurrent senders: usage never exceeds it; every 250 is stored, the rest got 452', async () => {
  const q = await h.addUser('race@example.com', 'race-pw', 10_000);
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, (_, i) => send(['race@example.com'], `Subject: race ${i}\r\n\r\n${'r'.repeat(1000)}\r\n`)),
  );
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  const refused = results.filter((r) => r.status === 'rejected');
  for (const r of refused) assert.match(String((r as PromiseRejectedResult).reason), /452|4\.2\.2/);
  const acc = (await h.store.getAccount('race@example.com'))!;
  assert.ok(acc.usedBytes <= q.quota, `used ${acc.usedBytes} > quota ${q.quota}`);
  assert.equal(acc.messageCount, ok);
  assert.equal((await mailboxMessages(h.store, 'race@example.com')).length, ok);
  assert.ok(ok >= 5 && ok < 20, `accepted ${ok}`);
});

test('MAIL FROM after AUTH: own address and aliases that reach the user are allowed, others 553', async () => {
  await h.store.setAlias('sales@example.com', ['carol@example.com', 'dave@example.com']);
  const t = nodemailer.createTransport({
    host: '127.0.0.1',
    port: h.ports.submission,
    secure: false,
    requireTLS: true,
    auth: { user: 'carol@example.com', pass: 'carol-pw' },
    authMethod: 'LOGIN',
    tls: { ca: [h.ca], servername: 'localhost' },
  });
  try {
    const ok = await t.sendMail({ envelope: { from: 'sales@example.com', to: ['dave@example.com'] }, raw: 'Subject: from sales\r\n\r\nx\r\n' });
    assert.equal(ok.accepted.length, 1);
    await assert.rejects(t.sendMail({ envelope: { from: 'adam@example.com', to: ['dave@example.com'] }, raw: 'Subject: forged\r\n\r\nx\r\n' }), /553/);
  } finally {
    t.close();
  }
  assert.ok((await mailboxMessages(h.store, 'dave@example.com')).some((m) => m.includes('Subject: from sales')));
  assert.ok(!(await mailboxMessages(h.store, 'dave@example.com')).some((m) => m.includes('Subject: forged')));
});

test('the domainless "postmaster" is accepted (RFC 5321 §4.1.1.3)', async () => {
  await h.store.setAlias('postmaster@example.com', ['dave@example.com']);
  const c = await RawSmtp.connect(h.ports.smtp);
  await c.reply();
  await c.cmd('EHLO client.test');
  assert.match(await c.cmd('MAIL FROM:<x@elsewhere.example>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<Postmaster>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  c.write('Subject: to the postmaster\r\n\r\nx\r\n.\r\n');
  assert.match(await c.reply(), /^250 /);
  c.close();
  // Domains are tried in order: catch.example (its catch-all → betty) comes before example.com.
  assert.ok((await mailboxMessages(h.store, 'betty@example.com')).some((m) => m.includes('Subject: to the postmaster')));
});
