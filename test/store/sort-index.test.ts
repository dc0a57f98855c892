// The SORT/THREAD key index (src/imap/sort-index.ts) over a real store, on both backends: the
// paths the IMAP tests rarely reach. Keys loaded out of UID order (a session that knows messages
// the index skipped), compaction after most messages went, orders kept across both, and the
// per-store memory bound (least recently used mailboxes dropped).
import assert from 'node:assert/strict';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import type { Store } from '../../src/store/store.ts';
import { LoopBudget } from '../../src/obs/loop-lag.ts';
import { KeyIndex, keyIndex, prewarmKeyIndex, trimSortIndexes, wantsOf } from '../../src/imap/sort-index.ts';
import { eachBackend } from './backends.ts';

const SUBJECT = [{ key: 'SUBJECT' as const, reverse: false }];

/** A mailbox with `n` messages whose subjects sort in a known, shuffled order; returns its id. */
async function fill(store: Store, n: number): Promise<{ mailboxId: number; uidValidity: number; subjectOf: (uid: number) => string }> {
  if (!(await store.getDomain('example.com'))) await store.addDomain('example.com');
  const a = await store.createAccount({ address: `u${Math.random().toString(36).slice(2)}@example.com`, passwordHash: 'x' });
  const mb = (await store.getMailbox(a.id, 'INBOX'))!;
  const subjectOf = (uid: number) => `subject ${String((uid * 7919) % 1009).padStart(4, '0')}`;
  for (let i = 1; i <= n; i += 100) {
    const items = [];
    for (let u = i; u < Math.min(n + 1, i + 100); u++) {
      const raw = Buffer.from(`Subject: ${subjectOf(u)}\r\nMessage-ID: <m${u}@example.org>\r\n\r\nbody ${u}\r\n`);
      const staged = await store.stageBlob(raw);
      items.push({ staged, item: { blob: staged, meta: parseMessage(raw), internalDate: 1000 * u } });
    }
    await store.appendMessages(mb.id, items.map((x) => x.item));
    for (const x of items) x.staged.release();
  }
  return { mailboxId: mb.id, uidValidity: mb.uidValidity, subjectOf };
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/** The UIDs of an index order (positions), and the expected: by subject, then UID. */
function uidsOf(ix: KeyIndex, order: Uint32Array): number[] {
  return Array.from(order, (p) => ix.uid[p]!);
}
const bySubject = (uids: number[], subjectOf: (u: number) => string) => [...uids].sort((a, b) => (subjectOf(a) < subjectOf(b) ? -1 : subjectOf(a) > subjectOf(b) ? 1 : a - b));

eachBackend('SORT key index', (run) => {
  run('keys read out of UID order, then most messages expunged: positions, orders and keys stay right', async ({ store }) => {
    const { mailboxId, uidValidity, subjectOf } = await fill(store, 420);
    const ix = new KeyIndex(mailboxId, uidValidity);
    const b = new LoopBudget(5);
    // A session that knows only some (the others arrive "earlier" later).
    const some = range(1, 420).filter((u) => u % 3 !== 0);
    await ix.exclusive(() => ix.cover(store, some, new Set(), wantsOf(SUBJECT), b));
    assert.deepEqual(uidsOf(ix, await ix.exclusive(() => ix.order(SUBJECT, b))), bySubject(some, subjectOf));
    // One that knows all: the skipped ones are merged in, in UID order.
    const cov = await ix.exclusive(() => ix.cover(store, range(1, 420), new Set(), wantsOf(SUBJECT), b));
    assert.deepEqual(Array.from(ix.uid.subarray(0, ix.n)), range(1, 420));
    assert.deepEqual(Array.from(cov.posOfSeq), range(0, 419));
    assert.deepEqual(uidsOf(ix, await ix.exclusive(() => ix.order(SUBJECT, b))), bySubject(range(1, 420), subjectOf));
    // Messages 1–300 expunged (and announced): the index drops them, the order follows.
    await store.expunge(mailboxId, { uids: range(1, 300) });
    const gen = ix.gen;
    const after = await ix.exclusive(() => ix.cover(store, range(301, 420), new Set(), wantsOf(SUBJECT), b));
    assert.ok(ix.gen > gen, 'compacted');
    assert.equal(ix.n, 120);
    assert.deepEqual(Array.from(after.posOfSeq), range(0, 119));
    assert.deepEqual(uidsOf(ix, await ix.exclusive(() => ix.order(SUBJECT, b))), bySubject(range(301, 420), subjectOf));
    assert.deepEqual(ix.strings.get('subject')!.slice(0, 3), [301, 302, 303].map((u) => subjectOf(u).toUpperCase())); // collation keys (RFC 5051)
    // One expunged but not yet announced to the session (`gone`): left out of its positions.
    const g = await ix.exclusive(() => ix.cover(store, range(301, 420), new Set([305]), wantsOf(SUBJECT), b));
    assert.equal(g.posOfSeq[4], -1);
  });

  run('memory: the least recently used mailboxes are dropped past the bound', async ({ store }) => {
    const x = await fill(store, 200);
    const y = await fill(store, 200);
    const b = new LoopBudget(5);
    const use = async (m: { mailboxId: number; uidValidity: number }) => {
      const { index, done } = keyIndex(store, m.mailboxId, m.uidValidity);
      await index.exclusive(() => index.cover(store, range(1, 200), new Set(), wantsOf(SUBJECT), b));
      done();
      return index;
    };
    const ix = await use(x);
    const iy = await use(y);
    assert.ok(ix.bytes > 0 && iy.bytes > 0);
    assert.equal(keyIndex(store, x.mailboxId, x.uidValidity).index, ix, 'kept while it fits');
    // Room for one: y was used last before x was looked up again, so y goes.
    trimSortIndexes(store, ix.bytes + 1);
    assert.equal(keyIndex(store, x.mailboxId, x.uidValidity).index, ix);
    assert.notEqual(keyIndex(store, y.mailboxId, y.uidValidity).index, iy);
  });

  run('prewarm at SELECT: the keys and THREAD ids read in the background, once; a SORT meanwhile waits for them', async ({ store }) => {
    const { mailboxId, uidValidity, subjectOf } = await fill(store, 300);
    const errors: unknown[] = [];
    const onError = (e: unknown) => void errors.push(e);
    assert.equal(prewarmKeyIndex(store, mailboxId, uidValidity, range(1, 300), onError), true);
    // A second SELECT while it runs starts nothing more.
    assert.equal(prewarmKeyIndex(store, mailboxId, uidValidity, range(1, 300), onError), false);
    const { index, done } = keyIndex(store, mailboxId, uidValidity);
    assert.equal(index.prewarming, true);
    const b = new LoopBudget(5);
    // A SORT queued behind it: served from what the build read, in the right order.
    const order = await index.exclusive(async () => {
      assert.equal(index.n, 300, 'every entry read before the SORT runs');
      await index.cover(store, range(1, 300), new Set(), wantsOf(SUBJECT), b);
      return index.order(SUBJECT, b);
    });
    done();
    assert.deepEqual(uidsOf(index, order), bySubject(range(1, 300), subjectOf));
    assert.deepEqual(index.messageId!.slice(0, 2), ['m1@example.org', 'm2@example.org'], 'THREAD ids read in the same pass');
    await index.exclusive(async () => {});
    assert.equal(index.prewarming, false);
    assert.equal(errors.length, 0, String(errors[0]));
    // Built: a later SELECT reads nothing again; new mail after it is read by the next one.
    assert.equal(prewarmKeyIndex(store, mailboxId, uidValidity, range(1, 300), onError), false);
    // Too big for the store's bound: not built at all (it could not be kept).
    const other = await fill(store, 50);
    assert.equal(prewarmKeyIndex(store, other.mailboxId, other.uidValidity, range(1, 50), onError, 100), false);
    assert.equal(keyIndex(store, other.mailboxId, other.uidValidity).index.n, 0);
  });
});
