// Issue 15: Pillarbox behind HAProxy from Debian (/usr/sbin/haproxy, a private instance on loopback
// ports, TCP mode). Pillarbox's imap, imaps and smtp listeners take the PROXY protocol from
// 127.0.0.1 (where HAProxy connects from); HAProxy has one frontend per listener and header
// version (`server … send-proxy` and `send-proxy-v2`). The test's clients connect to HAProxy from
// other loopback addresses (127.0.0.5 for v1, 127.0.0.6 for v2), so the address Pillarbox reports
// can only have come from the header: net.open, the failed and good logins, and the Received field
// of mail taken through HAProxy name the client. The same client connecting to Pillarbox directly,
// past the proxy, is refused; HAProxy's health checks (`check`) are served. Skipped (with the package to install) where haproxy is absent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { needs, installed } from '../../helpers/external.ts';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { RawSmtp } from '../../helpers/smtp.ts';
import { RawImap } from '../imap/raw-client.ts';
import { freePort } from '../../../bench/lib/peers.ts';

const HAPROXY = '/usr/sbin/haproxy';
const MODES = { v1: { send: 'send-proxy', client: '127.0.0.5', version: 1 }, v2: { send: 'send-proxy-v2', client: '127.0.0.6', version: 2 } } as const;
type Mode = keyof typeof MODES;
type Front = `${'imap' | 'imaps' | 'smtp'}-${Mode}`;

let srv: TestServer;
let dir: string;
let logFile: string;
let haproxy: ChildProcess | null = null;
let haproxyOut = '';
const front = {} as Record<Front, number>;

process.on('exit', () => haproxy?.kill('SIGKILL'));

before(async () => {
  if (!installed(HAPROXY)) return;
  dir = mkdtempSync(join(tmpdir(), 'pillarbox-haproxy-'));
  logFile = join(dir, 'pillarbox.log');
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ proxyProtocol: { listeners: ['imap', 'imaps', 'smtp'], trusted: ['127.0.0.1'] } }));
  srv = await startServer({ plaintext: true, args: ['--config', config, '--log-file', logFile, '--log-format', 'json'] });
  await srv.addUser('adam@example.com', 'adam-pw-1');
  const sections: string[] = [];
  for (const listener of ['imap', 'imaps', 'smtp'] as const) {
    for (const mode of Object.keys(MODES) as Mode[]) {
      const name: Front = `${listener}-${mode}`;
      front[name] = await freePort();
      sections.push(
        `frontend f-${name}\n  bind 127.0.0.1:${front[name]}\n  default_backend b-${name}\n` +
          `backend b-${name}\n  server pillarbox 127.0.0.1:${srv.ports[listener]} ${MODES[mode].send} check inter 1s\n`,
      );
    }
  }
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    `global\n  log stderr format raw local0 info\ndefaults\n  mode tcp\n  log global\n  option tcplog\n` +
      `  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\n${sections.join('\n')}`,
  );
  // -db: foreground, no daemon; it logs each connection to stderr (shown if a test fails).
  haproxy = spawn(HAPROXY, ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  haproxy.stdout!.on('data', (d) => (haproxyOut += d));
  haproxy.stderr!.on('data', (d) => (haproxyOut += d));
  // Ready once every frontend accepts connections.
  for (const port of Object.values(front)) {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ok = await new Promise<boolean>((r) => {
        const s = netConnect(port, '127.0.0.1', () => {
          s.destroy();
          r(true);
        });
        s.on('error', () => r(false));
      });
      if (ok) break;
      if (Date.now() > deadline || haproxy.exitCode !== null) throw new Error(`haproxy did not start:\n${haproxyOut}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});

after(async () => {
  if (haproxy && haproxy.exitCode === null) {
    haproxy.kill('SIGTERM');
    await new Promise((r) => haproxy!.once('exit', r));
  }
  await srv?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Line = Record<string, unknown> & { event: string };
async function waitFor(match: (l: Line) => boolean, what: string): Promise<Line> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const all = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line) : [];
    const hit = all.find(match);
    if (hit) return hit;
    if (Date.now() > deadline) assert.fail(`no log line ${what}; haproxy said:\n${haproxyOut}\npillarbox log:\n${all.map((l) => JSON.stringify(l)).join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function open(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port, localAddress }, () => resolve(s));
    s.once('error', reject);
  });
}

