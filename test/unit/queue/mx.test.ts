// RFC 5321 §5.1 destination resolution (src/queue/mx.ts) against a real DNS server on loopback
// (test/helpers/dns.ts) through node:dns's Resolver, as the server uses it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import dns2 from 'dns2';
import { startDns } from '../../helpers/dns.ts';
import { createDnsResolver, orderMx, resolveDestination, DestinationError } from '../../../src/queue/mx.ts';

const dns = await startDns([
  { name: 'pref.test', type: 'MX', priority: 20, exchange: 'mx20.pref.test' },
  { name: 'pref.test', type: 'MX', priority: 10, exchange: 'mx10.pref.test' },
  { name: 'mx10.pref.test', type: 'A', address: '192.0.2.10' },
  { name: 'mx20.pref.test', type: 'A', address: '192.0.2.20' },
  { name: 'mx20.pref.test', type: 'AAAA', address: '2001:db8::20' },
  { name: 'implicit.test', type: 'A', address: '192.0.2.30' },
  { name: 'implicit.test', type: 'TXT', data: 'v=spf1 -all' },
  { name: 'nullmx.test', type: 'MX', priority: 0, exchange: '.' },
  { name: 'nullmx.test', type: 'A', address: '192.0.2.31' },
  { name: 'loop.test', type: 'MX', priority: 10, exchange: 'mail.self.test' },
  { name: 'loop.test', type: 'MX', priority: 20, exchange: 'backup.loop.test' },
  { name: 'backup.loop.test', type: 'A', address: '192.0.2.40' },
  { name: 'mail.self.test', type: 'A', address: '192.0.2.1' },
  { name: 'better.test', type: 'MX', priority: 5, exchange: 'primary.better.test' },
  { name: 'better.test', type: 'MX', priority: 10, exchange: 'mail.self.test' },
  { name: 'primary.better.test', type: 'A', address: '192.0.2.50' },
  { name: 'byaddr.test', type: 'MX', priority: 10, exchange: 'alias-of-me.byaddr.test' },
  { name: 'alias-of-me.byaddr.test', type: 'A', address: '192.0.2.1' },
  { name: 'noaddr.test', type: 'MX', priority: 10, exchange: 'gone.noaddr.test' },
  { name: 'noaddr.test', type: 'TXT', data: 'x' },
]);
for (let i = 0; i < 4; i++) dns.add([{ name: 'eq.test', type: 'MX', priority: 10, exchange: `mx${i}.eq.test` }, { name: `mx${i}.eq.test`, type: 'A', address: `192.0.2.${100 + i}` }]);

// A server that answers SERVFAIL to everything (test/helpers/dns.ts only knows NXDOMAIN).
const failing = dns2.createServer({
  udp: true,
  handle: (request: any, send: (r: any) => void) => {
    const response = dns2.Packet.createResponseFromRequest(request);
    response.header.rcode = 2; // RFC 1035 §4.1.1 SERVFAIL
    send(response);
  },
});
const failingAddr: any = await new Promise((r) => {
  failing.on('listening', () => r(failing.addresses()));
  void failing.listen({ udp: { port: 0, address: '127.0.0.1' } });
});
after(async () => {
  await dns.close();
  await failing.close();
});

const resolver = createDnsResolver(dns.servers);
const isSelf = (h: string) => h === 'mail.self.test' || h === '192.0.2.1';
const resolve = (d: string, random?: () => number) => resolveDestination(d, { resolver, isSelf, random });

async function rejectsWith(p: Promise<unknown>, status: string, temporary: boolean): Promise<DestinationError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DestinationError, String(err));
    assert.equal(err.status, status, err.message);
    assert.equal(err.temporary, temporary);
    return err;
  }
  assert.fail('expected a DestinationError');
}

test('MX hosts in preference order, with their A and AAAA addresses', async () => {
  const hosts = await resolve('pref.test');
  assert.deepEqual(
    hosts.map((h) => [h.exchange, h.priority, h.A, h.AAAA, h.implicit]),
    [
      ['mx10.pref.test', 10, ['192.0.2.10'], [], false],
      ['mx20.pref.test', 20, ['192.0.2.20'], ['2001:db8::20'], false],
    ],
  );
});

test('equal preferences are shuffled; every order shows up, nothing lost', async () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200 && seen.size < 6; i++) {
    const hosts = await resolve('eq.test');
    assert.equal(hosts.length, 4);
    assert.deepEqual(new Set(hosts.map((h) => h.exchange)).size, 4);
    seen.add(hosts.slice(0, 2).map((h) => h.exchange).join(','));
  }
  assert.ok(seen.size >= 6, `first-two orders seen: ${[...seen].join(' | ')}`);
  // orderMx keeps groups in order and only permutes within them.
  const o = orderMx([{ exchange: 'c', priority: 30 }, { exchange: 'a', priority: 10 }, { exchange: 'b1', priority: 20 }, { exchange: 'b2', priority: 20 }], () => 0);
  assert.deepEqual(o.map((r) => r.priority), [10, 20, 20, 30]);
});

test('no MX: the domain itself is the implicit MX (A/AAAA)', async () => {
  const hosts = await resolve('implicit.test');
  assert.deepEqual(hosts, [{ exchange: 'implicit.test', priority: 0, implicit: true, A: ['192.0.2.30'], AAAA: [] }]);
});

test('null MX (RFC 7505) is a permanent 5.1.10, without falling back to its A record', async () => {
  const e = await rejectsWith(resolve('nullmx.test'), '5.1.10', false);
  assert.match(e.reply, /^550 5\.1\.10 /);
});

test('MX pointing at ourselves: drops us and worse; nothing better left → loop 5.4.6', async () => {
  await rejectsWith(resolve('loop.test'), '5.4.6', false);
  // A better (lower preference) host than us is still used.
  const hosts = await resolve('better.test');
  assert.deepEqual(hosts.map((h) => h.exchange), ['primary.better.test']);
  // An MX whose address is ours is us under another name.
  await rejectsWith(resolve('byaddr.test'), '5.4.6', false);
});

test('NXDOMAIN is permanent 5.1.2; SERVFAIL is temporary', async () => {
  await rejectsWith(resolve('does-not-exist.test'), '5.1.2', false);
  const broken = createDnsResolver([`127.0.0.1:${failingAddr.udp.port}`], 1000);
  const e = await rejectsWith(resolveDestination('pref.test', { resolver: broken, isSelf }), '4.4.3', true);
  assert.match(e.reply, /^451 /);
});

test('an MX host without addresses → 5.4.4', async () => {
  await rejectsWith(resolve('noaddr.test'), '5.4.4', false);
});
