// Benchmark 4 (issue #6): POP3. A accounts (default 50) of M messages each (default 1,000), all
// retrieved in full at the same time (USER/PASS, STAT, RETR 1..n, QUIT without DELE);
// messages/s and MB/s against Dovecot. Every account holds the same corpus messages (stored once
// by Pillarbox's content-addressed blobs; hard-linked across Maildirs for Dovecot, as its LMTP
// does for one message to many recipients).
//
// Env: BENCH_POP3_ACCOUNTS (50), BENCH_POP3_MESSAGES (1000 per account), BENCH_POP3_MAX_BYTES
//      (largest message, 100000), BENCH_POP3_TIMEOUT (300 s per server)

import { linkSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { corpusMessage } from './lib/corpus.ts';
import { fillMaildir, startDovecot, NOBODY_UID, NOGROUP_GID } from './lib/peers.ts';
import { benchLimits, fillStore, startPillarbox } from './lib/pillarbox.ts';
import { attempt, benchAccounts, benchMain, envInt, isMain, log, now, percentile, pool, report, row, run, withTimeout, type Row } from './lib/util.ts';

export interface Pop3Params {
  accounts: number;
  messages: number;
  maxBytes: number;
  timeoutSeconds: number;
}

export function pop3Params(): Pop3Params {
  return {
    accounts: envInt('BENCH_POP3_ACCOUNTS', 50),
    messages: envInt('BENCH_POP3_MESSAGES', 1000),
    maxBytes: envInt('BENCH_POP3_MAX_BYTES', 100_000),
    timeoutSeconds: envInt('BENCH_POP3_TIMEOUT', 300),
  };
}

/** Minimal POP3 client: single-line and multi-line (dot-terminated) responses. */
class Pop3Conn {
  #buf: Buffer = Buffer.alloc(0);
  #waiter: (() => void) | null = null;
  #err: Error | null = null;
  readonly socket: Socket;
  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
      this.#waiter?.();
    });
    const fail = (e: Error) => {
      this.#err ??= e;
      this.#waiter?.();
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('POP3 connection closed')));
  }
  static async open(port: number): Promise<Pop3Conn> {
    const s = connect(port, '127.0.0.1');
    const c = new Pop3Conn(s);
    const g = await c.line();
    if (!g.startsWith('+OK')) throw new Error(`POP3 greeting: ${g}`);
    return c;
  }
  async #wait(): Promise<void> {
    if (this.#err) throw this.#err;
    await new Promise<void>((r) => (this.#waiter = r));
    this.#waiter = null;
    if (this.#err && this.#buf.length === 0) throw this.#err;
  }
  async line(): Promise<string> {
    for (;;) {
      const i = this.#buf.indexOf('\r\n');
      if (i >= 0) {
        const l = this.#buf.subarray(0, i).toString('latin1');
        this.#buf = this.#buf.subarray(i + 2);
        return l;
      }
      await this.#wait();
    }
  }
  /** Reads a dot-terminated multi-line body; returns its size in bytes (terminator excluded). */
  async multiline(): Promise<number> {
    let searchFrom = 0;
    for (;;) {
      const i = this.#buf.indexOf('\r\n.\r\n', searchFrom);
      if (i >= 0) {
        this.#buf = this.#buf.subarray(i + 5);
        return i + 2;
      }
      if (this.#buf.length >= 5 && this.#buf.subarray(0, 3).toString() === '.\r\n') {
        this.#buf = this.#buf.subarray(3);
        return 0;
      }
      searchFrom = Math.max(0, this.#buf.length - 4);
      await this.#wait();
    }
  }
  async cmd(c: string): Promise<string> {
    this.socket.write(c + '\r\n');
    return this.line();
  }
}

interface Pop3Result {
  messages: number;
  bytes: number;
  seconds: number;
  msgPerSec: number;
  mbPerSec: number;
  retrP50: number;
  retrP99: number;
  loginP50: number;
}

async function retrieveAll(port: number, accounts: Array<{ address: string; password: string }>, p: Pop3Params): Promise<Pop3Result> {
  // Warm-up: STAT on every account (Dovecot builds its index, Pillarbox's page cache warms), untimed.
  await pool(accounts, 10, async (a) => {
    const c = await Pop3Conn.open(port);
    await c.cmd(`USER ${a.address}`);
    const r = await c.cmd(`PASS ${a.password}`);
    if (!r.startsWith('+OK')) throw new Error(`PASS: ${r}`);
    const st = await c.cmd('STAT');
    if (Number(st.split(' ')[1]) !== p.messages) throw new Error(`STAT: ${st} (expected ${p.messages} messages)`);
    await c.cmd('QUIT');
    c.socket.destroy();
  });
  const retr: number[] = [];
  const logins: number[] = [];
  let bytes = 0;
  let messages = 0;
  const t0 = now();
  await withTimeout(
    Promise.all(
      accounts.map(async (a) => {
        const c = await Pop3Conn.open(port);
        const tl = now();
        await c.cmd(`USER ${a.address}`);
        const r = await c.cmd(`PASS ${a.password}`);
        if (!r.startsWith('+OK')) throw new Error(`PASS: ${r}`);
        logins.push(now() - tl);
        const st = await c.cmd('STAT');
        const n = Number(st.split(' ')[1]);
        for (let i = 1; i <= n; i++) {
          const t = now();
          const ok = await c.cmd(`RETR ${i}`);
          if (!ok.startsWith('+OK')) throw new Error(`RETR ${i}: ${ok}`);
          const got = await c.multiline();
          bytes += got;
          retr.push(now() - t);
          messages++;
        }
        const q = await c.cmd('QUIT');
        if (!q.startsWith('+OK')) throw new Error(`QUIT: ${q}`);
        c.socket.destroy();
      }),
    ),
    p.timeoutSeconds * 1000,
    'POP3 retrieval',
  );
  const seconds = (now() - t0) / 1000;
  retr.sort((a, b) => a - b);
  logins.sort((a, b) => a - b);
  return {
    messages,
    bytes,
    seconds,
    msgPerSec: messages / seconds,
    mbPerSec: bytes / 2 ** 20 / seconds,
    retrP50: percentile(retr, 50),
    retrP99: percentile(retr, 99),
    loginP50: percentile(logins, 50),
  };
}

export async function pop3(): Promise<string> {
  const started = Date.now();
  const p = pop3Params();
  const accounts = benchAccounts(p.accounts, 'pop');
  log(`POP3: ${p.accounts} accounts × ${p.messages} messages, retrieved concurrently`);

  const peer = await attempt('Dovecot', async () => {
    const d = await startDovecot({ accounts, maxConnections: p.accounts + 50 });
    const t = performance.now();
    // First account: real files; the others: hard links to them (one body, many mailboxes).
    const first = d.maildir(accounts[0]!.address);
    const names: string[] = [];
    fillMaildir(
      first,
      (function* () {
        for (let j = 0; j < p.messages; j++) {
          const raw = corpusMessage(j, { maxBytes: p.maxBytes }).raw;
          names.push(`${1700000000 + j}.M${j}P1.bench,S=${raw.length}:2,`);
          yield { raw, seq: j };
        }
      })(),
    );
    for (const a of accounts.slice(1)) {
      const cur = join(d.maildir(a.address), 'cur');
      mkdirSync(cur, { recursive: true });
      for (const n of names) linkSync(join(first, 'cur', n), join(cur, n));
    }
    run('chown', ['-R', `${NOBODY_UID}:${NOGROUP_GID}`, join(d.dir, 'mail')]);
    log(`dovecot: Maildirs filled in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const r = await retrieveAll(d.ports.pop3, accounts, p);
    log(`dovecot: ${r.msgPerSec.toFixed(0)} messages/s, ${r.mbPerSec.toFixed(1)} MB/s`);
    await d.stop();
    return r;
  });

  const pb = await attempt('Pillarbox', async () => {
    const s = await startPillarbox({
      accounts,
      limits: benchLimits(p.accounts + 50),
      beforeStart: (dir) => fillStore(dir, [{ addresses: accounts.map((a) => a.address), mailbox: 'INBOX', from: 0, count: p.messages, maxBytes: p.maxBytes }]),
    });
    const r = await retrieveAll(s.ports.pop3, accounts, p);
    log(`pillarbox: ${r.msgPerSec.toFixed(0)} messages/s, ${r.mbPerSec.toFixed(1)} MB/s`);
    await s.stop();
    return r;
  });

  const rows: Row[] = [
    row('messages retrieved', 'msg/s', 'higher', pb, peer, (x) => x.msgPerSec, (x) => x.msgPerSec),
    row('throughput', 'MB/s', 'higher', pb, peer, (x) => x.mbPerSec, (x) => x.mbPerSec),
    row('total time', 's', 'lower', pb, peer, (x) => x.seconds, (x) => x.seconds),
    row('RETR p50', 'ms', 'lower', pb, peer, (x) => x.retrP50, (x) => x.retrP50),
    row('RETR p99', 'ms', 'lower', pb, peer, (x) => x.retrP99, (x) => x.retrP99),
    row('USER+PASS p50', 'ms', 'lower', pb, peer, (x) => x.loginP50, (x) => x.loginP50),
  ];
  return report({
    name: 'pop3',
    title: `POP3: ${p.accounts} accounts × ${p.messages.toLocaleString('en-US')} messages, RETR all concurrently`,
    peer: 'Dovecot',
    started,
    params: { ...p },
    rows,
    details: { pillarbox: pb, dovecot: peer },
  });
}

if (isMain(import.meta.url)) await benchMain(async () => void (await pop3()));
