// The pure POP3 protocol layer: framing, parsing, dot-stuffing and TOP, fed byte by byte where
// chunk borders matter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineSplitter, parseCommand, parseNumber, decodeSaslPlain } from '../../../src/protocol/pop3/commands.ts';
import { DotStuffEncoder, TopFilter, errLine, multiLine, okLine } from '../../../src/protocol/pop3/responses.ts';

function splitAll(s: LineSplitter, input: Buffer, chunkSize: number) {
  const out = [];
  for (let i = 0; i < input.length; i += chunkSize) out.push(...s.push(input.subarray(i, i + chunkSize)));
  return out;
}

test('line splitter: CRLF and bare LF lines, any chunking', () => {
  const input = Buffer.from('USER a@b\r\nPASS x y\nSTAT\r\n\r\nQUIT\r\npartial');
  for (const size of [1, 2, 3, 7, 100]) {
    const s = new LineSplitter(100);
    const ev = splitAll(s, input, size);
    assert.deepEqual(ev, [
      { kind: 'line', text: 'USER a@b' },
      { kind: 'line', text: 'PASS x y' },
      { kind: 'line', text: 'STAT' },
      { kind: 'line', text: '' },
      { kind: 'line', text: 'QUIT' },
    ]);
    assert.equal(s.buffered, 7);
  }
});

test('line splitter: overlong lines are dropped with one event, and framing resumes', () => {
  for (const size of [1, 5, 64, 10000]) {
    const s = new LineSplitter(10);
    const input = Buffer.from('0123456789\r\n' + 'x'.repeat(5000) + '\r\nNOOP\r\n01234567890\r\n0123456789\n');
    const ev = splitAll(s, input, size);
    assert.deepEqual(ev, [
      { kind: 'line', text: '0123456789' },
      { kind: 'overlong', length: 5000 },
      { kind: 'line', text: 'NOOP' },
      { kind: 'overlong', length: 11 },
      { kind: 'line', text: '0123456789' },
    ], `chunk size ${size}`);
    assert.ok(s.buffered <= 11);
  }
});

test('line splitter: memory stays bounded by the limit while an endless line arrives', () => {
  const s = new LineSplitter(1000);
  for (let i = 0; i < 1000; i++) assert.deepEqual(s.push(Buffer.alloc(4096, 0x41)), []);
  assert.equal(s.buffered, 0);
  assert.deepEqual(s.push(Buffer.from('\r\nQUIT\r\n')), [{ kind: 'overlong', length: 4096 * 1000 }, { kind: 'line', text: 'QUIT' }]);
});

test('command parsing: case-insensitive keyword, arguments, rest of line', () => {
  assert.deepEqual(parseCommand('retr 5'), { name: 'RETR', args: ['5'], rest: '5' });
  assert.deepEqual(parseCommand('TOP 1  10'), { name: 'TOP', args: ['1', '10'], rest: '1  10' });
  assert.deepEqual(parseCommand('PASS my secret '), { name: 'PASS', args: ['my', 'secret'], rest: 'my secret ' });
  assert.deepEqual(parseCommand('QUIT'), { name: 'QUIT', args: [], rest: '' });
  assert.deepEqual(parseCommand(''), { name: '', args: [], rest: '' });
});

test('message numbers', () => {
  assert.equal(parseNumber('1'), 1);
  assert.equal(parseNumber('0200'), 200);
  assert.equal(parseNumber('0'), null);
  assert.equal(parseNumber('0', { allowZero: true }), 0);
  for (const bad of ['-1', '+1', '1.0', 'x', '', ' 1', '0x10', '99999999999', undefined]) assert.equal(parseNumber(bad), null, String(bad));
});

test('SASL PLAIN decoding (RFC 4616)', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  assert.deepEqual(decodeSaslPlain(b64('\0user@x\0pä ss')), { authzid: '', authcid: 'user@x', password: 'pä ss' });
  assert.deepEqual(decodeSaslPlain(b64('user@x\0user@x\0pw')), { authzid: 'user@x', authcid: 'user@x', password: 'pw' });
  assert.equal(decodeSaslPlain(b64('user\0pw')), null);
  assert.equal(decodeSaslPlain(b64('\0\0pw')), null);
  assert.equal(decodeSaslPlain(b64('\0u\0')), null);
  assert.equal(decodeSaslPlain('not base64!'), null);
  assert.equal(decodeSaslPlain('AAA'), null);
  assert.equal(decodeSaslPlain(''), null);
  assert.equal(decodeSaslPlain(Buffer.from([0, 0x75, 0, 0xff, 0xfe]).toString('base64')), null);
});

