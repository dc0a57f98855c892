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

export const MAX_TAG_LENGTH = 64;
export const MAX_LITERALS_PER_COMMAND = 1000;

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
  /** A literal is announced; call accept(mode) or reject(). */
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

const LIT_RE = /(~?)\{(\d{1,20})(\+?)\}$/;

export class Receiver {
  #buf: Buffer = Buffer.alloc(0);
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
  readonly #opts: ReceiverOptions;

  constructor(opts: ReceiverOptions) {
    this.#opts = opts;
  }

  /** Bytes received but not yet consumed. */
  get buffered(): number {
    return this.#buf.length;
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
    if (this.#state === 'dead') return;
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
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
          if (this.#buf.length === 0) return null;
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
            if (this.#buf.length > this.#opts.maxLine + 1) return this.#die('line-too-long');
            return null;
          }
          let end = idx;
          if (end > 0 && this.#buf[end - 1] === 0x0d) end--;
          if (end > this.#opts.maxLine) return this.#die('line-too-long');
          let line = this.#buf.subarray(0, end);
          this.#buf = this.#buf.subarray(idx + 1);
          this.#scanned = 0;
          // A literal announcement ends the line (RFC 9051 §4.3).
          const tail = line.subarray(Math.max(0, line.length - 26)).toString('latin1');
          const m = LIT_RE.exec(tail);
          this.#cmdBytes += line.length;
          if (this.#cmdBytes > this.#opts.maxCommand) return this.#die('command-too-large');
          if (m) {
            line = Buffer.from(line.subarray(0, line.length - m[0].length));
            this.#segments.push(line);
            const size = Number(m[2]);
            const info = { size: Number.isSafeInteger(size) ? size : Number.MAX_SAFE_INTEGER, nonSync: m[3] === '+', binary: m[1] === '~' };
            this.#info.push(info);
            if (this.#info.length > MAX_LITERALS_PER_COMMAND) return this.#die('command-too-large');
            this.#state = 'decide';
            return { kind: 'literal', ...info, pending: this.#current() };
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
    if (mode === 'buffer' && this.#cmdBytes + info.size > this.#opts.maxCommand) mode = 'discard';
    if (mode === 'discard') this.#discard = true;
    this.#litMode = mode;
    this.#litRemaining = info.size;
    this.#litChunks = [];
    this.#state = 'literal';
    if (info.size === 0) this.#finishLiteral();
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
    return { kind: 'fatal', reason };
  }
}
