// A renewed certificate is picked up without a restart (SIGHUP, or the files changing): new
// handshakes — implicit TLS, IMAP STARTTLS, POP3 STLS, SMTP STARTTLS — get it, sessions already
// open stay up. A broken pair is refused and the old one kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { RawImap } from '../imap/raw-client.ts';
import { eventually, opensslPair, servedCert } from './tools.ts';

async function allServe(srv: TestServer, fp: string): Promise<void> {
  assert.equal((await servedCert(srv.ports.imaps)).fingerprint256, fp, 'imaps');
  assert.equal((await servedCert(srv.ports.pop3s)).fingerprint256, fp, 'pop3s');
  assert.equal((await servedCert(srv.ports.submissions)).fingerprint256, fp, 'submissions');
  assert.equal((await servedCert(srv.ports.imap, 'imap')).fingerprint256, fp, 'IMAP STARTTLS');
  assert.equal((await servedCert(srv.ports.pop3, 'pop3')).fingerprint256, fp, 'POP3 STLS');
  assert.equal((await servedCert(srv.ports.submission, 'smtp')).fingerprint256, fp, 'SMTP STARTTLS');
}

const count = (text: string, re: RegExp) => text.match(new RegExp(re.source, 'g'))?.length ?? 0;

test('SIGHUP reloads a replaced certificate for new handshakes; IMAP sessions opened before keep working', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-hup-'));
  const first = opensslPair(dir, 'first');
  const certFile = join(dir, 'fullchain.pem');
  const keyFile = join(dir, 'privkey.pem');
  writeFileSync(certFile, first.cert);
  writeFileSync(keyFile, first.key);
  // No file watch: only the signal can do it.
  const srv = await startServer({ args: ['--tls-cert', certFile, '--tls-key', keyFile], env: { PILLARBOX_TLS_WATCH_MS: '0' } });
  const fp1 = new X509Certificate(first.cert).fingerprint256;
  const sessions: RawImap[] = [];
  try {
    await srv.addUser('hup@example.test', 'pw-hup-1');
    const implicit = await RawImap.connect(srv.ports.imaps, { tls: true, ca: first.cert });
    const upgraded = await RawImap.connect(srv.ports.imap);
    sessions.push(implicit, upgraded);
    await upgraded.startTls(first.cert);
    for (const s of sessions) {
      await s.login('hup@example.test', 'pw-hup-1');
      assert.match((await s.cmd('SELECT INBOX')).tagged, / OK /);
    }
    await allServe(srv, fp1);

    // Renewal: the new pair is written in place (as certbot's deploy step or an admin would), then SIGHUP.
    const second = opensslPair(dir, 'second');
    const fp2 = new X509Certificate(second.cert).fingerprint256;
    writeFileSync(keyFile, second.key);
    writeFileSync(certFile, second.cert);
    srv.proc.kill('SIGHUP');
    await eventually('tls.reloaded after SIGHUP', () => srv.output().includes(`tls.reloaded reason=SIGHUP certFile=${certFile} fingerprint256=${fp2}`));
    await allServe(srv, fp2);
    for (const s of sessions) {
      assert.match((await s.cmd('NOOP')).tagged, / OK /);
      assert.match((await s.cmd('STATUS INBOX (MESSAGES)')).tagged, / OK /);
      assert.equal((s.socket as TLSSocket).getPeerX509Certificate()?.fingerprint256, fp1, 'an open session keeps its handshake');
    }

    // A key that does not belong to the certificate (half a renewal): refused, the good pair stays.
    const third = opensslPair(dir, 'third');
    writeFileSync(keyFile, third.key);
    srv.proc.kill('SIGHUP');
    await eventually('tls.reload-failed', () => srv.output().includes('tls.reload-failed reason=SIGHUP'));
    assert.match(srv.output(), /tls\.reload-failed reason=SIGHUP .*error="the private key does not belong to the certificate" keeping=/);
    await allServe(srv, fp2);
    assert.match((await sessions[0]!.cmd('NOOP')).tagged, / OK /);
    // Nothing changed since: SIGHUP says so and keeps serving.
    writeFileSync(keyFile, second.key);
    srv.proc.kill('SIGHUP');
    await eventually('tls.unchanged', () => srv.output().includes('tls.unchanged reason=SIGHUP'));
    assert.equal(srv.proc.exitCode, null, 'SIGHUP does not stop the server');
    assert.equal(count(srv.output(), /tls\.reloaded /), 1);
  } finally {
    for (const s of sessions) s.close();
    await srv.kill();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a certificate file that changes is picked up without a signal; a half-written one is skipped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-watch-'));
  const first = opensslPair(dir, 'first');
  const live = join(dir, 'live');
  writeFileSync(live + '.crt', first.cert);
  writeFileSync(live + '.key', first.key);
  const srv = await startServer({ args: ['--tls-cert', live + '.crt', '--tls-key', live + '.key'], env: { PILLARBOX_TLS_WATCH_MS: '200' } });
  try {
    const fp1 = new X509Certificate(first.cert).fingerprint256;
    assert.equal((await servedCert(srv.ports.imaps)).fingerprint256, fp1);
    // Half a PEM (a copy in progress): logged, the old certificate stays.
    writeFileSync(live + '.crt', first.cert.slice(0, 300));
    await eventually('tls.reload-failed', () => srv.output().includes('tls.reload-failed reason=file-changed'));
    assert.equal((await servedCert(srv.ports.imaps)).fingerprint256, fp1);
    // The renewed pair, each file swapped in atomically by rename.
    const second = opensslPair(dir, 'second');
    const fp2 = new X509Certificate(second.cert).fingerprint256;
    renameSync(second.keyFile, live + '.key');
    renameSync(second.certFile, live + '.crt');
    await eventually('the new certificate on imaps', async () => (await servedCert(srv.ports.imaps)).fingerprint256 === fp2);
    assert.equal((await servedCert(srv.ports.imap, 'imap')).fingerprint256, fp2);
    assert.match(srv.output(), new RegExp(`tls\\.reloaded reason=file-changed .*fingerprint256=${fp2} previous=${fp1}`));
  } finally {
    await srv.kill();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
