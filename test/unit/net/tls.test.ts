// src/net/tls.ts and src/net/self-signed.ts on real files: which self-signed certificate is ours to
// remake, renewal before the end, damaged pairs, and what a bad --tls-cert says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTls } from '../../../src/net/tls.ts';
import { generateSelfSigned, judgeSelfSigned, selfSignedFiles, writeSelfSigned, SELF_SIGNED_DAYS } from '../../../src/net/self-signed.ts';
import { createLogger } from '../../../src/obs/log.ts';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'pillarbox-tls-unit-'));
}

function capture() {
  const lines: string[] = [];
  return { log: createLogger('debug', (l) => lines.push(l)), text: () => lines.join('') };
}

test('names in the SAN: an IP hostname as iPAddress, DNS names lower-cased, no duplicates', () => {
  const ip = new X509Certificate(generateSelfSigned('192.0.2.7').cert);
  assert.equal(ip.subjectAltName, 'IP Address:192.0.2.7, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  const dns = new X509Certificate(generateSelfSigned('Mail.Example.TEST').cert);
  assert.equal(dns.subjectAltName, 'DNS:mail.example.test, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  assert.equal(dns.checkHost('mail.example.test'), 'mail.example.test');
  assert.equal(dns.ca, false);
});

test('which DATA/tls certificate is remade: missing, other hostname, ending; not one somebody else put there', () => {
  const dir = tmp();
  try {
    const files = selfSignedFiles(dir);
    assert.deepEqual(judgeSelfSigned(files, 'a.test'), { action: 'make', reason: 'missing' });
    const rec = writeSelfSigned(files, 'a.test', generateSelfSigned('a.test'));
    assert.deepEqual(judgeSelfSigned(files, 'a.test'), { action: 'keep', ours: true });
    assert.deepEqual(judgeSelfSigned(files, 'A.TEST'), { action: 'keep', ours: true });
    assert.deepEqual(judgeSelfSigned(files, 'b.test'), { action: 'make', reason: 'hostname-changed' });
    const end = Date.parse(rec.notAfter);
    assert.deepEqual(judgeSelfSigned(files, 'a.test', end - 31 * 86_400_000), { action: 'keep', ours: true });
    assert.deepEqual(judgeSelfSigned(files, 'a.test', end - 29 * 86_400_000), { action: 'make', reason: 'expiring' });
    assert.ok(end - Date.now() > (SELF_SIGNED_DAYS - 1) * 86_400_000);
    // Replaced by hand: the record's fingerprint no longer matches, so it is not ours any more.
    writeFileSync(files.certFile, generateSelfSigned('a.test').cert);
    const v = judgeSelfSigned(files, 'b.test');
    assert.equal(v.action, 'keep');
    assert.equal(v.action === 'keep' && v.ours, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('our pair half replaced (a crash between the renames) is made whole at start; a bad --tls-cert is explained', () => {
  const dir = tmp();
  try {
    const files = selfSignedFiles(dir);
    writeSelfSigned(files, 'localhost', generateSelfSigned('localhost'));
    writeFileSync(files.keyFile, generateSelfSigned('localhost').key); // a key that does not match
    const c = capture();
    const t = loadTls({ dataDir: dir, hostname: 'localhost', certFile: null, keyFile: null, log: c.log, watch: false });
    assert.equal(t.regenerated, true);
    assert.equal(t.reason, 'unreadable');
    assert.match(c.text(), /tls\.self-signed-regenerated hostname=localhost reason=unreadable/);
    assert.equal(new X509Certificate(readFileSync(files.certFile)).fingerprint256, t.fingerprint256);

    writeFileSync(join(dir, 'junk.pem'), 'not a certificate\n');
    assert.throws(
      () => loadTls({ dataDir: dir, hostname: 'localhost', certFile: join(dir, 'junk.pem'), keyFile: files.keyFile, watch: false }),
      /cannot use --tls-cert .*junk\.pem .*not a PEM certificate/,
    );
    assert.throws(() => loadTls({ dataDir: dir, hostname: 'localhost', certFile: files.certFile, keyFile: null, watch: false }), /--tls-cert needs --tls-key too/);
    writeFileSync(join(dir, 'huge.pem'), Buffer.alloc(2 << 20, 0x41));
    assert.throws(() => loadTls({ dataDir: dir, hostname: 'localhost', certFile: join(dir, 'huge.pem'), keyFile: files.keyFile, watch: false }), /is 2097152 bytes; a certificate or key file is at most 1048576/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('renewal while serving: 30 days before its end our certificate is made anew and served; a user certificate never', async () => {
  const dir = tmp();
  try {
    const c = capture();
    const t = loadTls({ dataDir: dir, hostname: 'localhost', certFile: null, keyFile: null, log: c.log, watch: false });
    const before = t.provider.fingerprint256;
    assert.equal(await t.renewIfDue(), false);
    const end = Date.parse(new X509Certificate(t.provider.cert).validTo);
    assert.equal(await t.renewIfDue(end - 10 * 86_400_000), true);
    assert.notEqual(t.provider.fingerprint256, before);
    assert.match(c.text(), /tls\.self-signed-regenerated hostname=localhost reason=expiring/);
    assert.match(c.text(), /tls\.reloaded reason=renewed/);
    t.dispose();

    const files = selfSignedFiles(dir);
    const user = loadTls({ dataDir: dir, hostname: 'localhost', certFile: files.certFile, keyFile: files.keyFile, watch: false });
    const kept = readFileSync(files.certFile, 'utf8');
    assert.equal(await user.renewIfDue(Date.parse('2100-01-01')), false);
    assert.equal(readFileSync(files.certFile, 'utf8'), kept);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the banner line: what the certificate is, for which name, its fingerprint', () => {
  const dir = tmp();
  try {
    const made = loadTls({ dataDir: dir, hostname: '192.0.2.7', certFile: null, keyFile: null, watch: false });
    assert.equal(made.summary, `self-signed certificate for 192.0.2.7 (made now), SHA-256 fingerprint ${made.fingerprint256}, ${join(dir, 'tls', 'cert.pem')}`);
    const again = loadTls({ dataDir: dir, hostname: '192.0.2.7', certFile: null, keyFile: null, watch: false });
    assert.equal(again.summary, `self-signed certificate for 192.0.2.7, SHA-256 fingerprint ${made.fingerprint256}, ${join(dir, 'tls', 'cert.pem')}`);
    assert.equal(again.generated || again.regenerated, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
