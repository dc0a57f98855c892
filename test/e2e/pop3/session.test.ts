// POP3 sessions over real sockets and TLS against a real SQLite store: the RFC 1939 command set,
// STLS/AUTH PLAIN, the account's POP policy as seen in the store afterwards, and bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { startHarness, addAccount, deliverMessages, makeMessage, LineClient, type Harness } from './harness.ts';
import { SystemFlag, type AccountSettings } from '../../../src/store/store.ts';

let h: Harness;
let n = 0;
before(async () => {
  h = await startHarness({ allowPlaintextLoopback: false, maxLineLength: 1000 });
});
after(async () => {
  await h.close();
});

async function account(count: number, settings?: AccountSettings) {
  const address = `user${++n}@example.com`;
  const acc = await addAccount(h.store, address, 'secret pw', settings);
  const bodies = Array.from({ length: count }, (_, i) => makeMessage(i + 1, i === 0 ? 200_000 : (i * 37) % 3000));
  const uids = await deliverMessages(h.store, acc.id, bodies);
  const inbox = (await h.store.getMailbox(acc.id, 'INBOX'))!;
  return { address, acc, bodies, uids, inbox };
}

async function login(address: string, pass = 'secret pw'): Promise<LineClient> {
  const c = await LineClient.connect(h.tlsPort, true);
  const r = await c.login(address, pass);
  assert.match(r, /^\+OK/, r);
  return c;
}

async function inboxUids(accountId: number, name = 'INBOX') {
  const mb = (await h.store.getMailbox(accountId, name))!;
  return (await h.store.listMessages(mb.id)).map((m) => m.uid);
}

test('CAPA and STLS on the plain port: no plaintext login before TLS', async () => {
  const c = await LineClient.connect(h.port);
  const [st, caps] = await c.multiCmd('CAPA');
  assert.match(st, /^\+OK/);
  assert.ok(caps.includes('STLS'));
  assert.ok(caps.includes('TOP') && caps.includes('UIDL') && caps.includes('RESP-CODES') && caps.includes('AUTH-RESP-CODE') && caps.includes('PIPELINING'));
  assert.ok(caps.some((x) => x.startsWith('IMPLEMENTATION ')));
  assert.ok(!caps.includes('USER') && !caps.includes('SASL PLAIN'), 'no plaintext mechanisms advertised before TLS');
  assert.equal(await c.cmd('USER someone@example.com'), '-ERR [AUTH] Plaintext authentication is not allowed without TLS; use STLS first');
  assert.match(await c.cmd('AUTH PLAIN ' + Buffer.from('\0a@b\0c').toString('base64')), /^-ERR \[AUTH\] Plaintext/);
  await c.stls();
  const [, caps2] = await c.multiCmd('CAPA');
  assert.ok(caps2.includes('USER') && caps2.includes('SASL PLAIN'));
  assert.ok(!caps2.includes('STLS'));
  assert.equal(await c.cmd('STLS'), '-ERR Command not permitted when TLS is active');
  const { address } = await account(1);
  assert.match(await c.login(address, 'secret pw'), /^\+OK Logged in; 1 message/);
  const [, caps3] = await c.multiCmd('CAPA');
  assert.ok(!caps3.includes('USER') && !caps3.includes('STLS'));
  assert.match(await c.cmd('QUIT'), /^\+OK/);
  await c.waitClosed();
});

test('commands pipelined behind STLS are discarded (RFC 2595 §4)', async () => {
  const { address } = await account(1);
  const c = await LineClient.connect(h.port);
  // An attacker's plaintext injection: must not run inside the TLS session.
  c.send(`STLS\r\nUSER ${address}\r\nPASS secret pw`);
  assert.equal(await c.line(), '+OK Begin TLS negotiation');
  c.socket.removeAllListeners('data');
  const { connect } = await import('node:tls');
  const s = connect({ socket: c.socket as import('node:net').Socket, servername: 'localhost', ca: h.ca });
  const got: Buffer[] = [];
  s.on('data', (d) => got.push(d));
  await new Promise((r) => s.once('secureConnect', r));
  s.write('STAT\r\n');
  await new Promise((r) => setTimeout(r, 200));
  assert.match(Buffer.concat(got).toString(), /^-ERR STAT is not valid before login/);
  s.destroy();
});

