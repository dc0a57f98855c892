// A small structural checker for JavaScript regular expressions: it parses a pattern (the subset
// of the syntax this project can use) and reports the shapes whose backtracking is super-linear
// in the subject's length. Conservative: a pattern it cannot parse is reported too.
//
// Character sets are tracked exactly for ASCII and as one "any non-ASCII" bit, which is enough to
// decide whether two repeated atoms can match the same character.

type CharSet = { ascii: Uint8Array; nonAscii: boolean };

interface Quant {
  min: number;
  max: number;
  lazy: boolean;
}

type Node =
  | { t: 'set'; set: CharSet; q: Quant | null }
  | { t: 'group'; alts: Node[][]; q: Quant | null; look: boolean }
  | { t: 'start' }
  | { t: 'end' }
  | { t: 'wordb' }
  | { t: 'backref' };

export interface RegexFinding {
  rule: string;
  detail: string;
}

function emptySet(): CharSet {
  return { ascii: new Uint8Array(128), nonAscii: false };
}
function fullSet(): CharSet {
  return { ascii: new Uint8Array(128).fill(1), nonAscii: true };
}
function addRange(s: CharSet, a: number, b: number): void {
  for (let c = a; c <= b; c++) {
    if (c < 128) s.ascii[c] = 1;
    else {
      s.nonAscii = true;
      break;
    }
  }
  if (b >= 128) s.nonAscii = true;
}
function union(a: CharSet, b: CharSet): CharSet {
  const s = emptySet();
  for (let i = 0; i < 128; i++) s.ascii[i] = a.ascii[i]! | b.ascii[i]!;
  s.nonAscii = a.nonAscii || b.nonAscii;
  return s;
}
function negate(a: CharSet): CharSet {
  const s = emptySet();
  for (let i = 0; i < 128; i++) s.ascii[i] = a.ascii[i] ? 0 : 1;
  s.nonAscii = true; // a negated class matches (some) non-ASCII characters
  return s;
}
function overlaps(a: CharSet, b: CharSet): boolean {
  if (a.nonAscii && b.nonAscii) return true;
  for (let i = 0; i < 128; i++) if (a.ascii[i] && b.ascii[i]) return true;
  return false;
}
function isFull(a: CharSet): boolean {
  return a.nonAscii && a.ascii.every((x) => x === 1);
}

function classEscape(ch: string, icase: boolean): CharSet | null {
  const s = emptySet();
  switch (ch) {
    case 'd': addRange(s, 48, 57); return s;
    case 'w': addRange(s, 48, 57); addRange(s, 65, 90); addRange(s, 97, 122); s.ascii[95] = 1; return s;
    case 's': for (const c of [9, 10, 11, 12, 13, 32]) s.ascii[c] = 1; s.nonAscii = true; return s;
    case 'D': return negate(classEscape('d', icase)!);
    case 'W': return negate(classEscape('w', icase)!);
    case 'S': return negate(classEscape('s', icase)!);
    default: return null;
  }
}

const SIMPLE_ESC: Record<string, number> = { t: 9, n: 10, v: 11, f: 12, r: 13, '0': 0 };

class Parser {
  readonly src: string;
  readonly icase: boolean;
  readonly dotAll: boolean;
  i = 0;
  constructor(src: string, flags: string) {
    this.src = src;
    this.icase = flags.includes('i');
    this.dotAll = flags.includes('s');
  }

  fail(msg: string): never {
    throw new Error(`${msg} at ${this.i} in /${this.src}/`);
  }

