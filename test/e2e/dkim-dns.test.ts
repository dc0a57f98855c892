// `pillarbox dkim` and `pillarbox dns` through the real CLI: keys generated into the store, the
// printed zone loaded into a DNS server on loopback, and mail signed with the stored keys passes
// DKIM, SPF and DMARC there (issue 13: "pillarbox dns output, loaded into the test DNS server, is
// what makes the tests pass").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliResult } from '../helpers/server.ts';
import { startDns, type TestDns } from '../helpers/dns.ts';
import { openStore, defaultDatabase } from '../../src/store/open.ts';
import { signMessage } from '../../src/mailauth/dkim.ts';
import { checkInbound } from '../../src/mailauth/inbound.ts';

let dataDir: string;
let dns: TestDns;
const cli = (args: string[]): Promise<CliResult> => runCli([...args, '--data', dataDir]);
const ok = async (args: string[]) => {
  const r = await cli(args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'pillarbox-dkim-'));
  dns = await startDns();
});
after(async () => {
  await dns.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const MSG = Buffer.from('From: Ann <ann@example.org>\r\nTo: x@remote.example\r\nSubject: hi\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nhello\r\n');

async function signAndCheck(ip = '192.0.2.10') {
  const store = await openStore(defaultDatabase(dataDir), dataDir);
  let signed: Buffer;
  try {
    const s = await signMessage(store.dkimKeys, MSG, 'example.org');
    assert.deepEqual(s.errors, []);
    signed = Buffer.concat([Buffer.from(s.headers), MSG]);
  } finally {
    await store.close();
  }
  return checkInbound({
    message: signed, ip, helo: 'mail.example.org', mailFrom: 'ann@example.org', hostname: 'mx.remote.example',
    isHosted: async () => false, dnsServers: dns.servers,
  });
}

test('dkim generate makes an RSA and an ed25519 key; dns prints records that make mail pass', async () => {
  await ok(['domain', 'add', 'example.org']);
  const gen = await ok(['dkim', 'generate', 'example.org', '--json']);
  const keys = JSON.parse(gen) as Array<{ selector: string; algorithm: string; record: { value: string } }>;
  assert.deepEqual(keys.map((k) => k.algorithm).sort(), ['ed25519-sha256', 'rsa-sha256']);
  for (const k of keys) assert.match(k.selector, /^pb\d{8}[re]$/);
  assert.ok(!gen.includes('PRIVATE KEY'), 'private keys are never printed');

  const zone = await ok(['dns', 'example.org', '--ip', '192.0.2.10', '--hostname', 'mail.example.org']);
  for (const want of [/^example\.org\.\s+\d+\s+IN\s+MX\s+10 mail\.example\.org\.$/m, /"v=spf1 ip4:192\.0\.2\.10 mx -all"/, /^_dmarc\.example\.org\..*"v=DMARC1; p=quarantine/m,
    /^_mta-sts\.example\.org\..*"v=STSv1; id=/m, /^_smtp\._tls\.example\.org\..*"v=TLSRPTv1; rua=mailto:postmaster@example\.org"/m,
    /^_submissions\._tcp\.example\.org\..*SRV\s+0 1 465 mail\.example\.org\.$/m, /^_imaps\._tcp\.example\.org\..*SRV\s+0 1 993/m, /^mail\.example\.org\..*\sA\s+192\.0\.2\.10$/m]) {
    assert.match(zone, want);
  }
  for (const k of keys) assert.ok(zone.includes(`${k.selector}._domainkey.example.org.`));
  dns.load(zone);

  const r = await signAndCheck();
  assert.equal(r.action, 'deliver');
  assert.equal(r.header.split('dkim=pass').length - 1, 2, r.header);
  assert.match(r.header, /spf=pass/);
  assert.match(r.header, /dmarc=pass/);
});

test('rotation: a second generate the same day gets new selectors; retire stops signing and drops the record', async () => {
  const first = JSON.parse(await ok(['dkim', 'list', 'example.org', '--json'])) as Array<{ selector: string }>;
  const gen = JSON.parse(await ok(['dkim', 'generate', 'example.org', '--algorithm', 'ed25519', '--json'])) as Array<{ selector: string }>;
  assert.equal(gen.length, 1);
  assert.match(gen[0]!.selector, /^pb\d{8}e2$/);
  const old = first.find((k) => k.selector.endsWith('e'))!.selector;
  await ok(['dkim', 'retire', 'example.org', old]);
  const list = JSON.parse(await ok(['dkim', 'list', '--json'])) as Array<{ selector: string; active: boolean }>;
  assert.deepEqual(list.filter((k) => !k.active).map((k) => k.selector), [old]);
  const zone = await ok(['dns', 'example.org', '--hostname', 'mail.example.org', '--ip', '192.0.2.10']);
  assert.ok(!zone.includes(`${old}._domainkey`) || zone.includes(`; DKIM key ${old} was retired`));
  assert.ok(!new RegExp(`^${old}\\._domainkey`, 'm').test(zone));
  dns.load(zone);
  const r = await signAndCheck();
  assert.ok(!r.header.includes(`header.s=${old} `), r.header);
  assert.equal(r.header.split('dkim=pass').length - 1, 2, r.header); // rsa + the new ed25519
  await ok(['dkim', 'remove', 'example.org', old]);
  assert.equal((JSON.parse(await ok(['dkim', 'list', '--json'])) as unknown[]).length, 2);
});

test('bad input: one clear line and a non-zero exit', async () => {
  for (const [args, msg] of [
    [['dkim', 'generate', 'nothosted.example'], /not hosted here/],
    [['dkim', 'generate', 'example.org', '--algorithm', 'dsa'], /--algorithm must be ed25519 or rsa/],
    [['dkim', 'generate', 'example.org', '--selector', 'x'], /--selector names one key/],
    [['dkim', 'generate', 'example.org', '--algorithm', 'rsa', '--selector', 'bad_sel'], /not a valid selector/],
    [['dkim', 'retire', 'example.org', 'nope'], /no DKIM key with selector nope/],
    [['dns', 'nothosted.example', '--hostname', 'mail.example.org'], /not hosted here/],
    [['dns', 'example.org', '--ip', '999.1.1.1', '--hostname', 'mail.example.org'], /not an IP address/],
    [['dns', 'example.org', '--hostname', 'localhost'], /not a fully qualified name/],
  ] as const) {
    const r = await cli([...args]);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, msg);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
