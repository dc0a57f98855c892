// New mail added to kept REFERENCES threads (addReference, src/protocol/imap/thread.ts) must give
// exactly RFC 5256 §3's answer for all the messages: on seeded random mailboxes (replies to earlier
// and later messages, parents never delivered, duplicate and missing Message-IDs, shared and empty
// base subjects, equal dates), after each new message the kept answer is compared with
// references() run over everything. Where addReference declines, the threads are computed again
// (as src/imap/thread-cache.ts does) and the test goes on from there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addReference, formatThreads, references, referencesState } from '../../../src/protocol/imap/thread.ts';
import type { SortItem } from '../../../src/protocol/imap/sort-order.ts';
import { flattenThreads, patchTokens } from '../../../src/protocol/imap/thread-tokens.ts';
import { mulberry32 } from '../../../bench/lib/corpus.ts';

const none = async () => {};

function mailbox(seed: number, n: number): SortItem[] {
  const r = mulberry32(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const subjects = ['', 'budget', 'lunch', 'release', 'outage', ...Array.from({ length: 40 }, (_, i) => `topic ${i}`)];
  const items: SortItem[] = [];
  for (let i = 1; i <= n; i++) {
    const x = r();
    // Most messages reply to an earlier one (its chain), some to one never delivered or yet to come.
    const refs: string[] = [];
    if (x < 0.6 && i > 1) {
      const parent = items[Math.floor(r() * items.length)]!;
      if (parent.messageId !== null) refs.push(...parent.refs.slice(-3), parent.messageId);
    } else if (x < 0.7) refs.push(`missing${Math.floor(r() * 20)}`);
    else if (x < 0.75) refs.push(`m${i + 1 + Math.floor(r() * 5)}`);
    const y = r();
    const messageId = y < 0.05 ? null : y < 0.08 ? `m${Math.max(1, i - 1)}` : `m${i}`;
    items.push({
      uid: i,
      seq: i,
      internalDate: 1000 * i,
      size: 0,
      sent: r() < 0.1 ? 5000 : Math.floor(r() * 100) * 1000,
      subject: refs.length && r() < 0.8 && items.length ? (items.find((m) => m.messageId === refs[refs.length - 1])?.subject ?? pick(subjects)) : pick(subjects),
      reply: refs.length > 0 && r() < 0.7,
      from: '',
      to: '',
      cc: '',
      displayFrom: '',
      displayTo: '',
      messageId,
      refs,
    });
  }
  return items;
}

test('addReference gives references() of all the messages, new mail after new mail (300 seeded mailboxes)', async () => {
  let added = 0;
  let declined = 0;
  let patchFailed = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const items = mailbox(seed, 30 + (seed % 50));
    const start = Math.floor(items.length / 2);
    let state = await referencesState(items.slice(0, start), none);
    let tokens: Int32Array | null = await flattenThreads(state.roots, start, none);
    for (let i = start; i < items.length; i++) {
      const full = await references(items.slice(0, i + 1), none);
      const want = formatThreads(full, (m) => m.seq);
      const placed = addReference(state, items[i]!);
      if (placed) {
        added++;
        assert.equal(formatThreads(state.roots, (m) => m.seq), want, `seed ${seed}, message ${i + 1}`);
        // The kept tokens, patched, are the tokens of the whole answer.
        tokens = tokens && patchTokens(tokens, placed, items[i]!.uid);
        if (tokens) assert.deepEqual(tokens, await flattenThreads(full, i + 1, none), `tokens: seed ${seed}, message ${i + 1}`);
        else patchFailed++;
      } else {
        declined++;
        state = await referencesState(items.slice(0, i + 1), none);
        assert.equal(formatThreads(state.roots, (m) => m.seq), want);
        tokens = null;
      }
      tokens ??= await flattenThreads(state.roots, i + 1, none);
    }
  }
  console.log(`# ${added} added, ${declined} declined`);
  assert.equal(patchFailed, 0, 'every placed message patched into the tokens');
  // Both paths taken, the placing one often.
  assert.ok(added > 1000 && declined > 500, `${added} added, ${declined} declined`);
});

test('addReference declines what it cannot place: a message an earlier one named, an older sequence number', async () => {
  const item = (seq: number, o: Partial<SortItem> = {}): SortItem => ({ uid: seq, seq, internalDate: 0, size: 0, sent: seq, subject: `s${seq}`, reply: false, from: '', to: '', cc: '', displayFrom: '', displayTo: '', messageId: `m${seq}`, refs: [], ...o });
  const state = await referencesState([item(1), item(2, { refs: ['m3'] })], none);
  assert.equal(addReference(state, item(3)), null, 'm3 was a dummy (named by 2): step 1 fills it');
  assert.equal(addReference(state, item(2, { messageId: 'x' })), null, 'not after the others');
  assert.deepEqual(addReference(state, item(4, { refs: ['m1'] })), { parent: state.roots[0], index: 0 });
  assert.equal(formatThreads(state.roots, (m) => m.seq), '(1 4)(2)');
});
