// SORT / THREAD keys (src/protocol/imap/sort-keys.ts): base subject (RFC 5256 §2.1), the
// i;unicode-casemap collation (RFC 5051), message-id normalization (RFC 5256 §3 REFERENCES) and
// the ordering helpers; linear on hostile subjects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { baseSubject, collationKey, compareKeys, messageIds } from '../../../src/protocol/imap/sort-keys.ts';
import { sortSliced } from '../../../src/protocol/imap/sort-order.ts';

test('RFC 5256 §2.1 base subject: leaders, blobs, trailers, [fwd: …], repeated; reply/forward detection', () => {
  const cases: Array<[string, string, boolean]> = [
    ['Hello', 'Hello', false],
    ['Re: Hello', 'Hello', true],
    ['RE:Hello', 'Hello', true],
    ['re : Hello', 'Hello', true],
    ['Fw: Hello', 'Hello', true],
    ['FWD: Hello', 'Hello', true],
    ['Re[2]: Hello', 'Hello', true],
    ['Re [2]: Hello', 'Hello', true],
    ['Re: Re: Fwd: Hello', 'Hello', true],
    ['[list] Re: Hello', 'Hello', true],
    ['[list]   Hello', 'Hello', false],
    ['[a][b] Re: [c] Hello', 'Hello', true],
    ['Hello (fwd)', 'Hello', true],
    ['Hello (FWD)  (fwd) ', 'Hello', true],
    ['[fwd: Hello]', 'Hello', true],
    ['[Fwd: Re: Hello (fwd)]', 'Hello', true],
    // Not a subj-fwd (no "]" at the end): "[fwd: Hello] " is a plain subj-blob, removed (step 4).
    ['[fwd: Hello] extra', 'extra', false],
    // A blob is kept when removing it would leave nothing (subj-middle: last blob is the subj-base).
    ['[only]', '[only]', false],
    ['Re: [only]', '[only]', true],
    ['  Hello \t  world  ', 'Hello world', false],
    ['Rex: Hello', 'Rex: Hello', false],
    ['Re', 'Re', false],
    ['', '', false],
    ['Re:', '', true],
    ['[unclosed Re: Hello', '[unclosed Re: Hello', false],
  ];
  for (const [subject, base, reply] of cases) assert.deepEqual(baseSubject(subject), { base, reply }, JSON.stringify(subject));
});

test('RFC 5051 i;unicode-casemap keys: titlecase + NFKD; octet order including supplementary characters', () => {
  assert.equal(collationKey('Hello'), 'HELLO');
  assert.equal(collationKey('résumé'), 'RE\u0301SUME\u0301');
  assert.equal(collationKey('Straße'), 'STRAßE', 'ß has no simple titlecase mapping');
  assert.equal(collationKey('ǆemal'), '\u01c5EMAL'.normalize('NFKD'), 'digraphs take their titlecase form');
  assert.equal(collationKey('ｆｕｌｌ'), 'FULL', 'compatibility decomposition: fullwidth forms are ASCII');
  assert.equal(compareKeys('A', 'B') < 0, true);
  assert.equal(compareKeys('', 'A') < 0, true, 'the empty string first');
  assert.equal(compareKeys('AB', 'A') > 0, true);
  // UTF-8 order: U+FFFD (EF BF BD) before U+1F600 (F0 9F 98 80), though UTF-16 says otherwise.
  const key = (s: string) => collationKey(s);
  assert.equal(compareKeys(key('\ufffd'), key('\u{1f600}')) < 0, true);
  assert.equal(compareKeys(key('\u{1f600}'), key('\ufffd')) > 0, true);
  assert.equal(compareKeys(key('\ud7fb'), key('\ue000')) < 0, true);
  assert.equal(compareKeys(key('x\ue000'), key('x\u{10000}')) < 0, true);
  // The order of the keys is the order of the code points of the mapped strings.
  const strs = ['a', 'é', '\ue000', '\uffee', '\u{1f600}', '\u{10400}', 'z', 'ÿ', '\u4e00'];
  const cps = (s: string) => [...s.normalize('NFKD')].map((c) => c.codePointAt(0)!);
  const byCp = [...strs].sort((x, y) => {
    const a = cps(collationKey(x).replaceAll('\ud7ff', ''));
    const b = cps(collationKey(y).replaceAll('\ud7ff', ''));
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
    return a.length - b.length;
  });
  assert.deepEqual([...strs].sort((x, y) => compareKeys(collationKey(x), collationKey(y))), byCp);
});

test('message ids (RFC 5256 §3): quoting and comments do not make two ids differ; invalid ones are skipped', () => {
  assert.deepEqual(messageIds('<"01KF8JCEOCBS0045PS"@xxx.yyy.com>'), ['01KF8JCEOCBS0045PS@xxx.yyy.com']);
  assert.deepEqual(messageIds('<01KF8JCEOCBS0045PS@xxx.yyy.com>'), ['01KF8JCEOCBS0045PS@xxx.yyy.com']);
  assert.deepEqual(messageIds(' <a@b> (c <x@y>) <c@d>\t<nope> <@x> <e@f'), ['a@b', 'c@d']);
  assert.deepEqual(messageIds('<a @ b>'), ['a@b']);
  assert.deepEqual(messageIds('<p1@x> and <p2@x>', 1), ['p1@x']);
  assert.deepEqual(messageIds(null), []);
});

test('sortSliced: stable, the same as Array.prototype.sort, pausing between slices', async () => {
  const items = Array.from({ length: 10_000 }, (_, i) => ({ k: (i * 7919) % 97, i }));
  let pauses = 0;
  const got = await sortSliced(items, (a, b) => a.k - b.k, async () => void pauses++);
  assert.deepEqual(got, items.slice().sort((a, b) => a.k - b.k));
  assert.ok(pauses >= 5, `paused ${pauses} times`);
});

test('base subject and message ids stay linear on hostile input', () => {
  const time = (f: () => void) => {
    const t = performance.now();
    f();
    return performance.now() - t;
  };
  const n = 200_000;
  const small = time(() => baseSubject('[a]'.repeat(n / 10) + 'x'));
  const big = time(() => baseSubject('[a]'.repeat(n) + 'x'));
  assert.ok(big < 50 * Math.max(small, 1), `blobs: ${small.toFixed(1)} ms → ${big.toFixed(1)} ms`);
  const t1 = time(() => baseSubject('Re: '.repeat(n)));
  const t2 = time(() => baseSubject('[fwd: '.repeat(n / 6) + ']'.repeat(n / 6)));
  assert.ok(t1 < 2000 && t2 < 2000, `${t1.toFixed(0)} ms, ${t2.toFixed(0)} ms`);
  assert.ok(time(() => messageIds('<'.repeat(n) + '("'.repeat(n))) < 2000);
});