test('download: STAT, LIST, UIDL, RETR byte-exact, TOP; RETR marks \\Seen; expunge at QUIT', async () => {
  const { address, acc, bodies, uids, inbox } = await account(5);
  const c = await login(address);
  const total = bodies.reduce((a, b) => a + b.length, 0);
  assert.equal(await c.cmd('STAT'), `+OK 5 ${total}`);
  const [, list] = await c.multiCmd('LIST');
  assert.deepEqual(list, bodies.map((b, i) => `${i + 1} ${b.length}`));
  assert.equal(await c.cmd('LIST 2'), `+OK 2 ${bodies[1]!.length}`);
  const [, uidl] = await c.multiCmd('UIDL');
  assert.deepEqual(uidl, uids.map((u, i) => `${i + 1} ${inbox.uidValidity}.${u}`));
  assert.equal(await c.cmd('UIDL 3'), `+OK 3 ${inbox.uidValidity}.${uids[2]}`);
  for (let i = 0; i < 5; i++) {
    assert.equal(await c.cmd(`RETR ${i + 1}`), `+OK ${bodies[i]!.length} octets`);
    assert.ok((await c.multi()).equals(bodies[i]!), `message ${i + 1} byte-exact`);
  }
  const [topSt, top] = await c.multiCmd('TOP 2 1');
  assert.match(topSt, /^\+OK/);
  const text = bodies[1]!.toString();
  const hdrEnd = text.indexOf('\r\n\r\n') + 4;
  assert.equal(top.join('\r\n') + '\r\n', text.slice(0, hdrEnd) + 'Body of message 2.\r\n');
  assert.equal(await c.cmd('DELE 1'), '+OK Message 1 deleted');
  assert.equal(await c.cmd('DELE 3'), '+OK Message 3 deleted');
  assert.equal(await c.cmd('STAT'), `+OK 3 ${total - bodies[0]!.length - bodies[2]!.length}`);
  const [, list2] = await c.multiCmd('LIST');
  assert.deepEqual(list2.map((l) => l.split(' ')[0]), ['2', '4', '5']);
  // Nothing changes before QUIT.
  assert.deepEqual(await inboxUids(acc.id), uids);
  const before = await h.store.listMessages(inbox.id);
  assert.ok(before.every((m) => (m.systemFlags & SystemFlag.Seen) === 0), 'no \\Seen before QUIT');
  assert.equal(await c.cmd('QUIT'), '+OK Bye; 2 messages deleted');
  await c.waitClosed();
  assert.deepEqual(await inboxUids(acc.id), [uids[1], uids[3], uids[4]]);
  const after = await h.store.listMessages(inbox.id);
  assert.ok(after.every((m) => (m.systemFlags & SystemFlag.Seen) !== 0), 'retrieved messages are \\Seen');
});

test('RSET unmarks; a dropped connection changes nothing', async () => {
  const { address, acc, uids, inbox } = await account(3);
  let c = await login(address);
  await c.cmd('DELE 1');
  await c.cmd('DELE 2');
  assert.match(await c.cmd('RSET'), /^\+OK Maildrop has 3 messages/);
  assert.match(await c.cmd('RETR 1'), /^\+OK/);
  await c.multi();
  await c.cmd('DELE 3');
  c.close();
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(await inboxUids(acc.id), uids);
  assert.ok((await h.store.listMessages(inbox.id)).every((m) => m.systemFlags === 0), 'not even \\Seen without QUIT');
  // The lock is released: a new session works.
  c = await login(address);
  assert.match(await c.cmd('STAT'), /^\+OK 3 /);
  await c.cmd('QUIT');
});

test('a second session of the same account gets -ERR [IN-USE]; after QUIT it works', async () => {
  const { address } = await account(1);
  const a = await login(address);
  const b = await LineClient.connect(h.tlsPort, true);
  assert.equal(await b.login(address, 'secret pw'), '-ERR [IN-USE] Another POP3 session of this account is open; try again when it ends');
  assert.equal(await b.cmd('NOOP'), '-ERR NOOP is not valid before login; log in with USER/PASS or AUTH first');
  await a.cmd('QUIT');
  await a.waitClosed();
  assert.match(await b.login(address, 'secret pw'), /^\+OK Logged in/);
  await b.cmd('QUIT');
});

