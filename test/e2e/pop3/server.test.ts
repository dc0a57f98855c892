// POP3 in the real `pillarbox serve`, checked from an IMAP client (imapflow): deletions reach an
// IDLEing client as EXPUNGE right after QUIT, a POP session survives an IMAP expunge, each POP
// policy set with the admin CLI has its effect, IN-USE and dropped connections.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ImapFlow } from 'imapflow';
import { SystemFlag } from '../../../src/store/store.ts';
import { makeMessage, LineClient } from './harness.ts';
import { serverTarget } from './target.ts';

type T = Awaited<ReturnType<typeof serverTarget>>;
let t: T;
let n = 0;
const PASSWORD = 'imap and pop';

before(async () => {
  t = await serverTarget({ cliAccounts: true });
});
after(async () => {
  await t.close();
});

async function account(count: number, pop?: Parameters<T['setPop']>[1]) {
  const address = `srv${++n}@example.com`;
  await t.addAccount(address, PASSWORD, pop ? { pop } : undefined);
  const bodies = Array.from({ length: count }, (_, i) => makeMessage(n * 100 + i));
  await t.deliver(address, bodies);
  return { address, bodies };
}

async function imap(address: string): Promise<ImapFlow> {
  const c = new ImapFlow({
    host: '127.0.0.1',
    port: t.server.ports.imaps,
    secure: true,
    tls: { ca: [t.ca], servername: 'localhost' },
    auth: { user: address, pass: PASSWORD },
    logger: false,
  });
  await c.connect();
  return c;
}

async function pop(address: string): Promise<LineClient> {
  const c = await LineClient.connect(t.pop3s, true, t.ca);
  const r = await c.login(address, PASSWORD);
  assert.match(r, /^\+OK/, r);
  return c;
}

async function status(c: ImapFlow, path: string): Promise<{ messages: number; unseen: number }> {
  const st = await c.status(path, { messages: true, unseen: true });
  assert.ok(st, `STATUS ${path}`);
  return { messages: st.messages ?? -1, unseen: st.unseen ?? -1 };
}

