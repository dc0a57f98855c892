// Captures Dovecot's answers for the MIME vectors as fixture files (not a test; re-run by hand):
//
//   npx node test/vectors/mime/capture-dovecot.ts            # every messages/*.eml → dovecot/*.json
//   npx node test/vectors/mime/capture-dovecot.ts probe FILE 'BODYSTRUCTURE' 'BODY.PEEK[1]'
//
// It starts Debian's Dovecot (must be installed; run as root) on 127.0.0.1 on a free port in a
// temp dir, APPENDs each message, EXAMINEs INBOX and FETCHes one item per command, recording the
// exact bytes of each item's value. The committed tests compare our output to these fixtures,
// so the suite never needs Dovecot.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, chmodSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { parseMessage } from '../../../src/protocol/mime/parser.ts';
import type { MimeNode } from '../../../src/protocol/mime/types.ts';

const here = dirname(fileURLToPath(import.meta.url));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export async function startDovecot(): Promise<{ port: number; proc: ChildProcess; dir: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'pb-dovecot-'));
  chmodSync(dir, 0o755);
  for (const d of ['run', 'mail', 'home']) mkdirSync(join(dir, d));
  chmodSync(join(dir, 'mail'), 0o777);
  chmodSync(join(dir, 'home'), 0o777);
  const port = await freePort();
  const conf = `
protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/run
log_path = ${dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:${dir}/mail/%u
passdb {
  driver = static
  args = password=secret
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=${dir}/home/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service auth {
  unix_listener auth-userdb {
    mode = 0666
  }
}
`;
  writeFileSync(join(dir, 'dovecot.conf'), conf);
  const proc = spawn('dovecot', ['-F', '-c', join(dir, 'dovecot.conf')], { stdio: 'inherit' });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); r(true); });
      s.on('error', () => r(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port, proc, dir,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Minimal IMAP client that returns each command's untagged responses as raw byte buffers. */
export class RawImap {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private sock: net.Socket;
  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      const w = this.waiters; this.waiters = [];
      for (const f of w) f();
    });
  }
  static async connect(port: number): Promise<RawImap> {
    const sock = await new Promise<net.Socket>((res, rej) => {
      const s = net.connect(port, '127.0.0.1', () => res(s));
      s.on('error', rej);
    });
    const c = new RawImap(sock);
    await c.readResponse(); // greeting
    return c;
  }
  private async more(): Promise<void> {
    await new Promise<void>((r) => this.waiters.push(r));
  }
  /** One complete response (line plus any literals), CRLF included. */
  async readResponse(): Promise<Buffer> {
    let off = 0;
    for (;;) {
      const nl = this.buf.indexOf('\r\n', off);
      if (nl < 0) { await this.more(); continue; }
      const m = /\{(\d+)\+?\}$/.exec(this.buf.subarray(off, nl).toString('latin1'));
      if (m) {
        const need = nl + 2 + Number(m[1]);
        while (this.buf.length < need) await this.more();
        off = need;
        continue;
      }
      const out = this.buf.subarray(0, nl + 2);
      this.buf = this.buf.subarray(nl + 2);
      return Buffer.from(out);
    }
  }
  private tagN = 0;
  async command(cmd: string | Buffer, literal?: Buffer): Promise<{ untagged: Buffer[]; status: string }> {
    const tag = 'a' + ++this.tagN;
    if (literal) {
      this.sock.write(Buffer.concat([Buffer.from(`${tag} `), Buffer.from(cmd), Buffer.from(` {${literal.length}}\r\n`)]));
      const cont = await this.readResponse();
      if (!cont.toString('latin1').startsWith('+')) throw new Error('no continuation: ' + cont);
      this.sock.write(Buffer.concat([literal, Buffer.from('\r\n')]));
    } else {
      this.sock.write(`${tag} ${cmd}\r\n`);
    }
    const untagged: Buffer[] = [];
    for (;;) {
      const r = await this.readResponse();
      if (r.toString('latin1').startsWith(tag + ' ')) return { untagged, status: r.toString('latin1').trim() };
      untagged.push(r);
    }
  }
  close(): void { this.sock.destroy(); }
}

