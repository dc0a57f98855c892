// LIST / LSUB mailbox patterns (RFC 9051 §6.3.9, RFC 3501 §6.3.8): `*` matches zero or more
// characters, the hierarchy delimiter included; `%` matches zero or more characters but not the
// delimiter. Every other character matches itself.
//
// Linear by construction (no RegExp, no backtracking). The literal prefix before the first
// wildcard is compared directly; the rest (at most MAX_WILDCARD_PART characters once runs of
// wildcards are collapsed: `**`, `*%`, `%*` → `*`, `%%` → `%`) is compiled to a position
// automaton (state j = "the first j characters of that rest are matched") and the name is run
// through it once, all live states held in a bit set of at most ⌈(MAX_WILDCARD_PART+1)/32⌉ = 9
// words. A test therefore costs O(n) for a name of n characters, at most ~9 word operations per
// character, whatever the pattern and the name. States below the highest live `*` are dropped
// (it can do whatever they can), which keeps the usual live window to a word or two.

const STAR = -1;
const PCT = -2;

export interface ListPattern {
  /** True when the whole `name` matches the pattern. */
  test(name: string): boolean;
}

const NEVER: ListPattern = { test: () => false };

/** Longest part of a pattern from its first wildcard on (after collapsing), in characters. */
export const MAX_WILDCARD_PART = 256;

/** Collapses wildcard runs: `*` absorbs any neighbouring `%`, `%%` is `%` (RFC 9051 §6.3.9). */
function compile(pattern: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern.charCodeAt(i);
    const code = ch === 0x2a ? STAR : ch === 0x25 ? PCT : ch;
    const last = out.length ? out[out.length - 1]! : 0;
    if (code < 0 && last < 0) {
      if (code === STAR) out[out.length - 1] = STAR;
      continue;
    }
    out.push(code);
  }
  return out;
}

/**
 * Compiles a LIST pattern. `delimiter` is the hierarchy separator; `maxNameLength` the longest
 * mailbox name (in UTF-16 units) that can exist: a pattern with more literal characters matches
 * nothing. Null when the part from the first wildcard on is longer than MAX_WILDCARD_PART (the
 * caller answers NO [LIMIT], RFC 5530).
 */
export function compileListPattern(pattern: string, delimiter = '/', maxNameLength = Number.MAX_SAFE_INTEGER): ListPattern | null {
  const p = compile(pattern);
  let literals = 0;
  for (const c of p) if (c >= 0) literals++;
  if (literals > maxNameLength) return NEVER;
  // The literal prefix is compared directly; the automaton runs on what follows it.
  let k = 0;
  while (k < p.length && p[k]! >= 0) k++;
  const prefix = pattern.slice(0, k); // no wildcard before position k, so nothing was collapsed
  if (k === p.length) return { test: (name) => name === prefix };
  if (p.length - k > MAX_WILDCARD_PART) return null;
  return new Automaton(prefix, p.slice(k), delimiter.charCodeAt(0));
}

class Automaton implements ListPattern {
  readonly #prefix: string;
  readonly #words: number;
  /** Bit m (the accepting state). */
  readonly #acceptWord: number;
  readonly #acceptBit: number;
  /** Positions holding a wildcard (epsilon to the next position). */
  readonly #wild: Uint32Array;
  /** Positions that stay live on any character (`*`), and on a non-delimiter (`*` and `%`). */
  readonly #stay: Uint32Array;
  readonly #stayNonDelim: Uint32Array;
  /** Per literal character: the positions holding it (ASCII in a table, the rest in a map). */
  readonly #ascii: Array<Uint32Array | undefined> = new Array(128);
  readonly #lit = new Map<number, Uint32Array>();
  readonly #none: Uint32Array;
  readonly #delim: number;
  // Work buffers, reused by every test.
  #cur: Uint32Array;
  #next: Uint32Array;

