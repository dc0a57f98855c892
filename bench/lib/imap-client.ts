// A tiny IMAP client for load generation: raw socket, tagged commands (pipelining allowed),
// literals in responses read by byte count (their bytes are counted, not kept unless asked),
// LITERAL+ for APPEND, IDLE with a listener for untagged responses.

import { connect, type Socket } from 'node:net';

export interface Reply {
  status: 'OK' | 'NO' | 'BAD' | 'BYE';
  text: string;
  untagged: string[];
  /** Bytes of literal data received with this command's untagged responses. */
  literalBytes: number;
}

interface Pending {
  tag: string;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  untagged: string[];
  literalBytes: number;
}

export class ImapError extends Error {}

export class ImapConn {
  readonly socket: Socket;
  #buf: Buffer = Buffer.alloc(0);
  #line: string[] = [];
  #literalLeft = 0;
  #literalChunks: Buffer[] | null = null;
  #pending: Pending[] = [];
  #tagN = 0;
  #greeting: ((line: string) => void) | null = null;
  #continuation: Array<() => void> = [];
  #closed = false;
  #closeErr: Error | null = null;
  /** Called for every untagged response (also those attributed to a command). */
  onUntagged: ((line: string) => void) | null = null;
  /** Keep literal bytes in the untagged line text (default false: replaced by {n}). */
  keepLiterals = false;
  capabilities = '';

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.#onData(d));
    socket.on('error', (e) => this.#fail(e));
    socket.on('close', () => this.#fail(new ImapError('connection closed')));
  }

  static connect(port: number, host = '127.0.0.1', timeoutMs = 30_000): Promise<ImapConn> {
    return new Promise((resolve, reject) => {
      const s = connect(port, host);
      const c = new ImapConn(s);
      const t = setTimeout(() => {
        s.destroy();
        reject(new ImapError('no greeting'));
      }, timeoutMs);
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
      c.#greeting = (line) => {
        clearTimeout(t);
        if (/^\* (OK|PREAUTH)/i.test(line)) {
          const m = /\[CAPABILITY ([^\]]*)\]/i.exec(line);
          if (m) c.capabilities = m[1]!;
          resolve(c);
        } else {
          s.destroy();
          reject(new ImapError(`bad greeting: ${line}`));
        }
      };
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  #fail(e: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeErr = e;
    for (const p of this.#pending.splice(0)) p.reject(e);
    for (const c of this.#continuation.splice(0)) c();
  }

  #onData(d: Buffer): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
    for (;;) {
      if (this.#literalLeft > 0) {
        const n = Math.min(this.#literalLeft, this.#buf.length);
        if (n === 0) return;
        if (this.#literalChunks) this.#literalChunks.push(this.#buf.subarray(0, n));
        const p = this.#pending[0];
        if (p) p.literalBytes += n;
        this.#literalLeft -= n;
        this.#buf = this.#buf.subarray(n);
        if (this.#literalLeft > 0) return;
        if (this.#literalChunks) {
          this.#line.push(Buffer.concat(this.#literalChunks).toString('latin1'));
          this.#literalChunks = null;
        }
        continue;
      }
      const i = this.#buf.indexOf('\r\n');
      if (i < 0) return;
      const part = this.#buf.subarray(0, i).toString('latin1');
      this.#buf = this.#buf.subarray(i + 2);
      const m = /\{(\d+)\}$/.exec(part);
      if (m) {
        this.#line.push(this.keepLiterals ? part.slice(0, m.index) : part);
        this.#literalLeft = Number(m[1]);
        this.#literalChunks = this.keepLiterals ? [] : null;
        if (this.#literalLeft === 0) this.#literalChunks = null;
        continue;
      }
      this.#line.push(part);
      const line = this.#line.join('');
      this.#line = [];
      this.#onLine(line);
    }
  }

  #onLine(line: string): void {
    if (this.#greeting) {
      const g = this.#greeting;
      this.#greeting = null;
      g(line);
      return;
    }
    if (line.startsWith('+')) {
      const c = this.#continuation.shift();
      if (c) c();
      return;
    }
    if (line.startsWith('* ')) {
      const p = this.#pending[0];
      if (p) p.untagged.push(line);
      this.onUntagged?.(line);
      if (/^\* BYE/i.test(line) && !p) this.socket.end();
      return;
    }
    const sp = line.indexOf(' ');
    const tag = line.slice(0, sp);
    const idx = this.#pending.findIndex((p) => p.tag === tag);
    if (idx < 0) return;
    const p = this.#pending.splice(idx, 1)[0]!;
    const rest = line.slice(sp + 1);
    const sp2 = rest.indexOf(' ');
    const status = (sp2 < 0 ? rest : rest.slice(0, sp2)).toUpperCase() as Reply['status'];
    p.resolve({ status, text: sp2 < 0 ? '' : rest.slice(sp2 + 1), untagged: p.untagged, literalBytes: p.literalBytes });
  }

  #send(data: string | Buffer | Array<string | Buffer>): void {
    if (this.#closed) throw this.#closeErr ?? new ImapError('closed');
    if (Array.isArray(data)) {
      this.socket.cork();
      for (const d of data) this.socket.write(d);
      this.socket.uncork();
    } else this.socket.write(data);
  }

  nextTag(): string {
    return `b${++this.#tagN}`;
  }

  /** Sends `tag command` (plus optional raw parts after it) and resolves with the tagged reply. */
  command(cmd: string, extra: Array<string | Buffer> = []): Promise<Reply> {
    if (this.#closed) return Promise.reject(this.#closeErr ?? new ImapError('closed'));
    const tag = this.nextTag();
    return new Promise<Reply>((resolve, reject) => {
      this.#pending.push({ tag, resolve, reject, untagged: [], literalBytes: 0 });
      try {
        this.#send([`${tag} ${cmd}`, ...extra, '\r\n']);
      } catch (e) {
        this.#pending.pop();
        reject(e as Error);
      }
    });
  }

  /** Like command() but throws unless OK. */
  async ok(cmd: string, extra: Array<string | Buffer> = []): Promise<Reply> {
    const r = await this.command(cmd, extra);
    if (r.status !== 'OK') throw new ImapError(`${cmd.slice(0, 60)} → ${r.status} ${r.text}`);
    return r;
  }

  login(user: string, pass: string): Promise<Reply> {
    return this.ok(`LOGIN ${quote(user)} ${quote(pass)}`);
  }

  /** APPEND with a non-synchronizing literal (RFC 7888 LITERAL+). */
  append(mailbox: string, raw: Buffer, flags = ''): Promise<Reply> {
    return this.command(`APPEND ${quote(mailbox)}${flags ? ` (${flags})` : ''} {${raw.length}+}\r\n`, [raw]);
  }

  /**
   * Starts IDLE; resolves once the server sent its continuation. The returned done() sends DONE and
   * resolves with the tagged reply.
   */
  idle(): Promise<{ done: () => Promise<Reply> }> {
    if (this.#closed) return Promise.reject(this.#closeErr ?? new ImapError('closed'));
    const tag = this.nextTag();
    let tagged!: Promise<Reply>;
    const cont = new Promise<void>((res) => this.#continuation.push(res));
    tagged = new Promise<Reply>((resolve, reject) => this.#pending.push({ tag, resolve, reject, untagged: [], literalBytes: 0 }));
    tagged.catch(() => undefined);
    this.#send(`${tag} IDLE\r\n`);
    return Promise.race([
      cont.then(() => {
        if (this.#closed) throw this.#closeErr ?? new ImapError('closed');
        return {
          done: () => {
            this.#send('DONE\r\n');
            return tagged;
          },
        };
      }),
      tagged.then((r) => {
        throw new ImapError(`IDLE refused: ${r.status} ${r.text}`);
      }),
    ]);
  }

  async logout(): Promise<void> {
    try {
      await Promise.race([this.command('LOGOUT'), new Promise((r) => setTimeout(r, 5000))]);
    } catch {
      /* closed */
    }
    this.socket.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function quote(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => '\\' + c)}"`;
}

/** Numbers from `* SEARCH 1 2 3` / `* ESEARCH … ALL 1:3`. */
export function searchResult(r: Reply): number[] {
  for (const u of r.untagged) {
    const m = /^\* SEARCH(.*)$/i.exec(u);
    if (m) return m[1]!.trim().split(/\s+/).filter(Boolean).map(Number);
  }
  return [];
}

export function existsOf(r: Reply): number | null {
  let n: number | null = null;
  for (const u of r.untagged) {
    const m = /^\* (\d+) EXISTS/i.exec(u);
    if (m) n = Number(m[1]);
  }
  return n;
}

export function uidsOfFetch(r: Reply): number[] {
  const out: number[] = [];
  for (const u of r.untagged) {
    const m = /^\* \d+ FETCH \(.*?\bUID (\d+)/i.exec(u);
    if (m) out.push(Number(m[1]));
  }
  return out;
}

export function respCode(r: Reply, code: string): string | null {
  const all = [...r.untagged, r.text];
  for (const u of all) {
    const m = new RegExp(`\\[${code} ([^\\]]*)\\]`, 'i').exec(u);
    if (m) return m[1]!;
  }
  return null;
}