test('bad input: clear -ERR and the session continues', async () => {
  const { address } = await account(3);
  const c = await LineClient.connect(h.tlsPort, true);
  assert.equal(await c.cmd('STAT'), '-ERR STAT is not valid before login; log in with USER/PASS or AUTH first');
  assert.equal(await c.cmd('RETR 1'), '-ERR RETR is not valid before login; log in with USER/PASS or AUTH first');
  assert.equal(await c.cmd('PASS x'), '-ERR Send USER before PASS');
  assert.equal(await c.login(address, 'wrong'), '-ERR [AUTH] Authentication failed: wrong user name or password');
  assert.equal(await c.cmd('APOP a b'), '-ERR APOP is not supported; use USER/PASS or AUTH PLAIN over TLS');
  assert.match(await c.login(address, 'secret pw'), /^\+OK/);
  const bad: Array<[string, string]> = [
    ['FOO', '-ERR Unknown command: FOO'],
    ['', '-ERR Empty command'],
    ['RETR', '-ERR RETR needs exactly one message number'],
    ['RETR 0', '-ERR Invalid message number: 0'],
    ['RETR -1', '-ERR Invalid message number: -1'],
    ['RETR abc', '-ERR Invalid message number: abc'],
    ['RETR 4', '-ERR No such message: 4 (the maildrop has 3 messages)'],
    ['RETR 99999999999', '-ERR Invalid message number: 99999999999'],
    ['LIST 300', '-ERR No such message: 300 (the maildrop has 3 messages)'],
    ['LIST 1 2', '-ERR LIST takes at most one message number'],
    ['TOP 1', '-ERR TOP needs a message number and a line count'],
    ['TOP 1 x', '-ERR Invalid line count: x'],
    ['DELE', '-ERR DELE needs exactly one message number'],
    ['STAT 1', '-ERR STAT takes no arguments'],
    ['USER x', '-ERR USER is not valid after login'],
    ['STLS', '-ERR STLS is not valid after login'],
    ['DELE 2', '+OK Message 2 deleted'],
    ['DELE 2', '-ERR Message 2 is already deleted'],
    ['RETR 2', '-ERR Message 2 is already deleted'],
    ['TOP 2 0', '-ERR Message 2 is already deleted'],
    ['LIST 2', '-ERR Message 2 is already deleted'],
    ['UIDL 2', '-ERR Message 2 is already deleted'],
  ];
  for (const [cmd, expect] of bad) assert.equal(await c.cmd(cmd), expect, cmd);
  assert.equal(await c.cmd('X'.repeat(5000)), '-ERR Line too long (5000 octets; the limit is 1000)');
  assert.equal(await c.cmd('NOOP'), '+OK');
  assert.match(await c.cmd('STAT'), /^\+OK 2 \d+$/);
  await c.cmd('RSET');
  assert.match(await c.cmd('QUIT'), /^\+OK Bye; no messages deleted/);
});

test('AUTH PLAIN with initial response, with a continuation, cancelled and malformed', async () => {
  const { address } = await account(2);
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const c = await LineClient.connect(h.tlsPort, true);
  const [st, mechs] = await c.multiCmd('AUTH');
  assert.match(st, /^\+OK/);
  assert.deepEqual(mechs, ['PLAIN']);
  assert.equal(await c.cmd('AUTH LOGIN'), '-ERR Unsupported SASL mechanism LOGIN; use PLAIN');
  assert.equal(await c.cmd('AUTH PLAIN'), '+ ');
  assert.equal(await c.cmd('*'), '-ERR Authentication cancelled');
  assert.equal(await c.cmd('AUTH PLAIN !!!'), '-ERR Malformed SASL PLAIN response (expected base64 of authzid NUL authcid NUL password)');
  assert.equal(await c.cmd('AUTH PLAIN ' + b64(`\0${address}\0nope`)), '-ERR [AUTH] Authentication failed: wrong user name or password');
  assert.equal(await c.cmd('AUTH PLAIN ' + b64(`other@example.com\0${address}\0secret pw`)), '-ERR [AUTH] Authorization identity must be empty or equal to the authentication identity');
  assert.equal(await c.cmd('AUTH PLAIN'), '+ ');
  assert.match(await c.cmd(b64(`\0${address}\0secret pw`)), /^\+OK Logged in; 2 messages/);
  await c.cmd('QUIT');
  const d = await LineClient.connect(h.tlsPort, true);
  assert.match(await d.cmd('AUTH PLAIN ' + b64(`${address}\0${address}\0secret pw`)), /^\+OK Logged in; 2 messages/);
  await d.cmd('QUIT');
});

test('POP disabled for the account: -ERR [AUTH] saying so', async () => {
  const { address } = await account(1, { pop: { enabled: false } });
  const c = await LineClient.connect(h.tlsPort, true);
  assert.equal(await c.login(address, 'secret pw'), '-ERR [AUTH] POP is disabled for this account; use IMAP, or ask the administrator to enable POP');
  assert.equal(await c.cmd('NOOP'), '-ERR NOOP is not valid before login; log in with USER/PASS or AUTH first');
  await c.cmd('QUIT');
});

