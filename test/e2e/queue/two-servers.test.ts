// Issue 13's first "done when": two Pillarbox instances and a DNS server on loopback. A user on A
// submits over 587 (nodemailer) to a user on B; A signs with its DKIM keys and delivers by MX to
// B's port 25 (the injected outbound port); B's inbound checks pass SPF, DKIM and DMARC with the
// records `pillarbox dns a.test` printed, and mailauth run by the test agrees.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { authenticate } from 'mailauth';
import { startDns, type TestDns } from '../../helpers/dns.ts';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { stored } from '../smtp/util.ts';
import { startSender, submit, waitFor, type Sender } from './util.ts';

let dns: TestDns;
let b: TestServer;
let a: Sender;

before(async () => {
  dns = await startDns([
    { name: 'b.test', type: 'MX', priority: 10, exchange: 'mail.b.test' },
    { name: 'mail.b.test', type: 'A', address: '127.0.0.1' },
  ]);
  b = await startServer({ args: ['--hostname', 'mail.b.test', '--dns-servers', dns.servers.join(','), '--mail-auth', 'on'], env: { PILLARBOX_MAIL_AUTH: 'on' } });
  await b.addUser('bea@b.test', 'bea-pw');
  a = await startSender({ hostname: 'mail.a.test', dnsServers: dns.servers, port: b.ports.smtp });
  await a.addUser('adam@a.test', 'adam-pw');
  const gen = await a.cli(['dkim', 'generate', 'a.test']);
  assert.equal(gen.code, 0, gen.stderr);
  const zone = await a.cli(['dns', 'a.test', '--ip', '127.0.0.1', '--hostname', 'mail.a.test']);
  assert.equal(zone.code, 0, zone.stderr);
  dns.load(zone.stdout);
});
after(async () => {
  await a?.done();
  await b?.stop();
  await dns?.close();
});

test('A → B by MX: DKIM-signed by A, dkim=pass spf=pass dmarc=pass at B, and mailauth agrees', async () => {
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['bea@b.test'], subject: 'across servers', text: 'signed and delivered' });
  const m = await waitFor('the message in bea@b.test INBOX', async () => (await stored(b.dataDir, 'bea@b.test')).find((x) => x.toString('latin1').includes('Subject: across servers')), 60_000, 250);
  const text = m.toString('latin1');
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  assert.match(head, /^DKIM-Signature: .*d=a\.test/m);
  const ar = /^Authentication-Results: mail\.b\.test;[^]*?(?=\r\n\S)/m.exec(head)?.[0] ?? '';
  assert.match(ar, /dkim=pass/);
  assert.match(ar, /spf=pass/);
  assert.match(ar, /dmarc=pass/);
  // mailauth on what B stored (its own fields on top are not signed, they don't matter to DKIM).
  const res: any = await authenticate(m, {
    ip: '127.0.0.1',
    helo: 'mail.a.test',
    sender: 'adam@a.test',
    mta: 'test',
    resolver: async (name: string, type: string) => {
      const { promises } = await import('node:dns');
      const r = new promises.Resolver();
      r.setServers(dns.servers);
      return r.resolve(name, type as 'TXT');
    },
  });
  assert.equal(res.dkim?.results?.find((x: { signingDomain?: string }) => x.signingDomain === 'a.test')?.status?.result, 'pass');
  assert.equal(res.spf?.status?.result, 'pass');
  assert.equal(res.dmarc?.status?.result, 'pass');
});
