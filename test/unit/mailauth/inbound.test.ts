// Mail authentication end to end against a real DNS server on loopback (test/helpers/dns.ts):
// messages signed by src/mailauth/dkim.ts with keys whose records come from
// src/mailauth/dns-records.ts (what `pillarbox dns` prints), checked by checkInbound().
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dkimVerify } from 'mailauth';
import { startDns, type TestDns } from '../../helpers/dns.ts';
import { checkInbound, authservIdOf, type InboundInput } from '../../../src/mailauth/inbound.ts';
import { generateDkimKey, signWithKeys, authorDomain, defaultSelector, publicKeyRecord } from '../../../src/mailauth/dkim.ts';
import { domainRecords } from '../../../src/mailauth/dns-records.ts';
import { mailauthResolver } from '../../../src/mailauth/resolver.ts';
import type { DkimKey, DkimAlgorithm } from '../../../src/store/dkim-keys.ts';

const OUR_HOST = 'mx.b.example'; // the receiving server, hosting b.example
const A_IP = '127.0.0.5'; // a.example's sending server
const BAD_IP = '127.0.0.66';
let dns: TestDns;
const keys: Record<string, DkimKey[]> = {};

function key(domain: string, algorithm: DkimAlgorithm, selector = defaultSelector(algorithm, new Date())): DkimKey {
  return { domain, selector, algorithm, privateKeyPem: generateDkimKey(algorithm), createdAt: Date.now(), active: true, retiredAt: null };
}

function message(from: string, extra = ''): Buffer {
  return Buffer.from(
    `${extra}From: Someone <${from}>\r\nTo: bob@b.example\r\nSubject: hello\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n` +
      `Message-ID: <${Math.random().toString(36).slice(2)}@x>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello Bob.\r\n`,
  );
}

async function signed(msg: Buffer, domain: string, ks: DkimKey[]): Promise<Buffer> {
  const r = await signWithKeys(msg, domain, ks);
  assert.deepEqual(r.errors, []);
  return Buffer.concat([Buffer.from(r.headers), msg]);
}

const check = (o: Partial<InboundInput> & { message: Buffer }) =>
  checkInbound({
    ip: A_IP, helo: 'mx.a.example', mailFrom: 'alice@a.example', hostname: OUR_HOST,
    isHosted: async (d) => d === 'b.example', dnsServers: dns.servers, ...o,
  });

before(async () => {
  keys['a.example'] = [key('a.example', 'rsa-sha256'), key('a.example', 'ed25519-sha256')];
  keys['sub.a.example'] = [key('sub.a.example', 'ed25519-sha256', 'subkey')];
  keys['b.example'] = [key('b.example', 'ed25519-sha256', 'bkey')];
  dns = await startDns();
  // exactly what `pillarbox dns a.example --ip 127.0.0.5` prints for a server mx.a.example
  dns.load(domainRecords({ domain: 'a.example', hostname: 'mx.a.example', ip: A_IP, keys: keys['a.example'] }).zone);
  dns.load(domainRecords({ domain: 'b.example', hostname: OUR_HOST, ip: '127.0.0.7', keys: keys['b.example'] }).zone);
  dns.set([
    { name: 'subkey._domainkey.sub.a.example', type: 'TXT', data: publicKeyRecord(keys['sub.a.example'][0]!) },
    { name: 'sub.a.example', type: 'TXT', data: `v=spf1 ip4:${A_IP} -all` },
  ]);
});
after(async () => {
  await dns?.close();
});

const setDmarc = (domain: string, v: string) => dns.set([{ name: `_dmarc.${domain}`, type: 'TXT', data: v }]);

test('a message signed with both keys verifies (dkim=pass twice) through the pillarbox dns records', async () => {
  const msg = await signed(message('alice@a.example'), 'a.example', keys['a.example']!);
  const v = await dkimVerify(msg, { resolver: mailauthResolver(dns.servers) });
  assert.deepEqual(v.results.map((r) => [r.status.result, r.algo, r.selector]).sort(), [
    ['pass', 'ed25519-sha256', keys['a.example']![1]!.selector],
    ['pass', 'rsa-sha256', keys['a.example']![0]!.selector],
  ]);
  const r = await check({ message: msg });
  assert.equal(r.action, 'deliver');
  assert.equal(r.reply, null);
  assert.ok(r.header.startsWith(`Authentication-Results: ${OUR_HOST};\r\n`), r.header);
  assert.ok(r.header.endsWith('\r\n'));
  assert.match(r.header, /spf=pass [^;]*smtp.mailfrom=alice@a.example/);
  assert.equal(r.header.split('dkim=pass').length - 1, 2, r.header);
  assert.match(r.header, /dmarc=pass [^;]*header.from=a.example/);
  assert.deepEqual(r.strip, []);
});

