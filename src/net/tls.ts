// TLS material and settings: the configured certificate (--tls-cert/--tls-key), or a self-signed
// one Pillarbox makes for its hostname in DATA/tls/ (src/net/self-signed.ts). The provider hands
// out the CURRENT secure context at every handshake (implicit TLS listeners, IMAP STARTTLS, POP3
// STLS, SMTP STARTTLS), so a certificate reloaded on SIGHUP or on a file change serves new
// handshakes while sessions already open keep theirs.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, statSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { TLSSocket, createSecureContext, type SecureContext } from 'node:tls';
import { isIP, type Socket } from 'node:net';
import type { TlsProvider } from './types.ts';
import type { Logger } from '../obs/log.ts';
import { silentLogger } from '../obs/log.ts';
import {
  generateSelfSigned,
  generateSelfSignedAsync,
  judgeSelfSigned,
  readRecord,
  selfSignedFiles,
  writeSelfSigned,
  type SelfSignedFiles,
} from './self-signed.ts';

export { generateSelfSigned } from './self-signed.ts';

/**
 * Mozilla Server Side TLS guidelines 5.7, "intermediate": TLS 1.2 and 1.3; for TLS 1.2 only
 * ECDHE with AES-GCM or ChaCha20-Poly1305 (the DHE suites are left out: no static DH group is
 * configured and ECDHE is enough for every client of that profile), in Mozilla's order; the
 * client's order is honoured (all listed suites are strong); groups X25519, P-256, P-384 —
 * with the X25519MLKEM768 hybrid first where OpenSSL has it (≥ 3.5), which current Firefox,
 * Chrome and OpenSSL clients offer. RFC 9325 (BCP 195) §4.1-4.2 says the same.
 */
const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];
const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];
const GROUPS = 'X25519:prime256v1:secp384r1';

function supportedGroups(): string {
  try {
    createSecureContext({ ecdhCurve: `X25519MLKEM768:${GROUPS}` });
    return `X25519MLKEM768:${GROUPS}`;
  } catch {
    return GROUPS;
  }
}

export const TLS_SETTINGS = {
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
  ciphers: [...TLS13_SUITES, ...TLS12_CIPHERS].join(':'),
  ecdhCurve: supportedGroups(),
  honorCipherOrder: false,
} as const;

/** Certificate files above this are refused (a PEM chain is a few KB). */
const MAX_PEM_BYTES = 1 << 20;
/** How often the certificate files are stat'ed, and how long they must stay still before a reload. */
const WATCH_INTERVAL_MS = 2000;
const SETTLE_MS = 1000;
/** How often a self-signed certificate of ours is checked for its end (renewed 30 days before). */
const RENEW_CHECK_MS = 12 * 3_600_000;

export interface TlsMaterial {
  cert: string;
  key: string;
  context: SecureContext;
  fingerprint256: string;
  validTo: string;
  /** Issued by its own key. */
  selfSigned: boolean;
  /** The first DNS name of the SAN, else the CN. */
  name: string;
  x509: X509Certificate;
}

/** Checks a certificate/key pair and builds its context; throws a message fit for an operator. */
export function buildMaterial(cert: string, key: string): TlsMaterial {
  let x: X509Certificate;
  try {
    x = new X509Certificate(cert); // the first certificate of a chain: the server's
  } catch (err) {
    throw new Error(`not a PEM certificate (${(err as Error).message})`);
  }
  let pk;
  try {
    pk = createPrivateKey(key);
  } catch (err) {
    throw new Error(`not a PEM private key (${(err as Error).message})`);
  }
  if (!x.checkPrivateKey(pk)) throw new Error('the private key does not belong to the certificate');
  const context = createSecureContext({ cert, key, ...TLS_SETTINGS });
  const name = /DNS:([^,\s]+)/.exec(x.subjectAltName ?? '')?.[1] ?? /CN=([^\n,]+)/.exec(x.subject)?.[1] ?? '?';
  // Not checkIssued: OpenSSL wants keyCertSign of an issuer, which a leaf rightly lacks.
  const selfSigned = x.issuer === x.subject && x.verify(x.publicKey);
  return { cert, key, context, fingerprint256: x.fingerprint256, validTo: x.validTo, selfSigned, name, x509: x };
}

/** A certificate that cannot be used at start: the CLI shows the message without a stack (exit 78, EX_CONFIG). */
export class TlsLoadError extends Error {
  override name = 'TlsLoadError';
}

function readPem(file: string): string {
  const size = statSync(file).size;
  if (size > MAX_PEM_BYTES) throw new Error(`${file} is ${size} bytes; a certificate or key file is at most ${MAX_PEM_BYTES}`);
  return readFileSync(file, 'utf8');
}

