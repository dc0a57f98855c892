// Streaming behaviour of the MIME parser: any chunking gives the same result as the whole
// message, bare LF works, malformed input never throws, and a 20 MB attachment is parsed with
// bounded memory and exact offsets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { MimeParser, parseMessage, MAX_DEPTH } from '../../../src/protocol/mime/parser.ts';
import type { MimeNode, MessageMeta } from '../../../src/protocol/mime/types.ts';
import { writeBodyStructure } from '../../../src/protocol/imap/bodystructure.ts';
import { writeEnvelope } from '../../../src/protocol/imap/envelope.ts';

const here = dirname(fileURLToPath(import.meta.url));
const vectors = readdirSync(join(here, 'messages')).filter((f) => f.endsWith('.eml')).sort()
  .map((f) => ({ name: f, raw: readFileSync(join(here, 'messages', f)) }));

function parseChunks(raw: Buffer, cuts: number[]): MessageMeta {
  const p = new MimeParser();
  let prev = 0;
  for (const c of cuts) { p.write(raw.subarray(prev, c)); prev = c; }
  p.write(raw.subarray(prev));
  return p.end();
}

/** Structural invariants every tree must satisfy. */
function checkInvariants(n: MimeNode, lo: number, hi: number): void {
  assert.ok(lo <= n.headerStart && n.headerStart <= n.headerEnd && n.headerEnd === n.bodyStart && n.bodyStart <= n.bodyEnd && n.bodyEnd <= hi,
    `ranges ${JSON.stringify([lo, n.headerStart, n.headerEnd, n.bodyStart, n.bodyEnd, hi])}`);
  assert.equal(n.size, n.bodyEnd - n.bodyStart);
  let last = n.bodyStart;
  for (const c of n.children ?? []) {
    checkInvariants(c, last, n.bodyEnd);
    last = c.bodyEnd;
  }
  if (n.message) {
    assert.equal(n.message.root.headerStart, n.bodyStart);
    checkInvariants(n.message.root, n.bodyStart, n.bodyEnd);
  }
}

test('every vector: split at every byte offset gives the same result as whole', () => {
  for (const { name, raw } of vectors) {
    const whole = parseMessage(raw);
    checkInvariants(whole.root, 0, raw.length);
    assert.equal(whole.root.bodyEnd, raw.length, name);
    for (let i = 0; i <= raw.length; i++) {
      assert.deepEqual(parseChunks(raw, [i]), whole, `${name} split at ${i}`);
    }
  }
});

test('every vector: byte-by-byte and random chunking give the same result', () => {
  let seed = 12345;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  for (const { name, raw } of vectors) {
    const whole = parseMessage(raw);
    const every = Array.from({ length: raw.length }, (_, i) => i);
    assert.deepEqual(parseChunks(raw, every), whole, `${name} byte by byte`);
    for (let r = 0; r < 20; r++) {
      const cuts: number[] = [];
      for (let c = rnd(7); c < raw.length; c += 1 + rnd(40)) cuts.push(c);
      assert.deepEqual(parseChunks(raw, cuts), whole, `${name} random chunks #${r}`);
    }
  }
});

test('bare LF message has the same structure as its CRLF form', () => {
  const lf = vectors.find((v) => v.name === '14-bare-lf.eml')!.raw;
  assert.ok(!lf.includes('\r'));
  const crlf = Buffer.from(lf.toString('latin1').replace(/\n/g, '\r\n'), 'latin1');
  const a = parseMessage(lf);
  const b = parseMessage(crlf);
  // Same BODYSTRUCTURE apart from sizes (each LF line is one byte shorter).
  const noSizes = (s: string) => s.replace(/ \d+ /g, ' N ').replace(/ \d+\)/g, ' N)');
  assert.equal(noSizes(writeBodyStructure(a.root, true)), noSizes(writeBodyStructure(b.root, true)));
  assert.equal(writeEnvelope(a.envelope), writeEnvelope(b.envelope));
  const p1 = a.root.children![0]!;
  assert.equal(lf.subarray(p1.bodyStart, p1.bodyEnd).toString(), 'one\ntwo');
  assert.equal(p1.lines, 1);
  const p2 = a.root.children![1]!;
  assert.equal(p2.message!.envelope.subject, 'inner lf');
  assert.equal(lf.subarray(p2.message!.root.bodyStart, p2.message!.root.bodyEnd).toString(), 'inner');
});

test('malformed input never throws and keeps invariants', () => {
  let seed = 99;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const alphabet = Buffer.from('--b\r\n:;=" \tContent-Type: multipart/mixed; boundary=b\r\nmessage/rfc822\r\n\r\n\u00ff\u0000');
  for (let r = 0; r < 300; r++) {
    const base = vectors[rnd(vectors.length)]!.raw;
    const m = Buffer.from(base);
    for (let k = 0; k < 10; k++) m[rnd(m.length)] = alphabet[rnd(alphabet.length)]!;
    const sub = m.subarray(0, rnd(m.length + 1)); // also truncated at a random point
    const a = rnd(sub.length + 1);
    const b = a + rnd(sub.length - a + 1);
    const meta = parseChunks(sub, [a, b]);
    assert.deepEqual(meta, parseMessage(sub), 'chunked == whole on mutated input');
    checkInvariants(meta.root, 0, sub.length);
    assert.equal(meta.root.bodyEnd, sub.length);
    writeBodyStructure(meta.root, true);
    writeEnvelope(meta.envelope);
  }
  // pure garbage
  for (let r = 0; r < 50; r++) {
    const g = Buffer.alloc(rnd(3000));
    for (let i = 0; i < g.length; i++) g[i] = alphabet[rnd(alphabet.length)]!;
    const meta = parseMessage(g);
    checkInvariants(meta.root, 0, g.length);
    assert.equal(meta.root.bodyEnd, g.length);
  }
  const empty = parseMessage(Buffer.alloc(0));
  assert.equal(empty.root.size, 0);
});

