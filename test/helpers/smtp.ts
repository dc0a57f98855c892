// Shared pieces of the SMTP tests: a raw line client for exact protocol checks, reading a
// mailbox's stored messages, and splitting off the two header fields the server prepends.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Store } from '../../src/store/store.ts';

/** Every message of a mailbox, raw. */
export async function mailboxMessages(store: Store, address: string, mailbox = 'INBOX'): Promise<Buffer[]> {
  const acc = await store.getAccount(address);
  if (!acc) throw new Error(`no account ${address}`);
  const mb = await store.getMailbox(acc.id, mailbox);
  if (!mb) throw new Error(`no mailbox ${mailbox} for ${address}`);
  const list = await store.listMessages(mb.id);
  return Promise.all(list.map((m) => store.readBlob(m.blobId)));
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

/** A minimal line-based SMTP client for exact protocol checks. */
export class RawSmtp {
  #buf = '';
  #waiters: Array<() => void> = [];
  readonly socket: Socket;
  constructor(socket: Socket) {
    this.socket = socket;
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
