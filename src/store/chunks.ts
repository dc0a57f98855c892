// Chunk sizing for the stores' bulk operations (see docs/architecture.md, "Bulk operations"): a
// command over a whole mailbox (131,072 messages) runs as many short steps, each at most `max`
// rows and aimed at `targetMs` of work, so other users' commands run in between.
//
// The size is a guess from the steps before; a step also stops itself at `stepMs` (`deadline()`,
// checked between rows), so a first step (no timing known yet) or one whose rows suddenly cost
// more (messages with thousands of keywords, a cold page cache) never holds the loop 100+ ms.

export interface ChunkOptions {
  /** Most rows in one step (default 2,000). */
  maxRows?: number;
  /** Work per step to aim at, in ms (default 8). */
  targetMs?: number;
  /** Pause after a step, as a share of its time (default 0.5): the loop's remaining time is others'. */
  restRatio?: number;
  /** A step stops after this much work even when rows are left (default 10 ms; `deadline()`). */
  stepMs?: number;
}

/** True once the current step has used its time (checked between rows; the first row always runs). */
export type Stop = () => boolean;
/** For writes that are not time-bounded. */
export const NEVER: Stop = () => false;

/** Rows to start with, before any step has been timed. */
const FIRST_STEP = 64;

/** Picks the next step's size from how long the last ones took per row. */
export class Chunker {
  readonly max: number;
  readonly min: number;
  readonly targetMs: number;
  readonly restRatio: number;
  readonly stepMs: number;
  #size: number;
  #lastMs = 0;

  constructor(opts: ChunkOptions = {}) {
    this.max = Math.max(1, Math.floor(opts.maxRows ?? 2000));
    this.min = Math.min(this.max, 32);
    this.targetMs = opts.targetMs ?? 8;
    this.restRatio = opts.restRatio ?? 0.5;
    this.stepMs = opts.stepMs ?? 10;
    this.#size = Math.min(this.max, FIRST_STEP);
  }

  /** Starts a step's clock: the returned check is true once `stepMs` have passed. */
  deadline(): Stop {
    const end = performance.now() + this.stepMs;
    return () => performance.now() >= end;
  }

  get size(): number {
    return this.#size;
  }

  /** Records that `rows` took `ms`; the next size aims at targetMs. */
  took(rows: number, ms: number): void {
    this.#lastMs = ms;
    if (rows <= 0) return;
    const perRow = Math.max(ms, 0.05) / rows;
    const want = Math.floor(this.targetMs / perRow);
    // Grow at most 2x per step (one fast step must not jump to a huge one), shrink at once.
    this.#size = Math.max(this.min, Math.min(this.max, want, this.#size * 2));
  }

  /**
   * Waits restRatio × the last step's time (at most 20 ms) before the next step: between steps the
   * event loop is free, so another user's operation that needs several turns (an APPEND: socket,
   * file writes, fsync, commit) makes progress in each gap instead of waiting out one step per turn.
   */
  async rest(): Promise<void> {
    const ms = Math.min(20, this.#lastMs * this.restRatio);
    if (ms >= 1) await new Promise((r) => setTimeout(r, ms));
  }
}

/** How many of the ascending `sorted` are below `v` (binary search). */
export function countBelow(sorted: readonly number[], v: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Distinct values, ascending. */
export function sortedUnique(nums: readonly number[]): number[] {
  const a = Float64Array.from(nums).sort();
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (i === 0 || a[i] !== a[i - 1]) out.push(a[i]!);
  return out;
}