test('deep nesting is capped without recursion trouble', () => {
  let s = 'Subject: deep\r\n';
  const depth = 300;
  for (let i = 0; i < depth; i++) s += `Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}\r\n`;
  s += 'Content-Type: text/plain\r\n\r\nleaf\r\n';
  for (let i = depth - 1; i >= 0; i--) s += `--b${i}--\r\n`;
  const raw = Buffer.from(s);
  const meta = parseMessage(raw);
  let d = 0;
  let n: MimeNode = meta.root;
  while (n.children && n.children.length) { n = n.children[0]!; d++; }
  assert.ok(d <= MAX_DEPTH, `depth ${d}`);
  checkInvariants(meta.root, 0, raw.length);
  assert.ok(writeBodyStructure(meta.root, true).length > 0);
});

test('oversized header block is capped, offsets stay exact', () => {
  const big = 'X-Big: ' + 'a'.repeat(3 * 1024 * 1024) + '\r\n';
  const raw = Buffer.from('Subject: big header\r\n' + big + 'From: x@example.com\r\n\r\nbody\r\n');
  const meta = parseChunks(raw, [1000, 70000, 2_000_000]);
  assert.equal(meta.root.bodyStart, raw.length - 6);
  assert.equal(meta.root.size, 6);
  assert.equal(meta.envelope.subject, 'Subject: big header'.slice(9));
  // From comes after the cap: dropped from the parsed header (bounded memory), not fatal.
  assert.equal(meta.envelope.from, null);
});

test('20 MB attachment: streamed with bounded memory, exact offsets', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const head = Buffer.from(
    'From: big@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="BIG-b"\r\n\r\n' +
    '--BIG-b\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n' +
    '--BIG-b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n');
  // 76-char base64 lines; one 64 KB-ish chunk reused so the test itself holds no 20 MB buffer.
  const line = Buffer.from('QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n');
  const linesPerChunk = 862;
  const chunk = Buffer.concat(Array.from({ length: linesPerChunk }, () => line));
  const chunks = Math.ceil((20 * 1024 * 1024) / chunk.length);
  const tail = Buffer.from('--BIG-b\r\nContent-Type: text/plain\r\n\r\nlast\r\n--BIG-b--\r\n');

  const settle = async () => {
    for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setTimeout(r, 20)); }
  };
  await settle();
  const before = process.memoryUsage();
  const p = new MimeParser();
  p.write(head);
  // feed in odd-sized pieces so boundaries of chunks fall everywhere
  let fed = 0;
  for (let i = 0; i < chunks; i++) {
    const cut = (i * 7919) % chunk.length;
    p.write(chunk.subarray(0, cut));
    p.write(chunk.subarray(cut));
    fed += chunk.length;
  }
  p.write(tail.subarray(0, 5));
  p.write(tail.subarray(5));
  // Still holding the parser: whatever it retained is counted.
  await settle();
  const after = process.memoryUsage();
  const growth = after.heapUsed - before.heapUsed + (after.arrayBuffers - before.arrayBuffers);
  assert.ok(growth < 8 * 1024 * 1024, `memory growth ${growth} while holding a parser fed 20 MB`);
  const meta = p.end();

  const att = meta.root.children![1]!;
  const attBodyStart = head.length;
  assert.equal(att.bodyStart, attBodyStart);
  assert.equal(att.bodyEnd, attBodyStart + fed - 2); // the last CRLF belongs to the boundary
  assert.equal(att.size, fed - 2);
  assert.equal(att.lines, chunks * linesPerChunk - 1);
  assert.equal(att.encoding, 'base64');
  const last = meta.root.children![2]!;
  assert.equal(last.headerStart, attBodyStart + fed + '--BIG-b\r\n'.length);
  assert.equal(last.size, 4);
  assert.equal(meta.root.bodyEnd, head.length + fed + tail.length);
  assert.ok(fed >= 20 * 1024 * 1024);
});

test('parsing 20 MB is fast (indexOf scanning, no per-byte loop)', () => {
  const line = Buffer.from('QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n');
  const chunk = Buffer.concat(Array.from({ length: 862 }, () => line));
  const p = new MimeParser();
  p.write(Buffer.from('Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\n'));
  const t0 = performance.now();
  for (let i = 0; i < 320; i++) p.write(chunk);
  p.write(Buffer.from('\r\n--x--\r\n'));
  const meta = p.end();
  const ms = performance.now() - t0;
  assert.equal(meta.root.children!.length, 1);
  assert.ok(ms < 3000, `took ${ms} ms`);
});
