// The test DNS server (test/helpers/dns.ts) answers node:dns over UDP and TCP on one port.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { promises as dnsp } from 'node:dns';
import dns2 from 'dns2';
import { startDns, parseZone, type TestDns } from '../../helpers/dns.ts';

let dns: TestDns;
let resolver: dnsp.Resolver;
const long = 'v=DKIM1; k=rsa; p=' + 'A'.repeat(1900); // > 1232-byte EDNS payload → TC=1 → TCP

before(async () => {
  dns = await startDns(`
$ORIGIN example.org.
@        300 IN MX 10 mail
@            IN MX 20 backup.example.net.
@            IN TXT "v=spf1 mx -all"
mail         IN A 127.0.0.2
             IN AAAA ::1
big          IN TXT ( "${long.slice(0, 1000)}" ; a 1000-byte string, split when served
                      "${long.slice(1000)}" )
www          IN CNAME mail
_imaps._tcp  IN SRV 0 1 993 mail.example.org.
`);
  resolver = new dnsp.Resolver({ timeout: 2000, tries: 2 });
  resolver.setServers(dns.servers);
});
after(async () => {
  await dns.close();
});

test('MX, TXT, A/AAAA, CNAME and SRV over UDP', async () => {
  const mx = (await resolver.resolveMx('example.org'))
    .map(({ exchange, priority }) => ({ exchange, priority }))
    .sort((a, b) => a.priority - b.priority);
  assert.deepEqual(mx, [{ exchange: 'mail.example.org', priority: 10 }, { exchange: 'backup.example.net', priority: 20 }]);
  assert.deepEqual(await resolver.resolveTxt('example.org'), [['v=spf1 mx -all']]);
  assert.deepEqual(await resolver.resolve4('mail.example.org'), ['127.0.0.2']);
  assert.deepEqual(await resolver.resolve6('mail.example.org'), ['::1']);
  assert.deepEqual(await resolver.resolveCname('www.example.org'), ['mail.example.org']);
  assert.deepEqual(await resolver.resolve4('www.example.org'), ['127.0.0.2']);
  const srv = (await resolver.resolveSrv('_imaps._tcp.example.org')).map(({ name, port, priority, weight }) => ({ name, port, priority, weight }));
  assert.deepEqual(srv, [{ name: 'mail.example.org', port: 993, priority: 0, weight: 1 }]);
  assert.ok(dns.queries.every((q) => q.transport === 'udp'));
});

test('unknown name is NXDOMAIN, known name without the type is NODATA', async () => {
  await assert.rejects(resolver.resolveMx('nope.example.org'), { code: 'ENOTFOUND' });
  await assert.rejects(resolver.resolveMx('mail.example.org'), { code: 'ENODATA' });
});

test('a TXT record too big for UDP is truncated and fetched again over TCP', async () => {
  const before = dns.queries.length;
  const txt = await resolver.resolveTxt('big.example.org');
  assert.equal(txt.length, 1);
  assert.deepEqual(txt[0].map((s) => s.length), [255, 255, 255, 235, 255, 255, 255, 153]);
  assert.equal(txt[0].join(''), long);
  const seen = dns.queries.slice(before).map((q) => q.transport);
  assert.ok(seen.includes('tcp'), `transports seen: ${seen.join(',')}`);
});

test('dns2 TCP client talks to the same port', async () => {
  const resolve = dns2.TCPClient({ dns: '127.0.0.1', port: dns.port } as never);
  const r = await resolve('example.org', 'MX');
  assert.equal(r.answers.length, 2);
});

test('records change at runtime; long strings are split into 255-byte strings', async () => {
  const value = 'x'.repeat(600);
  dns.set([{ name: 'Runtime.Example.org.', type: 'TXT', data: value }]);
  const txt = await resolver.resolveTxt('runtime.example.org');
  assert.deepEqual(txt[0].map((s) => s.length), [255, 255, 90]);
  dns.set([{ name: 'runtime.example.org', type: 'TXT', data: 'second' }]);
  assert.deepEqual(await resolver.resolveTxt('runtime.example.org'), [['second']]);
  dns.remove('runtime.example.org');
  await assert.rejects(resolver.resolveTxt('runtime.example.org'), { code: 'ENOTFOUND' });
});

test('zone parser: relative names, blank owner, comments, escapes', () => {
  const recs = parseZone('a IN TXT "say \\"hi\\"; not a comment" ; comment\n  IN A 10.0.0.1\n', 'Ex.ORG.');
  assert.deepEqual(recs, [
    { name: 'a.ex.org', type: 'TXT', data: ['say "hi"; not a comment'] },
    { name: 'a.ex.org', type: 'A', address: '10.0.0.1' },
  ]);
  assert.throws(() => parseZone('x.org. IN CAA 0 issue "y"'), /CAA/);
});