export interface LoadedTls {
  provider: TlsProvider;
  /** The certificate is self-signed (ours, or one given that is). */
  selfSigned: boolean;
  /** A self-signed certificate was made on this start (none before). */
  generated: boolean;
  /** A self-signed certificate of ours was replaced on this start (hostname changed, ending, old kind). */
  regenerated: boolean;
  /** Why it was made (when generated or regenerated). */
  reason: string | null;
  hostname: string;
  fingerprint256: string;
  certFile: string;
  keyFile: string;
  /** For the banner: `self-signed certificate for HOST (made now), SHA-256 fingerprint AB:CD:…, FILE`. */
  summary: string;
  /** Reads the files again; the new pair serves new handshakes. False (old one kept, logged) on error or no change. */
  reload(reason: string): boolean;
  /** Renews our self-signed certificate when it ends within 30 days of `now` (checked every 12 h); true when it did. */
  renewIfDue(now?: number): Promise<boolean>;
  /** Stops watching the files. */
  dispose(): void;
}

export interface LoadTlsOptions {
  dataDir: string;
  hostname: string;
  certFile: string | null;
  keyFile: string | null;
  log?: Logger;
  /** Watch the files for changes and renew our self-signed certificate (default true). */
  watch?: boolean;
  /** Stat interval for the watch (default: PILLARBOX_TLS_WATCH_MS, else 2 s; 0 = no watch, SIGHUP only). */
  watchIntervalMs?: number;
}

/** PILLARBOX_TLS_WATCH_MS: how often the certificate files are stat'ed; 0 turns the watch off (SIGHUP still reloads). */
function envWatchInterval(): number {
  const v = process.env.PILLARBOX_TLS_WATCH_MS;
  const n = v === undefined || v.trim() === '' ? NaN : Number(v);
  return Number.isInteger(n) && n >= 0 ? n : WATCH_INTERVAL_MS;
}

const MADE_ANEW: Record<string, string> = {
  'hostname-changed': 'made anew for the new hostname',
  expiring: 'renewed before its end',
  'old-ca-certificate': 'made anew: the old one was a CA certificate, which mail clients refuse',
  unreadable: 'made anew: the old pair was damaged',
};

/** Makes the self-signed pair in DATA/tls when needed (see judgeSelfSigned); says what it did. */
function ensureSelfSigned(files: SelfSignedFiles, hostname: string, log: Logger): { made: boolean; existed: boolean; ours: boolean; reason: string | null; material: TlsMaterial } {
  const verdict = judgeSelfSigned(files, hostname);
  const make = (reason: string, existed: boolean) => {
    const previous = existed ? readRecord(files) : null;
    const pair = generateSelfSigned(hostname);
    const rec = writeSelfSigned(files, hostname, pair);
    log.info(existed ? 'tls.self-signed-regenerated' : 'tls.self-signed-generated', {
      hostname,
      reason,
      fingerprint256: rec.fingerprint256,
      notAfter: rec.notAfter,
      previousHostname: previous && previous.hostname !== hostname ? previous.hostname : undefined,
      certFile: files.certFile,
    });
    return { made: true, existed, ours: true, reason, material: buildMaterial(pair.cert, pair.key) };
  };
  if (verdict.action === 'make') return make(verdict.reason, verdict.reason !== 'missing');
  if (verdict.note) log.warn('tls.self-signed-kept', { certFile: files.certFile, note: verdict.note });
  try {
    return { made: false, existed: true, ours: verdict.ours, reason: null, material: buildMaterial(readPem(files.certFile), readPem(files.keyFile)) };
  } catch (err) {
    // Our own pair, half replaced (a crash between the two renames): make a whole one.
    if (verdict.ours) return make('unreadable', true);
    throw new TlsLoadError(`cannot use the TLS certificate in ${files.dir}: ${(err as Error).message}`);
  }
}