test('deleteAction trash and archive move to the special-use mailbox; keep leaves it \\Seen and hides it from POP', async () => {
  for (const action of ['trash', 'archive'] as const) {
    const { address, acc, uids } = await account(3, { pop: { deleteAction: action } });
    const c = await login(address);
    await c.cmd('DELE 1');
    await c.cmd('DELE 3');
    assert.equal(await c.cmd('QUIT'), `+OK Bye; 2 messages moved to ${action === 'trash' ? 'Trash' : 'Archive'}`);
    await c.waitClosed();
    assert.deepEqual(await inboxUids(acc.id), [uids[1]]);
    const dst = (await h.store.listMailboxes(acc.id)).find((m) => m.specialUse === (action === 'trash' ? '\\Trash' : '\\Archive'))!;
    assert.equal((await h.store.listMessages(dst.id)).length, 2);
  }
  const { address, acc, uids, inbox } = await account(3, { pop: { deleteAction: 'keep' } });
  let c = await login(address);
  await c.cmd('RETR 2');
  await c.multi();
  await c.cmd('DELE 1');
  await c.cmd('DELE 2');
  assert.equal(await c.cmd('QUIT'), '+OK Bye; 2 messages kept on the server and hidden from POP');
  await c.waitClosed();
  assert.deepEqual(await inboxUids(acc.id), uids);
  const msgs = await h.store.listMessages(inbox.id);
  assert.ok((msgs[0]!.systemFlags & SystemFlag.Seen) !== 0 && (msgs[1]!.systemFlags & SystemFlag.Seen) !== 0);
  assert.equal(msgs[2]!.systemFlags & SystemFlag.Seen, 0);
  c = await login(address);
  const [, uidl] = await c.multiCmd('UIDL');
  assert.deepEqual(uidl, [`1 ${inbox.uidValidity}.${uids[2]}`], 'only the message POP did not delete is shown');
  await c.cmd('QUIT');
});

test('markSeen false: RETR leaves the message unread', async () => {
  const { address, inbox } = await account(1, { pop: { markSeen: false } });
  const c = await login(address);
  await c.cmd('RETR 1');
  await c.multi();
  await c.cmd('QUIT');
  await c.waitClosed();
  assert.equal((await h.store.listMessages(inbox.id))[0]!.systemFlags & SystemFlag.Seen, 0);
});

test('showSince: only mail saved from that moment on is shown', async () => {
  const { address, acc, inbox } = await account(2);
  await new Promise((r) => setTimeout(r, 20));
  const since = Date.now();
  await h.store.updateAccount(acc.id, { settings: { pop: { showSince: since } } });
  const [newUid] = await deliverMessages(h.store, acc.id, [makeMessage(99)]);
  const c = await login(address);
  const [, uidl] = await c.multiCmd('UIDL');
  assert.deepEqual(uidl, [`1 ${inbox.uidValidity}.${newUid}`]);
  await c.cmd('QUIT');
});

test('recent mode: last 30 days whatever POP deleted (under keep), never deletes, no lock', async () => {
  const { address, acc, uids, inbox } = await account(4, { pop: { deleteAction: 'keep' } });
  // One message is 31 days old.
  const db = new Database(`${h.dir}/pillarbox.sqlite`);
  db.prepare('UPDATE messages SET saved_at = ? WHERE mailbox_id = ? AND uid = ?').run(Date.now() - 31 * 86400_000, inbox.id, uids[0]);
  db.close();
  const normal = await login(address);
  for (let i = 1; i <= 4; i++) assert.match(await normal.cmd(`DELE ${i}`), /^\+OK/);
  assert.match(await normal.cmd('QUIT'), /^\+OK Bye; 4 messages kept/);
  await normal.waitClosed();
  const holder = await login(address); // a normal session holds the lock
  assert.equal(await holder.cmd('STAT'), '+OK 0 0');
  for (const round of [1, 2]) {
    const c = await login(`recent:${address}`);
    const [, uidl] = await c.multiCmd('UIDL');
    assert.deepEqual(uidl, uids.slice(1).map((u, i) => `${i + 1} ${inbox.uidValidity}.${u}`), `round ${round}`);
    for (let i = 1; i <= 3; i++) {
      assert.match(await c.cmd(`RETR ${i}`), /^\+OK/);
      await c.multi();
      await c.cmd(`DELE ${i}`);
    }
    assert.match(await c.cmd('QUIT'), /^\+OK Bye; recent mode deletes nothing/);
    await c.waitClosed();
  }
  await holder.cmd('QUIT');
  assert.deepEqual(await inboxUids(acc.id), uids);
});

