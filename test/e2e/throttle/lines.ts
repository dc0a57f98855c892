// A line client on a socket bound to a chosen loopback address (IMAP and POP3 are line protocols
// at login), for the throttle and password-check tests.
import { connect, type Socket } from 'node:net';

/** A line client on a socket bound to `src` (IMAP and POP3 are line protocols at login). */
export class Lines {
  readonly socket: Socket;
  #buf = '';
  #wait: (() => void) | null = null;
  constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.#buf += d;
      this.#wait?.();
    });
    socket.on('close', () => this.#wait?.());
    socket.on('error', () => {});
  }
  static async open(port: number, src: string): Promise<Lines> {
    const s = connect({ host: '127.0.0.1', port, localAddress: src });
    await new Promise<void>((res, rej) => s.once('connect', res).once('error', rej));
    const c = new Lines(s);
    await c.line(); // greeting
    return c;
  }
  async line(timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#buf.indexOf('\r\n');
      if (i >= 0) {
        const l = this.#buf.slice(0, i);
        this.#buf = this.#buf.slice(i + 2);
        return l;
      }
      if (this.socket.destroyed || Date.now() > deadline) throw new Error(`no line (have ${JSON.stringify(this.#buf)})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, deadline - Date.now());
        this.#wait = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }
  /** Sends a command and returns the line that completes it (IMAP: the tagged one). */
  async cmd(line: string, done: (l: string) => boolean = () => true): Promise<string> {
    this.socket.write(line + '\r\n');
    for (;;) {
      const l = await this.line();
      if (done(l)) return l;
    }
  }
  close(): void {
    this.socket.destroy();
  }
}
