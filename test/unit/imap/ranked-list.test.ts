// RankedList (src/imap/ranked-list.ts), the position index of CONTEXT=SORT (RFC 5267 §4.3.3):
// random inserts and removals against a plain sorted array, positions compared at every step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RankedList } from '../../../src/imap/ranked-list.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

test('RankedList: positions of 20,000 random inserts/removals match a sorted array (chunks split and drop)', () => {
  const r = rng(7);
  const cmp = (a: number, b: number) => a - b;
  const start = Array.from({ length: 3000 }, (_, i) => i * 4);
  const list = new RankedList(cmp, start);
  const ref = start.slice();
  for (let step = 0; step < 20000; step++) {
    // Removals lean heavy in the second half, so whole chunks empty and go.
    const removing = ref.length > 0 && r() < (step > 10000 ? 0.7 : 0.4);
    if (removing) {
      const i = Math.floor(r() * ref.length);
      const v = ref[i]!;
      assert.equal(list.remove(v), i);
      ref.splice(i, 1);
    } else {
      let v = Math.floor(r() * 40000);
      while (ref.includes(v)) v++;
      let i = 0;
      while (i < ref.length && ref[i]! < v) i++;
      assert.equal(list.insert(v), i);
      ref.splice(i, 0, v);
    }
    if (step % 997 === 0) {
      assert.deepEqual(list.toArray(), ref);
      const probe = ref[Math.floor(r() * ref.length)];
      if (probe !== undefined) assert.equal(list.rankOf(probe), ref.indexOf(probe));
    }
  }
  assert.equal(list.size, ref.length);
  assert.deepEqual(list.toArray(), ref);
  assert.equal(list.rankOf(-5), -1);
  assert.equal(list.remove(-5), -1);
});

test('RankedList: empty list, insert at the ends, remove to empty and insert again', () => {
  const list = new RankedList<number>((a, b) => b - a); // descending, as REVERSE criteria
  assert.equal(list.insert(5), 0);
  assert.equal(list.insert(9), 0);
  assert.equal(list.insert(1), 2);
  assert.deepEqual(list.toArray(), [9, 5, 1]);
  assert.equal(list.remove(9), 0);
  assert.equal(list.remove(1), 1);
  assert.equal(list.remove(5), 0);
  assert.equal(list.size, 0);
  assert.equal(list.insert(3), 0);
});

test('RankedList: 200,000 items, 20,000 changes in the middle stay fast (no full-list walk per change)', () => {
  const n = 200_000;
  const list = new RankedList((a: number, b: number) => a - b, Array.from({ length: n }, (_, i) => i * 2));
  const t0 = performance.now();
  for (let k = 0; k < 10_000; k++) {
    assert.equal(list.insert(n + 1 + 2 * k), n / 2 + 1 + 2 * k);
  }
  for (let k = 0; k < 10_000; k++) list.remove(n + 1 + 2 * k);
  const ms = performance.now() - t0;
  assert.equal(list.size, n);
  // A splice of a 200,000-entry array per change would be ~20,000 × 100 µs = 2 s.
  assert.ok(ms < 500, `${ms.toFixed(0)} ms for 20,000 changes`);
});
