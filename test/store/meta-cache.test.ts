// The SQLite store's parsed-meta cache (issue 12, `meta-cache-bytes`): bounded by bytes, not only
// by entries. Messages anyone can deliver — header blocks of 256 KiB in 1,000 fields — made 2,000
// cached parses pin gigabytes; FETCH of them now keeps the heap near the budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { MetaCache, META_CACHE_BYTES } from '../../src/store/sqlite/meta-cache.ts';
import { parseMessage } from '../../src/protocol/mime/parser.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function heap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** A message whose header block is ~250 KB in 1,000 fields (just under the parser's limits). */
function hugeHeader(i: number): Buffer {
  const fields: string[] = [`Subject: big ${i}`, 'From: a@example.test'];
  for (let k = 0; k < 990; k++) fields.push(`X-F${k}: ${String(i).padStart(6, '0')}${'v'.repeat(240)}`);
  return Buffer.from(fields.join('\r\n') + '\r\n\r\nbody\r\n');
}

test('FETCH of 150 messages with 250 KB headers keeps the parsed-meta cache within its byte budget', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-metacache-'));
  const store = await openSqliteStore({ path: join(dir, 'db.sqlite'), blobDir: join(dir, 'blobs') });
  try {
    await store.addDomain('example.test');
    const acc = await store.createAccount({ address: 'm@example.test', passwordHash: 'x' });
    const inbox = (await store.getMailbox(acc.id, 'INBOX'))!;
    const uids: number[] = [];
    for (let i = 0; i < 150; i++) {
      const raw = hugeHeader(i);
      const staged = await store.stageBlob(raw);
      try {
        uids.push((await store.append(staged, parseMessage(raw), { mailboxId: inbox.id })).uid);
      } finally {
        staged.release();
      }
    }
    const before = heap();
    let first: unknown = null;
    for (let i = 0; i < uids.length; i += 10) {
      const got = await store.getMessages(inbox.id, uids.slice(i, i + 10));
      assert.equal(got.length, 10);
      assert.equal(got[0]!.meta.envelope.subject, `big ${i}`);
      first ??= got[0]!.meta;
    }
    const grown = heap() - before;
    t.diagnostic(`heap +${(grown / 1048576).toFixed(1)} MB after FETCH of 150 × 250 KB headers`);
    // The first parse was evicted (by bytes: 150 entries are far below the 2,000-entry cap).
    const again = await store.getMessages(inbox.id, [uids[0]!]);
    assert.notEqual(again[0]!.meta, first, 'the oldest parse is still cached');
    assert.equal(again[0]!.meta.envelope.subject, 'big 0');
    // Kept by count alone, the 150 parses are ~50 MB of heap.
    assert.ok(grown < META_CACHE_BYTES, `heap grew ${(grown / 1048576).toFixed(1)} MB`);
    // Still served from the cache when they fit: the same object twice.
    const a = await store.getMessages(inbox.id, [uids.at(-1)!]);
    const b = await store.getMessages(inbox.id, [uids.at(-1)!]);
    assert.equal(a[0]!.meta, b[0]!.meta);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('MetaCache: least recently used out first, bounded by bytes and entries, oversize entries not kept', () => {
  const json = (n: number) => JSON.stringify({ v: 1, pad: 'x'.repeat(n) });
  const c = new MetaCache(100_000, 3);
  let loads = 0;
  const get = (id: string, n: number) => c.get(id, () => (loads++, json(n)));
  get('a', 1000);
  get('b', 1000);
  get('c', 1000);
  assert.equal(c.size, 3);
  get('a', 1000); // a is now the most recent
  get('d', 1000); // entries cap: b goes
  assert.equal(loads, 4);
  get('a', 1000);
  get('c', 1000);
  assert.equal(loads, 4, 'a and c cached');
  get('b', 1000);
  assert.equal(loads, 5, 'b was evicted');
  // A 7 KB JSON entry (~14 KB estimated) is over an eighth of 100 KB: parsed every time, not kept.
  const before = c.size;
  const big = get('big', 7000) as unknown as { pad: string };
  assert.equal(big.pad.length, 7000);
  assert.equal(c.size, before);
  get('big', 7000);
  assert.equal(loads, 7);
  assert.ok(c.bytes <= 100_000);
  const d = new MetaCache(5_000, 100); // ~830 bytes estimated each: six fit
  for (let i = 0; i < 20; i++) d.get(`k${i}`, () => json(400));
  assert.ok(d.bytes <= 5_000 && d.size < 20, `${d.size} entries, ${d.bytes} bytes`);
});
