// SIGKILL of the server in the middle of a UID MOVE / UID COPY of 131,072 messages (PILLARBOX_BULK_N
// to change it). After a restart: MOVE — every message is in exactly one of the two mailboxes
// (never both, never neither), told apart by their INTERNALDATE, which MOVE keeps; COPY — the
// destination has none of the copies (RFC 9051 §6.4.7), and the UIDs they used are never given
// out again. Run alone: node scripts/run-tests.mjs bulk-crash
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { BASE_DATE, fillSqlite } from '../../helpers/bulk-fill.ts';
import { openStore, defaultDatabase } from '../../../src/store/open.ts';
import { RawImap } from './raw-client.ts';

const N = Number(process.env.PILLARBOX_BULK_N ?? 131072);

async function stopped<T>(server: TestServer, dataDir: string, fn: (s: Awaited<ReturnType<typeof openStore>>) => Promise<T>): Promise<T> {
  await server.stop();
  const store = await openStore(defaultDatabase(dataDir), dataDir);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Polls the server's database (WAL: a reader next to the writer) until `pred` holds. */
async function waitInDb(dataDir: string, pred: (db: Database.Database) => boolean, timeoutMs = 60_000): Promise<void> {
  const db = new Database(defaultDatabase(dataDir), { readonly: true, fileMustExist: true });
  try {
    const end = Date.now() + timeoutMs;
    while (!pred(db)) {
      if (Date.now() > end) throw new Error('condition not reached in the database');
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    db.close();
  }
}

test(`SIGKILL in the middle of UID MOVE of ${N} messages: each message in exactly one mailbox`, { timeout: 600_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pillarbox-bulkcrash-'));
  try {
    await fillSqlite(dataDir, ['big@example.com'], { address: 'big@example.com', mailbox: 'INBOX', count: N });
    let server = await startServer({ dataDir, plaintext: true });
    const mover = await RawImap.connect(server.ports.imap);
    await mover.login('big@example.com', 'pw');
    await mover.cmd('SELECT INBOX', 30_000);
    // Another session of the user watches Trash fill up, step by step, in IDLE.
    const watcher = await RawImap.connect(server.ports.imap);
    await watcher.login('big@example.com', 'pw');
    await watcher.cmd('SELECT Trash');
    watcher.write('w1 IDLE\r\n');
    assert.match(await watcher.readLine(), /^\+/);
    mover.write('m1 UID MOVE 1:* Trash\r\n');
    let seen = 0;
    while (seen < N / 5) {
      const line = await watcher.readLine(60_000);
      const m = /^\* (\d+) EXISTS$/.exec(line);
      if (m) seen = Number(m[1]);
    }
    await server.kill();
    console.log(`# killed with ${seen} of ${N} messages announced in Trash`);
    assert.ok(seen < N, 'killed before the move ended');
    mover.close();
    watcher.close();

    server = await server.restart();
    await stopped(server, dataDir, async (store) => {
      const acct = (await store.getAccount('big@example.com'))!;
      const inbox = await store.listMessages((await store.getMailbox(acct.id, 'INBOX'))!.id);
      const trashBox = (await store.getMailbox(acct.id, 'Trash'))!;
      const trash = await store.listMessages(trashBox.id);
      console.log(`# after restart: INBOX ${inbox.length}, Trash ${trash.length}`);
      assert.ok(trash.length >= seen && inbox.length > 0, 'a partial move');
      assert.equal(inbox.length + trash.length, N, 'no message lost or duplicated');
      const where = new Map<number, string>();
      for (const [name, list] of [['INBOX', inbox], ['Trash', trash]] as const) {
        for (const m of list) {
          assert.ok(!where.has(m.internalDate), `message ${m.internalDate} in ${where.get(m.internalDate)} and ${name}`);
          where.set(m.internalDate, name);
        }
      }
      for (let i = 1; i <= N; i++) assert.ok(where.has(BASE_DATE + i * 1000), `message ${i} is somewhere`);
      // UIDs in Trash ascending below its UIDNEXT; quota usage exact.
      assert.ok(trash.every((m, k) => k === 0 || m.uid > trash[k - 1]!.uid));
      assert.ok(trash.length === 0 || trashBox.uidNext > trash[trash.length - 1]!.uid);
      const after = (await store.getAccount('big@example.com'))!;
      assert.equal(after.messageCount, N);
      assert.equal(after.usedBytes, [...inbox, ...trash].reduce((s, m) => s + m.size, 0));
    });
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test(`SIGKILL in the middle of UID COPY of ${N} messages: the destination has none of them`, { timeout: 600_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pillarbox-bulkcrash-'));
  try {
    await fillSqlite(dataDir, ['big@example.com'], { address: 'big@example.com', mailbox: 'INBOX', count: N });
    let server = await startServer({ dataDir, plaintext: true });
    const copier = await RawImap.connect(server.ports.imap);
    await copier.login('big@example.com', 'pw');
    await copier.cmd('SELECT INBOX', 30_000);
    copier.write('c1 UID COPY 1:* Archive\r\n');
    // The copies are not visible to clients while staged: watch the database for progress.
    let staged = 0;
    await waitInDb(dataDir, (db) => {
      staged = (db.prepare("SELECT count(*) FROM messages WHERE mailbox_id = (SELECT m.id FROM mailboxes m JOIN accounts a ON a.id = m.account_id WHERE m.name = 'Archive')").pluck().get() as number) ?? 0;
      return staged >= N / 5;
    });
    await server.kill();
    assert.ok(!copier.buf.toString('latin1').includes('c1 OK'), 'killed before the copy ended');
    console.log(`# killed with ${staged} of ${N} copies staged`);
    copier.close();

    server = await server.restart();
    assert.match(server.output(), /store\.bulk-recovered copies=1/);
    const c = await RawImap.connect(server.ports.imap);
    await c.login('big@example.com', 'pw');
    const st = await c.cmd('STATUS Archive (MESSAGES UIDNEXT)');
    const m = /MESSAGES (\d+) UIDNEXT (\d+)/.exec(st.lines.join(' '));
    assert.ok(m, st.lines.join('\n'));
    assert.equal(Number(m[1]), 0, 'no partial copy');
    const uidNext = Number(m[2]);
    assert.ok(uidNext > staged, `UIDNEXT ${uidNext} is past the staged UIDs`);
    // A new copy gets UIDs from there on: the staged ones are never reused.
    await c.cmd('SELECT INBOX', 30_000);
    const r = await c.cmd('UID COPY 1:3 Archive');
    const cu = / \[COPYUID \d+ 1:3 (\d+):(\d+)\]/.exec(r.tagged);
    assert.ok(cu, r.tagged);
    assert.ok(Number(cu[1]) >= uidNext);
    const st2 = await c.cmd('STATUS INBOX (MESSAGES)');
    assert.ok(st2.lines.some((l) => l.includes(`MESSAGES ${N}`)), st2.lines.join('\n'));
    c.close();
    await stopped(server, dataDir, async (store) => {
      const acct = (await store.getAccount('big@example.com'))!;
      assert.equal(acct.messageCount, N + 3);
      const archive = await store.listMessages((await store.getMailbox(acct.id, 'Archive'))!.id);
      assert.deepEqual(archive.map((x) => x.internalDate), [1, 2, 3].map((i) => BASE_DATE + i * 1000));
    });
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
