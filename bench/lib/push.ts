// What the push benchmarks of issue 15 share (cluster-push.ts: nodes behind HAProxy;
// workers-push.ts: `serve --workers 2` on SQLite): an IDLE client that notes when each
// `* n EXISTS` (RFC 9051 §7.4.1) was first seen and reconnects when its server goes away, and one
// SMTP delivery on a fresh connection that reports whether it was answered 250.
import { RawSmtp } from '../../test/helpers/smtp.ts';
import { RawImap } from '../../test/e2e/imap/raw-client.ts';

/** One account's IDLE client (RFC 2177): records when each EXISTS count was first seen; reconnects when its server dies. */
export class Watcher {
  readonly seenAt = new Map<number, number>();
  /** The session that saw each count first (to tell which server or worker it was on). */
  readonly via = new Map<number, RawImap>();
  /** Counts first seen at a SELECT after a reconnect (not push samples). */
  readonly atSelect = new Set<number>();
  reconnects = 0;
  #c: RawImap | null = null;
  #stop = false;
  #loop: Promise<void> | null = null;
  readonly account: number;
  readonly #user: string;
  readonly #password: string;
  /** Opens a connection (greeting read); `again`: a reconnect after the server went away. */
  readonly #open: (again: boolean) => Promise<RawImap>;
  constructor(account: number, user: string, password: string, open: (again: boolean) => Promise<RawImap>) {
    this.account = account;
    this.#user = user;
    this.#password = password;
    this.#open = open;
  }

  async start(): Promise<void> {
    await this.#connect(false);
    this.#loop = this.#run();
  }

  #see(n: number, c: RawImap, atSelect: boolean): void {
    if (this.seenAt.has(n)) return;
    this.seenAt.set(n, Date.now());
    this.via.set(n, c);
    if (atSelect) this.atSelect.add(n);
  }

  async #connect(again: boolean): Promise<void> {
    const c = await this.#open(again);
    try {
      await c.login(this.#user, this.#password);
      const sel = await c.cmd('SELECT INBOX');
      for (const l of sel.lines) {
        const m = /^\* (\d+) EXISTS$/.exec(l); // linear: one \d+ group
        if (m && again) for (let n = 1; n <= Number(m[1]); n++) this.#see(n, c, true);
      }
      c.write('w IDLE\r\n');
      if (!/^\+/.test(await c.readLine(10_000))) throw new Error('no IDLE continuation');
    } catch (err) {
      c.close();
      throw err;
    }
    this.#c = c;
  }

  async #run(): Promise<void> {
    while (!this.#stop) {
      const c = this.#c!;
      let line: string;
      try {
        line = await c.readLine(3_600_000);
      } catch {
        if (this.#stop) return;
        // The server went away: connect again (to a live node or worker).
        this.reconnects++;
        for (;;) {
          try {
            await this.#connect(true);
            break;
          } catch {
            if (this.#stop) return;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        continue;
      }
      const m = /^\* (\d+) EXISTS$/.exec(line); // linear: one \d+ group
      if (m) this.#see(Number(m[1]), c, false);
    }
  }

  async stop(): Promise<void> {
    this.#stop = true;
    this.#c?.close();
    await this.#loop?.catch(() => {});
  }
}

/**
 * One delivery (Subject `push TAG`) on a new connection; resolves at the 250 after DATA to the
 * session's client port (to find its net.open line), or 0 if the connection broke or was refused first.
 */
export async function deliver(port: number, to: string, tag: number | string): Promise<number> {
  let s: RawSmtp | null = null;
  try {
    s = await RawSmtp.connect(port);
    if (!/^220/.test(await s.reply())) return 0;
    if (!/^250/m.test(await s.cmd('EHLO bench.example'))) return 0;
    if (!/^250/.test(await s.cmd('MAIL FROM:<bench@remote.example>'))) return 0;
    if (!/^250/.test(await s.cmd(`RCPT TO:<${to}>`))) return 0;
    if (!/^354/.test(await s.cmd('DATA'))) return 0;
    const ok = /^250/.test(await s.cmd(`From: bench@remote.example\r\nTo: ${to}\r\nSubject: push ${tag}\r\n\r\nmessage ${tag}\r\n.`));
    return ok ? s.socket.localPort! : 0;
  } catch {
    return 0;
  } finally {
    s?.close();
  }
}
