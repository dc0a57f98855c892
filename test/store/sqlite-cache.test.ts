// The SQLite store caches whole-mailbox listings; a write by another process (a second store on
// the same files, as the admin CLI or an import would be) must still be seen at once, and callers
// must never be able to change the cached copy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import { SystemFlag, type Store } from '../../src/store/store.ts';

async function put(store: Store, mailboxId: number, i: number): Promise<number> {
  const raw = Buffer.from(`Subject: cache ${i}\r\n\r\nbody ${i}\r\n`);
  const staged = await store.stageBlob(raw);
  try {
    return (await store.append(staged, parseMessage(raw), { mailboxId })).uid;
  } finally {
    staged.release();
  }
}

test('mailbox listings follow writes from this store and from another process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-cache-'));
  const opts = { path: join(dir, 'db.sqlite'), blobDir: join(dir, 'blobs') };
  const a = await openSqliteStore(opts);
  const b = await openSqliteStore(opts);
  try {
    await a.addDomain('example.com');
    const acc = await a.createAccount({ address: 'c@example.com', passwordHash: 'x' });
    const inbox = (await a.getMailbox(acc.id, 'INBOX'))!;
    const u1 = await put(a, inbox.id, 1);
    assert.deepEqual((await a.listMessages(inbox.id)).map((m) => m.uid), [u1]);

    // Another process delivers and flags: the next listing shows it.
    const u2 = await put(b, inbox.id, 2);
    assert.deepEqual((await a.listMessages(inbox.id)).map((m) => m.uid), [u1, u2]);
    await b.storeFlags(inbox.id, [u1], 'add', { systemFlags: SystemFlag.Flagged, keywords: ['Work'] });
    const after = await a.listMessages(inbox.id);
    assert.equal(after[0]!.systemFlags, SystemFlag.Flagged);
    assert.deepEqual(after[0]!.keywords, ['Work']);
    assert.deepEqual((await a.listMessages(inbox.id, { changedSince: after[1]!.modseq })).map((m) => m.uid), [u1]);

    // Changing a returned summary does not change what the next caller gets.
    after[0]!.systemFlags = 0;
    after[0]!.keywords.push('Mutated');
    const again = await a.listMessages(inbox.id);
    assert.equal(again[0]!.systemFlags, SystemFlag.Flagged);
    assert.deepEqual(again[0]!.keywords, ['Work']);

    // Own writes: expunge, then the listing is current.
    await a.storeFlags(inbox.id, [u2], 'add', { systemFlags: SystemFlag.Deleted, keywords: [] });
    await a.expunge(inbox.id);
    assert.deepEqual((await a.listMessages(inbox.id)).map((m) => m.uid), [u1]);
    assert.deepEqual((await b.listMessages(inbox.id)).map((m) => m.uid), [u1]);
  } finally {
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
