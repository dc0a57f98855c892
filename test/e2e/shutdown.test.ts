// Stopping the server (issue "First contact", SMTP shutdown items of "Hardening"): SIGTERM/SIGINT to
// a real `npm start` stop the server itself (no orphan, every port free) in well under a second
// when idle; live sessions get their goodbye line (IMAP BYE, POP3 -ERR [SYS/TEMP], SMTP 421); an
// SMTP DATA cut by shutdown is answered 250 only if stored; a second signal cuts the drain short.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PORT_NAMES } from '../../src/config/config.ts';
import { ROOT, startServer, type Ports, type TestServer } from '../helpers/server.ts';
import { stored } from './smtp/util.ts';
import { RawImap } from './imap/raw-client.ts';
import { appendBodySearchMailbox } from './imap/harness.ts';

const USER = 'stop@example.com';
const PASS = 'pw-stop-1';

/** A line client for IMAP, POP3 and SMTP alike: sends lines, waits for a line matching a pattern. */
class Lines {
  readonly socket: Socket;
  readonly lines: string[] = [];
  #partial = '';
  #seen = 0;
  closed = false;
  #wake: Array<() => void> = [];
  constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      const parts = (this.#partial + d).split('\r\n');
      this.#partial = parts.pop()!;
      this.lines.push(...parts);
      for (const w of this.#wake.splice(0)) w();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.#wake.splice(0)) w();
    });
    socket.on('error', () => {});
  }
  static async connect(port: number, tls = false, ca?: string): Promise<Lines> {
    const s = tls ? tlsConnect({ host: '127.0.0.1', port, ca: ca ? [ca] : [], servername: 'localhost' }) : netConnect(port, '127.0.0.1');
    await once(s, tls ? 'secureConnect' : 'connect');
    const c = new Lines(s);
    await c.next(/./);
    return c;
  }
  send(line: string): void {
    this.socket.write(line + '\r\n');
  }
  /** The next unseen line matching `re` (lines before it are skipped). */
  async next(re: RegExp, ms = 10_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      while (this.#seen < this.lines.length) {
        const l = this.lines[this.#seen++]!;
        if (re.test(l)) return l;
      }
      if (this.closed) throw new Error(`closed before ${re}; got ${JSON.stringify(this.lines.slice(-5))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${re}; got ${JSON.stringify(this.lines.slice(-5))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#wake.push(() => (clearTimeout(t), r()));
      });
    }
  }
  async whenClosed(ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await new Promise<void>((r) => {
        const t = setTimeout(r, deadline - Date.now());
        this.#wake.push(() => (clearTimeout(t), r()));
      });
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function portsFree(ports: Ports): Promise<void> {
  for (const name of PORT_NAMES) {
    const s = createServer();
    await new Promise<void>((resolve, reject) => {
      s.once('error', (err) => reject(new Error(`${name} port ${ports[name]} still bound: ${err.message}`)));
      s.listen({ host: '127.0.0.1', port: ports[name], exclusive: true }, () => resolve());
    });
    await new Promise((r) => s.close(r));
  }
}

/** A data folder with DATA/config.json limits (shutdownGrace, …). */
function dataDir(limits: Record<string, number> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-stop-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ limits }));
  return dir;
}

async function serverWithUser(limits: Record<string, number> = {}): Promise<TestServer> {
  const dir = dataDir(limits);
  const srv = await startServer({ plaintext: true, dataDir: dir });
  await srv.addUser(USER, PASS);
  return srv;
}

/** Sends SIGTERM (or SIGINT) and resolves with the ms until the process exited. */
async function signalAndWait(srv: TestServer, sig: NodeJS.Signals = 'SIGTERM'): Promise<number> {
  const exited = once(srv.proc, 'exit');
  const t0 = performance.now();
  srv.proc.kill(sig);
  await exited;
  return performance.now() - t0;
}

/** Until the server says it is stopping (its stdout), so the next step happens during the drain. */
async function stopping(srv: TestServer): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!/SIG\w+: stopping/.test(srv.output())) {
    if (Date.now() > deadline) throw new Error(`no "stopping" line:\n${srv.output()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** An SMTP session on the MX port that has sent DATA and got 354. */
async function smtpInData(port: number): Promise<Lines> {
  const c = await Lines.connect(port);
  c.send('EHLO client.example');
  await c.next(/^250 /);
  c.send('MAIL FROM:<sender@remote.example>');
  await c.next(/^250 /);
  c.send(`RCPT TO:<${USER}>`);
  await c.next(/^250 /);
  c.send('DATA');
  await c.next(/^354 /);
  return c;
}

const filler = (n: number) => Buffer.from(`X-Filler-${n}: ${'f'.repeat(70)}\r\n`.repeat(800)); // ~70 KB, no dot line

async function write(c: Lines, data: Buffer | string): Promise<void> {
  if (!c.socket.write(data)) await Promise.race([once(c.socket, 'drain'), once(c.socket, 'close')]);
}

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  test(`${sig} to the pid of a real \`npm start\`: the server exits by itself, no orphan, every port free again`, { timeout: 180_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pillarbox-npm-'));
    const portsFile = join(dir, 'ports.json');
    const args = ['start', '--', '--data', dir, '--hostname', 'localhost', '--host', '127.0.0.1', ...PORT_NAMES.flatMap((n) => [`--${n}-port`, '0']), '--ports-file', portsFile];
    const npm = spawn('npm', args, {
      cwd: ROOT,
      env: { ...process.env, PATH: `${join(ROOT, 'node_modules/.bin')}:${process.env.PATH}` },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so a failed run can kill whatever it left (a server whose pid was
      // never read would keep the test file's pipes open and hang the runner).
      detached: true,
    });
    let out = '';
    npm.stdout.on('data', (d) => (out += d));
    npm.stderr.on('data', (d) => (out += d));
    const npmExit = once(npm, 'exit');
    let serverPid = 0;
    try {
      const deadline = Date.now() + 90_000;
      while (!existsSync(portsFile) || !/server\.ready pid=\d+/.test(out)) {
        if (npm.exitCode !== null) throw new Error(`npm start exited (${npm.exitCode}):\n${out}`);
        if (Date.now() > deadline) throw new Error(`npm start not ready:\n${out}`);
        await new Promise((r) => setTimeout(r, 25));
      }
      serverPid = Number(/server\.ready pid=(\d+)/.exec(out)![1]);
      const ports = JSON.parse(readFileSync(portsFile, 'utf8')) as Ports;
      assert.match(out, /server\.starting node=24\.\d+\.\d+/);
      const t0 = performance.now();
      npm.kill(sig);
      while (alive(serverPid) && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 5));
      const serverGone = performance.now() - t0;
      const npmDone = await Promise.race([npmExit, new Promise<null>((r) => setTimeout(r, 10_000, null))]);
      const npmGone = performance.now() - t0;
      const [code, signal] = npmDone ?? [null, null];
      console.log(`# ${sig}: server (pid ${serverPid}, npm pid ${npm.pid}) gone after ${serverGone.toFixed(0)} ms, npm exited after ${npmGone.toFixed(0)} ms (code ${code}, signal ${signal})`);
      assert.equal(alive(serverPid), false, `server pid ${serverPid} still running after ${sig} to npm`);
      assert.ok(npmDone, `npm did not exit within 10 s of ${sig}`);
      assert.ok(serverGone < 3000, `server took ${serverGone.toFixed(0)} ms to exit when idle`);
      assert.equal(code, 0, out);
      assert.match(out, /server\.stopped/);
      await portsFree(ports);
    } finally {
      if (serverPid && alive(serverPid)) process.kill(serverPid, 'SIGKILL');
      if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL');
      try {
        process.kill(-npm.pid!, 'SIGKILL');
      } catch {
        // the group is gone: nothing was left behind
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('after SEARCH BODY has started the body-scan worker threads, SIGTERM still exits in well under a second', async () => {
  const srv = await serverWithUser();
  try {
    const c = await RawImap.connect(srv.ports.imap);
    await c.login(USER, PASS);
    const want = await appendBodySearchMailbox(c, 'INBOX', 240);
    await c.cmd('SELECT INBOX');
    const found = (await c.cmd('SEARCH BODY zanzibar', 30_000)).lines[0]!.replace(/^\* SEARCH ?/, '').split(' ').filter(Boolean).map(Number);
    assert.deepEqual(found, want.body);
    c.close();
    const ms = await signalAndWait(srv);
    console.log(`# exit after SEARCH BODY: ${ms.toFixed(0)} ms`);
    assert.ok(ms < 3000, `took ${ms.toFixed(0)} ms`);
    assert.equal(srv.proc.exitCode, 0);
  } finally {
    await srv.stop();
    rmSync(srv.dataDir, { recursive: true, force: true });
  }
});

test('live sessions get their goodbye line at SIGTERM (IMAP IDLE and between commands, IMAPS, POP3 TRANSACTION, SMTP after EHLO; HTTP keep-alive and an unfinished TLS handshake are closed), and the server exits within the drain time', async () => {
  const grace = 4000;
  const srv = await serverWithUser({ shutdownGrace: grace });
  try {
    const idle = await Lines.connect(srv.ports.imap);
    idle.send(`a LOGIN ${USER} ${PASS}`);
    await idle.next(/^a OK/);
    idle.send('b SELECT INBOX');
    await idle.next(/^b OK/);
    idle.send('c IDLE');
    await idle.next(/^\+ /);
    const between = await Lines.connect(srv.ports.imap);
    between.send(`a LOGIN ${USER} ${PASS}`);
    await between.next(/^a OK/);
    const imaps = await Lines.connect(srv.ports.imaps, true, srv.ca);
    imaps.send('a CAPABILITY');
    await imaps.next(/^a OK/);
    const pop = await Lines.connect(srv.ports.pop3);
    pop.send(`USER ${USER}`);
    await pop.next(/^\+OK/);
    pop.send(`PASS ${PASS}`);
    await pop.next(/^\+OK/);
    pop.send('STAT');
    await pop.next(/^\+OK 0 0/);
    const smtp = await Lines.connect(srv.ports.smtp);
    smtp.send('EHLO client.example');
    await smtp.next(/^250 /);
    // An HTTP keep-alive connection, and a connection to 993 that never starts its TLS handshake.
    const http = new Lines(netConnect(srv.ports.http, '127.0.0.1'));
    http.send('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n');
    await http.next(/^ok/);
    const mute = netConnect(srv.ports.imaps, '127.0.0.1');
    mute.on('error', () => {});
    await once(mute, 'connect');

    const ms = await signalAndWait(srv);
    console.log(`# exit with 5 live sessions: ${ms.toFixed(0)} ms (drain time ${grace} ms)`);
    assert.match(await idle.next(/^\* BYE/), /^\* BYE \[UNAVAILABLE\] .*shutting down/);
    assert.match(await between.next(/^\* BYE/), /^\* BYE \[UNAVAILABLE\] .*shutting down/);
    assert.match(await imaps.next(/^\* BYE/), /^\* BYE \[UNAVAILABLE\] .*shutting down/);
    assert.match(await pop.next(/^-ERR/), /^-ERR \[SYS\/TEMP\] .*shutting down/);
    assert.equal(await smtp.next(/^421/), '421 4.3.2 localhost Service shutting down');
    for (const c of [idle, between, imaps, pop, smtp, http]) await c.whenClosed();
    mute.destroy();
    assert.ok(ms < grace, `exit took ${ms.toFixed(0)} ms, drain time ${grace} ms`);
    assert.match(srv.output(), /server\.stopped .*drained=true/);
    assert.doesNotMatch(srv.output(), /Z error /);
    await portsFree(srv.ports);
  } finally {
    await srv.stop();
    rmSync(srv.dataDir, { recursive: true, force: true });
  }
});

test('SMTP DATA streaming at SIGTERM: finished within the drain time it gets 250 and is stored, then 421; a disconnect mid-DATA is logged as smtp.data-aborted', async () => {
  // A generous grace: the server exits as soon as the upload is done, and a busy machine must not
  // turn the upload into a 421.
  const srv = await serverWithUser({ shutdownGrace: 60_000 });
  try {
    // A client that goes away in the middle of DATA: info, not error, and nothing stored.
    const gone = await smtpInData(srv.ports.smtp);
    await write(gone, 'Subject: never finished\r\n\r\n');
    await write(gone, filler(0));
    gone.socket.destroy();
    const deadline = Date.now() + 5000;
    while (!/smtp\.data-aborted/.test(srv.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.match(srv.output(), /Z info smtp\.data-aborted /);

    const c = await smtpInData(srv.ports.smtp);
    await write(c, 'Subject: sent across the shutdown\r\n\r\n');
    for (let i = 0; i < 4; i++) await write(c, filler(i));
    const exited = once(srv.proc, 'exit');
    srv.proc.kill('SIGTERM');
    await stopping(srv);
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 4; i < 30; i++) await write(c, filler(i));
    await write(c, '.\r\n');
    const reply = await c.next(/^\d{3} /);
    assert.match(reply, /^250 /);
    assert.equal(await c.next(/^421/), '421 4.3.2 localhost Service shutting down');
    await exited;
    const msgs = await stored(srv.dataDir, USER);
    assert.equal(msgs.length, 1, 'a 250 was given: the message must be in the store');
    assert.match(msgs[0]!.toString('latin1'), /Subject: sent across the shutdown\r\n[\s\S]*X-Filler-29: /);
    assert.doesNotMatch(srv.output(), /Z error /);
  } finally {
    await srv.stop();
    rmSync(srv.dataDir, { recursive: true, force: true });
  }
});

test('an IMAP APPEND uploading at SIGTERM finishes within the drain time: OK, then BYE, and the message is stored', async () => {
  // A generous grace: the server exits as soon as the upload is done, and a busy machine must not
  // turn the upload into a 421.
  const srv = await serverWithUser({ shutdownGrace: 60_000 });
  try {
    const c = await Lines.connect(srv.ports.imap);
    c.send(`a LOGIN ${USER} ${PASS}`);
    await c.next(/^a OK/);
    const body = Buffer.concat([Buffer.from('Subject: appended across the shutdown\r\n\r\n'), ...Array.from({ length: 20 }, (_, i) => filler(i))]);
    c.send(`b APPEND INBOX {${body.length}}`);
    await c.next(/^\+ /);
    await write(c, body.subarray(0, 100_000));
    const exited = once(srv.proc, 'exit');
    srv.proc.kill('SIGTERM');
    await stopping(srv);
    await new Promise((r) => setTimeout(r, 100));
    await write(c, body.subarray(100_000));
    await write(c, '\r\n');
    assert.match(await c.next(/^b /), /^b OK/);
    assert.match(await c.next(/^\* BYE/), /^\* BYE \[UNAVAILABLE\]/);
    await exited;
    const msgs = await stored(srv.dataDir, USER);
    assert.equal(msgs.length, 1);
    assert.ok(msgs[0]!.equals(body));
    assert.doesNotMatch(srv.output(), /Z error /);
  } finally {
    await srv.stop();
    rmSync(srv.dataDir, { recursive: true, force: true });
  }
});

test('SMTP DATA still streaming when the drain time is over: 421 mid-DATA, nothing stored, the server exits', async () => {
  const grace = 1000;
  const srv = await serverWithUser({ shutdownGrace: grace });
  try {
    const c = await smtpInData(srv.ports.smtp);
    await write(c, 'Subject: too slow\r\n\r\n');
    await write(c, filler(0));
    const t0 = performance.now();
    const exited = once(srv.proc, 'exit');
    srv.proc.kill('SIGTERM');
    // Trickle until the server says goodbye; never the final dot.
    let n = 0;
    while (!c.closed && !c.lines.some((l) => /^\d{3} /.test(l)) && performance.now() - t0 < 10_000) {
      await write(c, `X-Slow-${n++}: ${'s'.repeat(60)}\r\n`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const reply = await c.next(/^\d{3} /);
    const ms = performance.now() - t0;
    console.log(`# reply mid-DATA after ${ms.toFixed(0)} ms (drain time ${grace} ms): ${reply}`);
    assert.equal(reply, '421 4.3.2 localhost Service shutting down');
    assert.ok(ms >= grace * 0.9, 'the upload got the drain time first');
    await c.whenClosed();
    await exited;
    assert.equal((await stored(srv.dataDir, USER)).length, 0, 'no 250: nothing may be stored');
    assert.match(srv.output(), /Z info smtp\.data-aborted .*shutdown=true/);
    assert.doesNotMatch(srv.output(), /Z error /);
  } finally {
    await srv.stop();
    rmSync(srv.dataDir, { recursive: true, force: true });
  }
});

test('a second SIGTERM during the drain stops at once; the store is closed cleanly and the next start works', async () => {
  const srv = await serverWithUser({ shutdownGrace: 60_000 });
  let again: TestServer | null = null;
  try {
    const c = await smtpInData(srv.ports.smtp);
    await write(c, 'Subject: interrupted\r\n\r\n');
    const exited = once(srv.proc, 'exit');
    srv.proc.kill('SIGTERM');
    await stopping(srv);
    await write(c, filler(0));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(srv.proc.exitCode, null, 'the first signal waits for the upload (drain time 60 s)');
    const t0 = performance.now();
    srv.proc.kill('SIGTERM');
    await exited;
    const ms = performance.now() - t0;
    console.log(`# exit after the second SIGTERM: ${ms.toFixed(0)} ms`);
    assert.ok(ms < 3000, `took ${ms.toFixed(0)} ms`);
    assert.equal(srv.proc.exitCode, 0);
    assert.match(srv.output(), /stopping now/);
    assert.match(srv.output(), /server\.stopped /);
    assert.doesNotMatch(srv.output(), /Z error /);
    await c.whenClosed();
    assert.ok(!c.lines.some((l) => /^250 .*delivered/.test(l)));
    again = await srv.restart();
    const imap = await Lines.connect(again.ports.imap);
    imap.send(`a LOGIN ${USER} ${PASS}`);
    await imap.next(/^a OK/);
    imap.send('b SELECT INBOX');
    assert.equal(await imap.next(/EXISTS$/), '* 0 EXISTS');
    await imap.next(/^b OK/);
    imap.socket.destroy();
  } finally {
    await again?.stop();
    await srv.stop();
    rmSync(srv.dataDir, { recursive: true, force: true });
  }
});
