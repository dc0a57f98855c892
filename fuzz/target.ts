// The real server for the network fuzz targets (started as the tests start it: `pillarbox serve`
// on 127.0.0.1, every port 0, a temporary data folder, plaintext logins from loopback), its
// accounts and mail, and the fuzz client that sends one input the way the input says.

import { connect, type Socket } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type TestServer } from '../test/helpers/server.ts';
import { loadMessages, type Account } from './corpus.ts';
import type { FuzzInput } from './generators/mutate.ts';

/** The server's own memory figures after a full GC (fuzz/server-mem.ts), in bytes. */
export interface ServerMemory {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  heapUsedBeforeGc: number;
  external: number;
  arrayBuffers: number;
  /** V8's spaces, committed bytes by name; resident anonymous memory by kind (server-mem.ts). */
  spaces?: Record<string, number>;
  smaps?: Record<string, number>;
}

export interface Target {
  srv: TestServer;
  /** Asks the server for a GC and its memory figures (null if none came within 3 s). Holds its loop for the GC. */
  memory(): Promise<ServerMemory | null>;
  /** One account per concurrent fuzz client (POP3 locks a maildrop per account). */
  accounts: Account[];
  probe: Account;
  stop(): Promise<void>;
}

/** `loopStallMs`: the server's stall log threshold (limits.loopStallMs; its default is 100). */
export async function startTarget(clients: number, opts: { loopStallMs?: number } = {}): Promise<Target> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pillarbox-fuzz-'));
  // Loose connection caps (the fuzzer opens many) and a short throttle (fuzzed passwords fail).
  writeFileSync(
    join(dataDir, 'config.json'),
    JSON.stringify({
      limits: { maxConnectionsPerIp: 2000, loginThrottleDelay: 20, loginThrottleMaxDelay: 100, loginFailDelay: 10, ...(opts.loopStallMs ? { loopStallMs: opts.loopStallMs } : {}) },
    }),
  );
  const memFile = join(dataDir, 'fuzz-mem.json');
  const preload = new URL('./server-mem.ts', import.meta.url).href;
  const srv = await startServer({
    dataDir,
    plaintext: true,
    env: {
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --expose-gc --import ${preload}`.trim(),
      PILLARBOX_FUZZ_MEM: memFile,
      // A timeline of the server's memory and of the connections holding bytes (server-mem.ts).
      ...(process.env.PILLARBOX_FUZZ_SAMPLES ? { PILLARBOX_FUZZ_SAMPLES: process.env.PILLARBOX_FUZZ_SAMPLES } : {}),
    },
  });
  const accounts = Array.from({ length: clients }, (_, i) => ({ user: `fuzz${i + 1}@example.test`, pass: `pw${i + 1}` }));
  const probe = { user: 'probe@example.test', pass: 'probe-pw' };
  for (const a of [...accounts, probe]) await srv.addUser(a.user, a.pass);
  for (const a of accounts) {
    const r = await srv.cli(['user', 'set', a.user, 'imap.maxConnections', '100']);
    if (r.code !== 0) throw new Error(`user set: ${r.stderr}`);
  }
  // Mail to fetch, search and retrieve: the MIME corpus, to every account.
  for (const m of loadMessages()) await deliver(srv.ports.smtp, [...accounts, probe].map((a) => a.user), m.bytes);
  return {
    srv,
    accounts,
    probe,
    memory: () => askMemory(srv, memFile),
    async stop() {
      await srv.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Asks a server started with server-mem.ts loaded (its env PILLARBOX_FUZZ_MEM = `file`) for a full GC and its figures. */
export async function askMemory(srv: TestServer, file: string): Promise<ServerMemory | null> {
  const since = Date.now();
  try {
    process.kill(srv.proc.pid!, 'SIGUSR2');
  } catch {
    return null;
  }
  for (let i = 0; i < 150; i++) {
    await sleep(20);
    if (!existsSync(file)) continue;
    try {
      const m = JSON.parse(readFileSync(file, 'utf8')) as ServerMemory & { at: number };
      if (m.at >= since) return m;
    } catch {
      /* being written */
    }
  }
  return null;
}

/** A plain SMTP delivery (setup only). */
async function deliver(port: number, rcpts: string[], message: Buffer): Promise<void> {
  const sock = connect({ host: '127.0.0.1', port });
  let buf = '';
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => (buf += d));
  const reply = async () => {
    for (let i = 0; i < 500; i++) {
      const m = /(?:^|\r\n)(\d{3}) [^\r\n]*\r\n$/.exec(buf); // linear: anchored at the end, no nested quantifier
      if (m) {
        buf = '';
        return m[1]!;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`setup delivery: no reply (${buf})`);
  };
  await reply();
  for (const line of ['EHLO setup.test', 'MAIL FROM:<setup@elsewhere.test>', ...rcpts.map((r) => `RCPT TO:<${r}>`), 'DATA']) {
    sock.write(line + '\r\n');
    const code = await reply();
    if (code[0] !== '2' && code[0] !== '3') throw new Error(`setup delivery: ${line} → ${code}`);
  }
  sock.write(Buffer.concat([message, Buffer.from('\r\n.\r\n')]));
  if ((await reply()) !== '250') throw new Error('setup delivery refused');
  sock.write('QUIT\r\n');
  sock.destroy();
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What a fuzz client saw: bytes received, whether the server closed first. */
export interface ClientResult {
  received: number;
  serverClosed: boolean;
  /** The client's port (the server's samples name connections by it). */
  localPort?: number;
}

/**
 * Sends one input: 'interactive' writes segment by segment, waiting (≤ 150 ms) for an answer after
 * each line; 'burst' writes everything at once and never reads; 'abrupt' writes `closeAfter` bytes
 * and destroys the connection. Every input ends within `maxMs`.
 */
export async function runInput(port: number, input: FuzzInput, maxMs: number, pauseMs: number): Promise<ClientResult> {
  const sock: Socket = connect({ host: '127.0.0.1', port });
  let received = 0;
  let serverClosed = false;
  let localPort: number | undefined;
  let wake: (() => void) | null = null;
  sock.on('data', (d: Buffer) => {
    received += d.length;
    wake?.();
  });
  sock.on('error', () => {});
  const closed = new Promise<void>((r) =>
    sock.on('close', () => {
      serverClosed = true;
      wake?.();
      r();
    }),
  );
  const deadline = Date.now() + maxMs;
  const answerOr = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(r, Math.min(ms, Math.max(0, deadline - Date.now())));
      wake = () => {
        clearTimeout(t);
        wake = null;
        r();
      };
    });
  try {
    await Promise.race([new Promise<void>((r) => sock.once('connect', () => r())), closed, sleep(5000)]);
    if (serverClosed || sock.connecting) return { received, serverClosed };
    localPort = sock.localPort;
    if (input.mode === 'burst') {
      sock.pause();
      for (const s of input.segments) sock.write(s.bytes);
      await Promise.race([closed, sleep(Math.min(pauseMs, maxMs))]);
    } else if (input.mode === 'abrupt') {
      let left = input.closeAfter;
      for (const s of input.segments) {
        if (left <= 0) break;
        sock.write(left >= s.bytes.length ? s.bytes : s.bytes.subarray(0, left));
        left -= s.bytes.length;
      }
      await Promise.race([closed, sleep(pauseMs % 200)]);
    } else {
      await answerOr(150); // the greeting
      for (const s of input.segments) {
        if (serverClosed || Date.now() > deadline) break;
        if (!sock.write(s.bytes)) await Promise.race([new Promise((r) => sock.once('drain', r)), closed, sleep(Math.max(0, deadline - Date.now()))]);
        if (s.kind === 'line') await answerOr(150);
      }
      await answerOr(300);
    }
    return { received, serverClosed, localPort };
  } finally {
    sock.destroy();
  }
}
