// Two clients on one mailbox: what one does (flag, move, delete, append) reaches the other, which
// sits in IDLE (imapflow), within one second; so does a message delivered over SMTP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { RawImap } from './raw-client.ts';
import { startImapServer, simpleMessage, type ImapTestServer } from './harness.ts';

let srv: ImapTestServer;
const U = 'frank@example.com';
const PW = 'frank-secret';

before(async () => {
  srv = await startImapServer();
  await srv.addUser(U, PW);
});
after(async () => {
  await srv?.done();
});

function flow(): ImapFlow {
  return new ImapFlow({
    host: '127.0.0.1',
    port: srv.ports.imaps,
    secure: true,
    auth: { user: U, pass: PW },
    tls: { ca: [srv.ca], servername: 'localhost' },
    logger: false,
    autoIdleDelay: 100,
  });
}

async function waitFor<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: not seen within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

async function untilIdling(c: ImapFlow): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!c.idling) {
    if (Date.now() > deadline) throw new Error('client never entered IDLE');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('flag, move, delete and append by one client reach the other in IDLE within one second', async () => {
  const writer = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
  await writer.login(U, PW);
  for (let i = 1; i <= 3; i++) await writer.append('INBOX', simpleMessage(`idle ${i}`));
  const reader = flow();
  await reader.connect();
  await reader.mailboxOpen('INBOX');
  try {
    await writer.cmd('SELECT INBOX');
    await untilIdling(reader);

    // A flag set by the writer.
    let flagsSeen = new Promise<{ uid?: number; flags: Set<string> }>((r) => reader.once('flags', r));
    let t0 = Date.now();
    await writer.cmd('STORE 1 +FLAGS (\\Flagged)');
    const fl = await waitFor('flag change', flagsSeen, 1000);
    assert.ok(fl.flags.has('\\Flagged'));
    const flagMs = Date.now() - t0;

    // A new message.
    await untilIdling(reader);
    const existsSeen = new Promise<{ count: number }>((r) => reader.once('exists', r));
    t0 = Date.now();
    await writer.append('INBOX', simpleMessage('idle 4'));
    assert.equal((await waitFor('new message', existsSeen, 1000)).count, 4);

    // A move to another folder.
    await untilIdling(reader);
    let expungeSeen = new Promise<{ seq: number }>((r) => reader.once('expunge', r));
    await writer.cmd('NOOP');
    await writer.cmd('MOVE 2 Archive');
    assert.equal((await waitFor('moved message', expungeSeen, 1000)).seq, 2);

    // A delete (\Deleted + EXPUNGE).
    await untilIdling(reader);
    expungeSeen = new Promise<{ seq: number }>((r) => reader.once('expunge', r));
    await writer.cmd('STORE 1 +FLAGS (\\Deleted)');
    await writer.cmd('EXPUNGE');
    assert.equal((await waitFor('deleted message', expungeSeen, 1000)).seq, 1);

    // The reader's view now matches the server's.
    const uids: number[] = [];
    for await (const m of reader.fetch('1:*', { uid: true })) uids.push(m.uid);
    assert.deepEqual(uids, [3, 4]);
    flagsSeen = Promise.resolve({ flags: new Set() });
    assert.ok(flagMs < 1000);
  } finally {
    writer.close();
    await reader.logout().catch(() => reader.close());
  }
});

test('a message delivered over SMTP appears in an IDLE session within one second', async () => {
  const reader = flow();
  await reader.connect();
  await reader.mailboxOpen('INBOX');
  try {
    await untilIdling(reader);
    const before = reader.mailbox && typeof reader.mailbox === 'object' ? reader.mailbox.exists : 0;
    const existsSeen = new Promise<{ count: number }>((r) => reader.once('exists', r));
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: srv.ports.smtp, secure: false, ignoreTLS: true, tls: { rejectUnauthorized: false } });
    const t0 = Date.now();
    await transport.sendMail({ from: 'someone@elsewhere.example', to: U, subject: 'Via SMTP', text: 'Delivered by SMTP' });
    const ev = await waitFor('SMTP delivery', existsSeen, 1000);
    assert.equal(ev.count, before + 1);
    assert.ok(Date.now() - t0 < 1500);
    const msg = await reader.fetchOne('*', { envelope: true });
    assert.ok(msg && msg.envelope?.subject === 'Via SMTP');
    transport.close();
  } finally {
    await reader.logout().catch(() => reader.close());
  }
});
