// Issue 13: MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) on the real `pillarbox serve`. A loopback DNS
// server publishes `_mta-sts` and `_smtp._tls` TXT records; a loopback HTTPS server (certificate
// from a test CA the sender trusts through `outbound.tlsCa`, on `outbound.mtaStsPort`) serves the
// policies; two smtp-server peers share the outbound port: 127.0.0.1 with STARTTLS and a
// certificate from the test CA for the MX names, 127.0.0.2 without STARTTLS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { startDns, type TestDns } from '../../helpers/dns.ts';
import { needs } from '../../helpers/external.ts';
import { startPeer, type Peer } from '../../helpers/smtp-peer.ts';
import { events, startSender, submit, waitFor, type Sender } from './util.ts';

const opts = needs('openssl');
let dir: string;
let dns: TestDns;
let tlsPeer: Peer;
let plainPeer: Peer;
let selfSignedPeer: Peer;
let web: Server;
const fetches = new Map<string, number>();
let a: Sender;

const POLICIES: Record<string, string> = {
  'mta-sts.notls.test': 'version: STSv1\r\nmode: enforce\r\nmx: mx.notls.test\r\nmax_age: 86400\r\n',
  'mta-sts.enforce.test': 'version: STSv1\r\nmode: enforce\r\nmx: *.enforce.test\r\nmax_age: 86400\r\n',
  'mta-sts.mismatch.test': 'version: STSv1\r\nmode: enforce\r\nmx: mx2.mismatch.test\r\nmax_age: 86400\r\n',
  'mta-sts.testing.test': 'version: STSv1\r\nmode: testing\r\nmx: mx.testing.test\r\nmax_age: 86400\r\n',
  'mta-sts.badcert.test': 'version: STSv1\r\nmode: enforce\r\nmx: mx.badcert.test\r\nmax_age: 86400\r\n',
  // RFC 8461 §3.3: over 64 KB is no policy at all.
  'mta-sts.big.test': `version: STSv1\r\nmode: enforce\r\nmax_age: 86400\r\n${'mx: mx.big.test\r\n'.repeat(4000)}`,
};

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8', cwd: dir });
  if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
}

/** A leaf certificate for `names`, signed by the test CA. */
function leaf(name: string, names: string[]): { key: string; cert: string } {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${names[0]}`]);
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\nextendedKeyUsage=serverAuth\n`);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '30', '-extfile', `${name}.ext`]);
  return { key: readFileSync(join(dir, `${name}.key`), 'utf8'), cert: readFileSync(join(dir, `${name}.crt`), 'utf8') };
}

