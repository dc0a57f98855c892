// Shared bits of the SMTP end-to-end tests: reading what the running server stored (the SQLite
// store opened from the test, read-only use), running external clients, a raw line client.
import { spawn } from 'node:child_process';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { openStore, defaultDatabase } from '../../../src/store/open.ts';
import type { Store } from '../../../src/store/store.ts';

export async function withStore<T>(dataDir: string, fn: (s: Store) => Promise<T>): Promise<T> {
  const s = await openStore(defaultDatabase(dataDir), dataDir);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** Raw stored messages of a mailbox, in UID order. */
export async function stored(dataDir: string, address: string, mailbox = 'INBOX'): Promise<Buffer[]> {
  return withStore(dataDir, async (s) => {
    const acc = await s.getAccount(address);
    if (!acc) throw new Error(`no account ${address}`);
    const mb = await s.getMailbox(acc.id, mailbox);
    if (!mb) throw new Error(`no mailbox ${mailbox}`);
    const list = await s.listMessages(mb.id);
    return Promise.all(list.map((m) => s.readBlob(m.blobId)));
  });
}

/** Splits a stored message into our two prepended fields and what the client sent. */
export function splitPrepended(raw: Buffer): { returnPath: string; received: string; rest: Buffer } {
  const s = raw.toString('latin1');
  const rp = s.indexOf('\r\n');
  let i = rp + 2;
  const start = i;
  for (;;) {
    i = s.indexOf('\r\n', i) + 2;
    if (s[i] !== '\t' && s[i] !== ' ') break;
  }
  return { returnPath: s.slice(0, rp), received: s.slice(start, i), rest: raw.subarray(i) };
}

export function run(cmd: string, args: string[], input?: string | Buffer): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', reject);
    const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, out });
    });
    p.stdin.end(input ?? '');
  });
}

/** A minimal SMTP line client for exact reply checks. */
export class RawSmtp {
  #buf = '';
  #waiters: Array<() => void> = [];
  constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.#buf += d;
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on('close', () => {
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on('error', () => {});
  }
  static async connect(port: number, opts: { tls?: { ca: string } } = {}): Promise<RawSmtp> {
    const s = opts.tls ? tlsConnect({ host: '127.0.0.1', port, ca: [opts.tls.ca], servername: 'localhost' }) : netConnect(port, '127.0.0.1');
    await new Promise<void>((res, rej) => {
      s.once(opts.tls ? 'secureConnect' : 'connect', () => res());
      s.once('error', rej);
    });
    return new RawSmtp(s);
  }
  async reply(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.#buf.split('\r\n');
      const end = lines.slice(0, -1).findIndex((l) => /^\d{3}( |$)/.test(l));
      if (end >= 0) {
        this.#buf = lines.slice(end + 1).join('\r\n');
        return lines.slice(0, end + 1).join('\r\n');
      }
      if (this.socket.destroyed || Date.now() > deadline) throw new Error(`no reply (buffer: ${JSON.stringify(this.#buf)})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
  async cmd(line: string): Promise<string> {
    this.socket.write(line + '\r\n');
    return this.reply();
  }
  write(data: string | Buffer): void {
    this.socket.write(data);
  }
  close(): void {
    this.socket.destroy();
  }
}
