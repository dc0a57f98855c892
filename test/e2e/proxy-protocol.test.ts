// PROXY protocol (issue 15) on a real `pillarbox serve`: config proxyProtocol lists imap, imaps,
// smtp, pop3s and http, trusting 127.0.0.1 only; pop3 is not listed. A test client plays the proxy: it
// connects from 127.0.0.1, writes a v1 or v2 header naming a client from the documentation ranges
// (203.0.113.0/24, 198.51.100.0/24), and then speaks the protocol. What an operator checks: the
// logs (net.open, logins) name that client, the MX's Received field carries it, the per-IP limit
// counts it; a sender outside the trusted list, a malformed, oversized or unfinished header gets
// the connection closed with a net.proxy-refused line and never a greeting.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawSmtp } from '../helpers/smtp.ts';
import { RawImap } from './imap/raw-client.ts';

type Line = Record<string, unknown> & { event: string };

let srv: TestServer;
let dir: string;
let logFile: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pillarbox-proxy-'));
  logFile = join(dir, 'pillarbox.log');
  const config = join(dir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      proxyProtocol: { listeners: ['imap', 'imaps', 'smtp', 'pop3s', 'http'], trusted: ['127.0.0.1/32', '::1'], timeout: 1500, maxHeaderBytes: 512 },
      limits: { maxConnectionsPerIp: 2 },
    }),
  );
  srv = await startServer({ plaintext: true, args: ['--config', config, '--log-file', logFile, '--log-format', 'json'] });
  await srv.addUser('adam@example.com', 'adam-pw-1');
});
after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function lines(): Line[] {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

/** Waits (bounded) for a log line with every given field. */
async function waitFor(fields: Record<string, unknown>): Promise<Line> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const hit = lines().find((l) => Object.entries(fields).every(([k, v]) => l[k] === v));
    if (hit) return hit;
    if (Date.now() > deadline) assert.fail(`no log line with ${JSON.stringify(fields)} in:\n${readFileSync(logFile, 'utf8')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
function v2(src: string, sport: number, dst: string, dport: number, tlv = Buffer.alloc(0)): Buffer {
  const addr = Buffer.alloc(12);
  src.split('.').forEach((x, i) => (addr[i] = Number(x)));
  dst.split('.').forEach((x, i) => (addr[4 + i] = Number(x)));
  addr.writeUInt16BE(sport, 8);
  addr.writeUInt16BE(dport, 10);
  const head = Buffer.from([0x21, 0x11, 0, 0]);
  head.writeUInt16BE(12 + tlv.length, 2);
  return Buffer.concat([SIG, head, addr, tlv]);
}
const v1 = (src: string, sport: number, dport: number) => `PROXY TCP4 ${src} 127.0.0.1 ${sport} ${dport}\r\n`;

/** A TCP connection from `localAddress` (default 127.0.0.1, a trusted proxy). */
async function open(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port, localAddress }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything the server sends until it closes the connection (bounded). */
async function untilClosed(s: Socket): Promise<string> {
  let got = '';
  s.on('data', (d) => (got += d.toString('latin1')));
  s.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    if (s.destroyed) return resolve();
    const t = setTimeout(() => reject(new Error(`still open; received ${JSON.stringify(got)}`)), 15_000);
    s.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
  return got;
}

async function imapsThroughProxy(header: Buffer | string): Promise<RawImap> {
  const raw = await open(srv.ports.imaps);
  raw.write(header);
  const t = await new Promise<TLSSocket>((resolve, reject) => {
    const s = tlsConnect({ socket: raw, ca: [srv.ca], servername: 'localhost' }, () => resolve(s));
    s.once('error', reject);
  });
  const c = new RawImap(t);
  assert.match(await c.readLine(), /^\* OK \[CAPABILITY/);
  return c;
}

test('imaps: a v2 header before the TLS handshake; net.open and the failed login name the proxied client', async () => {
  const c = await imapsThroughProxy(v2('203.0.113.7', 40007, '127.0.0.1', 993));
  const r = await c.cmd('LOGIN adam@example.com wrong-password');
  assert.match(r.tagged, /^t1 NO /);
  const opened = await waitFor({ event: 'net.open', listener: 'imaps', remote: '203.0.113.7:40007' });
  assert.match(String(opened.proxy), /^127\.0\.0\.1:\d+$/);
  assert.equal(opened.proxyVersion, 2);
  // The authenticator (login throttle) and the IMAP session both see the client, not the proxy.
  await waitFor({ event: 'auth.login-failed', ip: '203.0.113.7', user: 'adam@example.com' });
  await waitFor({ event: 'imap.login-failed', ip: '203.0.113.7' });
  // A right password works through the proxy as well.
  await c.login('adam@example.com', 'adam-pw-1');
  await waitFor({ event: 'imap.login', ip: '203.0.113.7' });
  c.socket.destroy();
});

test('login throttling keys on the proxied client: 203.0.113.80 is slowed after 3 failures, 203.0.113.81 is not', async () => {
  // Both come through the same proxy socket address (127.0.0.1).
  const c = await imapsThroughProxy(v2('203.0.113.80', 40080, '127.0.0.1', 993));
  for (let i = 0; i < 4; i++) assert.match((await c.cmd('LOGIN adam@example.com guess-' + i, 30_000)).tagged, / NO /);
  c.socket.destroy();
  const slowed = await waitFor({ event: 'auth.throttled', ip: '203.0.113.80', user: 'adam@example.com' });
  assert.equal(slowed.action, 'delayed');
  const other = await imapsThroughProxy(v2('203.0.113.81', 40081, '127.0.0.1', 993));
  assert.match((await other.cmd('LOGIN adam@example.com guess-x', 30_000)).tagged, / NO /);
  other.socket.destroy();
  const failed = await waitFor({ event: 'auth.login-failed', ip: '203.0.113.81' });
  assert.equal(failed.failures, 1);
  assert.equal(lines().some((l) => l.event === 'auth.throttled' && l.ip === '203.0.113.81'), false);
});

test('smtp (MX): a v1 header; the stored message\'s Received field carries the proxied client', async () => {
  const raw = await open(srv.ports.smtp);
  raw.write(v1('198.51.100.23', 50123, 25));
  const c = new RawSmtp(raw);
  assert.match(await c.reply(), /^220 /);
  assert.match(await c.cmd('EHLO client.example'), /^250/);
  assert.match(await c.cmd('MAIL FROM:<someone@elsewhere.example>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<adam@example.com>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  assert.match(await c.cmd('Subject: via proxy\r\n\r\nhello\r\n.'), /^250/);
  await c.cmd('QUIT');
  c.close();
  await waitFor({ event: 'net.open', listener: 'smtp', remote: '198.51.100.23:50123', proxyVersion: 1 });
  // Read it back over POP3, a listener without PROXY protocol: plain connections work there.
  const pop = new RawLines(await open(srv.ports.pop3));
  assert.match(await pop.line(), /^\+OK/);
  assert.match(await pop.cmd('USER adam@example.com'), /^\+OK/);
  assert.match(await pop.cmd('PASS adam-pw-1'), /^\+OK/);
  pop.send('RETR 1');
  const msg = await pop.multiline();
  pop.close();
  assert.match(msg, /Subject: via proxy/);
  assert.match(msg, /^Received: from client\.example \(\[198\.51\.100\.23\]\)/m);
  assert.doesNotMatch(msg.split('\r\n\r\n')[0]!, /127\.0\.0\.1/);
});

test('pop3s: a v2 header, then TLS; the POP3 login lines name the proxied client', async () => {
  const raw = await open(srv.ports.pop3s);
  raw.write(v2('198.51.100.90', 40090, '127.0.0.1', 995));
  const t = await new Promise<TLSSocket>((resolve, reject) => {
    const s = tlsConnect({ socket: raw, ca: [srv.ca], servername: 'localhost' }, () => resolve(s));
    s.once('error', reject);
  });
  const p = new RawLines(t);
  assert.match(await p.line(), /^\+OK/);
  assert.match(await p.cmd('USER adam@example.com'), /^\+OK/);
  assert.match(await p.cmd('PASS wrong-one'), /^-ERR/);
  assert.match(await p.cmd('USER adam@example.com'), /^\+OK/);
  assert.match(await p.cmd('PASS adam-pw-1'), /^\+OK/);
  p.close();
  await waitFor({ event: 'pop3.login-failed', ip: '198.51.100.90' });
  await waitFor({ event: 'pop3.login', ip: '198.51.100.90' });
  await waitFor({ event: 'net.open', listener: 'pop3s', remote: '198.51.100.90:40090', proxyVersion: 2 });
});

test('the per-IP limit counts the proxied client: a third connection as 203.0.113.50 is refused, 203.0.113.51 is not', async () => {
  const held: RawImap[] = [];
  for (let i = 0; i < 2; i++) {
    const s = await open(srv.ports.imap);
    s.write(v1('203.0.113.50', 41000 + i, 143));
    const c = new RawImap(s);
    assert.match(await c.readLine(), /^\* OK/);
    held.push(c);
  }
  const third = await open(srv.ports.imap);
  third.write(v1('203.0.113.50', 41002, 143));
  assert.match(await untilClosed(third), /^\* BYE Too many connections/);
  const refused = await waitFor({ event: 'net.connection-refused', listener: 'imap', ip: '203.0.113.50' });
  assert.equal(refused.reason, 'per-ip-limit');
  // Same proxy socket address, another client: served.
  const other = await open(srv.ports.imap);
  other.write(v1('203.0.113.51', 41003, 143));
  const o = new RawImap(other);
  assert.match(await o.readLine(), /^\* OK/);
  for (const c of [...held, o]) c.socket.destroy();
});

test('a sender outside proxyProtocol.trusted is closed without a greeting, even with a valid header', async () => {
  const s = await open(srv.ports.imap, '127.0.0.2');
  s.write(v1('203.0.113.9', 40009, 143));
  assert.equal(await untilClosed(s), '');
  await waitFor({ event: 'net.proxy-refused', listener: 'imap', ip: '127.0.0.2', reason: 'untrusted' });
  // And a client that talks SMTP straight to a PROXY listener from there: the same.
  const m = await open(srv.ports.smtp, '127.0.0.2');
  m.write('EHLO direct.example\r\n');
  assert.equal(await untilClosed(m), '');
  await waitFor({ event: 'net.proxy-refused', listener: 'smtp', ip: '127.0.0.2' });
});

test('malformed, oversized and unfinished headers: closed with net.proxy-refused, never a greeting', async () => {
  const cases: Array<[Buffer | string, string, number]> = [
    ['EHLO not-a-proxy.example\r\n', 'not-proxy', srv.ports.smtp],
    ['PROXY TCP4 203.0.113.1 127.0.0.1 0443 143\r\n', 'v1-port', srv.ports.imap],
    ['PROXY TCP4 203.0.113.1 127.0.0.1 1 143\n', 'v1-bare-lf', srv.ports.imap],
    [Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0x02, 0x00])]), 'v2-too-long', srv.ports.imap], // 16 + 512 > maxHeaderBytes 512
    [Buffer.from('16030100', 'hex'), 'not-proxy', srv.ports.imaps], // a TLS ClientHello without a header
  ];
  for (const [bytes, reason, port] of cases) {
    const s = await open(port);
    s.write(bytes);
    assert.equal(await untilClosed(s), '', reason);
    await waitFor({ event: 'net.proxy-refused', reason });
  }
  // Half a header, then nothing: closed at proxyProtocol.timeout.
  const slow = await open(srv.ports.imap);
  slow.write('PROXY TCP4 203.0.113.2 127.0');
  assert.equal(await untilClosed(slow), '');
  const t = await waitFor({ event: 'net.proxy-refused', reason: 'timeout' });
  assert.equal(t.received, 'PROXY TCP4 203.0.113.2 127.0'.length);
});

test('a header in pieces, a v2 LOCAL health check, TLVs, and data right behind the header', async () => {
  // Byte by byte, each write on its own turn: the greeting comes once the header is complete.
  const s = await open(srv.ports.imap);
  for (const b of Buffer.from(v1('203.0.113.60', 42000, 143))) {
    s.write(Buffer.from([b]));
    await new Promise((r) => setImmediate(r));
  }
  const c = new RawImap(s);
  assert.match(await c.readLine(), /^\* OK/);
  c.socket.destroy();
  await waitFor({ event: 'net.open', listener: 'imap', remote: '203.0.113.60:42000' });
  // LOCAL (what HAProxy's checks send): served as the proxy itself.
  const l = await open(srv.ports.imap);
  l.write(Buffer.concat([SIG, Buffer.from([0x20, 0x00, 0x00, 0x00])]));
  const lc = new RawImap(l);
  assert.match(await lc.readLine(), /^\* OK/);
  lc.socket.destroy();
  // TLVs skipped; a command in the same segment as the header is read as the first command.
  const t = await open(srv.ports.imap);
  t.write(Buffer.concat([v2('203.0.113.61', 42001, '127.0.0.1', 143, Buffer.from('0400020000', 'hex')), Buffer.from('a1 NOOP\r\n')]));
  const tc = new RawImap(t);
  assert.match(await tc.readLine(), /^\* OK/);
  assert.match((await tc.until('a1')).tagged, /^a1 OK/);
  tc.socket.destroy();
  await waitFor({ event: 'net.open', listener: 'imap', remote: '203.0.113.61:42001' });
});

test('http: the health check behind a PROXY header, the request in the same segment', async () => {
  const s = await open(srv.ports.http);
  s.write(v1('203.0.113.70', 43000, 8080) + 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const got = await untilClosed(s);
  assert.match(got, /^HTTP\/1\.1 200 /);
  assert.match(got, /\r\n\r\n3\r\nok\n\r\n/); // chunked: one 3-byte chunk, "ok\n"
  await waitFor({ event: 'net.open', listener: 'http', remote: '203.0.113.70:43000' });
});

/** A line client for POP3 (reading the message back, pop3s). */
class RawLines {
  #buf = '';
  #wait: (() => void) | null = null;
  readonly s: Socket | TLSSocket;
  constructor(s: Socket | TLSSocket) {
    this.s = s;
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      this.#buf += d;
      this.#wait?.();
    });
  }
  async #until(end: string): Promise<string> {
    const deadline = Date.now() + 10_000;
    while (!this.#buf.includes(end)) {
      if (Date.now() > deadline) throw new Error(`no ${JSON.stringify(end)} in ${JSON.stringify(this.#buf)}`);
      await new Promise<void>((r) => {
        this.#wait = r;
        setTimeout(r, 200);
      });
    }
    const i = this.#buf.indexOf(end) + end.length;
    const out = this.#buf.slice(0, i);
    this.#buf = this.#buf.slice(i);
    return out;
  }
  line(): Promise<string> {
    return this.#until('\r\n');
  }
  send(l: string): void {
    this.s.write(l + '\r\n');
  }
  cmd(l: string): Promise<string> {
    this.send(l);
    return this.line();
  }
  multiline(): Promise<string> {
    return this.#until('\r\n.\r\n');
  }
  close(): void {
    this.s.destroy();
  }
}
