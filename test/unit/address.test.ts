// SMTP envelope addresses (src/protocol/smtp/address.ts): RFC 5321 §4.1.2 quoted local parts are
// the same mailbox as their unquoted form; "postmaster" is case-insensitive (§4.5.1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalLocalPart, isDotString, isPostmaster, splitAddress } from '../../src/protocol/smtp/address.ts';

test('quoted local parts: all quoted forms are equivalent, the least quoted one is canonical', () => {
  assert.equal(canonicalLocalPart('"alice"'), 'alice');
  assert.equal(canonicalLocalPart('"al\\ice"'), 'alice');
  assert.equal(canonicalLocalPart('"first.last"'), 'first.last');
  assert.equal(canonicalLocalPart('"a b"'), '"a b"');
  assert.equal(canonicalLocalPart('"a\\ b"'), '"a b"');
  assert.equal(canonicalLocalPart('"a\\"b"'), '"a\\"b"');
  assert.equal(canonicalLocalPart('".a"'), '".a"');
  assert.equal(canonicalLocalPart('"a..b"'), '"a..b"');
  assert.equal(canonicalLocalPart('""'), '""');
  assert.equal(canonicalLocalPart('alice'), 'alice');
  assert.equal(canonicalLocalPart('"unterminated\\"'), '"unterminated\\"');
  assert.deepEqual(splitAddress('"alice"@Example.COM'), { local: 'alice', domain: 'example.com' });
  assert.deepEqual(splitAddress('"a@b"@example.com'), { local: '"a@b"', domain: 'example.com' });
});

test('Dot-string and postmaster', () => {
  for (const s of ['a', 'a.b', "o'hara", 'x+tag', 'ü']) assert.ok(isDotString(s), s);
  for (const s of ['', '.a', 'a.', 'a..b', 'a b', 'a"b', 'a@b']) assert.ok(!isDotString(s), s);
  assert.ok(isPostmaster('postmaster') && isPostmaster('PostMaster'));
  assert.ok(!isPostmaster('postmasters') && !isPostmaster('post'));
});
