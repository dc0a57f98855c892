// Incremental IMAP command receiver: bytes in, complete commands out (RFC 9051 §2.2, §4.3).
//
// Pure and synchronous. The session pushes socket chunks and pulls events with next(). A command is
// a list of line segments with a literal after each one but the last. When a line ends in a literal
// announcement `{n}` / `{n+}` (LITERAL+, RFC 7888) / `~{n}` (literal8, RFC 3516), next() returns a
// 'literal' event and stops until the session decides what to do with it *before* any literal data
// is read: buffer it (small literals), stream it (APPEND bodies), discard it (a non-synchronizing
// literal that is refused), or reject it (a synchronizing literal that is refused: the client sends
// no data and the command ends there, RFC 9051 §7.5 "+"). Nothing larger than `maxLine` is ever
// buffered for a line; a longer line is a fatal error (the session answers BYE and closes).
//
// Linear in the input however it is chunked: chunks of an unfinished line are kept in a list and
// joined once, when its LF arrives (joining at every push would copy a long line once per chunk,
// O(n²) for a line sent a byte at a time); literal data is taken chunk by chunk, never joined.
// A literal's size is read by hand with a digit cap (no parseInt of an unbounded string): more
// than MAX_LITERAL_DIGITS significant digits, or more than 2^53 - 1, is reported as Infinity, which
// every cap refuses.

export const MAX_TAG_LENGTH = 64;
export const MAX_LITERALS_PER_COMMAND = 1000;
/** Significant digits read of a literal size; 16 digits already exceed 2^53. */
export const MAX_LITERAL_DIGITS = 16;

export interface RawCommand {
  /** Line segments (CRLF and literal announcement removed). segments.length = literals.length + 1. */
  segments: Buffer[];
  /** The literal after each segment; null when it was streamed or discarded. */
  literals: Array<Buffer | null>;
  /** Literal announcements in order. */
  literalInfo: Array<{ size: number; nonSync: boolean; binary: boolean }>;
}

export type LiteralMode = 'buffer' | 'stream' | 'discard';

export type ReceiverEvent =
  /** A complete command line (with any buffered literals). */
  | { kind: 'command'; command: RawCommand }
  /**
   * A literal is announced; call accept(mode) or reject(). `pending` is the command so far, a live
   * view valid until then (not a copy: copying at each of up to 1000 literals would be O(k²)).
   */
  | { kind: 'literal'; size: number; nonSync: boolean; binary: boolean; pending: RawCommand }
  /** Stream-mode literal data. */
  | { kind: 'literal-data'; data: Buffer }
  /** End of a stream-mode literal. */
  | { kind: 'literal-end' }
  /** A command whose literal was discarded has ended (the session answers it with its NO/BAD). */
  | { kind: 'discarded'; command: RawCommand }
  /** Fatal: the connection must be closed (after BYE). */
  | { kind: 'fatal'; reason: 'line-too-long' | 'command-too-large' };

export interface ReceiverOptions {
  /** Longest line (segment) in bytes, without CRLF. */
  maxLine: number;
  /** Most bytes of buffered segments + buffered literals in one command. */
  maxCommand: number;
}

/**
 * The literal announcement ending a line (RFC 9051 §9 literal / literal8, RFC 7888 `{n+}`):
 * `{` number [`+`] `}` with an optional `~` before it, read backwards from the end. Null if the
 * line does not end in one. `length` is the announcement's length in bytes.
 */
export function literalAnnouncement(line: Buffer): { size: number; nonSync: boolean; binary: boolean; length: number } | null {
  let j = line.length - 1;
  if (j < 2 || line[j] !== 0x7d) return null;
  j--;
  const nonSync = line[j] === 0x2b;
  if (nonSync) j--;
  const digitsEnd = j + 1;
  while (j >= 0 && line[j]! >= 0x30 && line[j]! <= 0x39) j--;
  const digitsStart = j + 1;
  if (digitsStart === digitsEnd || j < 0 || line[j] !== 0x7b) return null;
  const binary = j > 0 && line[j - 1] === 0x7e;
  let k = digitsStart;
  while (k < digitsEnd - 1 && line[k] === 0x30) k++; // leading zeros are not significant
  let size = Infinity;
  if (digitsEnd - k <= MAX_LITERAL_DIGITS) {
    let v = 0;
    for (let d = k; d < digitsEnd; d++) v = v * 10 + (line[d]! - 0x30);
    if (Number.isSafeInteger(v)) size = v;
  }
  return { size, nonSync, binary, length: line.length - (binary ? j - 1 : j) };
}