test('an IMAP client in IDLE sees the POP deletions as EXPUNGE right after QUIT', async () => {
  const { address } = await account(5);
  const im = await imap(address);
  try {
    await im.mailboxOpen('INBOX');
    const expunged: number[] = [];
    im.on('expunge', (e: { seq: number }) => expunged.push(e.seq));
    void im.idle();
    await new Promise((r) => setTimeout(r, 100));
    const p = await pop(address);
    for (const i of [1, 3, 5]) assert.match(await p.cmd(`DELE ${i}`), /^\+OK/);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(expunged, [], 'nothing happens before QUIT');
    const quitAt = Date.now();
    assert.equal(await p.cmd('QUIT'), '+OK Bye; 3 messages deleted');
    while (expunged.length < 3 && Date.now() - quitAt < 5000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(expunged.length, 3, 'three EXPUNGE responses during IDLE');
    assert.ok(Date.now() - quitAt < 2000, 'promptly after QUIT');
    const st = await status(im, 'INBOX');
    assert.equal(st.messages, 2);
  } finally {
    await im.logout().catch(() => {});
  }
});

test('a POP session survives an IMAP expunge during it; RETR of that message gets a clear -ERR', async () => {
  const { address, bodies } = await account(3);
  const p = await pop(address);
  assert.match(await p.cmd('STAT'), /^\+OK 3 /);
  const im = await imap(address);
  try {
    await im.mailboxOpen('INBOX');
    assert.ok(await im.messageDelete('2'));
    assert.equal(await p.cmd('RETR 2'), '-ERR Message 2 was removed by another client during this session');
    assert.equal(await p.cmd('RETR 3'), `+OK ${bodies[2]!.length} octets`);
    assert.ok((await p.multi()).equals(bodies[2]!));
    assert.match(await p.cmd('DELE 1'), /^\+OK/);
    assert.equal(await p.cmd('QUIT'), '+OK Bye; 1 message deleted');
    await p.waitClosed();
    const st = await status(im, 'INBOX');
    assert.equal(st.messages, 1);
  } finally {
    await im.logout().catch(() => {});
  }
});

test('each deleteAction set with the CLI, as an IMAP client sees it afterwards', async () => {
  for (const action of ['expunge', 'trash', 'archive', 'keep'] as const) {
    const { address } = await account(4, { deleteAction: action });
    const p = await pop(address);
    await p.cmd('RETR 1');
    await p.multi();
    for (const i of [1, 2]) assert.match(await p.cmd(`DELE ${i}`), /^\+OK/);
    assert.match(await p.cmd('QUIT'), /^\+OK Bye/);
    await p.waitClosed();
    const im = await imap(address);
    try {
      const inbox = await status(im, 'INBOX');
      const trash = await status(im, 'Trash');
      const archive = await status(im, 'Archive');
      const expect = {
        expunge: [2, 0, 0],
        trash: [2, 2, 0],
        archive: [2, 0, 2],
        keep: [4, 0, 0],
      }[action];
      assert.deepEqual([inbox.messages, trash.messages, archive.messages], expect, action);
      if (action === 'keep') {
        assert.equal(inbox.unseen, 2, 'keep: the two POP-deleted messages are \\Seen, the others not');
        const popView = await pop(address);
        assert.match(await popView.cmd('STAT'), /^\+OK 2 /, 'keep: POP no longer shows them');
        await popView.cmd('QUIT');
      }
      if (action === 'trash' || action === 'archive') {
        const box = action === 'trash' ? 'Trash' : 'Archive';
        assert.equal((await status(im, box)).unseen, 1, 'the retrieved message arrives \\Seen, the other one not');
      }
    } finally {
      await im.logout().catch(() => {});
    }
  }
});

test('CLI policy: pop.enabled false refuses with [AUTH]; pop.showSince now hides older mail; pop.markSeen false', async () => {
  const { address } = await account(2);
  await t.setPop(address, { enabled: false });
  const c = await LineClient.connect(t.pop3s, true, t.ca);
  assert.equal(await c.login(address, PASSWORD), '-ERR [AUTH] POP is disabled for this account; use IMAP, or ask the administrator to enable POP');
  await t.setPop(address, { enabled: true, markSeen: false });
  await new Promise((r) => setTimeout(r, 10));
  const r = await t.server.cli(['user', 'set', address, 'pop.showSince', 'now']);
  assert.equal(r.code, 0, r.stderr);
  await new Promise((r) => setTimeout(r, 10));
  await t.deliver(address, [makeMessage(4242)]);
  assert.match(await c.login(address, PASSWORD), /^\+OK Logged in; 1 message/);
  assert.match(await c.cmd('RETR 1'), /^\+OK/);
  assert.ok((await c.multi()).includes('Test message 4242'));
  await c.cmd('QUIT');
  await c.waitClosed();
  const inbox = await t.messages(address);
  assert.equal(inbox.length, 3);
  assert.ok(inbox.every((m) => (m.systemFlags & SystemFlag.Seen) === 0), 'markSeen false');
  const show = await t.server.cli(['user', 'show', address]);
  assert.match(show.stdout, /pop\.markSeen\s+false/);
});

test('IN-USE on the real server; a dropped connection deletes nothing', async () => {
  const { address } = await account(3);
  const a = await pop(address);
  for (const i of [1, 2, 3]) await a.cmd(`DELE ${i}`);
  const b = await LineClient.connect(t.pop3, false, t.ca);
  await b.stls();
  assert.equal(await b.login(address, PASSWORD), '-ERR [IN-USE] Another POP3 session of this account is open; try again when it ends');
  a.close();
  await new Promise((r) => setTimeout(r, 300));
  assert.match(await b.login(address, PASSWORD), /^\+OK Logged in; 3 messages/);
  await b.cmd('QUIT');
  assert.equal((await t.messages(address)).length, 3);
});
