// The self-signed certificate Pillarbox makes for its hostname when no --tls-cert is given, kept in
// DATA/tls/ (cert.pem, key.pem) with a sidecar self-signed.json that marks the pair as ours.
//
// It is a leaf, not a CA: NSS (Thunderbird, Firefox) refuses a CA certificate as a server
// certificate even when the user trusts it (SEC_ERROR_INADEQUATE_CERT_TYPE /
// MOZILLA_PKIX_ERROR_CA_CERT_USED_AS_END_ENTITY), and then offers no exception. What the clients
// ask of a leaf (RFC 5280 §4.2; Apple "Requirements for trusted certificates in iOS 13 and
// macOS 10.15", which also binds user-trusted certificates; CA/B Forum BR §7.1.2.7):
//   - basicConstraints CA:FALSE, keyUsage digitalSignature + keyEncipherment (RSA),
//     extKeyUsage serverAuth (Apple requires it);
//   - the names in subjectAltName (Apple and Chrome ignore the CN): hostname, localhost,
//     127.0.0.1, ::1;
//   - RSA ≥ 2048 bits, SHA-256 signature, a random positive serial (NSS refuses a second
//     certificate with the same issuer and serial: SEC_ERROR_REUSED_ISSUER_AND_SERIAL);
//   - validity of at most 825 days (Apple); ours is 820 days, renewed 30 days before the end.
// Chrome's 398-day limit applies only to publicly trusted CAs.

import { X509Certificate, generateKeyPair, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import selfsigned from 'selfsigned';

export const SELF_SIGNED_DAYS = 820;
/** Made anew this long before it ends. */
export const RENEW_BEFORE_MS = 30 * 86_400_000;

/** DATA/tls/self-signed.json: what we made, so a certificate put there by someone else is never replaced. */
export interface SelfSignedRecord {
  madeBy: 'pillarbox';
  hostname: string;
  fingerprint256: string;
  notAfter: string;
  createdAt: string;
}

export interface SelfSignedFiles {
  dir: string;
  certFile: string;
  keyFile: string;
  recordFile: string;
}

export function selfSignedFiles(dataDir: string): SelfSignedFiles {
  const dir = join(dataDir, 'tls');
  return { dir, certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), recordFile: join(dir, 'self-signed.json') };
}

type KeyPem = { privateKey: string; publicKey: string };
const RSA = { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } } as const;

function certificateFor(hostname: string, keyPair: KeyPem): { cert: string; key: string } {
  const altNames: Array<{ type: number; value?: string; ip?: string }> = [];
  const add = (name: string) => {
    if (isIP(name)) {
      if (!altNames.some((a) => a.ip === name)) altNames.push({ type: 7, ip: name }); // iPAddress
    } else if (!altNames.some((a) => a.value === name.toLowerCase())) {
      altNames.push({ type: 2, value: name.toLowerCase() }); // dNSName
    }
  };
  for (const name of [hostname, 'localhost', '127.0.0.1', '::1']) add(name);
  const pems = selfsigned.generate([{ name: 'commonName', value: hostname }], {
    keyPair,
    // An hour back for clients whose clock is a little behind.
    notBeforeDate: new Date(Date.now() - 3_600_000),
    days: SELF_SIGNED_DAYS,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: true },
    ],
  } as selfsigned.SelfsignedOptions & { keyPair: KeyPem });
  return { cert: pems.cert, key: keyPair.privateKey };
}

/** A new RSA-2048 leaf certificate for `hostname` (see the top of this file). */
export function generateSelfSigned(hostname: string): { cert: string; key: string } {
  return certificateFor(hostname, generateKeyPairSync('rsa', RSA));
}

/** The same, with the key made off the event loop (for a renewal while serving). */
export async function generateSelfSignedAsync(hostname: string): Promise<{ cert: string; key: string }> {
  const pair = await promisify(generateKeyPair)('rsa', RSA);
  return certificateFor(hostname, pair as unknown as KeyPem);
}

export function readRecord(files: SelfSignedFiles): SelfSignedRecord | null {
  try {
    const r = JSON.parse(readFileSync(files.recordFile, 'utf8')) as SelfSignedRecord;
    return r && r.madeBy === 'pillarbox' && typeof r.hostname === 'string' && typeof r.fingerprint256 === 'string' ? r : null;
  } catch {
    return null;
  }
}

/** Writes key, certificate and record, each atomically (tmp + rename); the key is 0600. */
export function writeSelfSigned(files: SelfSignedFiles, hostname: string, pair: { cert: string; key: string }): SelfSignedRecord {
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  const x = new X509Certificate(pair.cert);
  const record: SelfSignedRecord = {
    madeBy: 'pillarbox',
    hostname,
    fingerprint256: x.fingerprint256,
    notAfter: new Date(x.validTo).toISOString(),
    createdAt: new Date().toISOString(),
  };
  const put = (file: string, text: string, mode: number) => {
    writeFileSync(file + '.tmp', text, { mode });
    renameSync(file + '.tmp', file);
  };
  put(files.keyFile, pair.key, 0o600);
  put(files.certFile, pair.cert, 0o644);
  put(files.recordFile, JSON.stringify(record, null, 2) + '\n', 0o644);
  return record;
}

export type SelfSignedVerdict =
  | { action: 'keep'; ours: boolean; note?: string }
  | { action: 'make'; reason: 'missing' | 'hostname-changed' | 'expiring' | 'old-ca-certificate' | 'unreadable' };

/**
 * What to do with DATA/tls for `hostname`: make a certificate when there is none, when ours was
 * made for another hostname or is about to end, or when it is the CA:TRUE kind older Pillarbox
 * versions made (self-issued, no record). A certificate somebody else put there (its fingerprint
 * is not the one in our record, or there is no record and it is not our old kind) is kept.
 */
export function judgeSelfSigned(files: SelfSignedFiles, hostname: string, now = Date.now()): SelfSignedVerdict {
  if (!existsSync(files.certFile) || !existsSync(files.keyFile)) return { action: 'make', reason: 'missing' };
  let x: X509Certificate;
  try {
    x = new X509Certificate(readFileSync(files.certFile));
  } catch {
    // Ours (recorded) and damaged, e.g. a crash mid-write: make it again; otherwise report it.
    return readRecord(files) ? { action: 'make', reason: 'unreadable' } : { action: 'keep', ours: false };
  }
  const record = readRecord(files);
  if (!record) {
    if (x.ca && x.issuer === x.subject) return { action: 'make', reason: 'old-ca-certificate' };
    return { action: 'keep', ours: false, note: 'not made by Pillarbox (no self-signed.json); kept as it is' };
  }
  if (record.fingerprint256 !== x.fingerprint256) return { action: 'keep', ours: false, note: 'replaced since Pillarbox made it; kept as it is' };
  if (record.hostname.toLowerCase() !== hostname.toLowerCase()) return { action: 'make', reason: 'hostname-changed' };
  if (new Date(x.validTo).getTime() - now < RENEW_BEFORE_MS) return { action: 'make', reason: 'expiring' };
  return { action: 'keep', ours: true };
}
