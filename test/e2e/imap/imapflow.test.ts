// A full imapflow session over 993 (implicit TLS) and over 143 with STARTTLS: list, create,
// rename, delete folders, append, search, partial/binary download, flags, copy, move, expunge,
// idle, logout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ImapFlow } from 'imapflow';
import { startImapServer, messageWithAttachment, simpleMessage, type ImapTestServer } from './harness.ts';

let srv: ImapTestServer;
const U = 'grace@example.com';
const PW = 'grace-pw';

before(async () => {
  srv = await startImapServer();
  await srv.addUser(U, PW);
});
after(async () => {
  await srv?.done();
});

async function fullSession(port: number, secure: boolean, prefix: string): Promise<void> {
  const c = new ImapFlow({
    host: '127.0.0.1',
    port,
    secure,
    doSTARTTLS: secure ? undefined : true,
    auth: { user: U, pass: PW },
    tls: { ca: [srv.ca], servername: 'localhost' },
    logger: false,
    autoIdleDelay: 100,
  });
  await c.connect();
  try {
    assert.ok(c.secureConnection || c.usable);
    const list = await c.list();
    const byUse = new Map(list.filter((m) => m.specialUse).map((m) => [m.specialUse, m.path]));
    assert.equal(byUse.get('\\Sent'), 'Sent');
    assert.equal(byUse.get('\\Trash'), 'Trash');
    assert.equal(byUse.get('\\Drafts'), 'Drafts');
    assert.equal(byUse.get('\\Junk'), 'Junk');
    assert.equal(byUse.get('\\Archive'), 'Archive');
    assert.ok(list.some((m) => m.path === 'INBOX'));

    await c.mailboxCreate(`${prefix}-tmp`);
    await c.mailboxRename(`${prefix}-tmp`, `${prefix}-work`);
    await c.mailboxCreate([`${prefix}-work`, 'Sub']);
    const names = (await c.list()).map((m) => m.path);
    assert.ok(names.includes(`${prefix}-work`) && names.includes(`${prefix}-work/Sub`) && !names.includes(`${prefix}-tmp`));

    const attachment = randomBytes(50_000);
    const ap1 = await c.append(`${prefix}-work`, messageWithAttachment(attachment, 'Quarterly report'), ['\\Seen']);
    assert.ok(ap1 && ap1.uid === 1);
    await c.append(`${prefix}-work`, simpleMessage('Second one', 'just text\r\n'));
    await c.append(`${prefix}-work`, simpleMessage('Third one', 'more text\r\n'), ['$Important']);

    await c.mailboxOpen(`${prefix}-work`);
    assert.equal(c.mailbox && typeof c.mailbox === 'object' ? c.mailbox.exists : -1, 3);
    assert.deepEqual(await c.search({ subject: 'report' }, { uid: true }), [1]);
    assert.deepEqual(await c.search({ seen: false }, { uid: true }), [2, 3]);
    assert.deepEqual(await c.search({ keyword: '$Important' }, { uid: true }), [3]);
    assert.deepEqual(await c.search({ body: 'more text' }, { uid: true }), [3]);

    // Headers and structure, then the attachment by partial fetches.
    const m1 = await c.fetchOne('1', { envelope: true, bodyStructure: true, flags: true, size: true, headers: ['subject'] }, { uid: true });
    assert.ok(m1);
    assert.equal(m1.envelope?.subject, 'Quarterly report');
    assert.equal(m1.bodyStructure?.childNodes?.[1]?.type, 'application/octet-stream');
    assert.match(m1.headers?.toString() ?? '', /Subject: Quarterly report/);
    const dl = await c.download('1', '2', { uid: true, chunkSize: 8192 });
    const chunks: Buffer[] = [];
    for await (const ch of dl.content!) chunks.push(ch as Buffer);
    assert.deepEqual(Buffer.concat(chunks), attachment);
    const part = await c.fetchOne('1', { bodyParts: ['1'] }, { uid: true });
    assert.equal(part && part.bodyParts?.get('1')?.toString().trim(), 'See the attached file.');

    // Flags.
    await c.messageFlagsAdd('2', ['\\Flagged', '$Work'], { uid: true });
    await c.messageFlagsRemove('1', ['\\Seen'], { uid: true });
    const flags = new Map<number, Set<string>>();
    for await (const m of c.fetch('1:*', { flags: true, uid: true })) flags.set(m.uid, m.flags ?? new Set());
    assert.ok(flags.get(2)!.has('\\Flagged') && flags.get(2)!.has('$Work'));
    assert.ok(!flags.get(1)!.has('\\Seen'));

    // Copy, move, expunge.
    const cp = await c.messageCopy('1', 'Archive', { uid: true });
    assert.ok(cp && cp.uidMap && cp.uidMap.size === 1);
    const mv = await c.messageMove('2', `${prefix}-work/Sub`, { uid: true });
    assert.ok(mv && mv.uidMap?.get(2));
    assert.ok(await c.messageDelete('3', { uid: true }));
    const left: number[] = [];
    for await (const m of c.fetch('1:*', { uid: true })) left.push(m.uid);
    assert.deepEqual(left, [1]);
    const st = await c.status(`${prefix}-work/Sub`, { messages: true, uidNext: true, unseen: true });
    assert.equal(st && st.messages, 1);

    // IDLE starts by itself and is broken by the next command.
    const deadline = Date.now() + 3000;
    while (!c.idling && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(c.idling, 'auto-IDLE started');
    const q = await c.getQuota('INBOX');
    assert.ok(q);

    await c.mailboxClose();
    await c.mailboxDelete(`${prefix}-work/Sub`);
    await c.mailboxDelete(`${prefix}-work`);
    assert.ok(!(await c.list()).some((m) => m.path.startsWith(`${prefix}-work`)));
  } finally {
    await c.logout().catch(() => c.close());
  }
}

test('imapflow full session over 993 (implicit TLS)', async () => {
  await fullSession(srv.ports.imaps, true, 'tls');
});

test('imapflow full session over 143 with STARTTLS', async () => {
  await fullSession(srv.ports.imap, false, 'starttls');
});