export class Receiver {
  #buf: Buffer = Buffer.alloc(0);
  /** Chunks pushed after #buf, not yet joined to it (see the top of the file). */
  #tail: Buffer[] = [];
  #tailLen = 0;
  /** Some chunk in #tail may hold an LF. */
  #tailLf = false;
  #scanned = 0;
  #state: 'line' | 'decide' | 'literal' | 'dead' = 'line';
  #segments: Buffer[] = [];
  #literals: Array<Buffer | null> = [];
  #info: RawCommand['literalInfo'] = [];
  #cmdBytes = 0;
  #discard = false;
  #litRemaining = 0;
  #litMode: LiteralMode = 'buffer';
  #litChunks: Buffer[] = [];
  #pendingEnd = false;
  #opts: ReceiverOptions;

  constructor(opts: ReceiverOptions) {
    this.#opts = { ...opts };
  }

  /** New caps from the next line on (e.g. larger ones after login). */
  setLimits(opts: ReceiverOptions): void {
    this.#opts = { ...opts };
  }

  get limits(): Readonly<ReceiverOptions> {
    return this.#opts;
  }

  /** Bytes received but not yet consumed. */
  get buffered(): number {
    return this.#buf.length + this.#tailLen;
  }

  /** True while a literal announcement waits for accept()/reject(). */
  get awaitingDecision(): boolean {
    return this.#state === 'decide';
  }

  /** True while literal data is being read. */
  get inLiteral(): boolean {
    return this.#state === 'literal';
  }

