// A client's view of an RFC 5267 update context, for the CONTEXT tests: the result list it was
// given, changed by the ADDTO / REMOVEFROM data items it receives (§4.3.2–§4.3.4) and, for a
// context in message numbers, renumbered by EXPUNGE responses. Asserts the server's promises on
// the way: a REMOVEFROM at position p names what is at p, an EXPUNGE never hits a number still
// in the result (REMOVEFROM comes first, §4.3.4), an ADDTO never names a number beyond EXISTS.
import assert from 'node:assert/strict';

/** Numbers of a sequence-set in the order written ("5,4,1:3" → 5 4 1 2 3). */
export function setValues(set: string): number[] {
  const out: number[] = [];
  for (const part of set.split(',')) {
    const [a, b] = part.split(':').map(Number) as [number, number | undefined];
    if (b === undefined) out.push(a);
    else for (let v = a; a <= b ? v <= b : v >= b; a <= b ? v++ : v--) out.push(v);
  }
  return out;
}

/** The [op, position, values] pairs of one ESEARCH line for `tag`, in order; null when it is not one. */
export function updateItems(line: string, tag: string): Array<{ op: 'ADDTO' | 'REMOVEFROM'; pos: number; values: number[] }> | null {
  const head = `* ESEARCH (TAG "${tag}")`;
  if (!line.startsWith(head)) return null;
  const out: Array<{ op: 'ADDTO' | 'REMOVEFROM'; pos: number; values: number[] }> = [];
  const re = /(ADDTO|REMOVEFROM) \(([^)]*)\)/g; // linear: no nested quantifiers, test-only input
  for (let m = re.exec(line); m; m = re.exec(line)) {
    const toks = m[2]!.split(' ');
    for (let i = 0; i < toks.length; i += 2) out.push({ op: m[1] as 'ADDTO' | 'REMOVEFROM', pos: Number(toks[i]), values: setValues(toks[i + 1]!) });
  }
  return out;
}

export class ContextModel {
  list: number[];
  exists: number;
  readonly tag: string;
  readonly seqMode: boolean;
  updates = 0;
  constructor(tag: string, initial: number[], exists: number, seqMode: boolean) {
    this.tag = tag;
    this.list = initial.slice();
    this.exists = exists;
    this.seqMode = seqMode;
  }

  /** Applies every line of a response (untagged lines in order). */
  feed(lines: readonly string[]): void {
    for (const l of lines) this.line(l);
  }

  line(l: string): void {
    let m = /^\* (\d+) EXISTS$/.exec(l);
    if (m) {
      this.exists = Number(m[1]);
      return;
    }
    m = /^\* (\d+) EXPUNGE$/.exec(l);
    if (m) {
      const n = Number(m[1]);
      if (this.seqMode) {
        assert.ok(!this.list.includes(n), `EXPUNGE ${n} while ${n} is still in context ${this.tag} (RFC 5267 §4.3.4: REMOVEFROM first)`);
        this.list = this.list.map((v) => (v > n ? v - 1 : v));
      }
      this.exists--;
      return;
    }
    const items = updateItems(l, this.tag);
    if (!items) return;
    this.updates++;
    for (const it of items) {
      const have = new Set(this.list);
      if (it.op === 'ADDTO') {
        for (const v of it.values) {
          assert.ok(!have.has(v), `ADDTO ${v}: already in ${this.tag}`);
          if (this.seqMode) assert.ok(v <= this.exists, `ADDTO ${v} beyond EXISTS ${this.exists} (RFC 5267 §4.3.3)`);
        }
        if (it.pos === 0) {
          this.list.push(...it.values);
          this.list.sort((a, b) => a - b);
        } else {
          assert.ok(it.pos <= this.list.length + 1, `ADDTO at ${it.pos} past the end (${this.list.length})`);
          this.list.splice(it.pos - 1, 0, ...it.values);
        }
      } else if (it.pos === 0) {
        const gone = new Set(it.values);
        for (const v of gone) assert.ok(have.has(v), `REMOVEFROM 0 ${v}: not in ${this.tag}`);
        this.list = this.list.filter((x) => !gone.has(x));
      } else {
        // Removed one after the other at the same position: they were at pos, pos + 1, … (§4.3.4).
        const at = this.list.slice(it.pos - 1, it.pos - 1 + it.values.length);
        assert.deepEqual(at, it.values, `REMOVEFROM (${it.pos} …): the positions hold other results`);
        this.list.splice(it.pos - 1, it.values.length);
      }
    }
  }
}

/** The values of `ALL` in an ESEARCH line (empty when none). */
export function allOf(line: string): number[] {
  const m = / ALL (\S+)/.exec(line);
  return m ? setValues(m[1]!) : [];
}
