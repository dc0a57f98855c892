// Hostile SMTP input and the SMTP side of the "Hardening" issue against the real server: message
// headers that made the MIME parser quadratic, clients that pipeline without reading, submission
// connections that never authenticate; postmaster and quoted local parts (RFC 5321 §4.5.1, §4.1.2).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { probeRoundTrips, rssOf, sampleRss, timed } from '../../helpers/probe.ts';
import { RawImap } from '../imap/raw-client.ts';
import { RawSmtp, stored } from './util.ts';

let srv: TestServer;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pillarbox-smtp-hard-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ limits: { maxConnectionsPerIp: 1000 } }));
  srv = await startServer({ dataDir: dir, plaintext: true });
  // alice is the oldest account: with no postmaster anywhere she is the administrator.
  await srv.addUser('alice@example.test', 'pw');
  await srv.addUser('bob@example.test', 'pw');
});
after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** bob's IMAP NOOP round trips while `hostile` runs. */
async function whileProbing<T>(hostile: () => Promise<T>): Promise<{ value: T; maxMs: number; count: number }> {
  const other = await RawImap.connect(srv.ports.imap);
  await other.login('bob@example.test', 'pw');
  try {
    const probe = probeRoundTrips(() => other.cmd('NOOP', 120_000));
    const value = await hostile();
    const { maxMs, count } = await probe.stop();
    return { value, maxMs, count };
  } finally {
    other.close();
  }
}

async function deliver(to: string, message: Buffer | string): Promise<string> {
  const c = await RawSmtp.connect(srv.ports.smtp);
  try {
    await c.reply();
    await c.cmd('EHLO client.test');
    assert.match(await c.cmd('MAIL FROM:<x@elsewhere.test>'), /^250/);
    const r = await c.cmd(`RCPT TO:<${to}>`);
    if (!r.startsWith('250')) return r;
    assert.match(await c.cmd('DATA'), /^354/);
    c.write(message);
    c.write(message.slice(-2).toString() === '\r\n' ? '.\r\n' : '\r\n.\r\n');
    return await c.reply(120_000);
  } finally {
    c.close();
  }
}

test('a header with 100,000 blanks (and other worst cases) is parsed in linear time (old: 26 s to the 250, every client blocked)', async (t) => {
  const run = ' '.repeat(100_000);
  const hostile = [
    `Subject: a${run}b`,
    `Subject:${run}`,
    `To: x${run}y, ${'a:'.repeat(20_000)}`,
    `Date: ${'('.repeat(100_000)}`,
    `Content-Language: ${'('.repeat(100_000)}`,
    `${'no colon here\r\n'.repeat(5_000)}X: y`,
    `Subject: ${'=?utf-8?q?'.repeat(10_000)}`,
    `Content-Type: text/plain; ${'a*0*='.repeat(10_000)}`,
  ];
  for (const h of hostile) {
    const r = await whileProbing(() => timed(() => deliver('bob@example.test', `From: a@elsewhere.test\r\n${h}\r\n\r\nbody\r\n`)));
    t.diagnostic(`${JSON.stringify(h.slice(0, 16))}…: 250 after ${r.value.ms.toFixed(0)} ms; other client slowest ${r.maxMs.toFixed(0)} ms`);
    assert.match(r.value.value, /^250 /);
    assert.ok(r.value.ms < 3000, `250 after ${r.value.ms} ms`);
    assert.ok(r.maxMs < 1500, `another client waited ${r.maxMs} ms`);
  }
  // Stored byte-exact, also past the parser's header cap.
  const big = `From: a@elsewhere.test\r\nSubject: big\r\n${'X-Filler: '.concat('f'.repeat(1000), '\r\n').repeat(400)}X-Last: end\r\n\r\nbody\r\n`;
  assert.match(await deliver('bob@example.test', big), /^250 /);
  const last = (await stored(srv.dataDir, 'bob@example.test')).at(-1)!;
  assert.ok(last.toString('latin1').endsWith(big), 'stored as sent');
});

test('RCPT TO:<postmaster> and postmaster@ a hosted domain are accepted without an alias (RFC 5321 §4.5.1); quoted local parts are the same mailbox (§4.1.2)', async () => {
  for (const to of ['postmaster', 'Postmaster', 'POSTMASTER@example.test']) {
    const subject = `to ${to}`;
    assert.match(await deliver(to, `From: a@elsewhere.test\r\nSubject: ${subject}\r\n\r\nhello\r\n`), /^250 /);
    const inbox = await stored(srv.dataDir, 'alice@example.test');
    assert.ok(inbox.some((m) => m.includes(`Subject: ${subject}`)), `${to} reached the oldest account`);
  }
  for (const to of ['"alice"@example.test', '"al\\ice"@example.test', '"Alice"@example.test']) {
    const subject = `quoted ${to}`;
    assert.match(await deliver(to, `From: a@elsewhere.test\r\nSubject: ${subject}\r\n\r\nhello\r\n`), /^250 /, to);
    assert.ok((await stored(srv.dataDir, 'alice@example.test')).some((m) => m.includes(`Subject: ${subject}`)), to);
  }
  // Not a Dot-string once unquoted: a different mailbox (none here); smtp-server may refuse the syntax first.
  assert.match(await deliver('"al ice"@example.test', 'Subject: x\r\n\r\nx\r\n'), /^5(50|01) /);
  assert.match(await deliver('"al@ice"@example.test', 'Subject: x\r\n\r\nx\r\n'), /^5(50|01) /);
  assert.match(await deliver('nobody@example.test', 'Subject: x\r\n\r\nx\r\n'), /^550 /);
});

