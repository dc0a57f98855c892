// NOTIFY (RFC 5465) while the client does not read: a client busy receiving a big FETCH (it has
// stopped reading, so the server's writes wait) gets the events that came meanwhile after that
// FETCH — EXPUNGE never inside a FETCH by sequence number (RFC 3501 §7.4.1) — and a client that
// falls too far behind gets NOTIFICATIONOVERFLOW (§5.8). The queue limit is set low
// (limits.imapNotifyQueue) so a few events overflow it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawImap } from './raw-client.ts';
import { startImapServer, type ImapTestServer } from './harness.ts';
import { crlf } from './conformance-env.ts';

const U = 'backlog@example.com';
const PW = 'pw-backlog-1';
let srv: ImapTestServer;

before(async () => {
  srv = await startImapServer({ plaintext: true, limits: { imapNotifyQueue: 3 } });
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

/** 8 MB: more than the kernel's socket buffers hold, so the server's FETCH waits for the reader. */
const BIG = crlf(['Subject: big', '', ...Array.from({ length: 8 * 1024 * 1024 / 80 }, () => 'x'.repeat(78))]);

/** Sends `cmd` with reading paused, runs `meanwhile`, then reads the reply. */
async function whileBlocked(c: RawImap, cmd: string, meanwhile: () => Promise<void>): Promise<{ lines: string[]; tagged: string }> {
  c.socket.pause();
  const tag = c.nextTag();
  c.write(`${tag} ${cmd}\r\n`);
  await new Promise((r) => setTimeout(r, 300));
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