test('a message expunged by another client during the session: clear -ERR, no crash, QUIT works', async () => {
  const { address, acc, uids, inbox } = await account(3);
  const c = await login(address);
  assert.match(await c.cmd('STAT'), /^\+OK 3 /);
  await h.store.expunge(inbox.id, { uids: [uids[1]!], onlyDeleted: false, origin: 'imap:test' });
  assert.equal(await c.cmd('RETR 2'), '-ERR Message 2 was removed by another client during this session');
  assert.equal(await c.cmd('DELE 2'), '-ERR Message 2 was removed by another client during this session');
  const [, list] = await c.multiCmd('LIST');
  assert.deepEqual(list.map((l) => l.split(' ')[0]), ['1', '3']);
  assert.match(await c.cmd('RETR 3'), /^\+OK/);
  await c.multi();
  await c.cmd('DELE 1');
  assert.equal(await c.cmd('QUIT'), '+OK Bye; 1 message deleted');
  await c.waitClosed();
  assert.deepEqual(await inboxUids(acc.id), [uids[2]]);
});

test('pipelined commands are answered in order (RFC 2449 PIPELINING)', async () => {
  const { address, bodies } = await account(3);
  const c = await LineClient.connect(h.tlsPort, true);
  c.send(`USER ${address}\r\nPASS secret pw\r\nSTAT\r\nRETR 1\r\nRETR 2\r\nNOOP\r\nRETR 3\r\nQUIT`);
  assert.match(await c.line(), /^\+OK/);
  assert.match(await c.line(), /^\+OK Logged in/);
  assert.match(await c.line(), /^\+OK 3 /);
  for (const i of [0, 1]) {
    assert.match(await c.line(), /^\+OK \d+ octets/);
    assert.ok((await c.multi()).equals(bodies[i]!));
  }
  assert.equal(await c.line(), '+OK');
  assert.match(await c.line(), /^\+OK \d+ octets/);
  assert.ok((await c.multi()).equals(bodies[2]!));
  assert.match(await c.line(), /^\+OK Bye/);
  await c.waitClosed();
});

test('a large message streams with backpressure to a slow reader, byte-exact', async () => {
  const { address, acc } = await account(0);
  const big = makeMessage(1, 3 * 1024 * 1024);
  await deliverMessages(h.store, acc.id, [big]);
  const c = await login(address);
  c.socket.pause();
  c.send('RETR 1');
  await new Promise((r) => setTimeout(r, 300));
  c.socket.resume();
  assert.equal(await c.line(), `+OK ${big.length} octets`);
  assert.ok((await c.multi()).equals(big));
  assert.equal(await c.cmd('NOOP'), '+OK');
  await c.cmd('QUIT');
});

test('a client that pipelines without reading does not make the server buffer without bound', async () => {
  const { address } = await account(200);
  const c = await login(address);
  c.socket.pause();
  // 20000 LISTs of 200 lines: about 40 MB of answers if the server kept going.
  const flood = Buffer.from('LIST\r\n'.repeat(20000));
  c.socket.write(flood);
  await new Promise((r) => setTimeout(r, 1500));
  const buffered = Math.max(...h.serverSockets().map((s) => s.writableLength));
  assert.ok(buffered < 2 * 1024 * 1024, `server holds ${buffered} bytes of unsent output`);
  c.close();
});

test('a message expunged by another process (no change-bus event): RETR still gets a clean -ERR', async () => {
  const { address, uids, inbox } = await account(2);
  const c = await login(address);
  const { openSqliteStore } = await import('../../../src/store/sqlite/sqlite-store.ts');
  const other = await openSqliteStore({ path: `${h.dir}/pillarbox.sqlite`, blobDir: `${h.dir}/blobs` });
  try {
    await other.expunge(inbox.id, { uids: [uids[0]!], onlyDeleted: false });
  } finally {
    await other.close();
  }
  assert.equal(await c.cmd('RETR 1'), '-ERR Message 1 was removed by another client during this session');
  assert.match(await c.cmd('RETR 2'), /^\+OK/);
  await c.multi();
  assert.equal(await c.cmd('QUIT'), '+OK Bye; no messages deleted');
});
