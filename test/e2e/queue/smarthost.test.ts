// Smarthost mode (--relay-host): sender A hands every outgoing message to a second Pillarbox (B)
// acting as the provider, on B's submission port with STARTTLS (certificate verified with
// --relay-ca) and AUTH; B delivers it. A wrong password defers (never bounces).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { stored } from '../smtp/util.ts';
import { events, startSender, submit, waitFor, type Sender } from './util.ts';

let b: TestServer;
let a: Sender;
let bad: Sender;

before(async () => {
  b = await startServer();
  await b.addUser('bob@b.test', 'bob-pw');
  // At the provider, A's user has an account of their own (as with any provider, MAIL FROM must be theirs).
  await b.addUser('adam@a.test', 'adam-at-provider');
  const relay = (pass: string) => `smtp://${encodeURIComponent('adam@a.test')}:${pass}@127.0.0.1:${b.ports.submission}`;
  const ca = join(b.dataDir, 'tls', 'cert.pem');
  // A's DNS points nowhere: with a smarthost no MX is looked up.
  a = await startSender({ hostname: 'mail.a.test', dnsServers: ['127.0.0.1:9'], port: 9, outbound: { retryBase: 300, retryMax: 600 }, args: ['--relay-host', relay('adam-at-provider'), '--relay-ca', ca] });
  await a.addUser('adam@a.test', 'adam-pw');
  bad = await startSender({ hostname: 'mail.bad.test', dnsServers: ['127.0.0.1:9'], port: 9, outbound: { retryBase: 300, retryMax: 600 }, args: ['--relay-host', relay('wrong'), '--relay-ca', ca] });
  await bad.addUser('adam@a.test', 'adam-pw');
});
after(async () => {
  await a?.done();
  await bad?.done();
  await b?.stop();
});

test('everything goes to the smarthost with STARTTLS and AUTH; the provider delivers it', async () => {
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['bob@b.test'], subject: 'via the smarthost' });
  const m = await waitFor('bob got it at the provider', async () => (await stored(b.dataDir, 'bob@b.test')).find((x) => x.toString('latin1').includes('Subject: via the smarthost')));
  const text = m.toString('latin1');
  // B's Received says it came over TLS from an authenticated submission.
  assert.match(text, /Return-Path: <adam@a\.test>/);
  assert.match(text, /Received: from mail\.a\.test/);
  assert.match(text, /TLS/);
  const login = b.output().split('\n').find((l) => l.includes('smtp.login') && l.includes('user=adam@a.test'));
  assert.ok(login, 'A logged in at the provider');
  const sent = events(a, 'queue.attempt').find((e) => e.rcpt === 'bob@b.test');
  assert.equal(sent?.result, 'sent');
  assert.equal(sent?.host, '127.0.0.1');
});

test('a refused login at the smarthost defers the message (retried), it does not bounce', async () => {
  await submit(bad, 'adam@a.test', 'adam-pw', { to: ['bob@b.test'], subject: 'bad password' });
  const l = await waitFor('two deferred attempts', () => {
    const x = events(bad, 'queue.attempt').filter((e) => e.rcpt === 'bob@b.test');
    return x.length >= 2 ? x : null;
  });
  assert.ok(l.every((e) => e.result === 'deferred'));
  assert.match(l[0]!.reply!, /^451 4\.7\.0 relay 127\.0\.0\.1 refused our login: 535/);
  assert.equal((await stored(bad.dataDir, 'adam@a.test')).length, 0, 'no bounce');
});
