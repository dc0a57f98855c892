// Message bodies as immutable, content-addressed files: DIR/ab/<sha256 hex>.
// A body is streamed to DIR/tmp/, fsync'd, renamed into place, and the folder fsync'd (one that
// fitted in memory is written under its final name when no file has it: #writeNew), all before
// any metadata that references it commits (content that is stored already is not written again;
// a small body is hashed in memory first, so it then costs no file call at all) ("better files without references than references
// without files" — an orphan is collected at start-up, a dangling reference would lose mail).
//
// Pins: a blob staged for a delivery that has not committed yet is pinned in memory, so a
// concurrent expunge of the last other copy of the same content never unlinks it.

import { createHash, randomBytes } from 'node:crypto';
import { close, createReadStream, fstat, fsync, open, promises as fsp, read, rename, unlink, write, unlinkSync, existsSync, mkdirSync, openSync, fsyncSync, closeSync, readdirSync, readSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { StoreError, type StagedBlob } from '../store.ts';

// The callback API (promisified) costs one thread-pool round trip per call, less than FileHandle.
const openAsync = promisify(open);
const closeAsync = promisify(close);
const fstatAsync = promisify(fstat);
const fsyncAsync = promisify(fsync);
const renameAsync = promisify(rename);
const unlinkAsync = promisify(unlink);
const writeAsync = (fd: number, buf: Buffer, off: number, len: number) =>
  new Promise<number>((resolve, reject) => write(fd, buf, off, len, null, (err, n) => (err ? reject(err) : resolve(n))));
const readAsync = (fd: number, buf: Buffer, off: number, len: number, pos: number) =>
  new Promise<number>((resolve, reject) => read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));

/** Bytes of a body stage() keeps in memory before it starts its temp file (per body being staged). */
export const STAGE_BUFFER = 64 * 1024;

/** Blob files kept open for reads (see #readSync). */
export const FD_CACHE = 64;

/** Ranges up to this size are read synchronously (see read()). */
const SYNC_READ_MAX = 256 * 1024;

/** Bytes of recently read small ranges kept in memory (see #cached), and the largest range kept. */
export const RANGE_CACHE_BYTES = 4 * 1024 * 1024;
export const RANGE_CACHE_MAX = 16 * 1024;

export class FsBlobStore {
  readonly dir: string;
  readonly #pins = new Map<string, number>();

  constructor(dir: string) {
    this.dir = dir;
    const created = !existsSync(dir);
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    for (let i = 0; i < 256; i++) {
      const sub = join(dir, i.toString(16).padStart(2, '0'));
      if (!existsSync(sub)) mkdirSync(sub);
    }
    if (created) fsyncDir(dir);
  }

