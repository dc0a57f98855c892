// Shutdown with a transaction in flight: SIGTERM while the receiver is still answering DATA. The
// transaction finishes within limits.shutdownGrace and is settled, so after a restart the message
// is not sent again (exactly once), and the server exits cleanly.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDns } from '../../helpers/dns.ts';
import { startPeer } from '../../helpers/smtp-peer.ts';
import { withStore } from '../smtp/util.ts';
import { events, startSender, submit, waitFor } from './util.ts';

const dns = await startDns([
  { name: 'slow.test', type: 'MX', priority: 10, exchange: 'mx.slow.test' },
  { name: 'mx.slow.test', type: 'A', address: '127.0.0.1' },
]);
const peer = await startPeer({ dataDelayMs: 1500 });
after(async () => {
  await peer.close();
  await dns.close();
});

test('SIGTERM during DATA: the transaction finishes and is settled; no second delivery after restart', async () => {
  let a = await startSender({ hostname: 'mail.a.test', dnsServers: dns.servers, port: peer.port, outbound: { retryBase: 300, retryMax: 600 } });
  await a.addUser('adam@a.test', 'adam-pw');
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['bob@slow.test'], subject: 'in flight at shutdown' });
  // The receiver has the connection and sits on DATA for 1.5 s; stop now (grace 5 s).
  await waitFor('the transaction to start', () => peer.connections > 0);
  await new Promise((r) => setTimeout(r, 300));
  await a.stop();
  const log = a.output();
  assert.match(log, /queue\.attempt .*rcpt=bob@slow\.test .*result=sent/);
  assert.match(log, /server\.stopped/);
  assert.doesNotMatch(log, /queue\.abandoned/);
  const left = await withStore(a.dataDir, (s) => s.queue.stats(Date.now()));
  assert.equal(left.messages, 0, 'settled before the store closed');
  // Restart on the same data: nothing is sent again.
  a = await startSender({ hostname: 'mail.a.test', dnsServers: dns.servers, port: peer.port, outbound: { retryBase: 300, retryMax: 600 }, dataDir: a.dataDir });
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(peer.messages.filter((m) => m.to.includes('bob@slow.test')).length, 1);
  assert.equal(events(a, 'queue.attempt').length, 0);
  await a.done();
});
