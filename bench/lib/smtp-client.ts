// A small SMTP client for load generation: one connection, EHLO, then messages sent with
// MAIL/RCPT/DATA pipelined (RFC 2920) and the body dot-stuffed (RFC 5321 §4.5.2).

import { connect, type Socket } from 'node:net';

export interface SmtpReply {
  code: number;
  text: string;
}

export class SmtpConn {
  readonly socket: Socket;
  #buf = '';
  #lines: string[] = [];
  #waiters: Array<{ resolve: (r: SmtpReply) => void; reject: (e: Error) => void }> = [];
  #replies: SmtpReply[] = [];
  #err: Error | null = null;
  pipelining = false;

  private constructor(s: Socket) {
    this.socket = s;
    s.setNoDelay(true);
    s.setEncoding('latin1');
    s.on('data', (d: string) => this.#onData(d));
    s.on('error', (e) => this.#fail(e));
    s.on('close', () => this.#fail(new Error('SMTP connection closed')));
  }

  static async open(port: number, helo = 'bench.example.org', host = '127.0.0.1'): Promise<SmtpConn> {
    const s = connect(port, host);
    const c = new SmtpConn(s);
    await new Promise<void>((res, rej) => {
      s.once('connect', () => res());
      s.once('error', rej);
    });
    const g = await c.reply();
    if (g.code !== 220) throw new Error(`SMTP greeting: ${g.code} ${g.text}`);
    c.socket.write(`EHLO ${helo}\r\n`);
    const e = await c.reply();
    if (e.code !== 250) throw new Error(`EHLO: ${e.code} ${e.text}`);
    c.pipelining = /\bPIPELINING\b/i.test(e.text);
    return c;
  }

  /** AUTH PLAIN (RFC 4616) for submission; throws unless 235. */
  async auth(user: string, pass: string): Promise<void> {
    this.socket.write(`AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}\r\n`);
    const r = await this.reply();
    if (r.code !== 235) throw new Error(`AUTH: ${r.code} ${r.text}`);
  }

  #fail(e: Error): void {
    if (this.#err) return;
    this.#err = e;
    for (const w of this.#waiters.splice(0)) w.reject(e);
  }

  #onData(d: string): void {
    this.#buf += d;
    let i: number;
    while ((i = this.#buf.indexOf('\r\n')) >= 0) {
      const line = this.#buf.slice(0, i);
      this.#buf = this.#buf.slice(i + 2);
      this.#lines.push(line);
      if (line.length < 4 || line[3] !== '-') {
        const r: SmtpReply = { code: Number(line.slice(0, 3)), text: this.#lines.map((l) => l.slice(4)).join('\n') };
        this.#lines = [];
        const w = this.#waiters.shift();
        if (w) w.resolve(r);
        else this.#replies.push(r);
      }
    }
  }

  reply(): Promise<SmtpReply> {
    const r = this.#replies.shift();
    if (r) return Promise.resolve(r);
    if (this.#err) return Promise.reject(this.#err);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Sends one message; resolves with the final reply (250 on success) and the time it came. */
  async send(from: string, to: string, body: Buffer): Promise<SmtpReply> {
    const env = `MAIL FROM:<${from}>\r\nRCPT TO:<${to}>\r\nDATA\r\n`;
    if (this.pipelining) {
      this.socket.write(env);
      const m = await this.reply();
      const r = await this.reply();
      const d = await this.reply();
      if (m.code !== 250 || r.code !== 250 || d.code !== 354) {
        if (d.code === 354) {
          this.socket.write('.\r\n');
          await this.reply();
        }
        if (m.code !== 250) return m;
        return r.code !== 250 ? r : d;
      }
    } else {
      for (const cmd of env.trimEnd().split('\r\n')) {
        this.socket.write(cmd + '\r\n');
        const x = await this.reply();
        if (x.code !== 250 && x.code !== 354) return x;
      }
    }
    this.socket.write(dotStuff(body));
    this.socket.write('.\r\n');
    return this.reply();
  }

  async quit(): Promise<void> {
    try {
      this.socket.write('QUIT\r\n');
      await Promise.race([this.reply(), new Promise((r) => setTimeout(r, 2000))]);
    } catch {
      /* closed */
    }
    this.socket.destroy();
  }
}

/** Dot-stuffs a message and makes sure it ends with CRLF (RFC 5321 §4.5.2). */
export function dotStuff(body: Buffer): Buffer {
  let s = body.toString('latin1');
  if (s.startsWith('.')) s = '.' + s;
  s = s.replace(/\r\n\./g, '\r\n..');
  if (!s.endsWith('\r\n')) s += '\r\n';
  return Buffer.from(s, 'latin1');
}