test('SPF follows the connecting address; DMARC still passes through aligned DKIM', async () => {
  const msg = await signed(message('alice@a.example'), 'a.example', keys['a.example']!);
  const r = await check({ message: msg, ip: BAD_IP });
  assert.match(r.header, /spf=fail/);
  assert.match(r.header, /dmarc=pass/);
  assert.equal(r.action, 'deliver');
  const unsigned = await check({ message: message('alice@a.example') });
  assert.match(unsigned.header, /spf=pass/);
  assert.match(unsigned.header, /dmarc=pass/); // aligned SPF
  assert.equal(unsigned.action, 'deliver');
});

test('DMARC p=quarantine failure → junk; p=reject failure → 550 5.7.1', async () => {
  try {
    const forged = message('alice@a.example');
    const q = await check({ message: forged, ip: BAD_IP });
    assert.match(q.header, /dmarc=fail/);
    assert.equal(q.action, 'junk');
    setDmarc('a.example', 'v=DMARC1; p=reject');
    const r = await check({ message: forged, ip: BAD_IP, mailFrom: 'bounce@elsewhere.example' });
    assert.equal(r.action, 'reject');
    assert.match(r.reply!, /^5\.7\.1 DMARC policy of a\.example says reject/);
    assert.match(r.header, /dmarc=fail/);
  } finally {
    setDmarc('a.example', 'v=DMARC1; p=quarantine; rua=mailto:postmaster@a.example');
  }
});

test('DKIM alignment: a sub.a.example signature passes relaxed (adkim=r), fails strict (adkim=s)', async () => {
  const msg = await signed(message('alice@a.example'), 'sub.a.example', keys['sub.a.example']!);
  try {
    setDmarc('a.example', 'v=DMARC1; p=reject; adkim=r');
    const relaxed = await check({ message: msg, ip: BAD_IP });
    assert.match(relaxed.header, /dkim=pass [^;]*header.i=@sub.a.example/);
    assert.match(relaxed.header, /dmarc=pass/);
    assert.equal(relaxed.action, 'deliver');
    setDmarc('a.example', 'v=DMARC1; p=reject; adkim=s');
    const strict = await check({ message: msg, ip: BAD_IP });
    assert.match(strict.header, /dkim=pass/); // the signature itself is fine…
    assert.match(strict.header, /dmarc=fail/); // …but not aligned under strict
    assert.equal(strict.action, 'reject');
  } finally {
    setDmarc('a.example', 'v=DMARC1; p=quarantine; rua=mailto:postmaster@a.example');
  }
});

test('SPF alignment: envelope sub.a.example passes relaxed (aspf=r), fails strict (aspf=s)', async () => {
  const msg = message('alice@a.example');
  try {
    setDmarc('a.example', 'v=DMARC1; p=reject; aspf=r');
    const relaxed = await check({ message: msg, mailFrom: 'alice@sub.a.example' });
    assert.match(relaxed.header, /spf=pass/);
    assert.match(relaxed.header, /dmarc=pass/);
    assert.equal(relaxed.action, 'deliver');
    setDmarc('a.example', 'v=DMARC1; p=reject; aspf=s');
    const strict = await check({ message: msg, mailFrom: 'alice@sub.a.example' });
    assert.match(strict.header, /spf=pass/);
    assert.match(strict.header, /dmarc=fail/);
    assert.equal(strict.action, 'reject');
  } finally {
    setDmarc('a.example', 'v=DMARC1; p=quarantine; rua=mailto:postmaster@a.example');
  }
});

