// The fuzzer's second, well-behaved client, on its own thread (so the fuzzer's own work does not
// distort it): logs in once and sends NOOP (IMAP, POP3, SMTP) about every `everyMs` on its own
// connection, posting each round trip {rtt, at}. A lost connection is posted {lost} and made again.
import { parentPort, workerData } from 'node:worker_threads';
import { connect, type Socket } from 'node:net';

const { protocol, port, user, pass, everyMs } = workerData as { protocol: 'imap' | 'pop3' | 'smtp'; port: number; user: string; pass: string; everyMs: number };
let stopped = false;
parentPort!.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'stop') stopped = true;
});

class Conn {
  #buf = '';
  #wake: (() => void) | null = null;
  closed = false;
  readonly sock: Socket;
  constructor(sock: Socket) {
    this.sock = sock;
    sock.setEncoding('latin1');
    sock.setNoDelay(true);
    sock.on('data', (d: string) => {
      this.#buf += d;
      this.#wake?.();
    });
    const gone = () => {
      this.closed = true;
      this.#wake?.();
    };
    sock.on('close', gone);
    sock.on('error', gone);
  }
  /** The next line that `done` accepts (earlier lines are skipped). */
  async until(done: (line: string) => boolean, ms = 60_000): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      let nl: number;
      while ((nl = this.#buf.indexOf('\r\n')) >= 0) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 2);
        if (done(line)) return line;
      }
      if (this.closed) throw new Error('connection closed');
      if (Date.now() > end) throw new Error('no answer in time');
      await new Promise<void>((r) => {
        const t = setTimeout(r, end - Date.now());
        this.#wake = () => {
          clearTimeout(t);
          this.#wake = null;
          r();
        };
      });
    }
  }
  send(line: string): void {
    this.sock.write(line + '\r\n');
  }
}

async function open(): Promise<{ c: Conn; noop: () => Promise<void> }> {
  const sock = connect({ host: '127.0.0.1', port });
  await new Promise<void>((res, rej) => {
    sock.once('connect', () => res());
    sock.once('error', rej);
  });
  const c = new Conn(sock);
  const smtpDone = (l: string) => /^\d{3} /.test(l); // linear: fixed prefix
  if (protocol === 'imap') {
    await c.until((l) => l.startsWith('* OK'));
    c.send(`L LOGIN "${user}" "${pass}"`);
    const r = await c.until((l) => l.startsWith('L '));
    if (!r.startsWith('L OK')) throw new Error(`probe login: ${r}`);
    c.send('S SELECT INBOX');
    await c.until((l) => l.startsWith('S '));
    let n = 0;
    return {
      c,
      async noop() {
        const tag = `N${++n}`;
        c.send(`${tag} NOOP`);
        const l = await c.until((x) => x.startsWith(tag + ' '));
        if (!l.startsWith(`${tag} OK`)) throw new Error(`NOOP: ${l}`);
      },
    };
  }
  if (protocol === 'pop3') {
    await c.until((l) => l.startsWith('+OK'));
    c.send(`USER recent:${user}`);
    await c.until((l) => l.startsWith('+OK') || l.startsWith('-ERR'));
    c.send(`PASS ${pass}`);
    const r = await c.until((l) => l.startsWith('+OK') || l.startsWith('-ERR'));
    if (!r.startsWith('+OK')) throw new Error(`probe login: ${r}`);
    return {
      c,
      async noop() {
        c.send('NOOP');
        const l = await c.until((x) => x.startsWith('+OK') || x.startsWith('-ERR'));
        if (!l.startsWith('+OK')) throw new Error(`NOOP: ${l}`);
      },
    };
  }
  await c.until(smtpDone);
  c.send('EHLO probe.test');
  await c.until(smtpDone);
  return {
    c,
    async noop() {
      c.send('NOOP');
      const l = await c.until(smtpDone);
      if (!l.startsWith('250')) throw new Error(`NOOP: ${l}`);
    },
  };
}

while (!stopped) {
  let conn: Awaited<ReturnType<typeof open>>;
  try {
    conn = await open();
  } catch (err) {
    parentPort!.postMessage({ lost: `connect/login: ${(err as Error).message}`, at: Date.now() });
    await new Promise((r) => setTimeout(r, 500));
    continue;
  }
  parentPort!.postMessage({ ready: true });
  try {
    while (!stopped) {
      const t0 = performance.now();
      await conn.noop();
      const rtt = performance.now() - t0;
      parentPort!.postMessage({ rtt, at: Date.now() });
      await new Promise((r) => setTimeout(r, Math.max(1, everyMs - rtt)));
    }
  } catch (err) {
    if (!stopped) parentPort!.postMessage({ lost: (err as Error).message, at: Date.now() });
  }
  conn.c.sock.destroy();
}
parentPort!.postMessage({ stopped: true });
