// RFC 8461 text parsing and MX matching (src/queue/mta-sts.ts): the parts with no network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mxMatches, parseStsPolicy, parseStsTxt } from '../../../src/queue/mta-sts.ts';

test('TXT discovery (RFC 8461 §3.1): one v=STSv1 record with a 1–32 alphanumeric id', () => {
  assert.equal(parseStsTxt([['v=STSv1; id=20240101T000000']]), '20240101T000000');
  assert.equal(parseStsTxt([['v=STSv1; id=abc123;']]), 'abc123');
  assert.equal(parseStsTxt([['v=STSv1;', ' id=split']]), 'split', 'character-strings are joined');
  assert.equal(parseStsTxt([['v=spf1 -all'], ['v=STSv1; id=x1']]), 'x1', 'other records are ignored');
  assert.equal(parseStsTxt([['v=STSv1; id=a'], ['v=STSv1; id=b']]), null, 'two STS records: no policy');
  assert.equal(parseStsTxt([['v=STSv1; id=has-dash']]), null);
  assert.equal(parseStsTxt([['v=STSv1; id=' + 'a'.repeat(33)]]), null);
  assert.equal(parseStsTxt([['v=STSv1']]), null);
  assert.equal(parseStsTxt([]), null);
});

test('policy file (RFC 8461 §3.2): version, mode, max_age, mx; invalid ones refused with a reason', () => {
  const p = parseStsPolicy('version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net.\r\nmax_age: 604800\r\n', 'id1');
  assert.deepEqual(p, { id: 'id1', mode: 'enforce', maxAge: 604800, mx: ['mail.example.com', '*.example.net'] });
  assert.throws(() => parseStsPolicy('version: STSv1\nmode: none\nmax_age: 99999999999\n', 'x'), /max_age/, 'more than 10 digits');
  assert.equal(parseStsPolicy('version: STSv1\nmode: none\nmax_age: 9999999999\n', 'x').maxAge, 31_557_600, 'capped at one year');
  assert.throws(() => parseStsPolicy('version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n', 'x'), /version/);
  assert.throws(() => parseStsPolicy('version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n', 'x'), /mode "strict"/);
  assert.throws(() => parseStsPolicy('version: STSv1\nmode: enforce\nmax_age: 1\n', 'x'), /no mx/);
  assert.throws(() => parseStsPolicy('version: STSv1\nmode: enforce\nmx: a\nmax_age: soon\n', 'x'), /max_age/);
});

test('MX patterns (RFC 8461 §4.1): exact names, and a wildcard for exactly one left-most label', () => {
  const p = { id: 'x', mode: 'enforce' as const, maxAge: 1, mx: ['mail.example.com', '*.example.net'] };
  assert.ok(mxMatches('mail.example.com', p));
  assert.ok(mxMatches('MAIL.Example.COM.', p));
  assert.ok(mxMatches('mx1.example.net', p));
  assert.ok(!mxMatches('example.net', p));
  assert.ok(!mxMatches('a.b.example.net', p));
  assert.ok(!mxMatches('mail.example.com.evil.test', p));
  assert.ok(!mxMatches('xexample.net', p));
});
