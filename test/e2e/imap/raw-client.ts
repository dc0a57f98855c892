// A raw IMAP client for protocol-level tests: writes exact bytes, reads responses with literals.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface Response {
  /** Untagged and continuation lines, literals inlined as {n}\r\n + data. */
  lines: string[];
  /** The tagged completion line. */
  tagged: string;
  /** Raw bytes of everything received for this command. */
  raw: Buffer;
}

export class RawImap {
  #chunks: Buffer[] = [];
  #len = 0;
  closed = false;
  #waiters: Array<() => void> = [];
  #tag = 0;

  socket: Socket | TLSSocket;
  constructor(socket: Socket | TLSSocket) {
    this.socket = socket;
    this.#attach(socket);
  }

  #attach(socket: Socket | TLSSocket): void {
    socket.on('data', (d: Buffer) => {
      this.#chunks.push(d);
      this.#len += d.length;
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    socket.on('error', () => {});
  }

  /** Everything received and not yet consumed, as one Buffer. */
  get buf(): Buffer {
    if (this.#chunks.length !== 1) this.#chunks = [Buffer.concat(this.#chunks, this.#len)];
    return this.#chunks[0]!;
  }

  set buf(b: Buffer) {
    this.#chunks = [b];
    this.#len = b.length;
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  static async connect(port: number, opts: { tls?: boolean; ca?: string } = {}): Promise<RawImap> {
    const socket = await new Promise<Socket | TLSSocket>((resolve, reject) => {
      const s = opts.tls
        ? tlsConnect({ host: '127.0.0.1', port, ca: opts.ca ? [opts.ca] : undefined, servername: 'localhost', rejectUnauthorized: Boolean(opts.ca) }, () => resolve(s))
        : netConnect({ host: '127.0.0.1', port }, () => resolve(s));
      s.once('error', reject);
    });
    const c = new RawImap(socket);
    await c.readLine(); // greeting
    return c;
  }

  /** Waits for more data (or close); false on timeout. */
  async #more(timeoutMs: number): Promise<boolean> {
    if (this.closed) return false;
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.#waiters.push(done);
    });
  }

  /** One response line including any literals (returned without the final CRLF). */
  async readLine(timeoutMs = 5000): Promise<string> {
    return (await this.readRaw(timeoutMs)).toString('utf8');
  }

  /** One response line with its literals, as bytes (without the final CRLF). */
  async readRaw(timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    let pos = 0;
    for (;;) {
      const nl = this.buf.indexOf('\r\n', pos);
      if (nl >= 0) {
        const m = /\{(\d+)\}$/.exec(this.buf.subarray(pos, nl).toString('latin1'));
        if (m) {
          const need = nl + 2 + Number(m[1]);
          if (this.buf.length >= need) {
            pos = need;
            continue;
          }
          // Wait for the whole literal without re-joining the buffer on every chunk.
          while (this.#len < need) {
            const left = deadline - Date.now();
            if (left <= 0 || !(await this.#more(left))) break;
          }
          if (this.#len >= need) continue;
        } else {
          const line = Buffer.from(this.buf.subarray(0, nl));
          this.buf = this.buf.subarray(nl + 2);
          return line;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0 || !(await this.#more(left))) {
        if (this.closed && this.buf.length === 0) throw new Error('connection closed');
        if (this.closed) {
          const rest = this.buf;
          this.buf = Buffer.alloc(0);
          return rest;
        }
        throw new Error(`timeout waiting for a line; have: ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      }
    }
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  nextTag(): string {
    return `t${++this.#tag}`;
  }

  /** Sends `tag command` and reads until the tagged reply. Answers "+" continuations with nothing (caller handles literals). */
  async cmd(command: string, timeoutMs = 5000): Promise<Response> {
    const tag = this.nextTag();
    this.write(`${tag} ${command}\r\n`);
    return this.until(tag, timeoutMs);
  }

  async until(tag: string, timeoutMs = 5000): Promise<Response> {
    const lines: string[] = [];
    const raws: Buffer[] = [];
    for (;;) {
      const rawLine = await this.readRaw(timeoutMs);
      const line = rawLine.toString('utf8');
      raws.push(rawLine, Buffer.from('\r\n'));
      if (line.startsWith(tag + ' ')) return { lines, tagged: line, raw: Buffer.concat(raws) };
      lines.push(line);
    }
  }

  async login(user: string, pass: string): Promise<void> {
    const r = await this.cmd(`LOGIN ${user} ${pass}`);
    if (!/ OK /.test(r.tagged)) throw new Error(`login failed: ${r.tagged}`);
  }

  /** APPEND with a synchronizing literal. */
  async append(mailbox: string, message: Buffer | string, flags = '', nonSync = false): Promise<Response> {
    const body = Buffer.isBuffer(message) ? message : Buffer.from(message);
    const tag = this.nextTag();
    this.write(`${tag} APPEND ${mailbox}${flags ? ' ' + flags : ''} {${body.length}${nonSync ? '+' : ''}}\r\n`);
    if (!nonSync) {
      const cont = await this.readLine();
      if (!cont.startsWith('+')) return { lines: [], tagged: cont, raw: Buffer.from(cont) };
    }
    this.write(Buffer.concat([body, Buffer.from('\r\n')]));
    return this.until(tag, 15000);
  }

  /** The literal that follows `key` (e.g. "BODY[2]<0>") in raw response bytes. */
  static literalAfter(raw: Buffer, key: string): Buffer | null {
    const i = raw.indexOf(key + ' ');
    if (i < 0) return null;
    const m = /^~?\{(\d+)\}\r\n/.exec(raw.subarray(i + key.length + 1, i + key.length + 40).toString('latin1'));
    if (!m) return null;
    const start = i + key.length + 1 + m[0].length;
    return raw.subarray(start, start + Number(m[1]));
  }

  async startTls(ca: string): Promise<void> {
    const r = await this.cmd('STARTTLS');
    if (!/ OK /.test(r.tagged)) throw new Error(`STARTTLS failed: ${r.tagged}`);
    const plain = this.socket;
    plain.removeAllListeners('data');
    this.socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ socket: plain as Socket, ca: [ca], servername: 'localhost' }, () => resolve(s));
      s.once('error', reject);
    });
    this.#attach(this.socket);
  }

  close(): void {
    this.socket.destroy();
  }
}
