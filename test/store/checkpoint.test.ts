// The server's SQLite store checkpoints its WAL on a worker thread (src/store/sqlite/checkpointer.ts),
// SQLite's automatic checkpoint in COMMIT (on the event loop) being off: the WAL must still be
// copied into the database file and start over (the worker writing the new header, not a COMMIT
// on the loop), so it does not grow without bound, and checkpoints beside the writes lose none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import { SystemFlag } from '../../src/store/store.ts';
import type { Checkpointer } from '../../src/store/sqlite/checkpointer.ts';

test('the WAL is checkpointed off the event loop and starts over; no write is lost', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-ckpt-'));
  const path = join(dir, 'db.sqlite');
  const store = await openSqliteStore({ path, blobDir: join(dir, 'blobs'), checkpointMs: 5, readCheck: 'throw' });
  const ckpt = (store as unknown as { checkpointer: Checkpointer }).checkpointer;
  try {
    assert.ok(ckpt, 'a checkpointer runs');
    await store.addDomain('example.com');
    const acc = await store.createAccount({ address: 'k@example.com', passwordHash: 'x' });
    const inbox = (await store.getMailbox(acc.id, 'INBOX'))!;
    const uids: number[] = [];
    // Many small commits (each its own batch), checkpoints running beside them.
    for (let i = 0; i < 300; i++) {
      const raw = Buffer.from(`Subject: ckpt ${i}\r\n\r\n${'x'.repeat(2000)} ${i}\r\n`);
      const staged = await store.stageBlob(raw);
      uids.push((await store.append(staged, parseMessage(raw), { mailboxId: inbox.id })).uid);
      staged.release();
      if (i % 3 === 0) await store.storeFlags(inbox.id, [uids[i]!], 'add', { systemFlags: SystemFlag.Seen, keywords: [] });
    }
    const r = (await ckpt.now())!;
    assert.equal(r.busy, 0);
    assert.equal(r.log, r.checkpointed, 'every frame of the WAL is in the database file');
    // The worker starts the WAL over itself (its one-row write, the server's commits paused), so
    // the WAL holds only what came after: a few frames, not the 300 commits'.
    for (let i = 0; ckpt.restarts === 0; i++) {
      assert.ok(i < 1000, 'the checkpointer never restarted the WAL');
      await new Promise((r) => setTimeout(r, 10));
    }
    await store.storeFlags(inbox.id, [uids[1]!], 'add', { systemFlags: SystemFlag.Flagged, keywords: [] });
    const after = (await ckpt.now())!;
    assert.ok(after.log > 0 && after.log < 20, `the WAL started over (${after.log} frames)`);
    // And the database file alone (WAL aside) has the writes: a checkpoint copied them.
    const listed = await store.listMessages(inbox.id);
    assert.deepEqual(listed.map((m) => m.uid), uids);
    assert.equal(listed.filter((m) => m.systemFlags & SystemFlag.Seen).length, 100);
  } finally {
    await store.close();
  }
  // Closed: the WAL is gone into the database; it opens with every message.
  const db = new Database(path, { readonly: true });
  try {
    assert.equal(db.prepare('SELECT count(*) FROM messages').pluck().get(), 300);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