  push(chunk: Buffer): void {
    if (this.#state === 'dead' || chunk.length === 0) return;
    this.#tail.push(chunk);
    this.#tailLen += chunk.length;
    if (!this.#tailLf && chunk.includes(0x0a)) this.#tailLf = true;
  }

  /** Joins #tail to #buf (each byte is copied a bounded number of times). */
  #join(): void {
    if (this.#tail.length === 0) return;
    this.#buf = this.#buf.length === 0 && this.#tail.length === 1 ? this.#tail[0]! : Buffer.concat([this.#buf, ...this.#tail]);
    this.#tail = [];
    this.#tailLen = 0;
    this.#tailLf = false;
  }

  /** Literal data: the next chunk becomes #buf as it is, no copy. */
  #shift(): void {
    const c = this.#tail.shift()!;
    this.#tailLen -= c.length;
    this.#buf = c;
    if (this.#tail.length === 0) this.#tailLf = false;
  }

  /** The next event, or null when more input (or a decision) is needed. */
  next(): ReceiverEvent | null {
    for (;;) {
      switch (this.#state) {
        case 'dead':
        case 'decide':
          return null;
        case 'literal': {
          if (this.#pendingEnd) {
            this.#pendingEnd = false;
            this.#state = 'line';
            return { kind: 'literal-end' };
          }
          if (this.#buf.length === 0) {
            if (this.#tail.length === 0) return null;
            this.#shift();
          }
          const n = Math.min(this.#litRemaining, this.#buf.length);
          const data = this.#buf.subarray(0, n);
          this.#buf = this.#buf.subarray(n);
          this.#litRemaining -= n;
          if (this.#litMode === 'buffer') {
            this.#litChunks.push(data);
          } else if (this.#litMode === 'stream') {
            // Copy: the caller may keep it after we drop our reference to the chunk.
            const out = Buffer.from(data);
            if (this.#litRemaining === 0) this.#finishLiteral();
            return { kind: 'literal-data', data: out };
          }
          if (this.#litRemaining === 0) this.#finishLiteral();
          continue;
        }
        case 'line': {
          const idx = this.#buf.indexOf(0x0a, this.#scanned);
          if (idx < 0) {
            this.#scanned = this.#buf.length;
            if (this.#tailLf) {
              this.#join();
              continue;
            }
            if (this.#buf.length + this.#tailLen > this.#opts.maxLine + 1) return this.#die('line-too-long');
            return null;
          }
          let end = idx;
          if (end > 0 && this.#buf[end - 1] === 0x0d) end--;
          if (end > this.#opts.maxLine) return this.#die('line-too-long');
          let line = this.#buf.subarray(0, end);
          this.#buf = this.#buf.subarray(idx + 1);
          this.#scanned = 0;
          // A literal announcement ends the line (RFC 9051 §4.3).
          const lit = literalAnnouncement(line);
          this.#cmdBytes += line.length;
          if (this.#cmdBytes > this.#opts.maxCommand) return this.#die('command-too-large');
          if (lit) {
            line = Buffer.from(line.subarray(0, line.length - lit.length));
            this.#segments.push(line);
            const info = { size: lit.size, nonSync: lit.nonSync, binary: lit.binary };
            this.#info.push(info);
            if (this.#info.length > MAX_LITERALS_PER_COMMAND) return this.#die('command-too-large');
            this.#state = 'decide';
            return { kind: 'literal', ...info, pending: { segments: this.#segments, literals: this.#literals, literalInfo: this.#info } };
          }
          this.#segments.push(Buffer.from(line));
          const command = this.#current();
          const discarded = this.#discard;
          this.#reset();
          return discarded ? { kind: 'discarded', command } : { kind: 'command', command };
        }
      }
    }
  }

  /** Accepts the announced literal. 'buffer' keeps it in the command (counted against maxCommand). */
  accept(mode: LiteralMode): void {
    if (this.#state !== 'decide') throw new Error('no literal pending');
    const info = this.#info[this.#info.length - 1]!;
    // A size no cap allows (Infinity) can't be read, streamed or skipped: the caller must refuse
    // it (and close, for a non-synchronizing one, RFC 7888 §4) instead.
    if (!Number.isSafeInteger(info.size)) throw new RangeError('literal size over every limit');
    if (mode === 'buffer' && this.#cmdBytes + info.size > this.#opts.maxCommand) mode = 'discard';
    if (mode === 'discard') this.#discard = true;
    this.#litMode = mode;
    this.#litRemaining = info.size;
    this.#litChunks = [];
    this.#state = 'literal';
    if (info.size === 0) this.#finishLiteral();
  }

  /** Drops everything held and ignores further input (the session is closing). */
  discard(): void {
    this.#die('command-too-large');
    this.#segments = [];
    this.#literals = [];
    this.#litChunks = [];
  }

  /** Refuses a synchronizing literal: the client sends no data, the command is over. */
  reject(): void {
    if (this.#state !== 'decide') throw new Error('no literal pending');
    this.#reset();
  }

  #finishLiteral(): void {
    if (this.#litMode === 'buffer') {
      const lit = Buffer.concat(this.#litChunks);
      this.#cmdBytes += lit.length;
      this.#literals.push(lit);
    } else {
      this.#literals.push(null);
    }
    this.#litChunks = [];
    if (this.#litMode === 'stream') {
      this.#pendingEnd = true;
    } else {
      this.#state = 'line';
    }
  }

  #current(): RawCommand {
    return { segments: [...this.#segments], literals: [...this.#literals], literalInfo: [...this.#info] };
  }

  #reset(): void {
    this.#segments = [];
    this.#literals = [];
    this.#info = [];
    this.#cmdBytes = 0;
    this.#discard = false;
    this.#state = 'line';
    this.#pendingEnd = false;
  }

  #die(reason: 'line-too-long' | 'command-too-large'): ReceiverEvent {
    this.#state = 'dead';
    this.#buf = Buffer.alloc(0);
    this.#tail = [];
    this.#tailLen = 0;
    return { kind: 'fatal', reason };
  }
}
