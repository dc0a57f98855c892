// PROXY protocol headers (src/net/proxy-protocol.ts) against byte-exact vectors (headers.json: five
// captured from HAProxy 2.6, the rest built from proxy-protocol.txt §2.1/§2.2), each fed whole, split
// in two at every byte offset, and one byte at a time: the verdict, the header's length and the bytes
// after it must be the same every way. Also: no verdict before the last byte of a valid header.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ProxyHeaderReader, parseProxyHeader, type ProxyHeader } from '../../../src/net/proxy-protocol.ts';

interface Vector {
  name: string;
  hex: string;
  header?: ProxyHeader;
  length?: number;
  rest?: string;
  invalid?: string;
  maxBytes?: number;
}
const { vectors } = JSON.parse(readFileSync(new URL('./headers.json', import.meta.url), 'utf8')) as { vectors: Vector[] };

type Verdict = { invalid: string } | { header: ProxyHeader; length: number; rest: string } | { incomplete: true };

/** Pushes the chunks in order until a verdict; the rest is what the header left plus any later chunks. */
function run(chunks: Buffer[], maxBytes: number): Verdict {
  const r = new ProxyHeaderReader(maxBytes);
  for (let i = 0; i < chunks.length; i++) {
    const v = r.push(chunks[i]!);
    if (v.kind === 'invalid') return { invalid: v.reason };
    if (v.kind === 'header') return { header: v.header, length: v.length, rest: Buffer.concat([v.rest, ...chunks.slice(i + 1)]).toString('hex') };
  }
  return { incomplete: true };
}

function expected(v: Vector): Verdict {
  return v.invalid ? { invalid: v.invalid } : { header: v.header!, length: v.length!, rest: v.rest ?? '' };
}

test('the vector file is self-consistent', () => {
  assert.ok(vectors.length >= 40);
  for (const v of vectors) {
    if (v.invalid) continue;
    assert.equal(v.hex.length / 2 - (v.rest ?? '').length / 2, v.length, v.name);
  }
});

for (const v of vectors) {
  test(`${v.invalid ? 'invalid' : 'valid'}: ${v.name}`, () => {
    const bytes = Buffer.from(v.hex, 'hex');
    const max = v.maxBytes ?? 1024;
    const want = expected(v);
    assert.deepEqual(run([bytes], max), want, 'whole');
    // The pure function agrees with the reader.
    const p = parseProxyHeader(bytes, max);
    if (v.invalid) assert.deepEqual(p, { kind: 'invalid', reason: v.invalid });
    else assert.deepEqual(p, { kind: 'header', header: v.header, length: v.length });
    for (let k = 1; k < bytes.length; k++) assert.deepEqual(run([bytes.subarray(0, k), bytes.subarray(k)], max), want, `split at ${k}`);
    assert.deepEqual(run([...bytes].map((b) => Buffer.from([b])), max), want, 'one byte at a time');
    if (!v.invalid) {
      // Every proper prefix of the header is incomplete: nothing is decided on a partial header (§2.2).
      for (let k = 0; k < v.length!; k++) assert.deepEqual(run([bytes.subarray(0, k)], max), { incomplete: true }, `prefix ${k}`);
    }
  });
}

test('a v2 header with 256 bytes of TLVs: complete at its last byte, what follows is the rest', () => {
  const r = new ProxyHeaderReader(300);
  const sig = Buffer.from('0d0a0d0a000d0a515549540a21110100', 'hex'); // announces 256 more bytes: 272 ≤ 300
  assert.equal(r.push(sig).kind, 'incomplete');
  assert.equal(r.push(Buffer.alloc(255)).kind, 'incomplete');
  const done = r.push(Buffer.alloc(10, 0x41));
  assert.equal(done.kind, 'header');
  assert.equal(done.kind === 'header' && Buffer.from(done.rest).toString(), 'A'.repeat(9));
});

test('mutated vectors (seeded): never a throw, the same verdict whole, split anywhere and byte by byte', () => {
  let seed = 15;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const interesting = [0x00, 0x0a, 0x0d, 0x20, 0x30, 0x3a, 0x2e, 0x50, 0x21, 0x11, 0xff];
  for (let i = 0; i < 3000; i++) {
    const v = vectors[rnd(vectors.length)]!;
    const b = Buffer.from(v.hex, 'hex');
    const edits = 1 + rnd(3);
    let bytes = b;
    for (let e = 0; e < edits; e++) {
      const at = rnd(bytes.length + 1);
      const kind = rnd(3);
      const x = Buffer.from([rnd(2) ? interesting[rnd(interesting.length)]! : rnd(256)]);
      if (kind === 0 && at < bytes.length) bytes = Buffer.concat([bytes.subarray(0, at), x, bytes.subarray(at + 1)]);
      else if (kind === 1) bytes = Buffer.concat([bytes.subarray(0, at), x, bytes.subarray(at)]);
      else bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
    }
    const max = v.maxBytes ?? 1024;
    const whole = run([bytes], max);
    const k = rnd(bytes.length + 1);
    assert.deepEqual(run([bytes.subarray(0, k), bytes.subarray(k)], max), whole, `${v.name} mutated ${bytes.toString('hex')} split at ${k}`);
    assert.deepEqual(run([...bytes].map((x) => Buffer.from([x])), max), whole, `${v.name} mutated ${bytes.toString('hex')} byte by byte`);
  }
});
