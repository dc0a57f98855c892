// Real TLS clients for the TLS tests: openssl, NSS's certutil/tstclnt, and Node's TLS client over
// implicit TLS or after STARTTLS/STLS.
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import selfsigned from 'selfsigned';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a tool to its end (stdin: `input`, then EOF); never throws for a non-zero exit. */
export function run(cmd: string, args: string[], input = '', timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    p.stdin.on('error', () => {});
    p.stdin.end(input);
  });
}

export function have(cmd: string): boolean {
  const r = spawnSync(cmd, ['-h'], { stdio: 'ignore' });
  return !(r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT');
}

/** A certificate/key pair made by openssl (as an operator or certbot would supply one). */
export function opensslPair(dir: string, name: string, cn = 'localhost'): { cert: string; key: string; certFile: string; keyFile: string } {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const r = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '30', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=DNS:${cn},IP:127.0.0.1`],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile, keyFile };
}

/** The kind of certificate Pillarbox made before: self-signed with CA:TRUE and keyCertSign. */
export function oldCaStyleCert(hostname: string): { cert: string; key: string } {
  const pems = selfsigned.generate([{ name: 'commonName', value: hostname }], {
    keySize: 2048,
    days: 3650,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', keyCertSign: true, digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: hostname }, { type: 7, ip: '127.0.0.1' }] },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** An NSS database (like a Thunderbird profile's) holding `certPem` as a trusted peer ("P,,", what an exception does). */
export async function nssDbTrusting(dir: string, certPem: string | null): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const db = `sql:${dir}`;
  const init = await run('certutil', ['-N', '--empty-password', '-d', db]);
  if (init.code !== 0) throw new Error(`certutil -N: ${init.stderr}`);
  if (certPem) {
    const file = join(dir, 'server.pem');
    writeFileSync(file, certPem);
    const add = await run('certutil', ['-A', '-t', 'P,,', '-n', 'pillarbox', '-i', file, '-d', db]);
    if (add.code !== 0) throw new Error(`certutil -A: ${add.stderr}`);
  }
  return db;
}

/** tstclnt: an NSS TLS handshake (then exit) to 127.0.0.1:port, SNI localhost, verified against the db. */
export function tstclnt(port: number, db: string): Promise<Run> {
  return run('tstclnt', ['-h', '127.0.0.1', '-p', String(port), '-d', db, '-a', 'localhost', '-Q']);
}

/** openssl s_client with extra args; stdin is closed at once, so it exits after the handshake. */
export function sClient(port: number, args: string[], starttls?: 'imap' | 'pop3' | 'smtp'): Promise<Run> {
  return run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', ...(starttls ? ['-starttls', starttls] : []), ...args], '', 15_000);
}

type Step = [send: string | null, expect: RegExp];
const DIALOGS: Record<'imap' | 'pop3' | 'smtp', Step[]> = {
  imap: [
    [null, /^\* OK.*\r\n/m],
    ['a STARTTLS\r\n', /^a OK.*\r\n/m],
  ],
  pop3: [
    [null, /^\+OK.*\r\n/m],
    ['STLS\r\n', /^\+OK.*\r\n/m],
  ],
  smtp: [
    [null, /^220 .*\r\n/m],
    ['EHLO client.test\r\n', /^250 .*\r\n/m],
    ['STARTTLS\r\n', /^220 .*\r\n/m],
  ],
};

function step(sock: Socket, send: string | null, expect: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const done = (err?: Error) => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('error', done);
      sock.pause();
      if (err) reject(err);
      else resolve();
    };
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      if (expect.test(buf)) done();
    };
    const timer = setTimeout(() => done(new Error(`no ${expect} (got ${JSON.stringify(buf)})`)), 10_000);
    sock.on('data', onData);
    sock.once('error', done);
    sock.resume();
    if (send) sock.write(send);
  });
}

/** The certificate a new TLS handshake gets: implicit TLS on `port`, or after STARTTLS/STLS in `starttls`. */
export async function servedCert(port: number, starttls?: 'imap' | 'pop3' | 'smtp'): Promise<X509Certificate> {
  let plain: Socket | undefined;
  if (starttls) {
    plain = netConnect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => plain!.once('connect', resolve).once('error', reject));
    for (const [send, expect] of DIALOGS[starttls]) await step(plain, send, expect);
  }
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ ...(plain ? { socket: plain } : { host: '127.0.0.1', port }), servername: 'localhost', rejectUnauthorized: false }, () => {
      const c = s.getPeerX509Certificate();
      s.destroy();
      plain?.destroy();
      if (c) resolve(c);
      else reject(new Error('no peer certificate'));
    });
    s.once('error', reject);
  });
}

/** Polls until `check` is true (a slow machine only makes it take longer). */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