for (const mode of Object.keys(MODES) as Mode[]) {
  const { send, client, version } = MODES[mode];

  test(`IMAP through HAProxy ${send}: net.open, failed and good logins name ${client}`, needs(HAPROXY), async () => {
    const s = await open(front[`imap-${mode}`], client);
    const c = new RawImap(s);
    assert.match(await c.readLine(), /^\* OK \[CAPABILITY/);
    const port = s.localPort!;
    const opened = await waitFor((l) => l.event === 'net.open' && l.listener === 'imap' && l.remote === `${client}:${port}`, `net.open remote=${client}:${port}`);
    assert.equal(opened.proxyVersion, version);
    assert.match(String(opened.proxy), /^127\.0\.0\.1:\d+$/);
    assert.match((await c.cmd('LOGIN adam@example.com not-the-password')).tagged, /^t1 NO /);
    await waitFor((l) => l.event === 'auth.login-failed' && l.ip === client, `auth.login-failed ip=${client}`);
    await c.login('adam@example.com', 'adam-pw-1');
    await waitFor((l) => l.event === 'imap.login' && l.ip === client, `imap.login ip=${client}`);
    await c.cmd('LOGOUT');
    s.destroy();
  });

  test(`IMAPS through HAProxy ${send} (TLS passed through, header before the ClientHello)`, needs(HAPROXY), async () => {
    const raw = await open(front[`imaps-${mode}`], client);
    const t = await new Promise<import('node:tls').TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ socket: raw, ca: [srv.ca], servername: 'localhost' }, () => resolve(s));
      s.once('error', reject);
    });
    const c = new RawImap(t);
    assert.match(await c.readLine(), /^\* OK \[CAPABILITY/);
    await c.login('adam@example.com', 'adam-pw-1');
    await waitFor((l) => l.event === 'net.open' && l.listener === 'imaps' && l.remote === `${client}:${raw.localPort}` && l.proxyVersion === version, `net.open imaps ${client}`);
    t.destroy();
  });

  test(`SMTP through HAProxy ${send}: the Received field carries ${client}`, needs(HAPROXY), async () => {
    const s = await open(front[`smtp-${mode}`], client);
    const c = new RawSmtp(s);
    assert.match(await c.reply(), /^220 /);
    assert.match(await c.cmd(`EHLO client-${mode}.example`), /^250/);
    assert.match(await c.cmd('MAIL FROM:<sender@elsewhere.example>'), /^250/);
    assert.match(await c.cmd('RCPT TO:<adam@example.com>'), /^250/);
    assert.match(await c.cmd('DATA'), /^354/);
    assert.match(await c.cmd(`Subject: through haproxy ${mode}\r\n\r\nhello\r\n.`), /^250/);
    await c.cmd('QUIT');
    c.close();
    // Read it back through HAProxy too, and find its Received field.
    const r = new RawImap(await open(front[`imap-${mode}`], client));
    await r.readLine();
    await r.login('adam@example.com', 'adam-pw-1');
    await r.cmd('SELECT INBOX');
    const found = await r.cmd(`UID SEARCH SUBJECT "through haproxy ${mode}"`);
    const uid = /\* SEARCH (\d+)/.exec(found.lines.join('\n'))?.[1];
    assert.ok(uid, found.lines.join('\n'));
    const f = await r.cmd(`UID FETCH ${uid} BODY.PEEK[HEADER.FIELDS (RECEIVED)]`);
    assert.match(f.raw.toString(), new RegExp(`Received: from client-${mode}\\.example \\(\\[${client.replace(/\./g, '\\.')}\\]\\)`));
    r.socket.destroy();
  });
}

test('HAProxy\'s health checks (v2: a LOCAL header; v1: a PROXY line for its own connection) are served, not refused', needs(HAPROXY), async () => {
  const check = (version: number) => (l: Line) => l.event === 'net.open' && l.listener === 'imap' && l.proxyVersion === version && String(l.remote).startsWith('127.0.0.1:');
  await waitFor(check(2), 'net.open of a v2 health check');
  await waitFor(check(1), 'net.open of a v1 health check');
  const all = readFileSync(logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
  // Checks that close before Pillarbox has read anything are logged at info (closed-before-header), never a warning.
  assert.deepEqual(all.filter((l) => l.event === 'net.proxy-refused' && l.level !== 'info'), []);
});

test('the client going around HAProxy, straight to Pillarbox, is refused (not a trusted proxy)', needs(HAPROXY), async () => {
  const s = await open(srv.ports.imap, '127.0.0.5');
  let got = '';
  s.on('data', (d) => (got += d));
  s.on('error', () => {});
  await new Promise((r) => s.once('close', r));
  assert.equal(got, '');
  await waitFor((l) => l.event === 'net.proxy-refused' && l.ip === '127.0.0.5' && l.reason === 'untrusted', 'net.proxy-refused untrusted');
});
