// Receiver down → the queue retries with backoff and delivers exactly once when it comes up; and
// SIGKILL of the sending server with 1,000 messages queued for a dead destination: after a
// restart and the destination coming up, every message is delivered, duplicates counted (0).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { startDns, type TestDns } from '../../helpers/dns.ts';
import { startPeer, type Peer } from '../../helpers/smtp-peer.ts';
import { withStore } from '../smtp/util.ts';
import { events, startSender, submit, waitFor, type Sender } from './util.ts';

const N = 1000;
let dns: TestDns;
let port: number;
let a: Sender;
const outbound = { retryBase: 300, retryMax: 1000, timeout: 2000, concurrency: 20, perDomainConcurrency: 5 };

before(async () => {
  // A port with nobody on it: the destination is down until a peer listens there.
  const p = await startPeer();
  port = p.port;
  await p.close();
  dns = await startDns([
    { name: 'down.test', type: 'MX', priority: 10, exchange: 'mx.down.test' },
    { name: 'mx.down.test', type: 'A', address: '127.0.0.1' },
  ]);
  a = await startSender({ hostname: 'mail.a.test', dnsServers: dns.servers, port, outbound });
  await a.addUser('adam@a.test', 'adam-pw');
});
after(async () => {
  await a?.done();
  await dns?.close();
});

const subjects = (peer: Peer) => peer.messages.map((m) => /^Subject: (.*)$/m.exec(m.body.toString('latin1'))?.[1] ?? '');

test('receiver down: retried with backoff; delivered exactly once when it is up', async () => {
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['bob@down.test'], subject: 'while down' });
  const deferred = await waitFor('three deferred attempts', () => {
    const l = events(a, 'queue.attempt').filter((e) => e.rcpt === 'bob@down.test');
    return l.length >= 3 ? l : null;
  });
  assert.ok(deferred.every((e) => e.result === 'deferred'));
  assert.match(deferred[0]!.reply!, /^451 4\.4\.1 /);
  const peer = await startPeer({ port });
  try {
    await waitFor('delivery', () => peer.messages.length > 0);
    // Give a duplicate every chance to show up: several retry periods.
    await new Promise((r) => setTimeout(r, 2500));
    assert.deepEqual(subjects(peer), ['while down']);
    const sent = events(a, 'queue.attempt').filter((e) => e.rcpt === 'bob@down.test' && e.result === 'sent');
    assert.equal(sent.length, 1);
  } finally {
    await peer.close();
  }
});

test(`SIGKILL with ${N} messages queued for a dead destination; restart; all delivered once`, { timeout: 600_000 }, async () => {
  // A long backoff while the messages pile up, so the dead destination isn't retried in a tight
  // loop on this busy machine; each message is still tried once as it arrives (or skipped while
  // the destination is paused as dead).
  await a.done();
  a = await startSender({ hostname: 'mail.a.test', dnsServers: dns.servers, port, outbound: { ...outbound, retryBase: 60_000, retryMax: 60_000 }, limits: { sendMessagesPerHour: 100_000, sendRecipientsPerDay: 100_000 } });
  await a.addUser('adam@a.test', 'adam-pw');
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: a.ports.submission, secure: false, ignoreTLS: true, pool: true, maxConnections: 4, maxMessages: Infinity, auth: { user: 'adam@a.test', pass: 'adam-pw' } });
  try {
    for (let i = 0; i < N; i += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, N - i) }, (_, k) => t.sendMail({ from: 'adam@a.test', to: `r${(i + k) % 7}@down.test`, subject: `bulk ${i + k}`, text: `message ${i + k}` })),
      );
    }
  } finally {
    t.close();
  }
  assert.ok(events(a, 'queue.attempt').some((e) => e.result === 'deferred'), 'attempts were made while it was down');
  // SIGKILL: whatever is leased, in flight or queued stays in the store as it was.
  await a.kill();
  const dataDir = a.dataDir;
  const queued = await withStore(dataDir, async (s) => {
    const st = await s.queue.stats(Date.now());
    // What `pillarbox queue flush` does: every queued recipient due now (leases of the dead process included).
    await s.queue.retry(null, Date.now());
    return st.messages;
  });
  assert.equal(queued, N + 0, 'all still queued after the kill');
  const peer = await startPeer({ port });
  a = await startSender({ hostname: 'mail.a.test', dnsServers: dns.servers, port, outbound, dataDir, limits: { sendMessagesPerHour: 100_000, sendRecipientsPerDay: 100_000 } });
  try {
    await waitFor(`${N} delivered`, () => new Set(subjects(peer).filter((s) => s.startsWith('bulk '))).size >= N, 300_000, 250);
    await waitFor('queue empty', async () => (await withStore(dataDir, (s) => s.queue.stats(Date.now()))).messages === 0, 60_000, 500);
    await new Promise((r) => setTimeout(r, 2000));
    const got = subjects(peer).filter((s) => s.startsWith('bulk '));
    const distinct = new Set(got);
    const duplicates = got.length - distinct.size;
    console.log(`# crash test: ${distinct.size} of ${N} delivered, ${duplicates} duplicates`);
    for (let i = 0; i < N; i++) assert.ok(distinct.has(`bulk ${i}`), `bulk ${i} delivered`);
    assert.equal(duplicates, 0);
  } finally {
    await peer.close();
  }
});