test('a local sender without SPF or DKIM for it is refused, envelope or From:', async () => {
  // b.example is hosted here; its records (SPF: 127.0.0.7 and mx) are published
  const env = await check({ message: message('alice@a.example'), mailFrom: 'boss@b.example', ip: BAD_IP });
  assert.equal(env.action, 'reject');
  assert.match(env.reply!, /^5\.7\.1 b\.example is a domain of this server/);
  const hdr = await check({ message: message('boss@b.example'), mailFrom: 'x@a.example', ip: A_IP });
  assert.match(hdr.header, /spf=pass/); // a.example's SPF passes, but that says nothing about b.example
  assert.equal(hdr.action, 'reject');
  // signed by b.example's key: authenticated, delivered
  const ok = await check({ message: await signed(message('boss@b.example'), 'b.example', keys['b.example']!), mailFrom: 'x@a.example', ip: BAD_IP });
  assert.equal(ok.action, 'deliver', ok.header);
  // from b.example's own address, SPF passes for it
  const spfOk = await check({ message: message('boss@b.example'), mailFrom: 'boss@b.example', ip: '127.0.0.7' });
  assert.equal(spfOk.action, 'deliver', spfOk.header);
});

test('forged Authentication-Results claiming our hostname are found, others left alone', async () => {
  const fake1 = `Authentication-Results: ${OUR_HOST}; dkim=pass header.d=b.example\r\n`;
  const other = 'Authentication-Results: relay.example; spf=pass smtp.mailfrom=a.example\r\n';
  const fake2 = `Authentication-Results: (folded, with a comment) "MX.B.Example.";\r\n\tspf=pass smtp.mailfrom=b.example\r\n`;
  const lookalike = `Authentication-Results: ${OUR_HOST}.evil.example; dkim=pass\r\n`;
  const head = 'Received: from x by y; Mon, 1 Jan 2024 10:00:00 +0000\r\n' + fake1 + other + fake2 + lookalike;
  const msg = message('alice@a.example', head);
  const r = await check({ message: msg });
  const texts = r.strip.map(([s, e]) => msg.subarray(s, e).toString());
  assert.deepEqual(texts, [fake1, fake2]);
  // removing them leaves the others in place
  let kept = '';
  let pos = 0;
  for (const [s, e] of r.strip) (kept += msg.subarray(pos, s).toString()), (pos = e);
  kept += msg.subarray(pos).toString();
  assert.ok(kept.includes(other) && kept.includes(lookalike) && !kept.includes('dkim=pass header.d=b.example'));
  // the body isn't looked at: a field-like line there is never a range
  const inBody = Buffer.from(`From: a@a.example\r\n\r\n${fake1}`);
  assert.deepEqual((await check({ message: inBody })).strip, []);
});

test('authserv-id parsing and the author domain', () => {
  assert.equal(authservIdOf(' (c (nested) \\) ) host.example; spf=pass'), 'host.example');
  assert.equal(authservIdOf(' "quoted\\"id" 1; none'), 'quoted"id');
  assert.equal(authservIdOf('   '), null);
  const m = (from: string) => Buffer.from(`Subject: x\r\nFrom: ${from}\r\n\r\nbody`);
  assert.equal(authorDomain(m('"Doe, John (x@y)" <John@Example.ORG>')), 'example.org');
  assert.equal(authorDomain(m('plain@a.example (comment@b.example)')), 'a.example');
  assert.equal(authorDomain(m('Team: one@t.example, two@u.example;')), 't.example');
  assert.equal(authorDomain(Buffer.from('Subject: x\r\n\r\nFrom: a@b.c')), null);
});

test('bounded work: signatures past the cap and oversized messages are not verified', async () => {
  let msg = message('alice@a.example');
  for (let i = 0; i < 7; i++) msg = await signed(msg, 'a.example', [keys['a.example']![1]!]);
  const r = await check({ message: msg });
  assert.equal(r.header.split('dkim=pass').length - 1, 5, r.header);
  const big = await check({ message: await signed(message('alice@a.example'), 'a.example', keys['a.example']!), maxVerifyBytes: 100 });
  assert.match(big.header, /dkim=none \(message over 100 bytes: signatures not verified\)/);
  assert.ok(!big.header.includes('dkim=pass'));
  assert.match(big.header, /dmarc=pass/); // SPF still aligns
});
