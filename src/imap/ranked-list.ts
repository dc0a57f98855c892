// An ordered list that answers "at which position is this item" while items come and go: the
// result list of a CONTEXT=SORT update context (RFC 5267 §4.3.3/§4.3.4 need the context position
// of every ADDTO / REMOVEFROM). Pure.
//
// Cost per insert / remove / rank, for n items (why a plain array is not enough: a splice in the
// middle of 100,000 entries is a 100,000-element move per change):
// - items live in sorted chunks of at most MAX_CHUNK (1,024); the chunk holding an item is found
//   by binary search over the chunks' last items: O(log(n / 1024)) comparisons;
// - its index in the chunk by binary search, O(log 1024), and the splice moves at most 1,024
//   entries: a bounded scan, whatever n is;
// - the position is the number of items in earlier chunks plus the index: the chunk sizes are
//   kept in a Fenwick (binary indexed) tree, so that prefix sum and its update are O(log(n / 1024)).
// - a full chunk splits in two halves (the Fenwick tree is rebuilt: O(n / 1024), at most once per
//   512 inserts into that chunk); an empty chunk is dropped (rebuilt likewise; a chunk empties only
//   after every item in it was removed, so again amortised over at least as many removals).
// So every change costs O(log n) comparisons plus a bounded move, never a full-list walk.

const MAX_CHUNK = 1024;
const HALF = MAX_CHUNK / 2;

export class RankedList<T> {
  readonly #cmp: (a: T, b: T) => number;
  #chunks: T[][] = [];
  /** Fenwick tree over chunk sizes, 1-based (#tree[0] unused). */
  #tree: number[] = [0];
  #size = 0;

  /** `sorted` must be in `cmp` order, without two items comparing equal (ties broken by a unique key). */
  constructor(cmp: (a: T, b: T) => number, sorted: readonly T[] = []) {
    this.#cmp = cmp;
    for (let i = 0; i < sorted.length; i += HALF) this.#chunks.push(sorted.slice(i, i + HALF));
    this.#size = sorted.length;
    this.#rebuild();
  }

  get size(): number {
    return this.#size;
  }

  /** 0-based position of `item`, or -1 when it is not in the list. */
  rankOf(item: T): number {
    const c = this.#chunkFor(item);
    if (c < 0) return -1;
    const i = this.#indexIn(this.#chunks[c]!, item);
    if (i >= this.#chunks[c]!.length || this.#cmp(this.#chunks[c]![i]!, item) !== 0) return -1;
    return this.#before(c) + i;
  }

  /** Inserts `item` (not already present); returns its 0-based position after the insertion. */
  insert(item: T): number {
    if (this.#chunks.length === 0) {
      this.#chunks.push([item]);
      this.#size = 1;
      this.#rebuild();
      return 0;
    }
    let c = this.#chunkFor(item);
    if (c < 0) c = this.#chunks.length - 1; // after every item: the end of the last chunk
    const chunk = this.#chunks[c]!;
    const i = this.#indexIn(chunk, item);
    chunk.splice(i, 0, item);
    this.#size++;
    const pos = this.#before(c) + i;
    if (chunk.length > MAX_CHUNK) {
      this.#chunks.splice(c + 1, 0, chunk.splice(HALF));
      this.#rebuild();
    } else this.#add(c, 1);
    return pos;
  }

  /** Removes `item`; returns the 0-based position it had, or -1 when it was not in the list. */
  remove(item: T): number {
    const c = this.#chunkFor(item);
    if (c < 0) return -1;
    const chunk = this.#chunks[c]!;
    const i = this.#indexIn(chunk, item);
    if (i >= chunk.length || this.#cmp(chunk[i]!, item) !== 0) return -1;
    const pos = this.#before(c) + i;
    chunk.splice(i, 1);
    this.#size--;
    if (chunk.length === 0) {
      this.#chunks.splice(c, 1);
      this.#rebuild();
    } else this.#add(c, -1);
    return pos;
  }

  /** The items in order (for tests and debugging: O(n)). */
  toArray(): T[] {
    return this.#chunks.flat();
  }

  /** Index of the first chunk whose last item is >= item, or -1 when item is after every item. */
  #chunkFor(item: T): number {
    let lo = 0;
    let hi = this.#chunks.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const last = this.#chunks[mid]!;
      if (this.#cmp(last[last.length - 1]!, item) >= 0) {
        found = mid;
        hi = mid - 1;
      } else lo = mid + 1;
    }
    return found;
  }

  /** First index in `chunk` whose item is >= item. */
  #indexIn(chunk: readonly T[], item: T): number {
    let lo = 0;
    let hi = chunk.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#cmp(chunk[mid]!, item) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Items in chunks [0, c): Fenwick prefix sum. */
  #before(c: number): number {
    let s = 0;
    for (let i = c; i > 0; i -= i & -i) s += this.#tree[i]!;
    return s;
  }

  #add(c: number, d: number): void {
    for (let i = c + 1; i < this.#tree.length; i += i & -i) this.#tree[i]! += d;
  }

  /** O(chunks) Fenwick build after a split or a dropped chunk. */
  #rebuild(): void {
    const n = this.#chunks.length;
    const t = new Array<number>(n + 1).fill(0);
    for (let i = 1; i <= n; i++) {
      t[i]! += this.#chunks[i - 1]!.length;
      const j = i + (i & -i);
      if (j <= n) t[j]! += t[i]!;
    }
    this.#tree = t;
  }
}
