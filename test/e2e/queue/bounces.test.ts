// The real `pillarbox serve` sending to the world (a loopback DNS server and an smtp-server peer on
// the injected outbound port): delivery, 550 → DSN in the sender's INBOX, null MX → immediate DSN,
// 4xx past the delay threshold → exactly one delay warning, then expiry → DSN.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDns, type TestDns } from '../../helpers/dns.ts';
import { startPeer, type Peer } from '../../helpers/smtp-peer.ts';
import { stored } from '../smtp/util.ts';
import { deliveryStatus, events, startSender, submit, waitFor, type Sender } from './util.ts';

let dns: TestDns;
let peer: Peer;
let a: Sender;

before(async () => {
  peer = await startPeer({
    rcpt: (addr) => (addr.startsWith('gone@') ? [550, '5.1.1 <gone@there.test>: no such user here'] : addr.startsWith('slow@') ? [451, '4.7.1 greylisted, try again'] : null),
  });
  dns = await startDns([
    { name: 'there.test', type: 'MX', priority: 10, exchange: 'mx.there.test' },
    { name: 'mx.there.test', type: 'A', address: '127.0.0.1' },
    { name: 'nomail.test', type: 'MX', priority: 0, exchange: '.' },
  ]);
  a = await startSender({
    hostname: 'mail.a.test',
    dnsServers: dns.servers,
    port: peer.port,
    // Small times so retries, the delay warning and expiry happen within the test.
    outbound: { retryBase: 200, retryMax: 400, delayWarning: 1200, expiry: 4000, timeout: 5000 },
  });
  await a.addUser('adam@a.test', 'adam-pw');
});
after(async () => {
  await a?.done();
  await peer?.close();
  await dns?.close();
});

const dsns = async () => (await stored(a.dataDir, 'adam@a.test')).filter((m) => m.toString('latin1').includes('report-type=delivery-status'));

test('a message to another domain is delivered to its MX, once, DKIM hook and all, without our Return-Path', async () => {
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['bob@there.test'], subject: 'plain delivery' });
  const m = await waitFor('delivery', () => peer.messages.find((x) => x.to.includes('bob@there.test')));
  assert.equal(m.from, 'adam@a.test');
  const text = m.body.toString('latin1');
  assert.match(text, /Subject: plain delivery/);
  assert.ok(!/^Return-Path:/im.test(text.slice(0, text.indexOf('\r\n\r\n'))), 'no Return-Path leaves');
  await waitFor('queue.attempt sent', () => events(a, 'queue.attempt').find((e) => e.rcpt === 'bob@there.test' && e.result === 'sent'));
  assert.equal(peer.messages.filter((x) => x.to.includes('bob@there.test')).length, 1);
});

test('550 from the receiver → a DSN in the sender INBOX with Final-Recipient, Action failed, Status 5.1.1, the remote reply', async () => {
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['gone@there.test'], subject: 'to a gone user' });
  const dsn = await waitFor('the DSN', async () => (await dsns()).find((d) => d.toString('latin1').includes('gone@there.test')));
  const ds = deliveryStatus(dsn);
  assert.match(ds, /Reporting-MTA: dns; ?mail\.a\.test/i);
  assert.match(ds, /Final-Recipient: rfc822; ?gone@there\.test/i);
  assert.match(ds, /Action: failed/);
  assert.match(ds, /Status: 5\.1\.1/);
  assert.match(ds, /Remote-MTA: dns; ?mx\.there\.test/i);
  assert.match(ds, /Diagnostic-Code: smtp; ?550 5\.1\.1 <gone@there\.test>: no such user here/);
  // The original comes back (small message, no RET: FULL), and Return-Path <> marks it a bounce.
  const text = dsn.toString('latin1');
  assert.match(text, /^Return-Path: <>/);
  assert.match(text, /Subject: to a gone user/);
  const at = events(a, 'queue.attempt').filter((e) => e.rcpt === 'gone@there.test');
  assert.deepEqual(at.map((e) => e.result), ['failed']);
});

test('null MX (RFC 7505) → immediate DSN, status 5.1.10, no connection made', async () => {
  const before = peer.connections;
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['someone@nomail.test'], subject: 'to a null MX' });
  const dsn = await waitFor('the null-MX DSN', async () => (await dsns()).find((d) => d.toString('latin1').includes('someone@nomail.test')));
  const ds = deliveryStatus(dsn);
  assert.match(ds, /Action: failed/);
  assert.match(ds, /Status: 5\.1\.10/);
  assert.match(ds, /null MX/);
  assert.equal(events(a, 'queue.attempt').filter((e) => e.rcpt === 'someone@nomail.test').length, 1);
  assert.ok(peer.connections - before <= 1, 'no connection for the null-MX domain (at most one from other tests)');
});

test('4xx past the delay threshold → exactly one delay warning; at expiry → a failed DSN', async () => {
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['slow@there.test'], subject: 'greylisted forever' });
  const forSlow = async () => (await dsns()).filter((d) => d.toString('latin1').includes('slow@there.test'));
  const all = await waitFor('delay warning and expiry DSN', async () => {
    const l = await forSlow();
    return l.some((d) => /Action: failed/.test(deliveryStatus(d))) ? l : null;
  }, 30_000);
  const delayed = all.filter((d) => /Action: delayed/.test(deliveryStatus(d)));
  const failed = all.filter((d) => /Action: failed/.test(deliveryStatus(d)));
  assert.equal(delayed.length, 1, 'exactly one delay warning');
  assert.equal(failed.length, 1, 'one bounce at expiry');
  assert.match(deliveryStatus(delayed[0]!), /Status: 4\.7\.1/);
  assert.match(deliveryStatus(delayed[0]!), /Will-Retry-Until:/);
  assert.match(deliveryStatus(delayed[0]!), /Diagnostic-Code: smtp; ?451 4\.7\.1 greylisted/);
  assert.match(deliveryStatus(failed[0]!), /Status: 4\.4\.7/);
  const attempts = events(a, 'queue.attempt').filter((e) => e.rcpt === 'slow@there.test');
  assert.ok(attempts.length >= 4, `retried with backoff (${attempts.length} attempts)`);
  assert.equal(attempts.at(-1)!.result, 'expired');
  assert.ok(attempts.slice(0, -1).every((e) => e.result === 'deferred'));
  // queue.stats lines appear, with the queue size and the oldest age.
  const stats = events(a, 'queue.stats');
  assert.ok(stats.length > 0 && 'messages' in stats[0]! && 'oldest_s' in stats[0]!);
});
