// NOTIFY (RFC 5465) while the client does not read: a client busy receiving a big FETCH (it has
// stopped reading, so the server's writes wait) gets the events that came meanwhile after that
// FETCH — EXPUNGE never inside a FETCH by sequence number (RFC 3501 §7.4.1) — and a client that
// falls too far behind gets NOTIFICATIONOVERFLOW (§5.8). The queue limit is set low
// (limits.imapNotifyQueue) so a few events overflow it. The big message is larger than every
// socket buffer on the way can grow to (Linux autotunes a loopback receive buffer up to
// tcp_rmem's maximum, 32 MB here), and the other session's commands start only once the FETCH's
// first bytes wait in the client's receive queue (/proc/net/tcp): the server is then stuck inside
// that FETCH however slow the machine is.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { RawImap } from './raw-client.ts';
import { startImapServer, type ImapTestServer } from './harness.ts';
import { crlf } from './conformance-env.ts';

/** The largest a TCP buffer may grow to (net.ipv4.tcp_rmem / tcp_wmem maximum), bytes. */
function tcpMax(name: 'tcp_rmem' | 'tcp_wmem'): number {
  try {
    return Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[2]) || 8 << 20;
  } catch {
    return 8 << 20;
  }
}

/** More than the client's receive buffer and the server's send buffer together can hold, so the server's FETCH waits for the reader. */
const BIG_BYTES = tcpMax('tcp_rmem') + tcpMax('tcp_wmem') + (8 << 20);
const BIG = crlf(['Subject: big', '', ...Array.from({ length: Math.ceil(BIG_BYTES / 80) }, () => 'x'.repeat(78))]);

const U = 'backlog@example.com';
const PW = 'pw-backlog-1';
let srv: ImapTestServer;

before(async () => {
  srv = await startImapServer({ plaintext: true, limits: { imapNotifyQueue: 3, maxMessageSize: BIG.length + 1024 * 1024, appendLimit: BIG.length + 1024 * 1024 } });
  await srv.addUser(U, PW);
});
after(async () => {
  await srv?.done();
});

async function login(): Promise<RawImap> {
  const c = await RawImap.connect(srv.ports.imap);
  await c.login(U, PW);
  return c;
}

async function ok(c: RawImap, cmd: string): Promise<string[]> {
  const r = await c.cmd(cmd, 30_000);
  assert.match(r.tagged, /^t\d+ OK /, `${cmd} → ${r.tagged}`);
  return r.lines;
}


/**
 * Bytes waiting in the kernel's receive queue of the established connection from local port
 * `port` to `remote` (/proc/net/tcp, tcp6). The whole four-tuple and the state: a socket of an
 * earlier connection from the same local port (TIME_WAIT, to another server: ports are reused
 * while the full suite opens thousands) is listed too, with an empty queue.
 */
function receiveQueue(port: number, remote: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const rhex = remote.toString(16).toUpperCase().padStart(4, '0');
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // cols: sl, local, remote, state (01 = ESTABLISHED), tx_queue:rx_queue
      if (cols[1]?.endsWith(`:${hex}`) && cols[2]?.endsWith(`:${rhex}`) && cols[3] === '01') return parseInt(cols[4]?.split(':')[1] ?? '0', 16);
    }
  }
  return 0;
}

/** Sends `cmd` with reading paused, runs `meanwhile` once its reply has started arriving, then reads the reply. */
async function whileBlocked(c: RawImap, cmd: string, meanwhile: () => Promise<void>): Promise<{ lines: string[]; tagged: string }> {
  c.socket.pause();
  const tag = c.nextTag();
  c.write(`${tag} ${cmd}\r\n`);
  const port = c.socket.localPort!;
  const remote = c.socket.remotePort!;
  for (let i = 0; i < 600 && receiveQueue(port, remote) === 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(receiveQueue(port, remote) > 0, `the reply to ${cmd} never started arriving`);
  await meanwhile();
  await new Promise((r) => setTimeout(r, 300));
  c.socket.resume();
  return c.until(tag, 60_000);
}

test('RFC 5465 §5.3 with RFC 3501 §7.4.1: SELECTED, an expunge made during a FETCH by sequence number comes after that FETCH, not in it', async () => {
  const a = await login();
  const b = await login();
  try {
    await ok(a, 'ENABLE IMAP4rev2');
    await ok(a, 'CREATE Big1');
    assert.match((await a.append('Big1', BIG)).tagged, / OK /);
    assert.match((await a.append('Big1', crlf(['Subject: small', '', 's']))).tagged, / OK /);
    await ok(a, 'SELECT Big1');
    await ok(a, 'NOTIFY SET (selected (MessageNew MessageExpunge))');
    await ok(b, 'SELECT Big1');
    const r = await whileBlocked(a, 'FETCH 1 (BODY.PEEK[])', async () => {
      await ok(b, 'UID STORE 2 +FLAGS.SILENT (\\Deleted)');
      await ok(b, 'UID EXPUNGE 2');
    });
    assert.match(r.tagged, / OK FETCH completed$/);
    assert.equal(r.lines.length, 1);
    assert.ok(r.lines[0]!.startsWith('* 1 FETCH (BODY[] {'), r.lines[0]!.slice(0, 40));
    assert.equal(await a.readLine(3000), '* 2 EXPUNGE');
  } finally {
    a.close();
    b.close();
  }
});

test('RFC 5465 §5.8: a client that falls too far behind gets * OK [NOTIFICATIONOVERFLOW] and is then as after NOTIFY NONE', async () => {
  const a = await login();
  const b = await login();
  try {
    await ok(a, 'CREATE Big2');
    assert.match((await a.append('Big2', BIG)).tagged, / OK /);
    await ok(a, 'SELECT Big2');
    await ok(a, 'NOTIFY SET (personal (MailboxName))');
    // Three events fit the queue: delivered after the FETCH.
    let r = await whileBlocked(a, 'FETCH 1 (BODY.PEEK[])', async () => {
      for (const n of ['Q1', 'Q2', 'Q3']) await ok(b, `CREATE ${n}`);
    });
    assert.match(r.tagged, / OK FETCH completed$/);
    assert.deepEqual(r.lines.slice(1), ['* LIST (\\HasNoChildren) "/" "Q1"', '* LIST (\\HasNoChildren) "/" "Q2"', '* LIST (\\HasNoChildren) "/" "Q3"']);
    // Five do not.
    r = await whileBlocked(a, 'FETCH 1 (BODY.PEEK[])', async () => {
      for (const n of ['O1', 'O2', 'O3', 'O4', 'O5']) await ok(b, `CREATE ${n}`);
    });
    assert.deepEqual(r.lines.slice(1), ['* OK [NOTIFICATIONOVERFLOW] More than 3 notifications were waiting; NOTIFY is now NONE']);
    await ok(b, 'CREATE After');
    await assert.rejects(a.readLine(300), /timeout/);
    // A new NOTIFY SET starts again.
    await ok(a, 'NOTIFY SET (personal (MailboxName))');
    await ok(b, 'CREATE Again');
    assert.equal(await a.readLine(3000), '* LIST (\\HasNoChildren) "/" "Again"');
  } finally {
    a.close();
    b.close();
  }
});