test('status lines and multi-line responses', () => {
  assert.equal(okLine('2 320'), '+OK 2 320\r\n');
  assert.equal(okLine(), '+OK\r\n');
  assert.equal(errLine('locked', 'IN-USE'), '-ERR [IN-USE] locked\r\n');
  assert.equal(errLine('a\r\nb'), '-ERR a b\r\n');
  assert.equal(multiLine('x', ['1 2', '.hidden']), '+OK x\r\n1 2\r\n..hidden\r\n.\r\n');
});

function encodeChunked(input: Buffer, size: number): Buffer {
  const enc = new DotStuffEncoder();
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += size) parts.push(enc.push(input.subarray(i, i + size)));
  parts.push(enc.end());
  return Buffer.concat(parts);
}

/** What a POP3 client does with a multi-line body (RFC 1939 §3). */
function unstuff(wire: Buffer): Buffer {
  const s = wire.toString('latin1');
  assert.ok(s.endsWith('\r\n.\r\n') || s === '.\r\n', 'terminated');
  const body = s === '.\r\n' ? '' : s.slice(0, -3);
  return Buffer.from(body.split('\r\n').map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n'), 'latin1');
}

test('dot-stuffing (RFC 1939 §3) at every chunk border', () => {
  const cases: Array<[string, string]> = [
    ['Subject: x\r\n\r\n.\r\n..\r\nend\r\n', 'Subject: x\r\n\r\n..\r\n...\r\nend\r\n.\r\n'],
    ['.starts\r\nno newline at end', '..starts\r\nno newline at end\r\n.\r\n'],
    ['bare\nlf\n.dot\n', 'bare\r\nlf\r\n..dot\r\n.\r\n'],
    ['', '.\r\n'],
    ['ends in cr\r', 'ends in cr\r\n.\r\n'],
    ['a\r\n.', 'a\r\n..\r\n.\r\n'],
  ];
  for (const [input, expected] of cases) {
    for (const size of [1, 2, 3, 5, 1000]) {
      assert.equal(encodeChunked(Buffer.from(input), size).toString('latin1'), expected, `${JSON.stringify(input)} / ${size}`);
    }
  }
});

test('dot-stuffing round trip of a large random CRLF message is byte-exact', () => {
  const lines: string[] = [];
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let i = 0; i < 5000; i++) {
    const len = Math.floor(rnd() * 120);
    let l = '';
    for (let j = 0; j < len; j++) l += rnd() < 0.1 ? '.' : String.fromCharCode(32 + Math.floor(rnd() * 95));
    lines.push(l);
  }
  const msg = Buffer.from(lines.join('\r\n') + '\r\n');
  for (const size of [1, 13, 4096, 65536]) assert.ok(unstuff(encodeChunked(msg, size)).equals(msg), `size ${size}`);
});

function topChunked(input: string, n: number, size: number): string {
  const f = new TopFilter(n);
  const parts: Buffer[] = [];
  const b = Buffer.from(input);
  for (let i = 0; i < b.length && !f.done; i += size) parts.push(f.push(b.subarray(i, i + size)));
  return Buffer.concat(parts).toString();
}

test('TOP: header, blank line, then n body lines (RFC 1939 §7)', () => {
  const msg = 'From: a\r\nSubject: b\r\n\r\nl1\r\nl2\r\nl3\r\n';
  for (const size of [1, 2, 4, 1000]) {
    assert.equal(topChunked(msg, 0, size), 'From: a\r\nSubject: b\r\n\r\n');
    assert.equal(topChunked(msg, 2, size), 'From: a\r\nSubject: b\r\n\r\nl1\r\nl2\r\n');
    assert.equal(topChunked(msg, 10, size), msg);
    assert.equal(topChunked('From: a\nX: y\n\nbody\nmore\n', 1, size), 'From: a\nX: y\n\nbody\n');
    assert.equal(topChunked('Only: header\r\n', 0, size), 'Only: header\r\n');
  }
});
