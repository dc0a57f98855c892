// IMAP grammar primitives (RFC 9051 §9, RFC 3501 §9): the cursor over a command's segments and
// literals, and the character classes. Pure.

import type { RawCommand } from './receiver.ts';
import type { FlagSet, SeqSet } from './types.ts';

export class ImapParseError extends Error {
  readonly tag: string | null;
  constructor(
    message: string,
    tag: string | null = null) {
    super(message);
    this.tag = tag;
    this.name = 'ImapParseError';
  }
}

const SYSTEM_FLAGS: Record<string, number> = { '\\seen': 1, '\\answered': 2, '\\flagged': 4, '\\deleted': 8, '\\draft': 16 };

/** ATOM-CHAR: any CHAR except atom-specials (RFC 9051 §9): ( ) { SP CTL % * " \ ] and 8-bit. */
function isAtomChar(c: number): boolean {
  return c > 0x20 && c < 0x7f && c !== 0x28 && c !== 0x29 && c !== 0x7b && c !== 0x25 && c !== 0x2a && c !== 0x22 && c !== 0x5c && c !== 0x5d;
}
/** ASTRING-CHAR = ATOM-CHAR / "]". */
function isAstringChar(c: number): boolean {
  return isAtomChar(c) || c === 0x5d;
}
/** list-char = ATOM-CHAR / list-wildcards / resp-specials (RFC 9051 §9). */
function isListChar(c: number): boolean {
  return isAtomChar(c) || c === 0x25 || c === 0x2a || c === 0x5d;
}
/** tag = 1*<any ASTRING-CHAR except "+">. */
export function isTagChar(c: number): boolean {
  return isAstringChar(c) && c !== 0x2b;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** Cursor over the segments and literals of a command. */
export class Reader {
  /** Segments decoded when first reached (a Reader that stops early decodes only what it read). */
  readonly #segs: Array<string | undefined>;
  si = 0;
  pos = 0;
  tag: string | null = null;

  readonly raw: RawCommand;
  constructor(raw: RawCommand) {
    this.raw = raw;
    this.#segs = new Array(raw.segments.length);
  }

  fail(msg: string): never {
    throw new ImapParseError(msg, this.tag);
  }

  get seg(): string {
    return (this.#segs[this.si] ??= this.raw.segments[this.si]!.toString('utf8'));
  }

  atLiteral(): boolean {
    return this.pos === this.seg.length && this.si < this.raw.literalInfo.length;
  }

  atEnd(): boolean {
    return this.si === this.raw.segments.length - 1 && this.pos === this.seg.length;
  }

  peek(): string {
    return this.pos < this.seg.length ? this.seg[this.pos]! : '';
  }

  peekCode(): number {
    return this.pos < this.seg.length ? this.seg.charCodeAt(this.pos) : -1;
  }

  expect(ch: string): void {
    if (this.peek() !== ch) this.fail(ch === ' ' ? 'Expected a space' : `Expected "${ch}"`);
    this.pos++;
  }

  sp(): void {
    this.expect(' ');
  }

  /** Consumes `ch` when it comes next. */
  take(ch: string): boolean {
    if (this.peek() === ch) {
      this.pos++;
      return true;
    }
    return false;
  }

  end(): void {
    if (!this.atEnd()) this.fail('Unexpected extra arguments');
  }

  /** Case-insensitive keyword test without consuming. */
  peekWord(word: string): boolean {
    const s = this.seg.slice(this.pos, this.pos + word.length);
    if (s.toUpperCase() !== word) return false;
    const after = this.seg.charCodeAt(this.pos + word.length);
    return Number.isNaN(after) || !isAtomChar(after) || word.endsWith('[');
  }

  takeWord(word: string): boolean {
    if (this.peekWord(word)) {
      this.pos += word.length;
      return true;
    }
    return false;
  }

  atom(what = 'atom'): string {
    const start = this.pos;
    while (this.pos < this.seg.length && isAtomChar(this.seg.charCodeAt(this.pos))) this.pos++;
    if (this.pos === start) this.fail(`Expected ${what}`);
    return this.seg.slice(start, this.pos);
  }

  #chars(pred: (c: number) => boolean): string {
    const start = this.pos;
    while (this.pos < this.seg.length && pred(this.seg.charCodeAt(this.pos))) this.pos++;
    return this.seg.slice(start, this.pos);
  }

  quoted(): string {
    this.expect('"');
    let out = '';
    for (;;) {
      if (this.pos >= this.seg.length) this.fail('Unterminated quoted string');
      const c = this.seg[this.pos++]!;
      if (c === '"') return out;
      if (c === '\\') {
        const n = this.seg[this.pos++];
        if (n !== '"' && n !== '\\') this.fail('Bad escape in quoted string');
        out += n;
      } else {
        out += c;
      }
    }
  }

  /** The literal at the current position (null when streamed). */
  literalBuffer(): Buffer | null {
    if (!this.atLiteral()) this.fail('Expected a literal');
    const lit = this.raw.literals[this.si];
    this.si++;
    this.pos = 0;
    return lit ?? null;
  }

  literalIndex(): number {
    return this.si;
  }

  string(): string {
    if (this.peek() === '"') return this.quoted();
    if (this.atLiteral()) {
      const b = this.literalBuffer();
      if (b === null) this.fail('Literal not available');
      return b.toString('utf8');
    }
    return this.fail('Expected a string');
  }

  astring(): string {
    if (this.peek() === '"' || this.atLiteral()) return this.string();
    const s = this.#chars(isAstringChar);
    if (!s) this.fail('Expected a string or atom');
    return s;
  }

  nstring(): string | null {
    if (this.takeWord('NIL')) return null;
    return this.string();
  }

  /** list-mailbox (RFC 9051 §9). */
  listMailbox(): string {
    if (this.peek() === '"' || this.atLiteral()) return this.string();
    const s = this.#chars(isListChar);
    if (!s) this.fail('Expected a mailbox pattern');
    return s;
  }

  number(): number {
    const s = this.#chars((c) => c >= 0x30 && c <= 0x39);
    if (!s) this.fail('Expected a number');
    const n = Number(s);
    if (!Number.isSafeInteger(n)) this.fail('Number too large');
    return n;
  }

  nzNumber(): number {
    const n = this.number();
    if (n === 0) this.fail('Expected a non-zero number');
    return n;
  }

  /** number64 (modseq etc.). */
  number64(): number {
    return this.number();
  }

  seqSet(): SeqSet {
    if (this.take('$')) return { saved: true };
    const ranges: Array<[number, number]> = [];
    for (;;) {
      const a = this.#seqNumber();
      let b = a;
      if (this.take(':')) b = this.#seqNumber();
      ranges.push([a, b]);
      if (!this.take(',')) break;
    }
    const c = this.peekCode();
    if (c !== -1 && c !== 0x20 && c !== 0x29) this.fail('Invalid sequence set');
    return { saved: false, ranges };
  }

  #seqNumber(): number {
    if (this.take('*')) return -1;
    const c = this.peekCode();
    if (c < 0x30 || c > 0x39) this.fail('Invalid sequence set');
    const n = this.number();
    if (n === 0 || n > 0xffffffff) this.fail('Invalid sequence set');
    return n;
  }

  flag(): { system: number; keyword: string | null; recent: boolean } {
    if (this.peek() === '\\') {
      this.pos++;
      const name = '\\' + this.atom('flag');
      const bit = SYSTEM_FLAGS[name.toLowerCase()];
      if (bit !== undefined) return { system: bit, keyword: null, recent: false };
      if (name.toLowerCase() === '\\recent') return { system: 0, keyword: null, recent: true };
      this.fail(`Unknown system flag ${name}`);
    }
    return { system: 0, keyword: this.atom('flag'), recent: false };
  }

  /** flag-list "(" [flag *(SP flag)] ")". */
  flagList(): FlagSet {
    this.expect('(');
    const fs: FlagSet = { systemFlags: 0, keywords: [] };
    if (!this.take(')')) {
      for (;;) {
        const f = this.flag();
        if (f.recent) this.fail('\\Recent cannot be set');
        fs.systemFlags |= f.system;
        if (f.keyword !== null) fs.keywords.push(f.keyword);
        if (this.take(')')) break;
        this.sp();
      }
    }
    return fs;
  }

  /** date = date-text / DQUOTE date-text DQUOTE; date-text = date-day "-" date-month "-" date-year. → UTC midnight ms. */
  date(): number {
    const q = this.take('"');
    const s = this.#chars((c) => c !== 0x20 && c !== 0x22 && c !== 0x29);
    if (q) this.expect('"');
    const m = /^(\d{1,2})-([A-Za-z]{3})-(\d{4})$/.exec(s);
    const mon = m ? MONTHS.indexOf(m[2]!.toLowerCase()) : -1;
    if (!m || mon < 0) this.fail('Invalid date');
    const day = Number(m[1]);
    if (day < 1 || day > 31) this.fail('Invalid date');
    return Date.UTC(Number(m[3]), mon, day);
  }

  /** date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE → ms. */
  dateTime(): number {
    const s = this.quoted();
    const m = /^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(s);
    const mon = m ? MONTHS.indexOf(m[2]!.toLowerCase()) : -1;
    if (!m || mon < 0) this.fail('Invalid date-time');
    const utc = Date.UTC(Number(m[3]), mon, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
    const off = (Number(m[8]) * 60 + Number(m[9])) * 60000 * (m[7] === '-' ? -1 : 1);
    const t = utc - off;
    if (!Number.isFinite(t)) this.fail('Invalid date-time');
    return t;
  }

  /** A parenthesized list of items read by `item`, separated by SP. */
  list<T>(item: () => T, allowEmpty = true): T[] {
    this.expect('(');
    const out: T[] = [];
    if (this.take(')')) {
      if (!allowEmpty) this.fail('Empty list');
      return out;
    }
    for (;;) {
      out.push(item());
      if (this.take(')')) return out;
      if (this.atEnd()) this.fail('Unbalanced parenthesis: missing ")"');
      this.sp();
    }
  }
}
