// pillarbox backup DEST while mail keeps arriving and being expunged: the backup, used as a data
// folder by a new server, holds every message of its snapshot byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { ImapFlow } from 'imapflow';
import { startServer, runCli } from '../helpers/server.ts';

const USER = 'keeper@example.com';
const PASS = 'backup-pass-1';

async function readAll(port: number, ca: string): Promise<Map<string, Buffer>> {
  const c = new ImapFlow({ host: '127.0.0.1', port, secure: true, tls: { ca: [ca], servername: 'localhost' }, auth: { user: USER, pass: PASS }, logger: false });
  await c.connect();
  const out = new Map<string, Buffer>();
  const lock = await c.getMailboxLock('INBOX');
  try {
    for await (const m of c.fetch('1:*', { source: true, envelope: true }, { uid: true })) out.set(m.envelope!.subject!, m.source!);
  } catch (err) {
    if (!/Nothing to fetch|empty/i.test(String(err))) throw err;
  } finally {
    lock.release();
    await c.logout();
  }
  return out;
}

test('backup while delivering and expunging: the copy opens as a data folder with every snapshot message intact', async () => {
  const srv = await startServer();
  const dest = mkdtempSync(join(tmpdir(), 'pillarbox-backup-'));
  try {
    await srv.addUser(USER, PASS);
    const send = nodemailer.createTransport({ host: '127.0.0.1', port: srv.ports.smtp, secure: false, ignoreTLS: true, pool: true });
    const body = (i: number) => `message ${i}\n` + 'x'.repeat(2000 + i) + '\n';
    for (let i = 0; i < 40; i++) await send.sendMail({ from: 'a@elsewhere.example', to: USER, subject: `m${i}`, text: body(i) });
    // Keep delivering while the backup runs, and expunge some of what is there.
    let sending = true;
    const more = (async () => {
      for (let i = 40; sending && i < 400; i++) await send.sendMail({ from: 'a@elsewhere.example', to: USER, subject: `m${i}`, text: body(i) });
    })();
    const imap = new ImapFlow({ host: '127.0.0.1', port: srv.ports.imaps, secure: true, tls: { ca: [srv.ca], servername: 'localhost' }, auth: { user: USER, pass: PASS }, logger: false });
    await imap.connect();
    await imap.mailboxOpen('INBOX');
    await imap.messageDelete('1:10', { uid: true });
    const r = await runCli(['backup', dest, '--data', srv.dataDir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.ok(info.blobs >= 30, JSON.stringify(info));
    await imap.messageDelete('11:20', { uid: true });
    sending = false;
    await more;
    await imap.logout();
    send.close();
    const live = await readAll(srv.ports.imaps, srv.ca);

    // A second backup into the same folder copies only what is new.
    const r2 = await runCli(['backup', dest, '--data', srv.dataDir, '--json']);
    assert.equal(r2.code, 0, r2.stderr);
    assert.ok(JSON.parse(r2.stdout).copied < JSON.parse(r2.stdout).blobs, r2.stdout);

    // The backup as a data folder of its own server.
    const restored = await startServer({ dataDir: dest });
    try {
      const back = await readAll(restored.ports.imaps, restored.ca);
      assert.ok(back.size >= 20, `restored ${back.size} messages`);
      for (const [subject, bytes] of back) {
        const orig = live.get(subject);
        // Expunged after the second backup's snapshot? Then it can't be compared; all others must match.
        if (orig) assert.ok(orig.equals(bytes), `${subject} differs after restore`);
        assert.match(bytes.toString(), new RegExp(`message ${subject.slice(1)}\\r?\\n`));
      }
      assert.deepEqual([...back.keys()].sort(), [...live.keys()].sort(), 'the second backup has the mailbox as it was then');
    } finally {
      await restored.stop();
    }
  } finally {
    await srv.stop();
    rmSync(dest, { recursive: true, force: true });
  }
});

test('backup refuses a PostgreSQL store and the data folder itself, with one clear line', async () => {
  const pg = await runCli(['backup', '/tmp/x', '--database', 'postgres://127.0.0.1/test']);
  assert.equal(pg.code, 1);
  assert.match(pg.stderr, /pg_dump/);
  const srv = await startServer();
  try {
    const same = await runCli(['backup', srv.dataDir, '--data', srv.dataDir]);
    assert.equal(same.code, 1);
    assert.match(same.stderr, /must not be the data folder/);
  } finally {
    await srv.stop();
  }
});