  constructor(prefix: string, p: number[], delim: number) {
    this.#prefix = prefix;
    this.#delim = delim;
    const m = p.length;
    this.#words = ((m + 1) >>> 5) + 1;
    this.#acceptWord = m >>> 5;
    this.#acceptBit = 1 << (m & 31);
    const mk = () => new Uint32Array(this.#words);
    this.#wild = mk();
    this.#stay = mk();
    this.#stayNonDelim = mk();
    this.#cur = mk();
    this.#next = mk();
    this.#none = mk();
    for (let j = 0; j < m; j++) {
      const c = p[j]!;
      const w = j >>> 5;
      const b = 1 << (j & 31);
      if (c < 0) {
        this.#wild[w]! |= b;
        this.#stayNonDelim[w]! |= b;
        if (c === STAR) this.#stay[w]! |= b;
      } else {
        let mask = c < 128 ? this.#ascii[c] : this.#lit.get(c);
        if (!mask) {
          mask = mk();
          if (c < 128) this.#ascii[c] = mask;
          else this.#lit.set(c, mask);
        }
        mask[w]! |= b;
      }
    }
  }

  /** s |= (s & wild) << 1 over words [lo, hi]: a live wildcard also makes the next position live. */
  #close(s: Uint32Array, lo: number, hi: number): void {
    let carry = 0;
    for (let w = lo; w <= hi; w++) {
      const x = s[w]! & this.#wild[w]!;
      s[w] = s[w]! | (x << 1) | carry;
      carry = x >>> 31;
    }
  }

  test(name: string): boolean {
    if (!name.startsWith(this.#prefix)) return false;
    const last = this.#words - 1;
    const wild = this.#wild;
    let cur = this.#cur;
    let next = this.#next;
    cur.fill(0);
    next.fill(0);
    cur[0] = 1;
    // Live states lie in words [lo, hi]; every other word of both buffers is zero.
    let lo = 0;
    let hi = Math.min(1, last);
    this.#close(cur, lo, hi);
    for (let i = this.#prefix.length; i < name.length; i++) {
      const c = name.charCodeAt(i);
      const lit = (c < 128 ? this.#ascii[c] : this.#lit.get(c)) ?? this.#none;
      const stay = c === this.#delim ? this.#stay : this.#stayNonDelim;
      // A step and its closure move a state at most two positions: one word further at most.
      const top = hi < last ? hi + 1 : last;
      let carry = 0;
      let closeCarry = 0;
      let any = 0;
      for (let w = lo; w <= top; w++) {
        const cw = cur[w]!;
        const x = cw & lit[w]!;
        let v = (x << 1) | carry | (cw & stay[w]!);
        carry = x >>> 31;
        // The closure in the same pass: wildcards are never adjacent (collapsed), so a position
        // reached through one is a literal and needs no further closure.
        const y = v & wild[w]!;
        v = (v | (y << 1) | closeCarry) >>> 0;
        closeCarry = y >>> 31;
        next[w] = v;
        any |= v;
        cur[w] = 0;
      }
      if (any === 0) return false;
      const t = cur;
      cur = next;
      next = t;
      hi = top;
      while (cur[hi] === 0) hi--;
      while (cur[lo] === 0) lo++;
      lo = this.#dominate(cur, lo, hi);
    }
    return (cur[this.#acceptWord]! & this.#acceptBit) !== 0;
  }

  /**
   * A live `*` stays live to the end and can do whatever a lower state could once that state
   * reaches it, so every state below the highest live `*` is dropped. Returns the new lo.
   */
  #dominate(s: Uint32Array, lo: number, hi: number): number {
    for (let w = hi; w >= lo; w--) {
      const x = s[w]! & this.#stay[w]!;
      if (x === 0) continue;
      const bit = 31 - Math.clz32(x);
      s[w] = s[w]! & ~(((1 << bit) >>> 0) - 1);
      for (let v = lo; v < w; v++) s[v] = 0;
      return w;
    }
    return lo;
  }
}
