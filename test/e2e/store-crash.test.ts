// Issue #2: SIGKILL in the middle of 500 concurrent deliveries leaves a store that opens cleanly,
// where every delivery that had returned is present and intact, and nothing is half-written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, defaultDatabase } from '../../src/store/open.ts';
import { ROOT } from '../helpers/server.ts';
import { parseMessage } from '../../src/protocol/mime/parser.ts';

test('SIGKILL during 500 concurrent deliveries loses no acknowledged message (sqlite)', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pillarbox-crash-'));
  const database = defaultDatabase(dataDir);
  try {
    const setup = await openStore(database, dataDir);
    await setup.addDomain('example.com');
    await setup.createAccount({ address: 'crash@example.com', passwordHash: 'x' });
    await setup.close();

    const child = spawn(process.execPath, [join(ROOT, 'test/helpers/deliver-worker.ts'), dataDir, database, '500'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const acked = new Map<number, string>();
    let buf = '';
    let killed = false;
    let done = false;
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line === 'DONE') done = true;
        const m = /^OK (\d+) ([0-9a-f]{64})$/.exec(line);
        if (m) acked.set(Number(m[1]), m[2]!);
        if (acked.size >= 150 && !killed) {
          killed = true;
          child.kill('SIGKILL');
        }
      }
    });
    await new Promise((r) => child.once('exit', r));
    assert.ok(killed && !done, 'the writer was killed mid-run');
    assert.ok(acked.size >= 150);

    const store = await openStore(database, dataDir, { collectGarbage: true });
    try {
      const account = (await store.getAccount('crash@example.com'))!;
      const inbox = (await store.getMailbox(account.id, 'INBOX'))!;
      const msgs = await store.listMessages(inbox.id);
      const byUid = new Map(msgs.map((m) => [m.uid, m]));
      for (const [uid, blobId] of acked) {
        const m = byUid.get(uid);
        assert.ok(m, `acknowledged delivery uid ${uid} is present`);
        assert.equal(m.blobId, blobId);
      }
      // Nothing half-written: every stored message's body is complete and matches its hash.
      let total = 0;
      for (const m of msgs) {
        const body = await store.readBlob(m.blobId);
        assert.equal(body.length, m.size);
        assert.equal(createHash('sha256').update(body).digest('hex'), m.blobId);
        total += m.size;
        const [rec] = await store.getMessages(inbox.id, [m.uid]);
        assert.match(rec!.meta.envelope.subject ?? '', /^crash \d+$/);
      }
      const after = (await store.getAccount('crash@example.com'))!;
      assert.equal(after.usedBytes, total, 'quota usage equals the stored messages');
      assert.equal(after.messageCount, msgs.length);
      // UIDs strictly increase and the mailbox can take more mail after the crash.
      const status = await store.mailboxStatus(inbox.id);
      assert.ok(status.uidNext > Math.max(0, ...msgs.map((m) => m.uid)));
      const raw = Buffer.from('Subject: after\r\n\r\nok\r\n');
      const staged = await store.stageBlob(raw);
      const [r] = await store.deliver(staged, parseMessage(raw), [{ mailboxId: inbox.id }]);
      staged.release();
      assert.ok(r?.ok);
      // Garbage collection left no temp files.
      assert.deepEqual(readdirSync(join(dataDir, 'blobs', 'tmp')), []);
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