  /** One character (escape resolved) as a code point, in a class or outside. */
  #escapedChar(): number | CharSet {
    const c = this.src[this.i++]!;
    const cls = classEscape(c, this.icase);
    if (cls) return cls;
    if (c in SIMPLE_ESC) return SIMPLE_ESC[c]!;
    if (c === 'x') {
      const h = this.src.slice(this.i, this.i + 2);
      this.i += 2;
      return parseInt(h, 16);
    }
    if (c === 'u') {
      if (this.src[this.i] === '{') {
        const e = this.src.indexOf('}', this.i);
        const v = parseInt(this.src.slice(this.i + 1, e), 16);
        this.i = e + 1;
        return v;
      }
      const h = this.src.slice(this.i, this.i + 4);
      this.i += 4;
      return parseInt(h, 16);
    }
    if (c === 'c') return this.src.charCodeAt(this.i++) % 32;
    return c.codePointAt(0)!;
  }

  #withCase(s: CharSet): CharSet {
    if (!this.icase) return s;
    for (let c = 65; c <= 90; c++) if (s.ascii[c] || s.ascii[c + 32]) s.ascii[c] = s.ascii[c + 32] = 1;
    return s;
  }

  #class(): CharSet {
    // at '['
    this.i++;
    let neg = false;
    if (this.src[this.i] === '^') {
      neg = true;
      this.i++;
    }
    let s = emptySet();
    while (this.i < this.src.length && this.src[this.i] !== ']') {
      let a: number | CharSet;
      if (this.src[this.i] === '\\') {
        this.i++;
        a = this.src[this.i] === 'b' ? (this.i++, 8) : this.#escapedChar();
      } else {
        a = this.src.codePointAt(this.i)!;
        this.i += a > 0xffff ? 2 : 1;
      }
      if (typeof a !== 'number') {
        s = union(s, a);
        continue;
      }
      if (this.src[this.i] === '-' && this.src[this.i + 1] !== ']' && this.i + 1 < this.src.length) {
        this.i++;
        let b: number | CharSet;
        if (this.src[this.i] === '\\') {
          this.i++;
          b = this.#escapedChar();
        } else {
          b = this.src.codePointAt(this.i)!;
          this.i += b > 0xffff ? 2 : 1;
        }
        if (typeof b !== 'number') this.fail('class range with a class escape');
        addRange(s, a, b);
      } else {
        addRange(s, a, a);
      }
    }
    if (this.src[this.i] !== ']') this.fail('unterminated class');
    this.i++;
    s = this.#withCase(s);
    return neg ? negate(s) : s;
  }

  #quant(): Quant | null {
    const c = this.src[this.i];
    let q: Quant | null = null;
    if (c === '*') q = { min: 0, max: Infinity, lazy: false };
    else if (c === '+') q = { min: 1, max: Infinity, lazy: false };
    else if (c === '?') q = { min: 0, max: 1, lazy: false };
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i));
      if (!m) return null; // a literal '{'
      q = { min: Number(m[1]), max: m[2] === undefined ? Number(m[1]) : m[3] === '' ? Infinity : Number(m[3]), lazy: false };
      this.i += m[0].length - 1;
    }
    if (!q) return null;
    this.i++;
    if (this.src[this.i] === '?') {
      q.lazy = true;
      this.i++;
    }
    return q;
  }

  alternatives(): Node[][] {
    const alts: Node[][] = [[]];
    while (this.i < this.src.length) {
      const c = this.src[this.i]!;
      if (c === ')') break;
      if (c === '|') {
        this.i++;
        alts.push([]);
        continue;
      }
      const seq = alts[alts.length - 1]!;
      let node: Node;
      if (c === '(') {
        this.i++;
        let look = false;
        if (this.src[this.i] === '?') {
          const k = this.src[this.i + 1];
          if (k === ':') this.i += 2;
          else if (k === '=' || k === '!') { this.i += 2; look = true; }
          else if (k === '<' && (this.src[this.i + 2] === '=' || this.src[this.i + 2] === '!')) { this.i += 3; look = true; }
          else if (k === '<') this.i = this.src.indexOf('>', this.i) + 1;
          else this.fail('unknown group');
        }
        const inner = this.alternatives();
        if (this.src[this.i] !== ')') this.fail('unterminated group');
        this.i++;
        node = { t: 'group', alts: inner, q: null, look };
      } else if (c === '[') {
        node = { t: 'set', set: this.#class(), q: null };
      } else if (c === '.') {
        this.i++;
        const s = fullSet();
        if (!this.dotAll) s.ascii[10] = s.ascii[13] = 0;
        node = { t: 'set', set: s, q: null };
      } else if (c === '^') {
        this.i++;
        seq.push({ t: 'start' });
        continue;
      } else if (c === '$') {
        this.i++;
        seq.push({ t: 'end' });
        continue;
      } else if (c === '\\') {
        this.i++;
        const e = this.src[this.i]!;
        if (e === 'b' || e === 'B') {
          this.i++;
          seq.push({ t: 'wordb' });
          continue;
        }
        if (/[1-9k]/.test(e)) {
          this.i++;
          seq.push({ t: 'backref' });
          continue;
        }
        const a = this.#escapedChar();
        const s = typeof a === 'number' ? (() => { const x = emptySet(); addRange(x, a, a); return this.#withCase(x); })() : a;
        node = { t: 'set', set: s, q: null };
      } else if (c === '*' || c === '+' || c === '?') {
        this.fail('nothing to repeat');
      } else {
        const cp = this.src.codePointAt(this.i)!;
        this.i += cp > 0xffff ? 2 : 1;
        const s = emptySet();
        addRange(s, cp, cp);
        node = { t: 'set', set: this.#withCase(s), q: null };
      }
      const q = this.#quant();
      if (q) (node as { q: Quant | null }).q = q;
      seq.push(node);
    }
    return alts;
  }
}

const unbounded = (n: Node): boolean => (n.t === 'set' || n.t === 'group') && !!n.q && n.q.max === Infinity;
const canBeEmpty = (n: Node): boolean => {
  if (n.t === 'start' || n.t === 'end' || n.t === 'wordb') return true;
  if (n.t === 'set') return !!n.q && n.q.min === 0;
  if (n.t === 'group') return n.look || (!!n.q && n.q.min === 0) || n.alts.some((a) => a.every(canBeEmpty));
  return false;
};

/** Characters a sequence can start with (through optional items). */
function firstSet(seq: Node[]): CharSet {
  let s = emptySet();
  for (const n of seq) {
    if (n.t === 'set') s = union(s, n.set);
    else if (n.t === 'group' && !n.look) for (const a of n.alts) s = union(s, firstSet(a));
    if (!canBeEmpty(n)) break;
  }
  return s;
}

/** Characters an unbounded item repeats. */
function repeatedSet(n: Node): CharSet {
  if (n.t === 'set') return n.set;
  if (n.t === 'group') {
    let s = emptySet();
    for (const a of n.alts) for (const x of a) if (x.t === 'set') s = union(s, x.set);
    else if (x.t === 'group') s = union(s, repeatedSet(x));
    return s;
  }
  return emptySet();
}

function containsUnbounded(alts: Node[][]): Node[] {
  const out: Node[] = [];
  for (const a of alts) for (const n of a) {
    if (unbounded(n)) out.push(n);
    if (n.t === 'group') out.push(...containsUnbounded(n.alts));
  }
  return out;
}

function check(alts: Node[][], anchoredSeqs: boolean, startSet: CharSet, follow: boolean, out: RegexFinding[]): void {
  for (const seq of alts) {
    for (let k = 0; k < seq.length; k++) {
      const n = seq[k]!;
      if (n.t === 'backref') out.push({ rule: 'backreference', detail: 'backreferences can backtrack exponentially' });
      const rest = seq.slice(k + 1);
      const more = follow || rest.some((x) => x.t !== 'start');
      if (n.t === 'group') {
        if (unbounded(n)) {
          // (a) nested unbounded repetition, unless each iteration starts with a mandatory
          // delimiter the inner repetitions cannot match ((\.[a-z]+)* is fine, (a+)+ is not).
          const inner = containsUnbounded(n.alts);
          for (const a of n.alts) {
            const head = a[0];
            const delimited = !!head && head.t === 'set' && (!head.q || (head.q.min >= 1 && head.q.max !== Infinity)) && inner.every((x) => !overlaps(repeatedSet(x), head.set));
            if (inner.length && !delimited) out.push({ rule: 'nested-quantifier', detail: 'an unbounded repetition inside an unbounded repetition' });
          }
          // (d) alternatives of a repeated group that can start alike: (a|ab)*
          for (let i = 0; i < n.alts.length; i++) for (let j = i + 1; j < n.alts.length; j++) {
            if (overlaps(firstSet(n.alts[i]!), firstSet(n.alts[j]!))) out.push({ rule: 'ambiguous-alternation', detail: 'repeated alternatives that can match the same text' });
          }
        }
        check(n.alts, anchoredSeqs, startSet, more || !!n.q, out);
      }
      if (!unbounded(n)) continue;
      const rep = repeatedSet(n);
      // (b) another unbounded repetition of overlapping characters right after (optional items
      // in between skipped): \s*\s*, .*.*, \s*x?\s*$
      for (const x of rest) {
        // What the next repetition would take first: a set's characters, a group's first ones.
        const next = x.t === 'group' ? firstSet([x]) : x.t === 'set' ? x.set : emptySet();
        if (unbounded(x) && overlaps(rep, next)) {
          out.push({ rule: 'adjacent-quantifiers', detail: 'two unbounded repetitions that can match the same characters in sequence' });
          break;
        }
        if (!canBeEmpty(x)) break;
      }
      // (c) unanchored: a scan that can start inside the text another attempt scanned, followed
      // by more pattern that can fail — every start position rescans: [ \t]+$, <[^>]*>, [\s\S]*?-->
      if (!anchoredSeqs && more && overlaps(rep, startSet)) {
        const onlyEnd = rest.length > 0 && rest.every((x) => x.t === 'end') && !follow;
        if (!(onlyEnd && isFull(rep))) out.push({ rule: 'unanchored-scan', detail: 'an unanchored pattern repeats characters it can start with, then needs more' });
      }
    }
  }
}

/** Findings for a regex source and flags; an unparsable pattern is one finding. */
export function checkRegex(source: string, flags = ''): RegexFinding[] {
  let alts: Node[][];
  try {
    const p = new Parser(source, flags);
    alts = p.alternatives();
    if (p.i !== source.length) p.fail('unbalanced ")"');
  } catch (err) {
    return [{ rule: 'unparsable', detail: (err as Error).message }];
  }
  const out: RegexFinding[] = [];
  const sticky = flags.includes('y');
  // Each top-level alternative is tried at every start position unless it begins with ^.
  for (const seq of alts) {
    const anchored = sticky || (seq[0]?.t === 'start' && !flags.includes('m'));
    let start = emptySet();
    for (const a of alts) start = union(start, firstSet(a));
    check([seq], anchored, start, false, out);
  }
  const seen = new Set<string>();
  return out.filter((f) => (seen.has(f.rule) ? false : (seen.add(f.rule), true)));
}

/** True when the pattern repeats nothing without bound (then its cost is O(n·|pattern|)). */
export function hasUnboundedQuantifier(source: string, flags = ''): boolean {
  try {
    const p = new Parser(source, flags);
    return containsUnbounded(p.alternatives()).length > 0;
  } catch {
    return true;
  }
}
