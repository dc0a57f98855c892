// THREAD algorithms and the THREAD response (src/protocol/imap/thread.ts), in-process: the RFC
// 5256 §4 response example, and nothing recursive (a thread 100,000 messages deep, a dummy with
// 100,000 children) while pausing as it goes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatThreads, references, orderedSubject } from '../../../src/protocol/imap/thread.ts';
import type { SortItem } from '../../../src/protocol/imap/sort-order.ts';

function item(seq: number, o: Partial<SortItem> = {}): SortItem {
  return { uid: seq, seq, internalDate: 0, size: 0, sent: seq, subject: `S${seq}`, reply: false, from: '', to: '', cc: '', displayFrom: '', displayTo: '', messageId: `m${seq}`, refs: [], ...o };
}

test('RFC 5256 §4 example: * THREAD (2)(3 6 (4 23)(44 7 96)), later messages parents of earlier ones', async () => {
  const items = [
    item(2),
    item(3, { sent: 1 }),
    item(4, { refs: ['m3', 'm6'], sent: 10 }),
    item(6, { refs: ['m3'], sent: 5 }),
    item(7, { refs: ['m44'], sent: 30 }),
    item(23, { refs: ['m4'], sent: 40 }),
    item(44, { refs: ['m6'], sent: 20 }),
    item(96, { refs: ['m7'], sent: 50 }),
  ];
  // Threads in sent-date order: 2 (0) before 3 (1).
  items[0] = item(2, { sent: 0 });
  assert.equal(formatThreads(await references(items, async () => {}), (m) => m.seq), '(2)(3 6 (4 23)(44 7 96))');
});

test('a thread 100,000 deep and a parent with 100,000 children: no recursion, pauses along the way', async () => {
  const n = 100_000;
  const chain = Array.from({ length: n }, (_, i) => item(i + 1, { refs: i ? [`m${i}`] : [], subject: 'same' }));
  let pauses = 0;
  const deep = await references(chain, async () => void pauses++);
  const text = formatThreads(deep, (m) => m.seq);
  assert.equal(text, `(${Array.from({ length: n }, (_, i) => i + 1).join(' ')})`);
  assert.ok(pauses > 10, `${pauses} pauses`);
  const wide = Array.from({ length: n }, (_, i) => item(i + 1, { refs: ['root'], subject: 'same' }));
  const w = formatThreads(await references(wide, async () => {}), (m) => m.seq);
  assert.equal(w.length, `(${Array.from({ length: n }, (_, i) => `(${i + 1})`).join('')})`.length);
  const os = formatThreads(await orderedSubject(wide, async () => {}), (m) => m.seq);
  assert.ok(os.startsWith('(1 (2)(3)') && os.endsWith(`(${n}))`));
});