/** The value of the single FETCH item in `* N FETCH (NAME value)\r\n`. */
function fetchValue(resp: Buffer, name: string): Buffer {
  const s = resp.toString('latin1');
  const m = /^\* \d+ FETCH \(/.exec(s);
  if (!m) throw new Error('not a FETCH: ' + s.slice(0, 200));
  let rest = resp.subarray(m[0].length, resp.length - 3); // strip ")\r\n"
  const head = rest.subarray(0, name.length + 1).toString('latin1');
  if (head.toUpperCase() !== name.toUpperCase() + ' ') throw new Error(`expected ${name}: ${s.slice(0, 200)}`);
  rest = rest.subarray(name.length + 1);
  return rest;
}

/** Decodes an nstring value (quoted, literal or NIL) to its bytes; null for NIL. */
export function decodeNString(v: Buffer): Buffer | null {
  const s = v.toString('latin1');
  if (s === 'NIL') return null;
  const m = /^~?\{(\d+)\}\r\n/.exec(s);
  if (m) return v.subarray(m[0].length);
  if (s.startsWith('"')) return Buffer.from(s.slice(1, -1).replace(/\\(.)/g, '$1'), 'latin1');
  throw new Error('not an nstring: ' + s.slice(0, 100));
}

/** JSON-safe form of bytes: a UTF-8 string when it round-trips, else {base64}. */
export function enc(b: Buffer | null): string | { base64: string } | null {
  if (b === null) return null;
  const s = b.toString('utf8');
  return Buffer.from(s, 'utf8').equals(b) ? s : { base64: b.toString('base64') };
}

export function partPaths(root: MimeNode, prefix = ''): Array<{ path: string; node: MimeNode }> {
  const out: Array<{ path: string; node: MimeNode }> = [];
  if (root.children) {
    root.children.forEach((c, i) => {
      const p = prefix + (i + 1);
      out.push({ path: p, node: c });
      out.push(...partPaths(c, p + '.'));
    });
  } else if (root.message) {
    // RFC 9051 §6.4.5: parts of an encapsulated message are numbered under the message/rfc822 part.
    const inner = root.message.root;
    if (inner.children) out.push(...partPaths(inner, prefix));
    else out.push({ path: prefix + '1', node: inner });
  }
  return out;
}

export const HEADER_FIELDS = 'From To Subject Content-Type X-Nonexistent';

async function captureOne(c: RawImap, seq: number, raw: Buffer): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const items: Array<[string, string]> = [
    ['ENVELOPE', 'ENVELOPE'], ['BODYSTRUCTURE', 'BODYSTRUCTURE'], ['BODY', 'BODY'], ['RFC822.SIZE', 'RFC822.SIZE'],
  ];
  for (const [cmd, name] of items) {
    const r = await c.command(`FETCH ${seq} (${cmd})`);
    out[name] = enc(fetchValue(r.untagged.find((u) => u.toString('latin1').includes(' FETCH '))!, name));
  }
  const meta = parseMessage(raw);
  const sections = ['', 'HEADER', 'TEXT', `HEADER.FIELDS (${HEADER_FIELDS})`, `HEADER.FIELDS.NOT (${HEADER_FIELDS})`];
  for (const { path, node } of partPaths(meta.root)) {
    sections.push(path, path + '.MIME');
    if (node.message) sections.push(path + '.HEADER', path + '.TEXT', `${path}.HEADER.FIELDS (${HEADER_FIELDS})`);
  }
  sections.push('1', '9', '1.9', '9.MIME', '2.3.4');
  const sec: Record<string, unknown> = {};
  for (const s of [...new Set(sections)]) {
    const r = await c.command(`FETCH ${seq} (BODY.PEEK[${s}])`);
    const name = `BODY[${s}]`;
    const u = r.untagged.find((x) => x.toString('latin1').includes(' FETCH '));
    sec[s] = / OK /.test(r.status) && u ? enc(decodeNString(fetchValue(u, name))) : { error: r.status.replace(/^a\d+ /, '').replace(/ \(\d.*$/, '') };
  }
  out.sections = sec;
  const bin: Record<string, unknown> = {};
  for (const { path, node } of partPaths(meta.root)) {
    if (node.children) continue;
    const r = await c.command(`FETCH ${seq} (BINARY.PEEK[${path}])`);
    const u = r.untagged.find((x) => x.toString('latin1').includes(' FETCH ('));
    bin[path] = / OK /.test(r.status) && u ? enc(decodeNString(fetchValue(u, `BINARY[${path}]`))) : { error: r.status.replace(/^a\d+ /, '').replace(/ \(\d.*$/, '') };
  }
  out.binary = bin;
  return out;
}

async function main(): Promise<void> {
  const dc = await startDovecot();
  try {
    const c = await RawImap.connect(dc.port);
    await c.command('LOGIN user secret');
    if (process.argv[2] === 'probe') {
      const raw = readFileSync(process.argv[3]);
      console.log((await c.command('APPEND INBOX', raw)).status);
      await c.command('EXAMINE INBOX');
      for (const item of process.argv.slice(4)) {
        const r = await c.command(`FETCH 1 (${item})`);
        for (const u of r.untagged) process.stdout.write(u.toString('utf8'));
        console.log(r.status);
      }
    } else {
      const msgDir = join(here, 'messages');
      const outDir = join(here, 'dovecot');
      mkdirSync(outDir, { recursive: true });
      const files = readdirSync(msgDir).filter((f) => f.endsWith('.eml')).sort();
      let seq = 0;
      for (const f of files) {
        const raw = readFileSync(join(msgDir, f));
        const st = await c.command('APPEND INBOX', raw);
        if (!/^a\d+ OK/.test(st.status)) throw new Error(`${f}: ${st.status}`);
        seq++;
        await c.command('EXAMINE INBOX');
        const res = await captureOne(c, seq, raw);
        writeFileSync(join(outDir, basename(f, '.eml') + '.json'), JSON.stringify(res, null, 1) + '\n');
        console.log('captured', f);
      }
    }
    await c.command('LOGOUT');
    c.close();
  } finally {
    await dc.stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => { console.error(e); process.exitCode = 1; });
}
