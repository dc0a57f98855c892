// HTML → searchable text for SEARCH BODY / TEXT (RFC 9051 §6.4.4 leaves "the text" to the server).
// One left-to-right pass, no RegExp: every search for a closing `>`, `-->` or `</script` starts
// where the previous one ended or remembers that there is none, so the cost is O(n) whatever the
// markup (100,000 unclosed `<!--` or `<script>` included).
//
// What it does, as a browser would read the text (WHATWG HTML §13.2 tokenization, roughly):
// - tags are dropped; `<br>` and the end of a block (`</p>`, `</div>`, `</li>`, `</tr>`,
//   `</h1>`…`</h6>`) become a line break, so words on both sides stay apart;
// - comments `<!-- … -->` and the content of `<script>` / `<style>` become one space; one left
//   open runs to the end of the text, as in a browser;
// - `<!…>` and `<?…>` (doctype, CDATA, processing instructions) are dropped;
// - a `<` that cannot start a tag (`a < b`), or whose `>` never comes, is text;
// - character references: `&amp; &lt; &gt; &quot; &apos; &nbsp;` and `&#NNN;` / `&#xHH;`.

const BLOCK_END = new Set(['p', 'div', 'li', 'tr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6']);
const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };
/** Longest tag name we need to tell apart (`script`, `style`, `br`, the block ends). */
const NAME_MAX = 8;
/** Longest character reference we decode: `&#x10FFFF;` / `&#1114111;`. */
const REF_MAX = 10;

function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function isNameChar(c: number): boolean {
  return isAlpha(c) || (c >= 0x30 && c <= 0x39);
}

/** The next index of `ch` at or after a position, remembered: the searches never go back. */
class NextIndex {
  readonly #s: string;
  readonly #ch: string;
  #from = 0;
  /** First index of ch at or after #from; s.length when there is none. */
  #at = -1;

  constructor(s: string, ch: string) {
    this.#s = s;
    this.#ch = ch;
  }

  /** The first `ch` at or after `from`, or -1. Amortised O(1) while `from` does not go back. */
  from(from: number): number {
    if (from < this.#from) {
      const g = this.#s.indexOf(this.#ch, from); // never happens in htmlToText; kept correct anyway
      return g;
    }
    this.#from = from;
    if (this.#at < from) {
      const g = this.#s.indexOf(this.#ch, from);
      this.#at = g < 0 ? this.#s.length : g;
    }
    return this.#at === this.#s.length ? -1 : this.#at;
  }
}

class Scanner {
  readonly s: string;
  readonly n: number;
  readonly gt: NextIndex;

  constructor(s: string) {
    this.s = s;
    this.n = s.length;
    this.gt = new NextIndex(s, '>');
  }

  /** Lower-cased tag name at `i` (at most NAME_MAX characters are kept). */
  nameAt(i: number): { name: string; end: number } {
    let j = i;
    while (j < this.n && isNameChar(this.s.charCodeAt(j))) j++;
    return { name: this.s.slice(i, Math.min(j, i + NAME_MAX)).toLowerCase(), end: j };
  }

  /** Index just after the `>` of the `</name` that closes raw text from `from`; n when unclosed. */
  rawTextEnd(from: number, name: string): number {
    let j = from;
    for (;;) {
      j = this.s.indexOf('</', j);
      if (j < 0) return this.n;
      const t = this.nameAt(j + 2);
      if (t.name === name && t.end - (j + 2) === name.length) {
        const gt = this.gt.from(t.end);
        return gt < 0 ? this.n : gt + 1;
      }
      j += 2;
    }
  }
}

/** Decodes the character reference at s[i] === '&' (at most REF_MAX characters); null if none. */
function charRef(s: string, i: number): { text: string; end: number } | null {
  const stop = Math.min(s.length, i + 2 + REF_MAX);
  let semi = -1;
  for (let j = i + 1; j < stop; j++) {
    if (s.charCodeAt(j) === 0x3b) {
      semi = j;
      break;
    }
  }
  if (semi < 0) return null;
  const body = s.slice(i + 1, semi);
  if (body.charCodeAt(0) === 0x23) {
    const hex = (body.charCodeAt(1) | 0x20) === 0x78;
    const digits = body.slice(hex ? 2 : 1);
    if (digits === '' || !isDigits(digits, hex)) return null;
    const cp = parseInt(digits, hex ? 16 : 10);
    return { text: cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : ' ', end: semi + 1 };
  }
  const key = body.toLowerCase();
  return Object.hasOwn(NAMED, key) ? { text: NAMED[key]!, end: semi + 1 } : null;
}

function isDigits(s: string, hex: boolean): boolean {
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k) | 0x20;
    const ok = (c >= 0x30 && c <= 0x39) || (hex && c >= 0x61 && c <= 0x66);
    if (!ok) return false;
  }
  return true;
}

/**
 * What the markup at s[i] === '<' turns into and where the text resumes; null when this `<` is
 * plain text.
 */
function markup(sc: Scanner, i: number): { text: string; end: number } | null {
  const s = sc.s;
  const c = s.charCodeAt(i + 1);
  if (c === 0x21 && s.startsWith('<!--', i)) {
    const close = s.indexOf('-->', i + 4);
    return { text: ' ', end: close < 0 ? sc.n : close + 3 };
  }
  if (c === 0x21 || c === 0x3f) {
    const gt = sc.gt.from(i + 2);
    return gt < 0 ? null : { text: '', end: gt + 1 };
  }
  const closing = c === 0x2f;
  const at = closing ? i + 2 : i + 1;
  if (!isAlpha(s.charCodeAt(at))) return null;
  const { name, end: nameEnd } = sc.nameAt(at);
  const gt = sc.gt.from(nameEnd);
  if (gt < 0) return null;
  if (closing) return { text: BLOCK_END.has(name) ? '\n' : '', end: gt + 1 };
  if (name === 'script' || name === 'style') return { text: ' ', end: sc.rawTextEnd(gt + 1, name) };
  return { text: name === 'br' ? '\n' : '', end: gt + 1 };
}

/** The text of an HTML document or fragment (see the top of this file). */
export function htmlToText(s: string): string {
  const sc = new Scanner(s);
  const lts = new NextIndex(s, '<');
  const amps = new NextIndex(s, '&');
  const out: string[] = [];
  let from = 0; // start of the text not yet copied
  let i = 0;
  const n = s.length;
  while (i < n) {
    const lt = lts.from(i);
    const amp = amps.from(i);
    const k = lt < 0 ? amp : amp < 0 ? lt : Math.min(lt, amp);
    if (k < 0) break;
    const r = k === lt ? markup(sc, k) : charRef(s, k);
    if (!r) {
      i = k + 1;
      continue;
    }
    if (k > from) out.push(s.slice(from, k));
    if (r.text) out.push(r.text);
    i = from = r.end;
  }
  if (from < n) out.push(s.slice(from));
  return out.join('');
}
