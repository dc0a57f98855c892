// COMPRESS=DEFLATE (RFC 4978) for one IMAP connection: raw DEFLATE (RFC 1951, zlib windowBits
// -15) in both directions, between the session and its socket (§3: compressed first, then TLS —
// the socket here is the TLS one). Output: every write goes into the deflater, which is flushed
// (Z_SYNC_FLUSH) once per event-loop turn in which something was written, so every response
// reaches the client whole without waiting for more; the deflater is piped into the socket, so a
// client that does not read fills the socket, then the deflater, and write() returns false (the
// session's backpressure, OUTPUT_HIGH_WATER, counts both). Input: socket bytes go through the
// inflater; its output is paused with the session's input (a small compressed burst can inflate
// to a lot: nothing is read from the socket while the inflater has its buffer full).

import { createDeflateRaw, createInflateRaw, constants, type DeflateRaw, type InflateRaw } from 'node:zlib';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { drainOrClose } from '../net/drain.ts';

export class Compression {
  readonly #socket: Socket | TLSSocket;
  readonly #deflate: DeflateRaw;
  readonly #inflate: InflateRaw;
  #flushScheduled = false;
  #paused = false;

  /** `input` gets the inflated bytes; `ended` when the client's stream ended; `failed` on bad data. */
  constructor(socket: Socket | TLSSocket, input: (chunk: Buffer) => void, ended: () => void, failed: (err: Error) => void) {
    this.#socket = socket;
    // Level 1-5 is what RFC 4978 §4 suggests for IMAP traffic; 16 KB buffers each way.
    this.#deflate = createDeflateRaw({ level: 3, windowBits: 15 });
    this.#inflate = createInflateRaw({ windowBits: 15 });
    this.#deflate.pipe(socket);
    this.#deflate.on('error', failed);
    this.#inflate.on('error', failed);
    this.#inflate.on('data', input);
    this.#inflate.on('end', ended);
    // The inflater full (its output paused): stop reading the socket until it drains.
    this.#inflate.on('drain', () => {
      if (!this.#paused) socket.resume();
    });
  }

  /** Compressed bytes from the socket. */
  received(chunk: Buffer): void {
    if (!this.#inflate.write(chunk)) this.#socket.pause();
  }

  /** The client half-closed: inflate what is left, then `ended`. */
  endInput(): void {
    this.#inflate.end();
  }

  write(data: string | Buffer): boolean {
    const ok = this.#deflate.write(data);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        if (!this.#deflate.destroyed && !this.#deflate.writableEnded) this.#deflate.flush(constants.Z_SYNC_FLUSH);
      });
    }
    return ok;
  }

  /** Bytes written and not yet handed to the kernel: in the deflater (both sides) and the socket. */
  get buffered(): number {
    return this.#deflate.writableLength + this.#deflate.readableLength + this.#socket.writableLength;
  }

  /** Resolves when the deflater, then the socket, can take more (or closed). */
  async drain(): Promise<void> {
    if (this.#deflate.writableNeedDrain) await drainOrClose(this.#deflate);
    const s = this.#socket;
    if (!s.destroyed && s.writableNeedDrain) await drainOrClose(s);
  }

  pause(): void {
    this.#paused = true;
    this.#inflate.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#inflate.resume();
  }

  /** Finishes the compressed stream; the pipe then ends the socket. */
  end(): void {
    this.#inflate.destroy();
    if (this.#socket.destroyed) this.#deflate.destroy();
    else if (!this.#deflate.writableEnded) this.#deflate.end();
  }
}
