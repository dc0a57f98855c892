// TLS settings (Mozilla "intermediate"): TLS 1.2 and 1.3 only; for TLS 1.2 only ECDHE with
// AES-GCM or ChaCha20-Poly1305; the client's order. The same on every TLS path: implicit TLS
// (src/net/listener.ts), IMAP STARTTLS and POP3 STLS (provider.upgrade), SMTP STARTTLS (smtp-server
// through LiveContextMap).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../../helpers/server.ts';
import { sClient } from './tools.ts';

// The server's own alerts, so a client that refuses by itself cannot pass for the server.
const HANDSHAKE_FAILURE = /alert handshake failure|no shared cipher/;
const PROTOCOL_VERSION = /alert protocol version|unsupported protocol/;

test('weak TLS 1.2 suites and TLS 1.1 are refused, ECDHE-GCM/ChaCha20 and TLS 1.3 accepted, on every TLS path', async () => {
  const srv = await startServer();
  try {
    const paths: Array<[string, number, ('imap' | 'pop3' | 'smtp')?]> = [
      ['imaps', srv.ports.imaps],
      ['submissions', srv.ports.submissions],
      ['IMAP STARTTLS', srv.ports.imap, 'imap'],
      ['POP3 STLS', srv.ports.pop3, 'pop3'],
      ['SMTP STARTTLS', srv.ports.submission, 'smtp'],
    ];
    for (const [name, port, starttls] of paths) {
      // Static RSA key exchange, CBC with SHA-1, finite-field DHE: none of them.
      for (const weak of ['AES128-SHA', 'AES256-GCM-SHA384', 'ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA384', 'DHE-RSA-AES128-GCM-SHA256']) {
        const r = await sClient(port, ['-tls1_2', '-cipher', `${weak}@SECLEVEL=0`], starttls);
        assert.notEqual(r.code, 0, `${name}: ${weak} was accepted:\n${r.stdout}`);
        assert.match(r.stderr + r.stdout, HANDSHAKE_FAILURE, `${name} ${weak}`);
      }
      for (const good of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']) {
        const r = await sClient(port, ['-tls1_2', '-cipher', good], starttls);
        assert.match(r.stdout, new RegExp(`New, TLSv1\\.2, Cipher is ${good}\\b`), `${name} ${good}: ${r.stderr}`);
        assert.match(r.stdout, /Server Temp Key: X25519/, `${name}: ECDHE over X25519`);
      }
      const old = await sClient(port, ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'], starttls);
      assert.notEqual(old.code, 0, `${name}: TLS 1.1 accepted:\n${old.stdout}`);
      assert.match(old.stderr + old.stdout, PROTOCOL_VERSION, `${name} TLS 1.1`);
      const t13 = await sClient(port, ['-tls1_3'], starttls);
      assert.match(t13.stdout, /New, TLSv1\.3, Cipher is TLS_AES_(128|256)_GCM_SHA(256|384)/, `${name} TLS 1.3: ${t13.stderr}`);
      const chacha = await sClient(port, ['-tls1_3', '-ciphersuites', 'TLS_CHACHA20_POLY1305_SHA256'], starttls);
      assert.match(chacha.stdout, /New, TLSv1\.3, Cipher is TLS_CHACHA20_POLY1305_SHA256/, name);
    }
    // The client's order wins (Mozilla intermediate: all offered suites are strong).
    const pref = await sClient(srv.ports.imaps, ['-tls1_2', '-cipher', 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256']);
    assert.match(pref.stdout, /Cipher is ECDHE-RSA-AES256-GCM-SHA384/);
    const pref2 = await sClient(srv.ports.imaps, ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384']);
    assert.match(pref2.stdout, /Cipher is ECDHE-RSA-AES128-GCM-SHA256/);
  } finally {
    await srv.stop();
  }
});
