// POP3 response side: status lines, multi-line responses with dot-stuffing (RFC 1939 §3), the
// TOP cut (RFC 1939 §7) and the RFC 2449 response codes. Pure and incremental, so a session can
// stream a large message chunk by chunk and respect socket backpressure in between.

/** RFC 2449 §8 / RFC 3206 extended response codes this server sends. */
export type Pop3RespCode = 'IN-USE' | 'LOGIN-DELAY' | 'AUTH' | 'SYS/TEMP' | 'SYS/PERM';

/** Keeps a status text on one line: CR and LF would end the response early. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' '); // linear: one class, nothing after it
}

/** `+OK text` (RFC 1939 §3 status indicator). */
export function okLine(text = ''): string {
  const t = oneLine(text);
  return t ? `+OK ${t}\r\n` : '+OK\r\n';
}

/** `-ERR [CODE] text` (RFC 2449 §8: the code in brackets right after -ERR). */
export function errLine(text: string, code?: Pop3RespCode): string {
  const t = oneLine(text);
  return code ? `-ERR [${code}] ${t}\r\n` : `-ERR ${t}\r\n`;
}

/** `+ base64` SASL continuation (RFC 5034 §4); an empty challenge is `+ ` followed by CRLF. */
export function continuationLine(base64 = ''): string {
  return `+ ${base64}\r\n`;
}

/** RFC 1939 §3: a multi-line response, each line dot-stuffed, ended by a lone ".". */
export function multiLine(first: string, lines: readonly string[]): string {
  let out = okLine(first);
  for (const l of lines) {
    const t = oneLine(l);
    out += (t.startsWith('.') ? '.' : '') + t + '\r\n';
  }
  return out + '.\r\n';
}

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const DOTB = Buffer.from('.');
const TERMINATOR = Buffer.from('.\r\n');

/**
 * Encodes message bytes as the body of a multi-line response (RFC 1939 §3): a line that starts
 * with "." gets one more "."; every line ends in CRLF (a bare LF becomes CRLF); `end()` closes
 * the last line if needed and adds the terminating ".". Feed chunks in order; chunk borders may
 * fall anywhere, including between CR and LF.
 */
export class DotStuffEncoder {
  #atLineStart = true;
  #lastWasCR = false;

  push(chunk: Buffer): Buffer {
    const n = chunk.length;
    if (n === 0) return chunk;
    // Only the spots that change are cut out: runs of clean CRLF lines pass as one slice.
    const parts: Buffer[] = [];
    let segStart = 0;
    let pos = 0;
    while (pos < n) {
      if (this.#atLineStart && chunk[pos] === DOT) {
        if (pos > segStart) parts.push(chunk.subarray(segStart, pos));
        parts.push(DOTB);
        segStart = pos;
      }
      this.#atLineStart = false;
      const idx = chunk.indexOf(LF, pos);
      if (idx === -1) {
        this.#lastWasCR = chunk[n - 1] === CR;
        break;
      }
      const crBefore = idx > pos ? chunk[idx - 1] === CR : this.#lastWasCR;
      if (!crBefore) {
        // Bare LF → CRLF.
        if (idx > segStart) parts.push(chunk.subarray(segStart, idx));
        parts.push(CRLF);
        segStart = idx + 1;
      }
      this.#atLineStart = true;
      this.#lastWasCR = false;
      pos = idx + 1;
    }
    if (parts.length === 0) return chunk;
    if (segStart < n) parts.push(chunk.subarray(segStart));
    return Buffer.concat(parts);
  }

  /** The bytes that end the response: a CRLF if the data did not end with one, then ".CRLF". */
  end(): Buffer {
    if (this.#atLineStart) return TERMINATOR;
    const tail = this.#lastWasCR ? Buffer.from('\n.\r\n') : Buffer.from('\r\n.\r\n');
    this.#atLineStart = true;
    this.#lastWasCR = false;
    return tail;
  }
}

/**
 * RFC 1939 §7 TOP msg n: the header, the blank line after it, then at most `bodyLines` lines of
 * the body. Incremental: `push()` returns what to send from each chunk and whether the cut was
 * reached (the caller then stops reading). A message without a blank line is all header.
 */
export class TopFilter {
  #inHeader = true;
  #left: number;
  #done = false;
  /** Bytes of the current line so far (LF excluded). */
  #lineLen = 0;
  #lineFirstCR = false;

  constructor(bodyLines: number) {
    this.#left = bodyLines;
  }

  get done(): boolean {
    return this.#done;
  }

  push(chunk: Buffer): Buffer {
    if (this.#done) return Buffer.alloc(0);
    let pos = 0;
    const n = chunk.length;
    if (!this.#inHeader && this.#left === 0) {
      this.#done = true;
      return Buffer.alloc(0);
    }
    while (pos < n) {
      const idx = chunk.indexOf(LF, pos);
      if (idx === -1) {
        if (this.#lineLen === 0 && pos < n) this.#lineFirstCR = chunk[pos] === CR;
        this.#lineLen += n - pos;
        return chunk;
      }
      if (this.#lineLen === 0 && idx > pos) this.#lineFirstCR = chunk[pos] === CR;
      const len = this.#lineLen + (idx - pos);
      const empty = len === 0 || (len === 1 && this.#lineFirstCR);
      this.#lineLen = 0;
      this.#lineFirstCR = false;
      pos = idx + 1;
      if (this.#inHeader) {
        if (empty) this.#inHeader = false;
        else continue;
      } else {
        this.#left--;
      }
      if (this.#left === 0 && !this.#inHeader) {
        this.#done = true;
        return chunk.subarray(0, pos);
      }
    }
    return chunk;
  }
}
