// The self-signed certificate a user trusts in Thunderbird (NSS) or with openssl: a leaf, not a CA,
// for the hostname; remade when --hostname changes; a certificate the user supplied is never touched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer as createTlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { have, nssDbTrusting, oldCaStyleCert, opensslPair, run, servedCert, tstclnt } from './tools.ts';

const NSS = have('certutil') && have('tstclnt');
const NO_NSS = NSS ? false : 'certutil/tstclnt not installed (apt-get install libnss3-tools)';

test('openssl verifies the self-signed certificate as a server certificate: CA:FALSE, serverAuth, SAN, ≤ 825 days', async () => {
  const srv = await startServer();
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-tls-'));
  try {
    const file = join(dir, 'cert.pem');
    writeFileSync(file, srv.ca);
    const text = await run('openssl', ['x509', '-in', file, '-noout', '-text']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /Basic Constraints: critical\s+CA:FALSE/);
    assert.match(text.stdout, /Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
    assert.doesNotMatch(text.stdout, /Certificate Sign/);
    assert.match(text.stdout, /Extended Key Usage:\s+TLS Web Server Authentication/);
    assert.match(text.stdout, /DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/);
    assert.match(text.stdout, /Subject Key Identifier/);
    assert.match(text.stdout, /Public-Key: \(2048 bit\)/);
    assert.match(text.stdout, /Signature Algorithm: sha256WithRSAEncryption/);
    const v = await run('openssl', ['verify', '-CAfile', file, '-purpose', 'sslserver', file]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /: OK/);

    const x = new X509Certificate(srv.ca);
    const days = (Date.parse(x.validTo) - Date.parse(x.validFrom)) / 86_400_000;
    assert.ok(days <= 825 && days > 800, `validity ${days} days (Apple: at most 825)`);
    // The banner shows the fingerprint a user compares with the client's warning.
    assert.ok(srv.output().includes(`TLS       self-signed certificate for localhost (made now), SHA-256 fingerprint ${x.fingerprint256}`), srv.output());
    assert.equal((await servedCert(srv.ports.imaps)).fingerprint256, x.fingerprint256);
    // Random serials: NSS refuses a second certificate with the same issuer and serial.
    const again = await startServer();
    try {
      assert.notEqual(new X509Certificate(again.ca).serialNumber, x.serialNumber);
    } finally {
      await again.kill(); // SIGKILL: quicker, nothing to keep
      await again.stop();
    }
  } finally {
    await srv.kill();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('NSS (Thunderbird, Firefox) accepts the self-signed certificate once trusted; it refused the old CA:TRUE kind', { skip: NO_NSS }, async () => {
  const srv = await startServer();
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-nss-'));
  const old = oldCaStyleCert('localhost');
  const oldServer = createTlsServer({ cert: old.cert, key: old.key }, (s) => s.end('* OK old\r\n'));
  try {
    const db = await nssDbTrusting(join(dir, 'trusted'), srv.ca);
    const valid = await run('certutil', ['-V', '-u', 'V', '-n', 'pillarbox', '-d', db]);
    assert.equal(valid.code, 0, valid.stdout + valid.stderr);
    assert.match(valid.stdout, /certificate is valid/);
    for (const port of [srv.ports.imaps, srv.ports.pop3s, srv.ports.submissions]) {
      const r = await tstclnt(port, db);
      assert.equal(r.code, 0, `tstclnt to :${port}: ${r.stdout}${r.stderr}`);
      assert.doesNotMatch(r.stderr, /SEC_ERROR|failed/);
    }
    // Not trusted yet: NSS refuses it (so the handshake check above can fail).
    const empty = await nssDbTrusting(join(dir, 'empty'), null);
    const untrusted = await tstclnt(srv.ports.imaps, empty);
    assert.notEqual(untrusted.code, 0);
    assert.match(untrusted.stderr, /authentication of server cert failed/);

    // The certificate older versions made: refused for SSL server use even when trusted.
    const oldDb = await nssDbTrusting(join(dir, 'old'), old.cert);
    const oldValid = await run('certutil', ['-V', '-u', 'V', '-n', 'pillarbox', '-d', oldDb]);
    assert.notEqual(oldValid.code, 0);
    assert.match(oldValid.stdout + oldValid.stderr, /not approved for application/);
    await new Promise<void>((r) => oldServer.listen(0, '127.0.0.1', () => r()));
    const oldPort = (oldServer.address() as { port: number }).port;
    const oldHandshake = await tstclnt(oldPort, oldDb);
    assert.notEqual(oldHandshake.code, 0, oldHandshake.stdout);
    assert.match(oldHandshake.stderr, /SEC_ERROR_INADEQUATE_CERT_TYPE|authentication of server cert failed/);
  } finally {
    oldServer.close();
    await srv.kill();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The server's log as soon as it holds `re` (stderr and stdout are two pipes: either can be read first). */
async function logMatching(srv: TestServer, re: RegExp): Promise<string> {
  for (let i = 0; i < 200 && !re.test(srv.output()); i++) await new Promise((r) => setTimeout(r, 50));
  return srv.output();
}

test('a new --hostname gets a new certificate; one somebody else put in place is kept', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pillarbox-host-'));
  const certFile = join(dataDir, 'tls', 'cert.pem');
  let srv: TestServer | undefined;
  try {
    srv = await startServer({ dataDir });
    const first = new X509Certificate(srv.ca);
    await srv.kill();

    srv = await startServer({ dataDir, args: ['--hostname', 'mail.example.test'] });
    const second = new X509Certificate(srv.ca);
    assert.notEqual(second.fingerprint256, first.fingerprint256);
    assert.match(second.subjectAltName ?? '', /DNS:mail\.example\.test, DNS:localhost/);
    assert.equal(second.subject.trim(), 'CN=mail.example.test');
    assert.equal((await servedCert(srv.ports.imaps)).fingerprint256, second.fingerprint256);
    assert.match(await logMatching(srv, /tls\.self-signed-regenerated/), /tls\.self-signed-regenerated hostname=mail\.example\.test reason=hostname-changed .*previousHostname=localhost/);
    assert.ok(srv.output().includes(`self-signed certificate for mail.example.test (made anew for the new hostname), SHA-256 fingerprint ${second.fingerprint256}`));
    await srv.kill();

    // Same hostname: the same certificate (a trusted exception keeps working).
    srv = await startServer({ dataDir, args: ['--hostname', 'mail.example.test'] });
    assert.equal(new X509Certificate(srv.ca).fingerprint256, second.fingerprint256);
    assert.match(srv.output(), /self-signed certificate for mail\.example\.test, SHA-256/);
    await srv.kill();

    // The user replaced the files in DATA/tls with their own: never regenerated, even for a new hostname.
    const theirs = opensslPair(dataDir, 'theirs');
    writeFileSync(certFile, theirs.cert);
    writeFileSync(join(dataDir, 'tls', 'key.pem'), theirs.key);
    srv = await startServer({ dataDir, args: ['--hostname', 'other.example.test'] });
    assert.equal(readFileSync(certFile, 'utf8'), theirs.cert);
    assert.equal((await servedCert(srv.ports.imaps)).fingerprint256, new X509Certificate(theirs.cert).fingerprint256);
    assert.match(await logMatching(srv, /tls\.self-signed-kept/), /tls\.self-signed-kept .*replaced since Pillarbox made it/);
    await srv.kill();

    // The CA:TRUE certificate an older Pillarbox made (no self-signed.json): replaced by a leaf.
    const old = oldCaStyleCert('localhost');
    writeFileSync(certFile, old.cert);
    writeFileSync(join(dataDir, 'tls', 'key.pem'), old.key);
    unlinkSync(join(dataDir, 'tls', 'self-signed.json'));
    srv = await startServer({ dataDir });
    const fixed = new X509Certificate(srv.ca);
    assert.equal(fixed.ca, false);
    assert.notEqual(fixed.fingerprint256, new X509Certificate(old.cert).fingerprint256);
    assert.match(await logMatching(srv, /reason=old-ca-certificate/), /reason=old-ca-certificate/);
    await srv.kill();
  } finally {
    await srv?.kill();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a certificate given with --tls-cert/--tls-key is served as it is and never replaced, whatever the hostname', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-user-cert-'));
  try {
    const pair = opensslPair(dir, 'mail');
    const fp = new X509Certificate(pair.cert).fingerprint256;
    const srv = await startServer({ args: ['--hostname', 'elsewhere.example.test', '--tls-cert', pair.certFile, '--tls-key', pair.keyFile] });
    try {
      assert.equal((await servedCert(srv.ports.imaps)).fingerprint256, fp);
      assert.equal((await servedCert(srv.ports.submission, 'smtp')).fingerprint256, fp);
      assert.equal(readFileSync(pair.certFile, 'utf8'), pair.cert);
      assert.equal(readFileSync(pair.keyFile, 'utf8'), pair.key);
      assert.ok(srv.output().includes(`TLS       self-signed certificate for localhost (does not name elsewhere.example.test), SHA-256 fingerprint ${fp}, ${pair.certFile}`), srv.output());
      assert.match(srv.output(), /warn tls\.hostname-not-in-certificate hostname=elsewhere\.example\.test/);
      assert.doesNotMatch(srv.output(), /self-signed-(generated|regenerated)/);
    } finally {
      await srv.kill();
      await srv.stop();
    }
    // A key that does not belong to the certificate: a clear refusal at start.
    const other = opensslPair(dir, 'other');
    await assert.rejects(
      startServer({ args: ['--tls-cert', pair.certFile, '--tls-key', other.keyFile] }),
      /cannot use --tls-cert .* the private key does not belong to the certificate/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
