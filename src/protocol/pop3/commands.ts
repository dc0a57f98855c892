// POP3 command side: line framing with a length cap and command parsing (RFC 1939 §3, RFC 2449).
// Pure: bytes in, typed values out. No sockets, no store.

/** One framed input line, or a notice that a line was too long (its bytes were discarded). */
export type LineEvent = { kind: 'line'; text: string } | { kind: 'overlong'; length: number };

const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits a byte stream into lines ending in CRLF (a bare LF is accepted too, RFC 1939 §3 asks
 * for CRLF but lenient framing costs nothing). A line longer than `maxLength` octets (CRLF
 * excluded) is never buffered whole: its bytes are dropped as they arrive and one 'overlong'
 * event is emitted when its end arrives, so memory stays bounded by `maxLength`.
 */
export class LineSplitter {
  readonly maxLength: number;
  #parts: Buffer[] = [];
  #partLen = 0;
  /** Bytes of the current overlong line seen so far, or -1 when not discarding. */
  #discarded = -1;
  #discardedCR = false;

  constructor(maxLength: number) {
    if (!(maxLength > 0)) throw new RangeError('maxLength must be positive');
    this.maxLength = maxLength;
  }

  /** Bytes held for an incomplete line. */
  get buffered(): number {
    return this.#partLen;
  }

  #lastByte(): number | undefined {
    const last = this.#parts[this.#parts.length - 1];
    return last ? last[last.length - 1] : undefined;
  }

  push(chunk: Buffer): LineEvent[] {
    const out: LineEvent[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      const idx = chunk.indexOf(LF, pos);
      const end = idx === -1 ? chunk.length : idx;
      if (this.#discarded >= 0) {
        this.#discarded += end - pos;
        if (end > pos) this.#discardedCR = chunk[end - 1] === CR;
        if (idx === -1) return out;
        out.push({ kind: 'overlong', length: this.#discarded - (this.#discardedCR ? 1 : 0) });
        this.#discarded = -1;
        pos = idx + 1;
        continue;
      }
      const piece = chunk.subarray(pos, end);
      const total = this.#partLen + piece.length;
      // The limit counts line content; the CR of a CRLF comes on top. A partial line can still
      // end in that CR, so it may hold maxLength + 1 bytes before it is known to be too long.
      const tooLong =
        idx === -1
          ? total > this.maxLength + 1
          : total - (total > 0 && (piece.length ? piece[piece.length - 1] : this.#lastByte()) === CR ? 1 : 0) > this.maxLength;
      if (tooLong) {
        this.#parts = [];
        this.#partLen = 0;
        if (idx === -1) {
          this.#discarded = total;
          this.#discardedCR = chunk[end - 1] === CR;
          return out;
        }
        out.push({ kind: 'overlong', length: total - (chunk[end - 1] === CR ? 1 : 0) });
        pos = idx + 1;
        continue;
      }
      if (idx === -1) {
        // Copy: the caller may reuse its chunk.
        this.#parts.push(Buffer.from(piece));
        this.#partLen += piece.length;
        return out;
      }
      let line = this.#partLen ? Buffer.concat([...this.#parts, piece]) : piece;
      this.#parts = [];
      this.#partLen = 0;
      if (line.length && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      out.push({ kind: 'line', text: line.toString('utf8') });
      pos = idx + 1;
    }
    return out;
  }
}

/** A parsed command line: keyword upper-cased, arguments split on runs of spaces. */
export interface Pop3Command {
  /** Upper-cased keyword ('' for an empty line). */
  name: string;
  /** Arguments separated by spaces (RFC 1939 §3). */
  args: string[];
  /** Everything after the keyword and its separating space, verbatim (for PASS, whose password may hold spaces). */
  rest: string;
}

/** RFC 1939 §3: "a case-insensitive keyword, possibly followed by one or more arguments". */
export function parseCommand(line: string): Pop3Command {
  const sp = line.indexOf(' ');
  const keyword = sp === -1 ? line : line.slice(0, sp);
  const rest = sp === -1 ? '' : line.slice(sp + 1);
  const args = rest.split(' ').filter((a) => a.length > 0);
  return { name: keyword.toUpperCase(), args, rest };
}

/** RFC 1939 §3 keywords this server knows, with the state each is valid in. */
export const COMMAND_STATES: Readonly<Record<string, 'authorization' | 'transaction' | 'any'>> = {
  USER: 'authorization',
  PASS: 'authorization',
  APOP: 'authorization',
  AUTH: 'authorization',
  STLS: 'authorization',
  CAPA: 'any',
  QUIT: 'any',
  NOOP: 'transaction',
  STAT: 'transaction',
  LIST: 'transaction',
  RETR: 'transaction',
  DELE: 'transaction',
  RSET: 'transaction',
  TOP: 'transaction',
  UIDL: 'transaction',
};

/**
 * A message number (RFC 1939 §3: "msg" is a decimal message-number) or a non-negative count
 * (TOP's line count). Returns null for anything else: signs, blanks, hex, huge values.
 */
export function parseNumber(s: string | undefined, opts: { allowZero?: boolean } = {}): number | null {
  if (s === undefined || !/^[0-9]{1,10}$/.test(s)) return null;
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n > 0xffffffff) return null;
  if (n === 0 && !opts.allowZero) return null;
  return n;
}

/** Decoded SASL PLAIN message (RFC 4616 §2): [authzid] NUL authcid NUL passwd. */
export interface SaslPlain {
  authzid: string;
  authcid: string;
  password: string;
}

/**
 * Decodes a base64 SASL PLAIN response (RFC 5034 §4, RFC 4616 §2). Returns null when the base64
 * is malformed or the message is not three NUL-separated UTF-8 fields with non-empty authcid and
 * password.
 */
export function decodeSaslPlain(b64: string): SaslPlain | null {
  const s = b64.trim();
  // RFC 4648 §4 strict alphabet, correct padding. linear: anchored; the class and '=' are disjoint.
  if (s.length === 0 || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
  const raw = Buffer.from(s, 'base64');
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0) {
      parts.push(raw.subarray(start, i));
      start = i + 1;
    }
  }
  parts.push(raw.subarray(start));
  if (parts.length !== 3) return null;
  const dec = new TextDecoder('utf-8', { fatal: true });
  try {
    const [authzid, authcid, password] = parts.map((p) => dec.decode(p)) as [string, string, string];
    if (!authcid || !password) return null;
    return { authzid, authcid, password };
  } catch {
    return null;
  }
}
