// The MX with mailauth's checkInbound (SPF/DKIM/DMARC) against a loopback DNS server: DMARC
// p=reject spoof → 550 at the end of DATA; p=quarantine → the recipient's Junk; our
// Authentication-Results on top and a forged one claiming our hostname removed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { startHarness, mailboxMessages, type Harness } from '../../unit/smtp/harness.ts';
import { startDns, type TestDns } from '../../helpers/dns.ts';
import { checkInbound } from '../../../src/mailauth/inbound.ts';

let h: Harness;
let dns: TestDns;

before(async () => {
  dns = await startDns([
    { name: 'reject.example', type: 'TXT', data: 'v=spf1 -all' },
    { name: '_dmarc.reject.example', type: 'TXT', data: 'v=DMARC1; p=reject' },
    { name: 'quarantine.example', type: 'TXT', data: 'v=spf1 -all' },
    { name: '_dmarc.quarantine.example', type: 'TXT', data: 'v=DMARC1; p=quarantine' },
    { name: 'good.example', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    { name: '_dmarc.good.example', type: 'TXT', data: 'v=DMARC1; p=reject' },
  ]);
  h = await startHarness({ domains: ['example.com'], inbound: checkInbound, config: { dnsServers: dns.servers } as never });
  await h.addUser('adam@example.com', 'adam-pw');
});
after(async () => {
  await h.close();
  await dns.close();
});

async function send(from: string, raw: string) {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: h.ports.smtp, secure: false, ignoreTLS: true, name: 'client.example' });
  try {
    return await t.sendMail({ envelope: { from, to: ['adam@example.com'] }, raw });
  } finally {
    t.close();
  }
}

test('DMARC p=reject spoof: 550 5.7.1 at the end of DATA, nothing stored', async () => {
  await assert.rejects(send('ceo@reject.example', 'From: ceo@reject.example\r\nSubject: wire money\r\n\r\nnow\r\n'), /550 5\.7\.1/);
  assert.ok(!(await mailboxMessages(h.store, 'adam@example.com')).some((m) => m.includes('wire money')));
});

test('DMARC p=quarantine failure: delivered to Junk, not INBOX', async () => {
  await send('news@quarantine.example', 'From: news@quarantine.example\r\nSubject: maybe spam\r\n\r\nx\r\n');
  assert.ok(!(await mailboxMessages(h.store, 'adam@example.com')).some((m) => m.includes('maybe spam')));
  const junk = await mailboxMessages(h.store, 'adam@example.com', 'Junk');
  assert.ok(junk.some((m) => m.includes('maybe spam')));
});

test('passing mail: our Authentication-Results on top (after Return-Path), a forged one for our hostname removed', async () => {
  await send(
    'friend@good.example',
    'Authentication-Results: mx.test.example; dkim=pass header.d=bank.example\r\nFrom: friend@good.example\r\nSubject: hello\r\n\r\nhi\r\n',
  );
  const m = (await mailboxMessages(h.store, 'adam@example.com')).find((b) => b.includes('Subject: hello'));
  assert.ok(m, 'in INBOX');
  const s = m.toString();
  assert.match(s, /^Return-Path: <friend@good\.example>\r\nAuthentication-Results: mx\.test\.example;/);
  assert.match(s, /spf=pass/);
  assert.ok(!s.includes('header.d=bank.example'), 'forged field removed');
  assert.equal(s.split('Authentication-Results:').length - 1, 1);
});