before(async () => {
  if (opts.skip) return;
  dir = mkdtempSync(join(tmpdir(), 'pillarbox-mtasts-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=Pillarbox test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const webCert = leaf('web', Object.keys(POLICIES));
  const mxCert = leaf('mx', ['mx.notls.test', 'mx.enforce.test', 'mx1.mismatch.test', 'mx2.mismatch.test', 'mx.testing.test']);

  web = createServer(webCert, (req, res) => {
    const host = String(req.headers.host ?? '').toLowerCase();
    fetches.set(host, (fetches.get(host) ?? 0) + 1);
    const body = POLICIES[host];
    if (req.url !== '/.well-known/mta-sts.txt' || !body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  const webPort = (web.address() as { port: number }).port;

  tlsPeer = await startPeer({ server: { key: mxCert.key, cert: mxCert.cert } });
  plainPeer = await startPeer({ host: '127.0.0.2', port: tlsPeer.port, server: { disabledCommands: ['AUTH', 'STARTTLS'] } });
  // STARTTLS with smtp-server's own certificate (not from the test CA, not for our MX names).
  selfSignedPeer = await startPeer({ host: '127.0.0.3', port: tlsPeer.port });

  const txt = (name: string, data: string) => ({ name, type: 'TXT' as const, data });
  dns = await startDns([
    { name: 'notls.test', type: 'MX', priority: 10, exchange: 'mx.notls.test' },
    { name: 'mx.notls.test', type: 'A', address: '127.0.0.2' },
    txt('_mta-sts.notls.test', 'v=STSv1; id=notls1'),
    txt('_smtp._tls.notls.test', 'v=TLSRPTv1; rua=mailto:tls@reports.test'),
    { name: 'enforce.test', type: 'MX', priority: 10, exchange: 'mx.enforce.test' },
    { name: 'mx.enforce.test', type: 'A', address: '127.0.0.1' },
    txt('_mta-sts.enforce.test', 'v=STSv1; id=enf1'),
    txt('_smtp._tls.enforce.test', 'v=TLSRPTv1; rua=mailto:tls@reports.test,https://reports.test/tlsrpt'),
    { name: 'reports.test', type: 'MX', priority: 10, exchange: 'mx.reports.test' },
    { name: 'mx.reports.test', type: 'A', address: '127.0.0.1' },
    { name: 'mismatch.test', type: 'MX', priority: 10, exchange: 'mx1.mismatch.test' },
    { name: 'mismatch.test', type: 'MX', priority: 20, exchange: 'mx2.mismatch.test' },
    { name: 'mx1.mismatch.test', type: 'A', address: '127.0.0.2' },
    { name: 'mx2.mismatch.test', type: 'A', address: '127.0.0.1' },
    txt('_mta-sts.mismatch.test', 'v=STSv1; id=mm1'),
    { name: 'testing.test', type: 'MX', priority: 10, exchange: 'mx.testing.test' },
    { name: 'mx.testing.test', type: 'A', address: '127.0.0.2' },
    txt('_mta-sts.testing.test', 'v=STSv1; id=t1'),
    { name: 'badcert.test', type: 'MX', priority: 10, exchange: 'mx.badcert.test' },
    { name: 'mx.badcert.test', type: 'A', address: '127.0.0.3' },
    txt('_mta-sts.badcert.test', 'v=STSv1; id=b1'),
    { name: 'big.test', type: 'MX', priority: 10, exchange: 'mx.big.test' },
    { name: 'mx.big.test', type: 'A', address: '127.0.0.2' },
    txt('_mta-sts.big.test', 'v=STSv1; id=big1'),
    ...Object.keys(POLICIES).map((name) => ({ name, type: 'A' as const, address: '127.0.0.1' })),
  ]);
  a = await startSender({
    hostname: 'mail.a.test',
    dnsServers: dns.servers,
    port: tlsPeer.port,
    outbound: { mtaStsPort: webPort, tlsCa: join(dir, 'ca.crt'), tlsReportInterval: 1000, retryBase: 60_000, timeout: 10_000 },
  });
  await a.addUser('adam@a.test', 'adam-pw');
});

after(async () => {
  if (process.env.DEBUG_MTASTS) console.log(a?.output().split('\n').filter((l) => l.includes('queue.') || l.includes('mta')).join('\n'));
  await a?.done();
  await tlsPeer?.close();
  await plainPeer?.close();
  await selfSignedPeer?.close();
  await new Promise<void>((r) => (web ? web.close(() => r()) : r()));
  await dns?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const attempts = (rcpt: string) => events(a, 'queue.attempt').filter((e) => e.rcpt === rcpt);

test('enforce + an MX without STARTTLS: not delivered, deferred 4.7.5 with the reason in `queue show`', opts, async () => {
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['bob@notls.test'], subject: 'enforce, no tls' });
  const at = await waitFor('the deferral', () => attempts('bob@notls.test').find((e) => e.result === 'deferred'));
  assert.match(at.reply!, /^451 4\.7\.5 MTA-STS policy of notls\.test \(enforce\) requires verified TLS, mx\.notls\.test: starttls-not-supported/);
  assert.equal(plainPeer.messages.filter((m) => m.to.includes('bob@notls.test')).length, 0);
  const list = JSON.parse((await a.cli(['queue', 'list', '--json'])).stdout) as { messages: Array<{ id: string; recipients: Array<{ address: string }> }> };
  const m = list.messages.find((x) => x.recipients.some((r) => r.address === 'bob@notls.test'))!;
  const show = await a.cli(['queue', 'show', m.id]);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /bob@notls\.test {2}queued .*451 4\.7\.5 MTA-STS policy of notls\.test \(enforce\)/s);
  // TLS-RPT: the failure is counted for the domain that publishes _smtp._tls.
  const rep = await waitFor('a tls-report line', () => events(a, 'queue.tls-report').find((e) => e.domain === 'notls.test' && Number(e.failure) >= 1));
  assert.equal(rep.rua, 'mailto:tls@reports.test');
  assert.match(rep.failure_types!, /starttls-not-supported:\d/);
});

test('enforce + STARTTLS with a certificate valid for the MX name: delivered over TLS; policy cached until its id changes', opts, async () => {
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['carol@enforce.test'], subject: 'enforce, tls ok' });
  const m = await waitFor('delivery', () => tlsPeer.messages.find((x) => x.to.includes('carol@enforce.test')));
  assert.equal(m.secure, true);
  assert.equal(fetches.get('mta-sts.enforce.test'), 1);
  const rep = await waitFor('a tls-report success', () => events(a, 'queue.tls-report').find((e) => e.domain === 'enforce.test' && Number(e.success) >= 1));
  assert.equal(rep.rua, 'mailto:tls@reports.test,https://reports.test/tlsrpt');
  assert.equal(rep.policy, 'sts');

  // A second delivery on a new connection (the idle one is closed after 5 s): TXT asked again, policy not refetched.
  const txtAsked = () => dns.queries.filter((q) => q.name === '_mta-sts.enforce.test' && q.type === 'TXT').length;
  await new Promise((r) => setTimeout(r, 6000));
  const q1 = txtAsked();
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['dave@enforce.test'], subject: 'enforce again' });
  await waitFor('second delivery', () => tlsPeer.messages.find((x) => x.to.includes('dave@enforce.test')));
  assert.ok(txtAsked() > q1, 'the TXT record was looked up again');
  assert.equal(fetches.get('mta-sts.enforce.test'), 1, 'same id: the cached policy is used');

  // The id changes → fetched again.
  dns.set([{ name: '_mta-sts.enforce.test', type: 'TXT', data: 'v=STSv1; id=enf2' }]);
  await new Promise((r) => setTimeout(r, 6000));
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['erin@enforce.test'], subject: 'enforce, new id' });
  await waitFor('third delivery', () => tlsPeer.messages.find((x) => x.to.includes('erin@enforce.test')));
  assert.equal(fetches.get('mta-sts.enforce.test'), 2, 'a new id: the policy is fetched again');
  assert.ok(events(a, 'queue.mta-sts-policy').some((e) => e.domain === 'enforce.test' && e.id === 'enf2' && e.mode === 'enforce'));
});

