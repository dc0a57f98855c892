// Real POP3 clients driven by the end-to-end tests: Python's poplib, fetchmail, getmail6 and
// curl. Each downloads into a folder of .eml files; `assertSameMessages` compares a folder with
// the messages that were delivered.

import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { once } from 'node:events';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const POPLIB = join(HERE, 'clients/poplib_fetch.py');

export interface PopEndpoint {
  /** Plain port (STLS). */
  pop3: number;
  /** Implicit TLS port. */
  pop3s: number;
  caFile: string;
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; okCodes?: number[]; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const raw = (err as { code?: unknown } | null)?.code;
      const code = err ? (typeof raw === 'number' ? raw : -1) : 0;
      if (code !== 0 && !(opts.okCodes ?? []).includes(code)) {
        reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${err?.message}\nstdout: ${stdout}\nstderr: ${stderr}`));
        return;
      }
      resolve({ code, stdout, stderr });
    });
  });
}

/** MDA used by fetchmail and getmail: writes stdin to a new file in the folder given. */
function deliverScript(workDir: string): string {
  const p = join(workDir, 'deliver.sh');
  writeFileSync(p, '#!/bin/sh\nf=$(mktemp "$1/msg.XXXXXXXXXX")\ncat > "$f"\n');
  chmodSync(p, 0o755);
  return p;
}

/** Python poplib, UIDL-tracking (state file), over implicit TLS or STLS. Returns how many it fetched. */
export async function runPoplib(
  ep: PopEndpoint,
  o: { user: string; password: string; outDir: string; stateFile: string; delete: boolean; stls?: boolean },
): Promise<number> {
  mkdirSync(o.outDir, { recursive: true });
  const r = await run('python3', [
    POPLIB,
    'localhost',
    String(o.stls ? ep.pop3 : ep.pop3s),
    o.stls ? 'stls' : 'ssl',
    ep.caFile,
    o.user,
    o.password,
    o.outDir,
    o.stateFile,
    o.delete ? 'delete' : 'keep',
  ]);
  const m = /fetched (\d+)/.exec(r.stdout);
  assert.ok(m, `poplib output: ${r.stdout} ${r.stderr}`);
  return Number(m[1]);
}

/**
 * fetchmail over STLS on the plain port, delivering to an MDA (fetchmail hands the MDA LF line
 * ends). `keep` = fetchmail's own keep (leave on server, track UIDLs in its id file).
 */
export async function runFetchmail(
  ep: PopEndpoint,
  o: { user: string; password: string; outDir: string; workDir: string; keep: boolean },
): Promise<number> {
  mkdirSync(o.outDir, { recursive: true });
  mkdirSync(o.workDir, { recursive: true });
  const mda = deliverScript(o.workDir);
  const rc = join(o.workDir, 'fetchmailrc');
  writeFileSync(
    rc,
    [
      'set no syslog',
      'set no bouncemail',
      // No Received: line of its own, so the delivered message can be compared with the original.
      'set invisible',
      `poll localhost protocol pop3 port ${ep.pop3} timeout 60`,
      `  user "${o.user}" there with password "${o.password}" is root here`,
      `  sslproto 'TLS1.2+' sslcertck sslcertfile "${ep.caFile}" sslcommonname localhost`,
      `  ${o.keep ? 'keep' : 'nokeep'}`,
      `  mda "${mda} ${o.outDir}"`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const before = readdirSync(o.outDir).length;
  // Exit code 1 = "no mail".
  await run('fetchmail', ['-f', rc, '-i', join(o.workDir, 'fetchids'), '--pidfile', join(o.workDir, 'fetchmail.pid')], {
    env: { ...process.env, HOME: o.workDir },
    okCodes: [1],
  });
  return readdirSync(o.outDir).length - before;
}

/**
 * A minimal LMTP server (RFC 2033) that writes each message it receives to a new file in `outDir`
 * (dot-unstuffed, CRLF as received). getmail delivers to it: its forking destinations (Maildir,
 * Mboxrd, MDA_external) race SIGCHLD against their wait and hang for the socket timeout now and
 * then (getmailcore/baseclasses.py ForkingBase), its LMTP destination does not fork.
 */
export async function startLmtpSink(outDir: string): Promise<{ port: number; close(): Promise<void> }> {
  mkdirSync(outDir, { recursive: true });
  let seq = 0;
  const server = createServer((sock) => {
    let buf = Buffer.alloc(0);
    let inData = false;
    let rcpts = 0;
    sock.on('error', () => {});
    sock.write('220 lmtp-sink ready\r\n');
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          const empty = buf.subarray(0, 3).toString() === '.\r\n';
          if (end === -1 && !empty) return;
          const raw = empty ? Buffer.alloc(0) : buf.subarray(0, end + 2);
          buf = buf.subarray(empty ? 3 : end + 5);
          const text = raw.toString('latin1').split('\r\n').map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n');
          writeFileSync(join(outDir, `msg.${String(++seq).padStart(6, '0')}`), Buffer.from(text, 'latin1'));
          inData = false;
          // RFC 2033 §4.2: one reply per accepted recipient.
          for (let i = 0; i < Math.max(rcpts, 1); i++) sock.write('250 2.0.0 stored\r\n');
          rcpts = 0;
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl === -1) return;
        const line = buf.subarray(0, nl).toString('latin1');
        buf = buf.subarray(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'LHLO') sock.write('250-lmtp-sink\r\n250-8BITMIME\r\n250 PIPELINING\r\n');
        else if (verb === 'MAIL') sock.write('250 2.1.0 ok\r\n');
        else if (verb === 'RCPT') {
          rcpts++;
          sock.write('250 2.1.5 ok\r\n');
        } else if (verb === 'DATA') {
          inData = true;
          sock.write('354 go ahead\r\n');
        } else if (verb === 'QUIT') {
          sock.end('221 2.0.0 bye\r\n');
          return;
        } else sock.write('250 ok\r\n');
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** getmail6 over implicit TLS (SimplePOP3SSLRetriever), UIDL-tracking in its getmaildir, delivering over LMTP. */
export async function runGetmail(
  ep: PopEndpoint,
  o: { user: string; password: string; outDir: string; workDir: string; delete: boolean },
): Promise<number> {
  mkdirSync(o.outDir, { recursive: true });
  mkdirSync(o.workDir, { recursive: true });
  const sink = await startLmtpSink(o.outDir);
  try {
    writeFileSync(
      join(o.workDir, 'getmailrc'),
      [
        '[retriever]',
        'type = SimplePOP3SSLRetriever',
        'server = localhost',
        `port = ${ep.pop3s}`,
        `username = ${o.user}`,
        `password = ${o.password}`,
        `ca_certs = ${ep.caFile}`,
        '',
        '[destination]',
        'type = MDA_lmtp',
        'host = 127.0.0.1',
        `port = ${sink.port}`,
        'override = mailbox@localhost',
        '',
        '[options]',
        'read_all = false',
        `delete = ${o.delete ? 'true' : 'false'}`,
        'delivered_to = false',
        'received = false',
        'verbose = 1',
        'message_log_syslog = false',
        '',
      ].join('\n'),
    );
    // getmail names its UIDL memory oldmail-HOST-PORT-USER; a restarted test server has new ports,
    // so carry the memory over as a user's getmail would keep it for a fixed port.
    const want = `oldmail-localhost-${ep.pop3s}-${o.user}`;
    const prev = readdirSync(o.workDir).find((f) => f.startsWith('oldmail-localhost-') && f.endsWith(`-${o.user}`) && f !== want);
    if (prev && !existsSync(join(o.workDir, want))) copyFileSync(join(o.workDir, prev), join(o.workDir, want));
    const before = readdirSync(o.outDir).length;
    await run('getmail', ['--getmaildir', o.workDir, '--rcfile', 'getmailrc']);
    return readdirSync(o.outDir).length - before;
  } finally {
    await sink.close();
  }
}

/** curl over pop3s: RETR 1..count on one connection (URL globbing), or DELE them with `dele`. */
export async function runCurl(ep: PopEndpoint, o: { user: string; password: string; outDir: string; count: number; dele?: boolean }): Promise<void> {
  mkdirSync(o.outDir, { recursive: true });
  const base = ['-s', '-S', '--resolve', `localhost:${ep.pop3s}:127.0.0.1`, '--cacert', ep.caFile, '-u', `${o.user}:${o.password}`];
  const url = `pop3s://localhost:${ep.pop3s}/[1-${o.count}]`;
  if (o.dele) await run('curl', [...base, url, '-X', 'DELE', '-I']);
  else await run('curl', [...base, url, '-o', join(o.outDir, '#1.eml')]);
}

/** curl LIST: the message numbers the server currently shows. */
export async function curlList(ep: PopEndpoint, o: { user: string; password: string }): Promise<string[]> {
  const r = await run('curl', ['-s', '-S', '--resolve', `localhost:${ep.pop3s}:127.0.0.1`, '--cacert', ep.caFile, '-u', `${o.user}:${o.password}`, `pop3s://localhost:${ep.pop3s}/`]);
  return r.stdout.split(/\r?\n/).filter(Boolean);
}

const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * The folder holds exactly the expected messages, byte for byte (as a multiset). `lf`: the client
 * delivers with LF line ends (fetchmail hands its MDA LF lines).
 */
export function assertSameMessages(dir: string, expected: Buffer[], opts: { lf?: boolean } = {}): void {
  const norm = (b: Buffer) => (opts.lf ? Buffer.from(b.toString('latin1').replace(/\r\n/g, '\n'), 'latin1') : b);
  const want = expected.map((b) => digest(norm(b))).sort();
  const got = readdirSync(dir)
    .sort()
    .map((f) => digest(readFileSync(join(dir, f))))
    .sort();
  assert.equal(got.length, want.length, `${dir}: ${got.length} messages, expected ${want.length}`);
  assert.deepEqual(got, want, `${dir}: contents differ from what was delivered`);
}