/** Loads the configured cert/key, or the self-signed pair in DATA/tls (made or renewed as needed). */
export function loadTls(opts: LoadTlsOptions): LoadedTls {
  const log = opts.log ?? silentLogger;
  const userSupplied = Boolean(opts.certFile && opts.keyFile);
  if (!userSupplied && (opts.certFile || opts.keyFile)) {
    throw new TlsLoadError(`${opts.certFile ? '--tls-cert' : '--tls-key'} needs ${opts.certFile ? '--tls-key' : '--tls-cert'} too (the certificate and its private key)`);
  }
  const files = selfSignedFiles(opts.dataDir);
  let certFile = files.certFile;
  let keyFile = files.keyFile;
  let made = { made: false, existed: true, ours: false, reason: null as string | null };
  let material: TlsMaterial;
  if (userSupplied) {
    certFile = opts.certFile!;
    keyFile = opts.keyFile!;
    try {
      material = buildMaterial(readPem(certFile), readPem(keyFile));
    } catch (err) {
      throw new TlsLoadError(`cannot use --tls-cert ${certFile} --tls-key ${keyFile}: ${(err as Error).message}`);
    }
  } else {
    const r = ensureSelfSigned(files, opts.hostname, log);
    made = r;
    material = r.material;
  }
  const holder = { current: material };
  const provider = createProvider(holder);
  const reload = reloader(holder, certFile, keyFile, log);
  const interval = opts.watchIntervalMs ?? envWatchInterval();
  const renew = (now = Date.now()) => (userSupplied ? Promise.resolve(false) : renewIfDue(files, opts.hostname, log, reload, now));
  const unwatch = opts.watch === false || interval === 0 ? () => {} : watchPair(certFile, keyFile, interval, reload);
  const renewTimer = opts.watch === false || userSupplied ? null : setInterval(() => void renew(), RENEW_CHECK_MS);
  renewTimer?.unref();
  const dispose = () => {
    unwatch();
    if (renewTimer) clearInterval(renewTimer);
  };
  const selfSigned = made.ours || material.selfSigned;
  const what = made.ours ? `self-signed certificate for ${opts.hostname}` : `${material.selfSigned ? 'self-signed ' : ''}certificate for ${material.name}`;
  let how = !made.made ? '' : !made.existed ? ' (made now)' : ` (${MADE_ANEW[made.reason ?? ''] ?? 'made anew'})`;
  // RFC 6125 §6: clients check the name they connect to against the SAN.
  if (!(isIP(opts.hostname) ? material.x509.checkIP(opts.hostname) : material.x509.checkHost(opts.hostname))) {
    log.warn('tls.hostname-not-in-certificate', { hostname: opts.hostname, certFile, names: material.x509.subjectAltName ?? material.x509.subject });
    how += ` (does not name ${opts.hostname})`;
  }
  return {
    provider,
    summary: `${what}${how}, SHA-256 fingerprint ${material.fingerprint256}, ${certFile}`,
    selfSigned,
    generated: made.made && !made.existed,
    regenerated: made.made && made.existed,
    reason: made.reason,
    hostname: opts.hostname,
    fingerprint256: material.fingerprint256,
    certFile,
    keyFile,
    reload,
    renewIfDue: renew,
    dispose,
  };
}

/** Re-reads the pair; a pair that fails validation is logged and the current one kept. */
function reloader(holder: { current: TlsMaterial }, certFile: string, keyFile: string, log: Logger): (reason: string) => boolean {
  return (reason) => {
    try {
      const cert = readPem(certFile);
      const key = readPem(keyFile);
      if (cert === holder.current.cert && key === holder.current.key) {
        if (reason !== 'file-changed') log.info('tls.unchanged', { reason, certFile, fingerprint256: holder.current.fingerprint256 });
        return false;
      }
      const next = buildMaterial(cert, key);
      const previous = holder.current.fingerprint256;
      holder.current = next;
      log.info('tls.reloaded', { reason, certFile, fingerprint256: next.fingerprint256, previous, validTo: next.validTo });
      return true;
    } catch (err) {
      log.warn('tls.reload-failed', { reason, certFile, keyFile, error: err, keeping: holder.current.fingerprint256 });
      return false;
    }
  };
}

/** Renews our self-signed certificate 30 days before its end, while serving. */
async function renewIfDue(files: SelfSignedFiles, hostname: string, log: Logger, reload: (reason: string) => boolean, now: number): Promise<boolean> {
  const verdict = judgeSelfSigned(files, hostname, now);
  if (verdict.action !== 'make' || verdict.reason !== 'expiring') return false;
  try {
    const rec = writeSelfSigned(files, hostname, await generateSelfSignedAsync(hostname));
    log.info('tls.self-signed-regenerated', { hostname, reason: 'expiring', fingerprint256: rec.fingerprint256, notAfter: rec.notAfter });
    return reload('renewed');
  } catch (err) {
    log.warn('tls.renew-failed', { hostname, error: err });
    return false;
  }
}

/**
 * Watches the two files by stat (fs.watchFile: follows symlinks such as certbot's live/ links and
 * sees an atomic rename, where inotify on the old inode would not). A change reloads once the
 * files have been still for SETTLE_MS; a half-written pair fails validation, is logged and the
 * next change tries again.
 */
function watchPair(certFile: string, keyFile: string, interval: number, reload: (reason: string) => boolean): () => void {
  let timer: NodeJS.Timeout | null = null;
  const onChange = (curr: Stats, prev: Stats) => {
    if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size && curr.ino === prev.ino) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      reload('file-changed');
    }, Math.min(SETTLE_MS, interval));
    timer.unref();
  };
  watchFile(certFile, { interval, persistent: false }, onChange);
  watchFile(keyFile, { interval, persistent: false }, onChange);
  return () => {
    unwatchFile(certFile, onChange);
    unwatchFile(keyFile, onChange);
    if (timer) clearTimeout(timer);
  };
}

/** A provider over one fixed pair (tests, tools). */
export function createTlsProvider(cert: string, key: string): TlsProvider {
  return createProvider({ current: buildMaterial(cert, key) });
}

function createProvider(holder: { current: TlsMaterial }): TlsProvider {
  return {
    get cert() {
      return holder.current.cert;
    },
    get key() {
      return holder.current.key;
    },
    get context() {
      return holder.current.context;
    },
    get fingerprint256() {
      return holder.current.fingerprint256;
    },
    upgrade(socket: Socket): Promise<TLSSocket> {
      return new Promise((resolve, reject) => {
        // The context current at this handshake; a later reload does not touch this session.
        const tls = new TLSSocket(socket, { isServer: true, secureContext: holder.current.context });
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