  #tmpPath(): string {
    return join(this.dir, 'tmp', `${Date.now()}-${randomBytes(8).toString('hex')}`);
  }

  path(id: string): string {
    return blobPath(this.dir, id);
  }

  isPinned(id: string): boolean {
    return (this.#pins.get(id) ?? 0) > 0;
  }

  #pin(id: string): () => void {
    this.#pins.set(id, (this.#pins.get(id) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.#pins.get(id) ?? 1) - 1;
      if (n <= 0) this.#pins.delete(id);
      else this.#pins.set(id, n);
    };
  }

  /**
   * Hashes the input while it arrives; the first STAGE_BUFFER bytes are kept in memory, more goes
   * to a temp file as it comes. A body whose file exists already (the same content stored before:
   * content-addressed; `stored(id)` says so when given) is not written again — no temp file at all
   * when it fitted in memory.
   * Otherwise: the temp file is written, fsync'd, renamed into place and the folder fsync'd; with
   * `stored` given, a body that fitted in memory goes straight to its final name if free (#writeNew).
   * File calls use the callback API (one thread-pool round trip each, less than FileHandle's).
   */
  async stage(input: Readable | Buffer, maxBytes = Infinity, stored?: (id: string) => boolean): Promise<StagedBlob> {
    const hash = createHash('sha256');
    let size = 0;
    let tooBig = false;
    let held: Buffer[] = [];
    let fd: number | null = null;
    let tmp = '';
    const toFile = async (bufs: Buffer[]) => {
      if (fd === null) {
        tmp = this.#tmpPath();
        fd = await openAsync(tmp, 'wx', 0o600);
      }
      await writeAll(fd, bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs));
    };
    const discard = async () => {
      if (fd === null) return;
      const f = fd;
      fd = null;
      await closeAsync(f).catch(() => {});
      await unlinkAsync(tmp).catch(() => {});
    };
    try {
      if (Buffer.isBuffer(input)) {
        if (input.length > maxBytes) tooBig = true;
        else {
          hash.update(input);
          size = input.length;
          held.push(input);
        }
      } else {
        let heldBytes = 0;
        for await (const chunk of input) {
          const buf: Buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
          if (tooBig) continue; // keep draining the source so the peer's protocol stays in step
          if (size + buf.length > maxBytes) {
            tooBig = true;
            continue;
          }
          hash.update(buf);
          size += buf.length;
          held.push(buf);
          heldBytes += buf.length;
          if (heldBytes >= STAGE_BUFFER) {
            await toFile(held);
            held = [];
            heldBytes = 0;
          }
        }
      }
      if (tooBig) throw new StoreError('invalid', `message larger than ${maxBytes} bytes`);
    } catch (err) {
      await discard();
      throw err;
    }
    const id = hash.digest('hex');
    const release = this.#pin(id);
    const final = this.path(id);
    try {
      await this.settled(id);
      // `stored`: the caller's metadata says the file is there (it is written before any reference
      // to it commits, and removed only after the last one went; pinned now, it stays): no file
      // call at all. Without it, a lookup off the loop (not existsSync: a lookup in a cold folder
      // blocked the event loop ~100 ms under disk load). With `stored` false the body is written
      // and renamed over any file of that name there may be: the same bytes (content-addressed).
      if (stored ? stored(id) : await fsp.access(final).then(() => true, () => false)) {
        await discard();
      } else {
        const folder = join(this.dir, id.slice(0, 2));
        // All in memory, and the caller's metadata the judge of which files are whole: straight
        // to the final name when no file has it (#writeNew); else through a temp file.
        const written = fd === null && stored !== undefined && (await this.#writeNew(final, held, folder));
        if (!written) {
          if (held.length || fd === null) await toFile(held);
          const f = fd!;
          fd = null;
          try {
            await fsyncAsync(f);
          } finally {
            await closeAsync(f);
          }
          await renameAsync(tmp, final);
          await this.#fsyncFolder(folder);
        }
      }
    } catch (err) {
      release();
      await discard();
      if (tmp) await unlinkAsync(tmp).catch(() => {});
      throw err;
    }
    return { id, size, release };
  }

  /**
   * A new body written under its final name ('wx': false when a file has it already), fsync'd,
   * and its folder fsync'd: four thread-pool round trips instead of a temp file's seven, and one
   * journal commit instead of two (each round trip waits a turn of the busy loop: 10 clients
   * APPENDing new bodies, 1.32-1.41x the APPENDs/s in 3 alternating pairs). Nothing references the body until the caller
   * commits its metadata, after this: a crash (or a failed write) midway leaves a file no row
   * points to — removed by the start-up collection, and written over through a temp file by the
   * next stage of the same bytes, which finds the name taken. It is never unlinked here: a
   * concurrent stage of the same bytes may have renamed its whole file over it meanwhile.
   */
  async #writeNew(final: string, held: Buffer[], folder: string): Promise<boolean> {
    let f: number;
    try {
      f = await openAsync(final, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    try {
      await writeAll(f, held.length === 1 ? held[0]! : Buffer.concat(held));
      await fsyncAsync(f);
    } finally {
      // Durable once fsync returned: the close need not be waited for.
      closeAsync(f).catch(() => {});
    }
    await this.#fsyncFolder(folder);
    return true;
  }

  /** The body folders' descriptors, opened once: a folder's fsync is one round trip, not three. */
  readonly #folderFds = new Map<string, Promise<number>>();

  /** A rename or create in `folder` is durable once this resolves (off the event loop). */
  async #fsyncFolder(folder: string): Promise<void> {
    let fd = this.#folderFds.get(folder);
    if (!fd) {
      fd = openAsync(folder, 'r');
      this.#folderFds.set(folder, fd);
      fd.catch(() => this.#folderFds.delete(folder));
    }
    await fsyncAsync(await fd);
  }

  async read(id: string, start = 0, end?: number): Promise<Buffer> {
    await this.settled(id);
    // Small ranges (most messages, header blocks, parts) are read synchronously: they come from
    // the page cache in microseconds, while four thread-pool round trips (open, stat, read,
    // close) queue behind the fsyncs of concurrent deliveries. Bulk scans (SEARCH BODY) read on
    // worker threads instead (body-scan.ts).
    if (end !== undefined && end - start <= SYNC_READ_MAX) {
      if (end - start > RANGE_CACHE_MAX) return this.#readSync(id, start, end);
      return this.#cached(id, start, end);
    }
    let fd: number;
    try {
      fd = await openAsync(this.path(id), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StoreError('not-found', `blob ${id} not found`);
      throw err;
    }
    try {
      const total = end === undefined ? (await fstatAsync(fd)).size : end;
      const e = Math.min(end ?? total, total);
      const s = Math.min(Math.max(0, start), e);
      const buf = Buffer.allocUnsafe(e - s);
      let off = 0;
      while (off < buf.length) {
        const n = await readAsync(fd, buf, off, buf.length - off, s + off);
        if (n === 0) break;
        off += n;
      }
      return off === buf.length ? buf : buf.subarray(0, off);
    } finally {
      await closeAsync(fd);
    }
  }

  // Small ranges read lately (header blocks, small parts), least recently used first, up to
  // RANGE_CACHE_BYTES: clients fetch the same headers again and again (every resync, every
  // listing), and under bench/imap-persistent.ts the open and read calls of those reads were ~11%
  // of the event loop's time. A body is immutable and its id is its content's hash, so an entry
  // is never stale, even after the file went (the same id can only come back with the same bytes).
  // Callers get a copy: nothing they do to it can reach the entry.
  readonly #ranges = new Map<string, Buffer>();
  #rangeBytes = 0;

  #cached(id: string, start: number, end: number): Buffer {
    const key = `${id}:${start}:${end}`;
    const hit = this.#ranges.get(key);
    if (hit) {
      this.#ranges.delete(key);
      this.#ranges.set(key, hit);
      return Buffer.from(hit);
    }
    const buf = this.#readSync(id, start, end);
    // A short read is not kept: past the end of the file, or a file still being written under its
    // final name (#writeNew), read through a stale id (an expunged message's, the same bytes
    // being stored again): the next read of those bytes must see the whole file.
    if (buf.length < end - start) return buf;
    // A buffer of its own, exactly this size: Buffer.from/allocUnsafe hand out slices of a shared
    // pool, and a kept slice would keep the whole pool chunk (64 KB here) alive.
    const own = Buffer.allocUnsafeSlow(buf.length);
    buf.copy(own);
    this.#ranges.set(key, own);
    this.#rangeBytes += buf.length;
    while (this.#rangeBytes > RANGE_CACHE_BYTES) {
      const [k, b] = this.#ranges.entries().next().value!;
      this.#ranges.delete(k);
      this.#rangeBytes -= b.length;
    }
    return buf;
  }

  // Descriptors of recently read blobs, least recently used first: a FETCH of 100 messages' header
  // fields reads 100 blobs, and opening each (a path lookup on the event loop) was ~5% of the
  // server's time under bench/imap-persistent.ts. Bodies are immutable, so a kept descriptor
  // always reads the right bytes; it is closed before its file is unlinked here.
  readonly #fds = new Map<string, number>();

  #readSync(id: string, start: number, end: number): Buffer {
    let fd = this.#fds.get(id);
    if (fd !== undefined) {
      this.#fds.delete(id);
    } else {
      try {
        fd = openSync(this.path(id), 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StoreError('not-found', `blob ${id} not found`);
        throw err;
      }
    }
    try {
      const out = readRangeSync(fd, start, end);
      this.#fds.set(id, fd);
      fd = undefined;
      if (this.#fds.size > FD_CACHE) this.#forget(this.#fds.keys().next().value!);
      return out;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** Closes the kept descriptor of a blob, if any. */
  #forget(id: string): void {
    const fd = this.#fds.get(id);
    if (fd === undefined) return;
    this.#fds.delete(id);
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
  }

  /** Closes every kept descriptor (the store closes). */
  close(): void {
    for (const fd of this.#folderFds.values()) void fd.then((n) => closeAsync(n)).catch(() => {});
    this.#folderFds.clear();
    for (const id of [...this.#fds.keys()]) this.#forget(id);
    this.#ranges.clear();
    this.#rangeBytes = 0;
  }

  stream(id: string, start = 0, end?: number): Readable {
    const opts: { start: number; end?: number } = { start };
    if (end !== undefined) {
      if (end <= start) {
        // An empty range: createReadStream's `end` is inclusive, so use an empty stream.
        return createReadStream(this.path(id), { start: 0, end: -1 });
      }
      opts.end = end - 1;
    }
    return createReadStream(this.path(id), opts);
  }

  /**
   * Unlinks a blob whose last reference was committed away, unless a delivery has it pinned.
   * The unlink runs off the event loop; a stage() of the same content meanwhile waits for it
   * before checking whether the file exists, so it can never lose its body to this unlink.
   */
  removeIfUnpinned(id: string): void {
    if (this.isPinned(id) || this.#deleting.has(id)) return;
    this.#forget(id);
    const p = fsp
      .unlink(this.path(id))
      .catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') console.error('blob unlink failed', id, err.message);
      })
      .finally(() => this.#deleting.delete(id));
    this.#deleting.set(id, p);
  }

  readonly #deleting = new Map<string, Promise<void>>();

  /**
   * Unlinks at once, on the loop (the caller holds the database's write lock, so no other process
   * can reference the blob in between: the sweep of src/store/sqlite/peers.ts). False if pinned here.
   */
  unlinkNow(id: string): boolean {
    if (this.isPinned(id)) return false;
    this.#forget(id);
    try {
      unlinkSync(this.path(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return true;
  }

  /** Resolves when no unlink of this blob is in flight. */
  async settled(id: string): Promise<void> {
    await this.#deleting.get(id);
  }

  /** Start-up collection: temp files, and files no metadata references (`isReferenced` false). */
  collectGarbage(isReferenced: (id: string) => boolean): { removed: number } {
    let removed = 0;
    for (const name of readdirSync(join(this.dir, 'tmp'))) {
      unlinkSync(join(this.dir, 'tmp', name));
      removed++;
    }
    for (let i = 0; i < 256; i++) {
      const sub = join(this.dir, i.toString(16).padStart(2, '0'));
      for (const name of readdirSync(sub)) {
        if (!isReferenced(name) && !this.isPinned(name)) {
          this.#forget(name);
          unlinkSync(join(sub, name));
          removed++;
        }
      }
    }
    return { removed };
  }
}

/** Where blob `id` lives under `dir`: DIR/ab/<sha256 hex>. */
export function blobPath(dir: string, id: string): string {
  if (!/^[0-9a-f]{64}$/.test(id)) throw new StoreError('invalid', `bad blob id ${id}`);
  return join(dir, id.slice(0, 2), id);
}

/** Bytes [start, end) of an open file (fewer at its end). */
export function readRangeSync(fd: number, start: number, end: number): Buffer {
  const s = Math.max(0, start);
  const buf = Buffer.allocUnsafe(Math.max(0, end - s));
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, s + off);
    if (n === 0) break;
    off += n;
  }
  return off === buf.length ? buf : buf.subarray(0, off);
}

async function writeAll(fd: number, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) off += await writeAsync(fd, buf, off, buf.length - off);
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