test('enforce: an MX host not in the policy is not used (the next one, which is, gets the mail)', opts, async () => {
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['fay@mismatch.test'], subject: 'mx not in policy' });
  const m = await waitFor('delivery', () => tlsPeer.messages.find((x) => x.to.includes('fay@mismatch.test')));
  assert.equal(m.secure, true);
  assert.equal(plainPeer.messages.filter((x) => x.to.includes('fay@mismatch.test')).length, 0, 'mx1 (not in the policy, preference 10) got nothing');
  const at = await waitFor('the attempt', () => attempts('fay@mismatch.test').find((e) => e.result === 'sent'));
  assert.equal(at.host, 'mx2.mismatch.test');
  assert.ok(events(a, 'queue.mta-sts-failure').some((e) => e.domain === 'mismatch.test' && e.mx === 'mx1.mismatch.test' && e.reason === 'mx-not-in-policy' && e.used === 'false'));
});

test('testing mode: delivered anyway without TLS, the failure logged', opts, async () => {
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['gus@testing.test'], subject: 'testing mode' });
  const m = await waitFor('delivery', () => plainPeer.messages.find((x) => x.to.includes('gus@testing.test')));
  assert.equal(m.secure, false);
  assert.ok(events(a, 'queue.mta-sts-failure').some((e) => e.domain === 'testing.test' && e.mode === 'testing' && e.reason === 'starttls-not-supported' && e.used === 'true'));
});

