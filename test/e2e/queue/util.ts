// Shared pieces of the outbound queue end-to-end tests: a sending Pillarbox with outbound settings
// (DATA/config.json) pointed at a loopback DNS server and peer port, submission with nodemailer,
// waiting on log lines and stored messages.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startServer, type TestServer } from '../../helpers/server.ts';
import type { OutboundConfig } from '../../../src/config/config.ts';

export interface Sender extends TestServer {
  /** stop() and remove the data folder. */
  done(): Promise<void>;
}

export async function startSender(o: { hostname: string; dnsServers: string[]; port: number; outbound?: Partial<OutboundConfig>; limits?: Record<string, number>; args?: string[]; dataDir?: string }): Promise<Sender> {
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), 'pillarbox-queue-'));
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ outbound: { statsInterval: 500, ...o.outbound }, ...(o.limits ? { limits: o.limits } : {}) }));
  const srv = await startServer({
    dataDir,
    plaintext: true,
    args: ['--hostname', o.hostname, '--dns-server', o.dnsServers.join(','), '--outbound-port', String(o.port), ...(o.args ?? [])],
  });
  return Object.assign(srv, {
    async done() {
      await srv.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

/** Submission on 587 with AUTH (plaintext allowed on loopback in these tests). */
export async function submit(
  srv: TestServer,
  user: string,
  pass: string,
  m: { to: string[]; subject: string; text?: string; from?: string; dsn?: { notify?: string[]; ret?: 'FULL' | 'HDRS'; id?: string } },
) {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: srv.ports.submission, secure: false, ignoreTLS: true, auth: { user, pass } });
  try {
    return await t.sendMail({
      from: m.from ?? user,
      to: m.to,
      subject: m.subject,
      text: m.text ?? 'hello from the queue tests',
      ...(m.dsn ? { dsn: m.dsn } : {}),
    } as Parameters<typeof t.sendMail>[0]);
  } finally {
    t.close();
  }
}

export async function waitFor<T>(what: string, f: () => T | Promise<T>, ms = 30_000, every = 100): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Log lines of one event (text format), parsed into key → value (values unquoted). */
export function events(srv: TestServer, event: string): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = [];
  for (const line of srv.output().split('\n')) {
    const i = line.indexOf(` ${event} `);
    if (i < 0) continue;
    const rec: Record<string, string> = {};
    const rest = line.slice(i + event.length + 2);
    // key=value or key="json string"; a split that respects quotes, done by hand (no RegExp).
    let k = 0;
    while (k < rest.length) {
      const eq = rest.indexOf('=', k);
      if (eq < 0) break;
      const key = rest.slice(k, eq);
      let v: string;
      let next: number;
      if (rest[eq + 1] === '"') {
        let j = eq + 2;
        while (j < rest.length && rest[j] !== '"') j += rest[j] === '\\' ? 2 : 1;
        v = JSON.parse(rest.slice(eq + 1, j + 1));
        next = j + 2;
      } else {
        const sp = rest.indexOf(' ', eq);
        v = rest.slice(eq + 1, sp < 0 ? undefined : sp);
        next = sp < 0 ? rest.length : sp + 1;
      }
      rec[key] = v;
      k = next;
    }
    out.push(rec);
  }
  return out;
}

/** The message/delivery-status part of a DSN, as text. */
export function deliveryStatus(dsn: Buffer): string {
  const s = dsn.toString('latin1');
  const i = s.indexOf('Content-Type: message/delivery-status');
  if (i < 0) return '';
  const body = s.indexOf('\r\n\r\n', i) + 4;
  const end = s.indexOf('\r\n--', body);
  return s.slice(body, end < 0 ? undefined : end);
}