test('the configured postmaster comes before the oldest account', async () => {
  const d2 = mkdtempSync(join(tmpdir(), 'pillarbox-smtp-pm-'));
  writeFileSync(join(d2, 'config.json'), JSON.stringify({ postmaster: 'bob@example.test' }));
  const s2 = await startServer({ dataDir: d2, plaintext: true });
  try {
    await s2.addUser('alice@example.test', 'pw');
    await s2.addUser('bob@example.test', 'pw');
    const c = await RawSmtp.connect(s2.ports.smtp);
    await c.reply();
    await c.cmd('EHLO client.test');
    assert.match(await c.cmd('MAIL FROM:<x@elsewhere.test>'), /^250/);
    assert.match(await c.cmd('RCPT TO:<postmaster>'), /^250/);
    assert.match(await c.cmd('DATA'), /^354/);
    c.write('Subject: for the configured postmaster\r\n\r\nx\r\n.\r\n');
    assert.match(await c.reply(), /^250 /);
    c.close();
    assert.ok((await stored(d2, 'bob@example.test')).some((m) => m.includes('Subject: for the configured postmaster')));
    assert.ok(!(await stored(d2, 'alice@example.test')).some((m) => m.includes('Subject: for the configured postmaster')));
  } finally {
    await s2.stop();
    rmSync(d2, { recursive: true, force: true });
  }
});

test('pipelined commands without reading: the server does not buffer the replies (1,000,000 × NOOP)', async (t) => {
  const pid = srv.proc.pid!;
  const sock = await new Promise<Socket>((res, rej) => {
    const s = netConnect({ host: '127.0.0.1', port: srv.ports.smtp }, () => res(s));
    s.once('error', rej);
  });
  sock.on('error', () => {});
  sock.pause();
  const start = rssOf(pid);
  const rss = sampleRss(pid);
  const buf = Buffer.from('EHLO x\r\n' + 'NOOP\r\n'.repeat(10_000));
  for (let i = 0; i < 100; i++) sock.write(buf);
  const r = await whileProbing(() => new Promise((res) => setTimeout(res, 4000)));
  const grown = rss.stop() - start;
  sock.destroy();
  t.diagnostic(`RSS +${(grown / 1048576).toFixed(1)} MB; other client ${r.count} round trips, slowest ${r.maxMs.toFixed(0)} ms`);
  assert.ok(grown < 20 * 1024 * 1024, `RSS grew ${(grown / 1048576).toFixed(1)} MB`);
  assert.ok(r.maxMs < 1500 && r.count > 10);
});

test('a submission connection that never authenticates is closed after preauthTimeout, NOOPs or not (old: idle timeout only, 5 min per command)', async (t) => {
  const d2 = mkdtempSync(join(tmpdir(), 'pillarbox-smtp-pre-'));
  writeFileSync(join(d2, 'config.json'), JSON.stringify({ limits: { preauthTimeout: 1500 } }));
  const s2 = await startServer({ dataDir: d2, plaintext: true });
  try {
    const c = await RawSmtp.connect(s2.ports.submission);
    await c.reply();
    const closed = new Promise<void>((r) => c.socket.on('close', () => r()));
    let got = '';
    c.socket.on('data', (d: string) => (got += d));
    const timer = setInterval(() => c.socket.writable && c.socket.write('NOOP\r\n'), 300);
    const { ms } = await timed(() => Promise.race([closed, new Promise((r) => setTimeout(r, 6000))]));
    clearInterval(timer);
    t.diagnostic(`closed after ${ms.toFixed(0)} ms`);
    assert.match(got, /421 4\.7\.0 Authentication timeout/);
    assert.ok(ms > 1000 && ms < 4000, `closed after ${ms} ms`);
    // The MX port has no such timeout (mail transactions are unauthenticated).
    const mx = await RawSmtp.connect(s2.ports.smtp);
    await mx.reply();
    await new Promise((r) => setTimeout(r, 2000));
    assert.match(await mx.cmd('NOOP'), /^250/);
    mx.close();
  } finally {
    await s2.stop();
    rmSync(d2, { recursive: true, force: true });
  }
});