test('enforce + STARTTLS with a certificate not valid for the MX name: not delivered, deferred 4.7.5', opts, async () => {
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['hal@badcert.test'], subject: 'enforce, bad cert' });
  const at = await waitFor('the deferral', () => attempts('hal@badcert.test').find((e) => e.result === 'deferred'));
  assert.match(at.reply!, /^451 4\.7\.5 MTA-STS policy of badcert\.test \(enforce\) requires verified TLS, mx\.badcert\.test: (validation-failure|certificate-expired|certificate-host-mismatch)/);
  assert.equal(selfSignedPeer.messages.length, 0);
});

test('a policy file over 64 KB is refused (RFC 8461 §3.3): no policy, delivered as without MTA-STS', opts, async () => {
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['ida@big.test'], subject: 'big policy' });
  await waitFor('delivery', () => plainPeer.messages.find((x) => x.to.includes('ida@big.test')));
  const f = events(a, 'queue.mta-sts-fetch-failed').find((e) => e.domain === 'big.test');
  assert.ok(f, 'the fetch failure is logged');
  assert.match(f.error!, /larger than 65536 bytes/);
});

test('TLS-RPT aggregate report (RFC 8460 §4, §5.3) mailed to the rua mailto: address through the queue', opts, async () => {
  const reportFor = (domain: string) =>
    tlsPeer.messages.filter((m) => m.to.includes('tls@reports.test') && m.body.toString('latin1').includes(`TLS-Report-Domain: ${domain}\r\n`));
  const msgs = await waitFor('a report about enforce.test', () => (reportFor('enforce.test').length ? reportFor('enforce.test') : null));
  const text = msgs[0]!.body.toString('latin1');
  assert.match(text, /Content-Type: multipart\/report; report-type="tlsrpt"/);
  assert.match(text, /TLS-Report-Submitter: mail\.a\.test/);
  assert.match(text, /Subject: Report Domain: enforce\.test Submitter: mail\.a\.test Report-ID: </);
  assert.equal(msgs[0]!.from, 'postmaster@mail.a.test');
  const reports = msgs.map((m) => {
    const t = m.body.toString('latin1');
    const at = t.indexOf('Content-Type: application/tlsrpt+gzip');
    assert.ok(at > 0);
    assert.match(t.slice(at, at + 300), /filename="mail\.a\.test!enforce\.test!\d+!\d+!\w+\.json\.gz"/);
    const b64 = t.slice(t.indexOf('\r\n\r\n', at) + 4, t.indexOf('\r\n--', at));
    return JSON.parse(gunzipSync(Buffer.from(b64, 'base64')).toString('utf8'));
  });
  const r = reports.find((x) => x.policies[0].summary['total-successful-session-count'] >= 1);
  assert.ok(r, 'one report counts a successful session');
  assert.equal(r['organization-name'], 'mail.a.test');
  assert.ok(r['date-range']['start-datetime'] < r['date-range']['end-datetime']);
  const pol = r.policies[0].policy;
  assert.equal(pol['policy-type'], 'sts');
  assert.equal(pol['policy-domain'], 'enforce.test');
  assert.ok(pol['policy-string'].includes('mode: enforce'));
  assert.deepEqual(pol['mx-host'], ['*.enforce.test']);
  // The failing domain's report names the failure type.
  const bad = await waitFor('a report about notls.test', () => reportFor('notls.test')[0]);
  const t = bad.body.toString('latin1');
  const at = t.indexOf('Content-Type: application/tlsrpt+gzip');
  const j = JSON.parse(gunzipSync(Buffer.from(t.slice(t.indexOf('\r\n\r\n', at) + 4, t.indexOf('\r\n--', at)), 'base64')).toString('utf8'));
  assert.deepEqual(j.policies[0]['failure-details'][0], { 'result-type': 'starttls-not-supported', 'failed-session-count': j.policies[0].summary['total-failure-session-count'] });
});
