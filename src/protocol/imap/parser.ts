// IMAP command grammar (RFC 9051 §9, RFC 3501 §9, and extension grammars): RawCommand → typed command.
// Pure; a syntax error throws ImapParseError, which the session answers with a tagged BAD.

import type { RawCommand } from './receiver.ts';
import { MAX_TAG_LENGTH } from './receiver.ts';
import type {
  FetchItem,
  FlagSet,
  ImapCommand,
  Partial,
  QresyncParams,
  SearchKey,
  SearchReturn,
  SectionSpec,
  SectionText,
  SeqSet,
  StatusItem,
  TaggedCommand,
} from './types.ts';
import { STATUS_ITEMS } from './types.ts';

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
function isTagChar(c: number): boolean {
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

/** The tag of a command (for error replies), or null if none can be read. */
export function readTag(raw: RawCommand): string | null {
  // Only the head of the line is looked at: this runs at every literal of a command.
  const s = raw.segments[0]!.toString('latin1', 0, MAX_TAG_LENGTH + 2);
  let i = 0;
  while (i < s.length && i <= MAX_TAG_LENGTH && isTagChar(s.charCodeAt(i))) i++;
  if (i === 0 || i > MAX_TAG_LENGTH) return null;
  if (i < s.length && s[i] !== ' ') return null;
  return s.slice(0, i);
}

/** Tag and upper-cased command name ("UID FETCH" for UID commands), without parsing arguments. */
export function readCommandName(raw: RawCommand): { tag: string; name: string } | null {
  const tag = readTag(raw);
  if (tag === null) return null;
  const s = raw.segments[0]!.toString('latin1', tag.length + 1, tag.length + 64);
  const m = /^([A-Za-z0-9.=-]{1,32})(?: ([A-Za-z]{1,16}))?/.exec(s); // linear: anchored, bounded
  if (!m) return { tag, name: '' };
  let name = m[1]!.toUpperCase();
  if (name === 'UID' && m[2]) name = 'UID ' + m[2].toUpperCase();
  return { tag, name };
}

/**
 * For an APPEND whose literal is announced: the mailbox name (as sent) when this literal is the
 * message itself, so the session can check the mailbox and APPENDLIMIT before "+" and stream the
 * data; null when it is another literal (e.g. the mailbox name) or the line does not parse.
 */
export function appendMessageMailbox(pending: RawCommand): string | null {
  const r = new Reader(pending);
  try {
    r.tag = readTag(pending);
    if (r.tag === null) return null;
    r.pos = r.tag.length;
    r.sp();
    if (!r.takeWord('APPEND')) return null;
    r.sp();
    if (r.si === pending.segments.length - 1 && r.atLiteral()) return null; // the mailbox
    const mailbox = r.astring();
    if (r.atLiteral()) return null;
    r.sp();
    if (r.peek() === '(') {
      r.flagList();
      r.sp();
    }
    if (r.peek() === '"') {
      r.dateTime();
      r.sp();
    }
    if (r.takeWord('UTF8')) {
      r.sp();
      r.expect('(');
    }
    return r.atLiteral() && r.si === pending.segments.length - 1 ? mailbox : null;
  } catch {
    return null;
  }
}

export function isAppendMessageLiteral(pending: RawCommand): boolean {
  return appendMessageMailbox(pending) !== null;
}

/** Parses one complete command. Throws ImapParseError (with the tag when one was read). */
export function parseCommand(raw: RawCommand): TaggedCommand {
  const r = new Reader(raw);
  const tag = readTag(raw);
  if (tag === null) throw new ImapParseError('Missing or invalid tag');
  r.tag = tag;
  r.pos = tag.length;
  if (r.atEnd()) r.fail('Missing command');
  r.sp();
  let name = r.atom('command').toUpperCase();
  let uid = false;
  if (name === 'UID') {
    uid = true;
    r.sp();
    name = r.atom('command').toUpperCase();
    if (!['FETCH', 'SEARCH', 'STORE', 'COPY', 'MOVE', 'EXPUNGE'].includes(name)) r.fail(`UID ${name} is not a command`);
  }
  const command = parseArgs(r, name, uid);
  r.end();
  return { tag, command };
}

function parseArgs(r: Reader, name: string, uid: boolean): ImapCommand {
  switch (name) {
    case 'CAPABILITY':
    case 'NOOP':
    case 'LOGOUT':
    case 'STARTTLS':
    case 'CHECK':
    case 'CLOSE':
    case 'UNSELECT':
    case 'IDLE':
    case 'NAMESPACE':
      return { name };
    case 'EXPUNGE': {
      if (!uid) return { name: 'EXPUNGE', uid: false, set: null };
      r.sp();
      return { name: 'EXPUNGE', uid: true, set: r.seqSet() };
    }
    case 'LOGIN': {
      r.sp();
      const user = r.astring();
      r.sp();
      const pass = r.astring();
      return { name: 'LOGIN', user, pass };
    }
    case 'AUTHENTICATE': {
      r.sp();
      const mechanism = r.atom('mechanism').toUpperCase();
      let initial: string | null = null;
      if (r.take(' ')) {
        // SASL-IR (RFC 4959): base64 or "=".
        initial = r.atom('initial response');
      }
      return { name: 'AUTHENTICATE', mechanism, initial };
    }
    case 'ENABLE': {
      const caps: string[] = [];
      while (r.take(' ')) caps.push(r.atom('capability').toUpperCase());
      if (caps.length === 0) r.fail('ENABLE needs a capability');
      return { name: 'ENABLE', caps };
    }
    case 'SELECT':
    case 'EXAMINE': {
      r.sp();
      const mailbox = r.astring();
      let condstore = false;
      let qresync: QresyncParams | null = null;
      if (r.take(' ')) {
        r.list(() => {
          if (r.takeWord('CONDSTORE')) {
            condstore = true;
          } else if (r.takeWord('QRESYNC')) {
            // RFC 7162 §3.2.5
            r.sp();
            r.expect('(');
            const uidValidity = r.nzNumber();
            r.sp();
            const modseq = r.number64();
            let knownUids: SeqSet | null = null;
            let seqMatch: QresyncParams['seqMatch'] = null;
            // RFC 7162 §3.2.5: [SP known-uids] [SP "(" seq-match-data ")"]
            const matchData = (): QresyncParams['seqMatch'] => {
              r.expect('(');
              const seqs = r.seqSet();
              r.sp();
              const uids = r.seqSet();
              r.expect(')');
              return { seqs, uids };
            };
            if (r.take(' ')) {
              if (r.peek() !== '(') {
                knownUids = r.seqSet();
                if (r.take(' ')) seqMatch = matchData();
              } else {
                seqMatch = matchData();
              }
            }
            r.expect(')');
            qresync = { uidValidity, modseq, knownUids, seqMatch };
          } else {
            r.fail('Unknown SELECT parameter');
          }
          return null;
        }, false);
      }
      return { name, mailbox, condstore, qresync };
    }
    case 'CREATE': {
      r.sp();
      const mailbox = r.astring();
      const specialUse: string[] = [];
      if (r.take(' ')) {
        // RFC 6154 §3: CREATE mbox (USE (\Sent))
        r.list(() => {
          if (!r.takeWord('USE')) r.fail('Unknown CREATE parameter');
          r.sp();
          r.list(() => {
            r.expect('\\');
            specialUse.push('\\' + r.atom('special-use attribute'));
            return null;
          }, false);
          return null;
        }, false);
      }
      return { name: 'CREATE', mailbox, specialUse };
    }
    case 'DELETE':
    case 'SUBSCRIBE':
    case 'UNSUBSCRIBE': {
      r.sp();
      return { name, mailbox: r.astring() };
    }
    case 'RENAME': {
      r.sp();
      const from = r.astring();
      r.sp();
      return { name: 'RENAME', from, to: r.astring() };
    }
    case 'LIST':
      return parseList(r);
    case 'LSUB': {
      r.sp();
      const reference = r.astring();
      r.sp();
      return { name: 'LSUB', reference, pattern: r.listMailbox() };
    }
    case 'STATUS': {
      r.sp();
      const mailbox = r.astring();
      r.sp();
      return { name: 'STATUS', mailbox, items: r.list(() => statusItem(r), false) };
    }
    case 'APPEND':
      return parseAppend(r);
    case 'SEARCH':
      return parseSearch(r, uid);
    case 'FETCH':
      return parseFetch(r, uid);
    case 'STORE':
      return parseStore(r, uid);
    case 'COPY':
    case 'MOVE': {
      r.sp();
      const set = r.seqSet();
      r.sp();
      return { name, uid, set, mailbox: r.astring() };
    }
    case 'ID': {
      // RFC 2971 §3.3
      r.sp();
      if (r.takeWord('NIL')) return { name: 'ID', params: null };
      const params: Array<[string, string | null]> = [];
      r.expect('(');
      if (!r.take(')')) {
        for (;;) {
          const k = r.string();
          r.sp();
          const v = r.nstring();
          params.push([k, v]);
          if (params.length > 30) r.fail('Too many ID fields');
          if (r.take(')')) break;
          r.sp();
        }
      }
      return { name: 'ID', params };
    }
    case 'GETQUOTA': {
      r.sp();
      return { name: 'GETQUOTA', root: r.astring() };
    }
    case 'GETQUOTAROOT': {
      r.sp();
      return { name: 'GETQUOTAROOT', mailbox: r.astring() };
    }
    default:
      return r.fail(`Unknown command ${name.slice(0, 32)}`);
  }
}

function statusItem(r: Reader): StatusItem {
  const a = r.atom('status item').toUpperCase() as StatusItem;
  if (!STATUS_ITEMS.includes(a)) r.fail(`Unknown status item ${a}`);
  return a;
}

function parseList(r: Reader): ImapCommand {
  r.sp();
  let extended = false;
  const selection: string[] = [];
  if (r.peek() === '(') {
    // RFC 5258 §3: list-select-opts
    extended = true;
    for (const o of r.list(() => r.atom('selection option').toUpperCase())) {
      if (!['SUBSCRIBED', 'REMOTE', 'RECURSIVEMATCH', 'SPECIAL-USE'].includes(o)) r.fail(`Unknown LIST selection option ${o}`);
      selection.push(o);
    }
    r.sp();
  }
  if (selection.includes('RECURSIVEMATCH') && !selection.some((s) => s === 'SUBSCRIBED' || s === 'SPECIAL-USE')) {
    r.fail('RECURSIVEMATCH needs another selection option'); // RFC 5258 §3
  }
  const reference = r.astring();
  r.sp();
  let patterns: string[];
  if (r.peek() === '(') {
    extended = true;
    patterns = r.list(() => r.listMailbox(), false);
  } else {
    patterns = [r.listMailbox()];
  }
  const returns = { subscribed: false, children: false, specialUse: false, status: null as StatusItem[] | null };
  if (r.take(' ')) {
    if (!r.takeWord('RETURN')) r.fail('Expected RETURN');
    extended = true;
    r.sp();
    r.list(() => {
      const o = r.atom('return option').toUpperCase();
      if (o === 'SUBSCRIBED') returns.subscribed = true;
      else if (o === 'CHILDREN') returns.children = true;
      else if (o === 'SPECIAL-USE') returns.specialUse = true;
      else if (o === 'STATUS') {
        // RFC 5819
        r.sp();
        returns.status = r.list(() => statusItem(r), false);
      } else r.fail(`Unknown LIST return option ${o}`);
      return null;
    });
  }
  return { name: 'LIST', extended, selection, reference, patterns, returns };
}

function parseAppend(r: Reader): ImapCommand {
  r.sp();
  const mailbox = r.astring();
  r.sp();
  let flags: FlagSet | null = null;
  let date: number | null = null;
  if (r.peek() === '(') {
    flags = r.flagList();
    r.sp();
  }
  if (r.peek() === '"') {
    date = r.dateTime();
    r.sp();
  }
  let utf8 = false;
  if (r.takeWord('UTF8')) {
    // RFC 6855 §4: append-data =/ "UTF8" SP "(" literal8 ")"
    utf8 = true;
    r.sp();
    r.expect('(');
  }
  if (!r.atLiteral()) r.fail('Expected the message as a literal');
  const literalIndex = r.literalIndex();
  const message = r.literalBuffer();
  if (utf8) r.expect(')');
  return { name: 'APPEND', mailbox, flags, date, message, literalIndex, utf8 };
}

function parseStore(r: Reader, uid: boolean): ImapCommand {
  r.sp();
  const set = r.seqSet();
  r.sp();
  let unchangedSince: number | null = null;
  if (r.peek() === '(') {
    // RFC 7162 §3.1.3
    r.list(() => {
      if (!r.takeWord('UNCHANGEDSINCE')) r.fail('Unknown STORE modifier');
      r.sp();
      unchangedSince = r.number64();
      return null;
    }, false);
    r.sp();
  }
  let op: 'add' | 'remove' | 'set' = 'set';
  if (r.take('+')) op = 'add';
  else if (r.take('-')) op = 'remove';
  const item = r.atom('store item').toUpperCase();
  if (item !== 'FLAGS' && item !== 'FLAGS.SILENT') r.fail('Expected FLAGS or FLAGS.SILENT');
  r.sp();
  let flags: FlagSet;
  if (r.peek() === '(') {
    flags = r.flagList();
  } else {
    flags = { systemFlags: 0, keywords: [] };
    for (;;) {
      const f = r.flag();
      if (f.recent) r.fail('\\Recent cannot be stored');
      flags.systemFlags |= f.system;
      if (f.keyword !== null) flags.keywords.push(f.keyword);
      if (!r.take(' ')) break;
    }
  }
  return { name: 'STORE', uid, set, op, silent: item === 'FLAGS.SILENT', flags, unchangedSince };
}

// ---- FETCH (RFC 9051 §6.4.5)

function parsePartial(r: Reader): Partial | null {
  if (!r.take('<')) return null;
  const start = r.number();
  r.expect('.');
  const length = r.nzNumber();
  r.expect('>');
  return { start, length };
}

function parsePart(r: Reader): number[] {
  const part: number[] = [];
  while (/[0-9]/.test(r.peek())) {
    part.push(r.nzNumber());
    if (r.peek() === '.' && /[0-9]/.test(r.seg[r.pos + 1] ?? '')) r.pos++;
    else break;
  }
  return part;
}

/** section-spec inside [ ]. */
export function parseSection(r: Reader): SectionSpec {
  r.expect('[');
  const part = parsePart(r);
  let text: SectionText | null = null;
  const fields: string[] = [];
  if (part.length === 0 || r.take('.')) {
    if (r.peek() !== ']') {
      const word = r.atom('section').toUpperCase();
      if (word === 'HEADER' || word === 'TEXT') text = word;
      else if (word === 'MIME' && part.length > 0) text = 'MIME';
      else if (word === 'HEADER.FIELDS' || word === 'HEADER.FIELDS.NOT') {
        text = word;
        r.sp();
        fields.push(...r.list(() => r.astring(), false));
      } else r.fail(`Invalid section ${word}`);
    } else if (part.length > 0) {
      r.fail('Invalid section');
    }
  }
  r.expect(']');
  return { part, text, fields };
}

function fetchAtt(r: Reader): FetchItem {
  const c = r.peek();
  if (c === '' ) r.fail('Expected a fetch item');
  // Read the item name up to [ or a delimiter.
  const start = r.pos;
  while (r.pos < r.seg.length && /[A-Za-z0-9.]/.test(r.seg[r.pos]!)) r.pos++;
  const word = r.seg.slice(start, r.pos).toUpperCase();
  switch (word) {
    case 'FLAGS':
    case 'INTERNALDATE':
    case 'RFC822.SIZE':
    case 'ENVELOPE':
    case 'BODYSTRUCTURE':
    case 'UID':
    case 'MODSEQ':
    case 'RFC822':
    case 'RFC822.HEADER':
    case 'RFC822.TEXT':
      return { k: word };
    case 'BODY':
    case 'BODY.PEEK': {
      if (r.peek() !== '[') {
        if (word === 'BODY.PEEK') r.fail('BODY.PEEK needs a section');
        return { k: 'BODY' };
      }
      const section = parseSection(r);
      return { k: 'BODY[]', peek: word === 'BODY.PEEK', section, partial: parsePartial(r) };
    }
    case 'BINARY':
    case 'BINARY.PEEK':
    case 'BINARY.SIZE': {
      // RFC 3516 / RFC 9051: section-binary = "[" [section-part] "]"
      r.expect('[');
      const part = parsePart(r);
      r.expect(']');
      if (word === 'BINARY.SIZE') return { k: 'BINARY.SIZE', part };
      return { k: 'BINARY[]', peek: word === 'BINARY.PEEK', part, partial: parsePartial(r) };
    }
    default:
      return r.fail(`Unknown fetch item ${word || r.peek()}`);
  }
}

function parseFetch(r: Reader, uid: boolean): ImapCommand {
  r.sp();
  const set = r.seqSet();
  r.sp();
  let items: FetchItem[];
  let macro = false;
  if (r.peek() === '(') {
    items = r.list(() => fetchAtt(r), false);
  } else if (r.peekWord('ALL') || r.peekWord('FAST') || r.peekWord('FULL')) {
    const m = r.atom().toUpperCase();
    macro = true;
    items = [{ k: 'FLAGS' }, { k: 'INTERNALDATE' }, { k: 'RFC822.SIZE' }];
    if (m !== 'FAST') items.push({ k: 'ENVELOPE' });
    if (m === 'FULL') items.push({ k: 'BODY' });
  } else {
    items = [fetchAtt(r)];
  }
  let changedSince: number | null = null;
  let vanished = false;
  if (r.take(' ')) {
    // RFC 7162 §3.1.4 CHANGEDSINCE, §3.2.6 VANISHED
    r.list(() => {
      if (r.takeWord('CHANGEDSINCE')) {
        r.sp();
        changedSince = r.number64();
      } else if (r.takeWord('VANISHED')) {
        vanished = true;
      } else r.fail('Unknown FETCH modifier');
      return null;
    }, false);
  }
  if (vanished && (!uid || changedSince === null)) r.fail('VANISHED needs UID FETCH with CHANGEDSINCE');
  return { name: 'FETCH', uid, set, items, changedSince, vanished, macro };
}

// ---- SEARCH (RFC 9051 §6.4.4, RFC 4731 ESEARCH, RFC 7162 §3.1.5 MODSEQ)

function parseSearch(r: Reader, uid: boolean): ImapCommand {
  let returns: SearchReturn[] | null = null;
  let charset: string | null = null;
  r.sp();
  if (r.takeWord('RETURN')) {
    r.sp();
    returns = r.list(() => {
      const o = r.atom('return option').toUpperCase() as SearchReturn;
      if (!['MIN', 'MAX', 'ALL', 'COUNT', 'SAVE'].includes(o)) r.fail(`Unknown SEARCH return option ${o}`);
      return o;
    });
    r.sp();
  }
  if (r.takeWord('CHARSET')) {
    r.sp();
    charset = r.astring().toUpperCase();
    r.sp();
  }
  const keys: SearchKey[] = [searchKey(r, 0)];
  while (r.take(' ')) keys.push(searchKey(r, 0));
  return { name: 'SEARCH', uid, charset, returns, key: keys.length === 1 ? keys[0]! : { k: 'and', keys } };
}

const FLAG_KEYS: Record<string, [number, boolean]> = {
  ANSWERED: [2, true],
  DELETED: [8, true],
  DRAFT: [16, true],
  FLAGGED: [4, true],
  SEEN: [1, true],
  UNANSWERED: [2, false],
  UNDELETED: [8, false],
  UNDRAFT: [16, false],
  UNFLAGGED: [4, false],
  UNSEEN: [1, false],
};

function searchKey(r: Reader, depth: number): SearchKey {
  if (depth > 50) r.fail('Search too deeply nested');
  if (r.peek() === '(') {
    const keys = r.list(() => searchKey(r, depth + 1), false);
    return keys.length === 1 ? keys[0]! : { k: 'and', keys };
  }
  const c = r.peekCode();
  if ((c >= 0x30 && c <= 0x39) || c === 0x2a || c === 0x24) return { k: 'seq', set: r.seqSet() };
  const word = r.atom('search key').toUpperCase();
  const flag = FLAG_KEYS[word];
  if (flag) return { k: 'flag', flag: flag[0], set: flag[1] };
  const arg = () => {
    r.sp();
    return r.astring();
  };
  switch (word) {
    case 'ALL':
      return { k: 'all' };
    case 'NEW': // rev1: RECENT UNSEEN
      return { k: 'and', keys: [{ k: 'recent', set: true }, { k: 'flag', flag: 1, set: false }] };
    case 'OLD':
      return { k: 'recent', set: false };
    case 'RECENT':
      return { k: 'recent', set: true };
    case 'BCC':
    case 'CC':
    case 'FROM':
    case 'SUBJECT':
    case 'TO':
      return { k: 'header', field: word.toLowerCase(), value: arg() };
    case 'HEADER': {
      r.sp();
      const field = r.astring().toLowerCase();
      return { k: 'header', field, value: arg() };
    }
    case 'BODY':
      return { k: 'body', value: arg() };
    case 'TEXT':
      return { k: 'text', value: arg() };
    case 'KEYWORD':
    case 'UNKEYWORD': {
      r.sp();
      const f = r.flag();
      if (f.keyword === null) {
        // KEYWORD \Seen etc. behave like the flag key.
        return { k: 'flag', flag: f.system, set: word === 'KEYWORD' };
      }
      return { k: 'keyword', keyword: f.keyword, set: word === 'KEYWORD' };
    }
    case 'BEFORE':
    case 'ON':
    case 'SINCE':
    case 'SENTBEFORE':
    case 'SENTON':
    case 'SENTSINCE': {
      r.sp();
      const sent = word.startsWith('SENT');
      const op = (sent ? word.slice(4) : word).toLowerCase() as 'before' | 'on' | 'since';
      return { k: 'date', op, sent, day: r.date() };
    }
    case 'LARGER':
    case 'SMALLER': {
      r.sp();
      return { k: 'size', op: word === 'LARGER' ? 'larger' : 'smaller', n: r.number() };
    }
    case 'UID': {
      r.sp();
      return { k: 'uid', set: r.seqSet() };
    }
    case 'NOT': {
      r.sp();
      return { k: 'not', key: searchKey(r, depth + 1) };
    }
    case 'OR': {
      r.sp();
      const a = searchKey(r, depth + 1);
      r.sp();
      return { k: 'or', a, b: searchKey(r, depth + 1) };
    }
    case 'MODSEQ': {
      // RFC 7162 §3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer
      r.sp();
      if (r.peek() === '"') {
        r.quoted();
        r.sp();
        const t = r.atom('entry type').toLowerCase();
        if (!['priv', 'shared', 'all'].includes(t)) r.fail('Invalid MODSEQ entry type');
        r.sp();
      }
      return { k: 'modseq', modseq: r.number64() };
    }
    default:
      return r.fail(`Unknown search key ${word.slice(0, 32)}`);
  }
}
