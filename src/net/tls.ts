// TLS material: a configured certificate, or a self-signed one made on first start for the
// server's hostname (SAN: hostname, localhost, 127.0.0.1, ::1) and kept in DATA/tls/.

import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TLSSocket, createSecureContext, type SecureContext } from 'node:tls';
import type { Socket } from 'node:net';
import selfsigned from 'selfsigned';
import type { TlsProvider } from './types.ts';

export function generateSelfSigned(hostname: string): { cert: string; key: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  const altNames: Array<{ type: number; value?: string; ip?: string }> = [{ type: 2, value: hostname }];
  if (hostname !== 'localhost') altNames.push({ type: 2, value: 'localhost' });
  altNames.push({ type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' });
  const pems = selfsigned.generate([{ name: 'commonName', value: hostname }], {
    keyPair: { privateKey, publicKey },
    days: 3650,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', keyCertSign: true, digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
    ],
  } as selfsigned.SelfsignedOptions & { keyPair: { privateKey: string; publicKey: string } });
  return { cert: pems.cert, key: pems.private };
}

/** Loads the configured cert/key, or makes (once) and loads the self-signed pair in DATA/tls. */
export function loadTls(opts: { dataDir: string; hostname: string; certFile: string | null; keyFile: string | null }): {
  provider: TlsProvider;
  generated: boolean;
  certFile: string;
} {
  let certFile = opts.certFile;
  let keyFile = opts.keyFile;
  let generated = false;
  if (!certFile || !keyFile) {
    const dir = join(opts.dataDir, 'tls');
    certFile = join(dir, 'cert.pem');
    keyFile = join(dir, 'key.pem');
    if (!existsSync(certFile) || !existsSync(keyFile)) {
      mkdirSync(dir, { recursive: true });
      const { cert, key } = generateSelfSigned(opts.hostname);
      writeFileSync(keyFile, key, { mode: 0o600 });
      writeFileSync(certFile, cert);
      generated = true;
    }
  }
  const cert = readFileSync(certFile, 'utf8');
  const key = readFileSync(keyFile, 'utf8');
  return { provider: createTlsProvider(cert, key), generated, certFile };
}

export function createTlsProvider(cert: string, key: string): TlsProvider {
  const context: SecureContext = createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
  return {
    cert,
    key,
    context,
    upgrade(socket: Socket): Promise<TLSSocket> {
      return new Promise((resolve, reject) => {
        const tls = new TLSSocket(socket, { isServer: true, secureContext: context });
        const onError = (err: Error) => {
          cleanup();
          reject(err);
        };
        const onSecure = () => {
          cleanup();
          resolve(tls);
        };
        const cleanup = () => {
          tls.off('error', onError);
          tls.off('secure', onSecure);
          clearTimeout(timer);
        };
        const timer = setTimeout(() => onError(new Error('TLS handshake timed out')), 30_000);
        tls.once('error', onError);
        tls.once('secure', onSecure);
      });
    },
  };
}
