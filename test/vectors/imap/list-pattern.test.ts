// LIST/LSUB wildcard matching (RFC 9051 §6.3.9): the linear matcher agrees with the definition
// (a dynamic-programming reference) on every small pattern and name, and on long random ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileListPattern, MAX_WILDCARD_PART } from '../../../src/protocol/imap/list-pattern.ts';

/** The definition: dp over pattern × name; `*` any run, `%` any run without "/". */
function reference(pat: string, name: string): boolean {
  let prev = Array.from({ length: name.length + 1 }, (_, j) => j === 0);
  for (const c of pat) {
    const cur = new Array<boolean>(name.length + 1).fill(false);
    for (let j = 0; j <= name.length; j++) {
      if (c === '*') cur[j] = prev[j]! || (j > 0 && cur[j - 1]!);
      else if (c === '%') cur[j] = prev[j]! || (j > 0 && name[j - 1] !== '/' && cur[j - 1]!);
      else cur[j] = j > 0 && prev[j - 1]! && name[j - 1] === c;
    }
    prev = cur;
  }
  return prev[name.length]!;
}

function all(alphabet: string[], maxLen: number): string[] {
  const out = [''];
  let level = [''];
  for (let l = 1; l <= maxLen; l++) {
    level = level.flatMap((s) => alphabet.map((c) => s + c));
    out.push(...level);
  }
  return out;
}

test('every pattern of up to 4 characters over {a, b, /, *, %} against every name of up to 5 over {a, b, /}', () => {
  const names = all(['a', 'b', '/'], 5);
  for (const pat of all(['a', 'b', '/', '*', '%'], 4)) {
    const m = compileListPattern(pat)!;
    for (const name of names) assert.equal(m.test(name), reference(pat, name), `${JSON.stringify(pat)} ~ ${JSON.stringify(name)}`);
  }
});

test('long patterns (several bit-set words) against random and matching names', () => {
  let seed = 12345;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  for (let t = 0; t < 3000; t++) {
    let pat = '';
    for (let i = 0, n = 30 + rnd(200); i < n; i++) pat += 'ab/*%'[rnd(5)];
    let name = '';
    if (t % 2) name = pat.replace(/[*%]/g, () => ['', 'a', 'ab', 'b/a'][rnd(4)]!);
    else for (let i = 0, n = rnd(250); i < n; i++) name += 'ab/'[rnd(3)];
    assert.equal(compileListPattern(pat)!.test(name), reference(pat, name), `${pat} ~ ${name}`);
  }
});

test('RFC 9051 §6.3.9 examples; wildcard runs collapse; limits', () => {
  const m = (p: string, n: string) => compileListPattern(p)!.test(n);
  assert.ok(m('*', 'a/b/c'));
  assert.ok(!m('%', 'a/b'));
  assert.ok(m('%/%', 'a/b'));
  assert.ok(m('INBOX/%', 'INBOX/Sent'));
  assert.ok(!m('INBOX/%', 'INBOX/a/b'));
  assert.ok(m('a*%*%b', 'a/x/b'));
  assert.ok(m('', '') && !m('', 'a'));
  // A pattern with more literal characters than a name can have matches nothing, cheaply.
  assert.ok(!compileListPattern('a'.repeat(20) + '*', '/', 10)!.test('a'.repeat(20)));
  // Past MAX_WILDCARD_PART after the first wildcard: refused (the caller answers NO [LIMIT]).
  assert.equal(compileListPattern('x' + 'a%'.repeat(MAX_WILDCARD_PART)), null);
  assert.ok(compileListPattern('x'.repeat(5000) + '%'), 'a long literal prefix is fine');
});
