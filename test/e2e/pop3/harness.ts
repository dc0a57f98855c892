// Test harness for the POP3 session layer: the real POP3 server (createPop3Server) over a real
// SQLite store in a temp dir, real TLS, real authenticator, on 127.0.0.1 port 0, plain (STLS)
// and implicit-TLS listeners. Also: mailbox filling through the store API, and a small raw
// line client for protocol-level assertions.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createNetServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect, type TLSSocket } from 'node:tls';
import { once } from 'node:events';
import { openSqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import type { AccountSettings, Store } from '../../../src/store/store.ts';
import { LocalChangeBus } from '../../../src/store/bus.ts';
import { generateSelfSigned, createTlsProvider } from '../../../src/net/tls.ts';
import { createAuthenticator } from '../../../src/auth/authenticator.ts';
import { hashPassword } from '../../../src/auth/password.ts';
import { createConnectionRegistry } from '../../../src/net/connections.ts';
import { silentLogger, createLogger } from '../../../src/obs/log.ts';
import { DEFAULT_LIMITS, type Config } from '../../../src/config/config.ts';
import { parseMessage } from '../../../src/protocol/mime/parser.ts';
import { createPop3Server } from '../../../src/pop3/server.ts';
import type { ProtocolServer, ServerDeps } from '../../../src/net/types.ts';

let certCache: { cert: string; key: string } | null = null;
function cert() {
  return (certCache ??= generateSelfSigned('localhost'));
}

export interface Harness {
  dir: string;
  store: Store;
  deps: ServerDeps;
  pop3: ProtocolServer;
  port: number;
  tlsPort: number;
  ca: string;
  caFile: string;
  /** Server-side sockets currently open. */
  serverSockets(): Socket[];
  /** Closes listeners, sessions and the store, then opens everything again on the same data dir and ports. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  allowPlaintextLoopback?: boolean;
  maxLineLength?: number;
  pop3Timeout?: number;
  debug?: boolean;
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-pop3-'));
  const { cert: certPem, key } = cert();
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, certPem);
  const tls = createTlsProvider(certPem, key);
  const config: Config = {
    hostname: 'localhost',
    host: '127.0.0.1',
    ports: { smtp: 0, submission: 0, submissions: 0, imap: 0, imaps: 0, pop3: 0, pop3s: 0, http: 0 },
    dataDir: dir,
    database: join(dir, 'pillarbox.sqlite'),
    portsFile: join(dir, 'ports.json'),
    tlsCert: null,
    tlsKey: null,
    allowPlaintextLoopback: opts.allowPlaintextLoopback ?? true,
    logLevel: 'info',
    limits: { ...DEFAULT_LIMITS, maxLineLength: opts.maxLineLength ?? DEFAULT_LIMITS.maxLineLength, pop3Timeout: opts.pop3Timeout ?? DEFAULT_LIMITS.pop3Timeout },
  };
  let plain: Server;
  let secure: Server;
  let sockets = new Set<Socket>();
  let port = 0;
  let tlsPort = 0;

  const h = {} as Harness;
  const open = async () => {
    const store = await openSqliteStore({ path: config.database, blobDir: join(dir, 'blobs'), bus: new LocalChangeBus() });
    const deps: ServerDeps = {
      store,
      config,
      tls,
      auth: createAuthenticator(store, { policy: { freeFailures: 1000, sourceFreeFailures: 1000, sourceAbuseNames: 1000, sourceAbuseFailures: 1e6, failDelayMs: 5 } }),
      connections: createConnectionRegistry(),
      log: opts.debug ? createLogger('debug') : silentLogger,
    };
    const pop3 = createPop3Server(deps);
    sockets = new Set();
    plain = createNetServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      pop3.handle(s, { implicitTls: false, listener: 'pop3' });
    });
    secure = createTlsServer({ cert: certPem, key }, (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      pop3.handle(s, { implicitTls: true, listener: 'pop3s' });
    });
    secure.on('tlsClientError', () => {});
    plain.listen(port, '127.0.0.1');
    secure.listen(tlsPort, '127.0.0.1');
    await Promise.all([once(plain, 'listening'), once(secure, 'listening')]);
    port = (plain.address() as { port: number }).port;
    tlsPort = (secure.address() as { port: number }).port;
    Object.assign(h, { store, deps, pop3, port, tlsPort });
  };
  const shut = async () => {
    plain.close();
    secure.close();
    await Promise.race([h.pop3.close(), new Promise((r) => setTimeout(r, 3000))]);
    for (const s of sockets) s.destroy();
    await h.store.close();
  };
  await open();
  Object.assign(h, {
    dir,
    ca: certPem,
    caFile,
    serverSockets: () => [...sockets],
    restart: async () => {
      await shut();
      await open();
    },
    close: async () => {
      await shut();
      rmSync(dir, { recursive: true, force: true });
    },
  });
  return h;
}

export async function addAccount(store: Store, address: string, password: string, settings?: AccountSettings) {
  const domain = address.split('@')[1]!;
  if (!(await store.getDomain(domain))) await store.addDomain(domain);
  return store.createAccount({ address, passwordHash: await hashPassword(password), ...(settings ? { settings } : {}) });
}

/** A test message with awkward content: lines starting with dots, a lone dot line, long lines, 8-bit bytes. */
export function makeMessage(i: number, extraBytes = 0): Buffer {
  const lines = [
    `From: Sender ${i} <sender${i}@example.org>`,
    `To: someone@example.com`,
    `Subject: Test message ${i}`,
    `Message-ID: <msg${i}.pop3test@example.org>`,
    `Date: Sun, 22 Nov 2026 02:00:00 +0000`,
    `MIME-Version: 1.0`,
    `Content-Type: text/plain; charset=utf-8`,
    `Content-Transfer-Encoding: 8bit`,
    ``,
    `Body of message ${i}.`,
    `.`,
    `.. two dots`,
    `.leading dot`,
    `Grüße, ünïcödé ✓`,
    'x'.repeat(900),
    ``,
  ];
  let body = lines.join('\r\n');
  let n = 0;
  while (extraBytes > 0) {
    const l = `filler line ${n++} ${'y'.repeat(60)}\r\n`;
    body += n % 7 === 0 ? '.' + l : l;
    extraBytes -= l.length;
  }
  return Buffer.from(body + 'End.\r\n');
}

/** Delivers messages to the account's INBOX through the store (staged, parsed, committed). */
export async function deliverMessages(store: Store, accountId: number, bodies: Buffer[]): Promise<number[]> {
  const inbox = await store.getMailbox(accountId, 'INBOX');
  if (!inbox) throw new Error('no INBOX');
  const uids: number[] = [];
  for (const raw of bodies) {
    const blob = await store.stageBlob(raw);
    try {
      const [r] = await store.deliver(blob, parseMessage(raw), [{ mailboxId: inbox.id }]);
      if (!r || !r.ok) throw new Error('delivery failed');
      uids.push(r.uid);
    } finally {
      blob.release();
    }
  }
  return uids;
}

// ------------------------------------------------------------------ raw line client

export class LineClient {
  socket: Socket | TLSSocket;
  #buf = Buffer.alloc(0);
  #waiters: Array<() => void> = [];
  #ended = false;
  ca: string = cert().cert;

  constructor(socket: Socket | TLSSocket) {
    this.socket = socket;
    this.#listen(socket);
  }

  #listen(socket: Socket | TLSSocket) {
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#wake();
    });
    socket.on('close', () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on('error', () => {});
  }

  #wake() {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  static async connect(port: number, tls = false, ca: string = cert().cert): Promise<LineClient> {
    const socket = tls
      ? tlsConnect({ port, host: '127.0.0.1', servername: 'localhost', ca })
      : netConnect({ port, host: '127.0.0.1' });
    await once(socket, tls ? 'secureConnect' : 'connect');
    const c = new LineClient(socket);
    c.ca = ca;
    const greeting = await c.line();
    if (!greeting.startsWith('+OK')) throw new Error('bad greeting ' + greeting);
    return c;
  }

  get closed(): boolean {
    return this.#ended;
  }

  async #until(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (this.#ended) throw new Error('connection closed; buffered: ' + JSON.stringify(this.#buf.toString('latin1').slice(0, 200)));
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timeout waiting for server; buffered: ' + JSON.stringify(this.#buf.toString('latin1').slice(0, 200)));
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** One response line, CRLF stripped. */
  async line(): Promise<string> {
    await this.#until(() => this.#buf.indexOf('\r\n') !== -1);
    const i = this.#buf.indexOf('\r\n');
    const l = this.#buf.subarray(0, i).toString('utf8');
    this.#buf = this.#buf.subarray(i + 2);
    return l;
  }

  /** A multi-line body after a +OK line: raw bytes, dot-unstuffed, terminator removed. */
  async multi(): Promise<Buffer> {
    await this.#until(() => this.#buf.indexOf('\r\n.\r\n') !== -1 || this.#buf.subarray(0, 3).toString() === '.\r\n');
    let end: number;
    let raw: Buffer;
    if (this.#buf.subarray(0, 3).toString() === '.\r\n') {
      raw = Buffer.alloc(0);
      end = 3;
    } else {
      const i = this.#buf.indexOf('\r\n.\r\n');
      raw = this.#buf.subarray(0, i + 2);
      end = i + 5;
    }
    this.#buf = this.#buf.subarray(end);
    const s = raw.toString('latin1');
    const un = s.split('\r\n').map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n');
    return Buffer.from(un, 'latin1');
  }

  send(line: string | Buffer): void {
    this.socket.write(typeof line === 'string' ? line + '\r\n' : line);
  }

  /** Sends a command and returns the status line. */
  async cmd(line: string): Promise<string> {
    this.send(line);
    return this.line();
  }

  /** Sends a command expecting a multi-line answer; returns [status, body lines]. */
  async multiCmd(line: string): Promise<[string, string[]]> {
    const status = await this.cmd(line);
    if (!status.startsWith('+OK')) return [status, []];
    const body = (await this.multi()).toString('utf8');
    return [status, body === '' ? [] : body.replace(/\r\n$/, '').split('\r\n')];
  }

  async stls(): Promise<void> {
    const r = await this.cmd('STLS');
    if (!r.startsWith('+OK')) throw new Error('STLS refused: ' + r);
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
    const s = tlsConnect({ socket: this.socket as Socket, servername: 'localhost', ca: this.ca });
    await once(s, 'secureConnect');
    this.socket = s;
    this.#listen(s);
  }

  async login(user: string, pass: string): Promise<string> {
    const u = await this.cmd(`USER ${user}`);
    if (!u.startsWith('+OK')) return u;
    return this.cmd(`PASS ${pass}`);
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await this.#until(() => false, timeoutMs).catch((e: Error) => {
      if (!this.#ended) throw e;
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
