// FsBlobStore: its small-range cache (fs-blob-store.ts #cached): reads come back right however often
// and in whatever order they are made, and what a caller does to a returned buffer never reaches
// the next reader; and stage() with the metadata's word on which bodies have files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { FsBlobStore, RANGE_CACHE_BYTES, RANGE_CACHE_MAX } from '../../../src/store/blob/fs-blob-store.ts';

test('small ranges: the same bytes on every read; a caller writing into one changes no later read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-blob-ranges-'));
  try {
    const blobs = new FsBlobStore(dir);
    const body = randomBytes(20_000);
    const staged = await blobs.stage(body);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await blobs.read(staged.id, 0, 1000), body.subarray(0, 1000));
      assert.deepEqual(await blobs.read(staged.id, 500, 12_999), body.subarray(500, 12_999));
      assert.deepEqual(await blobs.read(staged.id, 0, 19_999), body.subarray(0, 19_999));
    }
    const got = await blobs.read(staged.id, 0, 1000);
    got.fill(0);
    assert.deepEqual(await blobs.read(staged.id, 0, 1000), body.subarray(0, 1000));
    // Past the end of the file: the bytes there are, as before the cache.
    assert.deepEqual(await blobs.read(staged.id, 19_000, 21_000), body.subarray(19_000));
    staged.release();
    blobs.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the cache stays within its byte budget: many bodies read once each, the first still reads right', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-blob-ranges-'));
  try {
    const blobs = new FsBlobStore(dir);
    const size = RANGE_CACHE_MAX - 1000;
    const n = Math.ceil(RANGE_CACHE_BYTES / size) + 20;
    const first = randomBytes(size);
    const ids = [(await blobs.stage(first)).id];
    for (let i = 1; i < n; i++) ids.push((await blobs.stage(randomBytes(size))).id);
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const settle = async () => {
      // Array buffers are swept after a full GC on a helper thread: collect until the figure settles.
      for (let i = 0; i < 5; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await settle();
    const before = process.memoryUsage().arrayBuffers;
    for (let pass = 0; pass < 2; pass++) for (const id of ids) await blobs.read(id, 0, size);
    await settle();
    // Two passes over more bytes than the budget keep no more than the budget.
    const kept = process.memoryUsage().arrayBuffers - before;
    assert.ok(kept <= RANGE_CACHE_BYTES + 1024 * 1024, `kept ${kept} bytes after reading ${n * size} twice`);
    assert.deepEqual(await blobs.read(ids[0]!, 0, size), first);
    blobs.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stage(…, stored): a body the metadata names is not written again; one it does not is written over a leftover file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-blob-stage-'));
  try {
    const blobs = new FsBlobStore(dir);
    const body = randomBytes(5_000);
    const first = await blobs.stage(body, Infinity, () => false);
    const path = blobs.path(first.id);
    const inode = statSync(path).ino;
    // Known to the metadata: no file call, the file stays the one written first.
    const again = await blobs.stage(body, Infinity, () => true);
    assert.equal(again.id, first.id);
    assert.equal(statSync(path).ino, inode);
    // Not known (its row went, the file is a leftover): written afresh, same bytes, nothing left in tmp.
    const fresh = await blobs.stage(body, Infinity, () => false);
    assert.equal(fresh.id, first.id);
    assert.notEqual(statSync(path).ino, inode);
    assert.deepEqual(readFileSync(path), body);
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
    for (const b of [first, again, fresh]) b.release();
    blobs.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stage: bodies that fit in memory go to their final name whole, many at once; a leftover part is written over', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-blob-writer-'));
  try {
    const blobs = new FsBlobStore(dir);
    // A body in pieces that are views of one bigger buffer: only its own bytes reach the file.
    const backing = randomBytes(40_000);
    const pieces = [backing.subarray(100, 9_100), backing.subarray(20_000, 31_000)];
    const { Readable } = await import('node:stream');
    const a = await blobs.stage(Readable.from(pieces), Infinity, () => false);
    assert.equal(a.size, 20_000);
    assert.deepEqual(readFileSync(blobs.path(a.id)), Buffer.concat(pieces));
    // Concurrent stages: each file complete.
    const bodies = Array.from({ length: 12 }, () => randomBytes(1 + Math.floor(Math.random() * 60_000)));
    const staged = await Promise.all(bodies.map((b) => blobs.stage(b, Infinity, () => false)));
    // The same new bytes twice at once: one takes the name, the other renames its own file over it.
    const twin = randomBytes(9_000);
    const [t1, t2] = await Promise.all([blobs.stage(twin, Infinity, () => false), blobs.stage(twin, Infinity, () => false)]);
    assert.deepEqual(readFileSync(blobs.path(t1.id)), twin);
    t1.release();
    t2.release();
    staged.forEach((s, i) => assert.deepEqual(readFileSync(blobs.path(s.id)), bodies[i]));
    assert.deepEqual(readdirSync(join(dir, 'tmp')), [], 'no temp file left');
    // A crash in the middle of writing a new body leaves part of it under its final name (no row
    // points to it yet): the next stage of the same bytes writes it whole.
    const cut = randomBytes(30_000);
    const cutPath = blobs.path(createHash('sha256').update(cut).digest('hex'));
    writeFileSync(cutPath, cut.subarray(0, 1_000));
    const d = await blobs.stage(cut, Infinity, () => false);
    assert.deepEqual(readFileSync(cutPath), cut);
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
    d.release();
    for (const s of [a, ...staged]) s.release();
    blobs.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
