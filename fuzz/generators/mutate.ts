// Mutations every protocol shares, on a session's segments (src of the bytes a fuzz client sends):
// byte flips, truncation, huge repeats, long lines, tokens, splices, pipelined bursts, and the
// way the input is sent (interactively, as one burst never read, or cut off abruptly).

import type { Prng } from '../prng.ts';
import type { Segment } from '../corpus.ts';

/** How the client sends the input. */
export type Mode = 'interactive' | 'burst' | 'abrupt';

export interface FuzzInput {
  protocol: string;
  /** Listener name ('imap', 'pop3', 'smtp', 'submission'). */
  port: string;
  segments: Segment[];
  mode: Mode;
  /** 'abrupt': close after this many bytes (may fall inside a literal or DATA). */
  closeAfter: number;
  /** What was done to the corpus session, for the crash report. */
  notes: string[];
}

/** No single input larger than this (a burst of pipelined commands included). */
export const MAX_INPUT = 8 * 1024 * 1024;

const SPECIAL = [0, 0x0d, 0x0a, 0x20, 0x09, 0x7b, 0x7d, 0x28, 0x29, 0x22, 0x5c, 0x2a, 0x25, 0x2e, 0x3a, 0x3c, 0x3e, 0x40, 0x2b, 0x7e, 0x5b, 0x5d, 0xff, 0x80, 0x3d, 0x3f];

export function totalBytes(segs: readonly Segment[]): number {
  let n = 0;
  for (const s of segs) n += s.bytes.length;
  return n;
}

/** Replaces segment i's bytes. */
function put(segs: Segment[], i: number, bytes: Buffer): void {
  segs[i] = { kind: segs[i]!.kind, bytes };
}

function room(segs: readonly Segment[]): number {
  return Math.max(0, MAX_INPUT - totalBytes(segs));
}

export function flipBytes(r: Prng, segs: Segment[], notes: string[]): void {
  const i = r.int(0, segs.length - 1);
  const b = Buffer.from(segs[i]!.bytes);
  if (b.length === 0) return;
  const n = r.size(8);
  for (let k = 0; k < n; k++) {
    const at = r.int(0, b.length - 1);
    b[at] = r.chance(0.5) ? r.pick(SPECIAL) : b[at]! ^ (1 << r.int(0, 7));
  }
  put(segs, i, b);
  notes.push(`flip ${n} in #${i}`);
}

/** Repeats a short piece of one segment many times in place (runs of blanks, '(', '%', ','…). */
export function repeatBytes(r: Prng, segs: Segment[], notes: string[]): void {
  const i = r.int(0, segs.length - 1);
  const b = segs[i]!.bytes;
  const at = r.int(0, Math.max(0, b.length - 1));
  const unit = r.chance(0.3) ? Buffer.from([r.pick(SPECIAL)]) : b.subarray(at, at + r.size(16));
  if (unit.length === 0) return;
  const times = Math.min(r.size(200_000), Math.floor(room(segs) / unit.length));
  put(segs, i, Buffer.concat([b.subarray(0, at), Buffer.alloc(unit.length * times, unit), b.subarray(at)]));
  notes.push(`repeat ${JSON.stringify(unit.toString('latin1'))}×${times} in #${i}`);
}

/** Repeats whole segments (a command, a literal) many times: a pipelined burst. */
export function repeatSegments(r: Prng, segs: Segment[], notes: string[]): void {
  const from = r.int(0, segs.length - 1);
  const to = Math.min(segs.length, from + r.size(4));
  const unit = segs.slice(from, to);
  const size = Math.max(1, totalBytes(unit));
  const times = Math.min(r.size(50_000), Math.floor(room(segs) / size));
  const tail = segs.splice(to);
  for (let k = 0; k < times; k++) for (const u of unit) segs.push(u);
  for (const t of tail) segs.push(t);
  notes.push(`segments #${from}..${to - 1} ×${times + 1}`);
}

export function longLine(r: Prng, segs: Segment[], notes: string[]): void {
  const i = r.int(0, segs.length);
  const n = Math.min(r.size(2 * 1024 * 1024), room(segs));
  const fillByte = r.pick([0x41, 0x20, 0x28, 0x7b, 0x22, 0x2a, 0x30]);
  segs.splice(i, 0, { kind: 'line', bytes: Buffer.concat([Buffer.alloc(n, fillByte), Buffer.from('\r\n')]) });
  notes.push(`line of ${n} × ${String.fromCharCode(fillByte)} at #${i}`);
}

export function insertToken(r: Prng, segs: Segment[], tokens: readonly string[], notes: string[]): void {
  const i = r.int(0, segs.length - 1);
  const b = segs[i]!.bytes;
  const at = r.int(0, Math.max(0, b.length - 2));
  const tok = r.pick(tokens);
  put(segs, i, Buffer.concat([b.subarray(0, at), Buffer.from(tok, 'latin1'), b.subarray(at)]));
  notes.push(`token ${JSON.stringify(tok)} in #${i}`);
}

export function randomBytes(r: Prng, segs: Segment[], notes: string[]): void {
  const i = r.int(0, segs.length);
  const n = Math.min(r.size(64 * 1024), room(segs));
  segs.splice(i, 0, { kind: 'line', bytes: r.bytes(n) });
  notes.push(`${n} random bytes at #${i}`);
}

export function dropOrSwap(r: Prng, segs: Segment[], notes: string[]): void {
  if (segs.length < 2) return;
  const i = r.int(0, segs.length - 1);
  const j = r.int(0, segs.length - 1);
  if (r.chance(0.5)) {
    segs.splice(i, 1);
    notes.push(`drop #${i}`);
  } else {
    [segs[i], segs[j]] = [segs[j]!, segs[i]!];
    notes.push(`swap #${i} #${j}`);
  }
}

/** Segments from another session inserted (commands out of their usual order). */
export function splice(r: Prng, segs: Segment[], other: readonly Segment[], notes: string[]): void {
  if (other.length === 0) return;
  const from = r.int(0, other.length - 1);
  const part = other.slice(from, from + r.size(6));
  const at = r.int(0, segs.length);
  segs.splice(at, 0, ...part);
  notes.push(`splice ${part.length} at #${at}`);
}

/** Cuts the input at a random point, often inside a literal or a message body. */
export function truncate(r: Prng, segs: Segment[], notes: string[]): number {
  const inside = segs.map((s, i) => ({ s, i })).filter(({ s }) => s.kind !== 'line');
  let offset = 0;
  if (inside.length && r.chance(0.7)) {
    const { i } = r.pick(inside);
    for (let k = 0; k < i; k++) offset += segs[k]!.bytes.length;
    offset += r.int(0, Math.max(0, segs[i]!.bytes.length - 1));
    notes.push(`close inside ${segs[i]!.kind} #${i}`);
  } else {
    offset = r.int(0, totalBytes(segs));
    notes.push(`close after ${offset} bytes`);
  }
  return offset;
}

/** The generic mutations, chosen at random, `count` of them. */
export function mutateGeneric(r: Prng, segs: Segment[], other: readonly Segment[], tokens: readonly string[], notes: string[], count: number): void {
  for (let k = 0; k < count; k++) {
    const op = r.int(0, 9);
    if (op <= 2) flipBytes(r, segs, notes);
    else if (op === 3) repeatBytes(r, segs, notes);
    else if (op === 4) repeatSegments(r, segs, notes);
    else if (op === 5) longLine(r, segs, notes);
    else if (op === 6) insertToken(r, segs, tokens, notes);
    else if (op === 7) splice(r, segs, other, notes);
    else if (op === 8) dropOrSwap(r, segs, notes);
    else if (r.chance(0.3)) randomBytes(r, segs, notes);
  }
}

/** Picks how the input is sent; 'abrupt' also picks where it is cut. */
export function chooseMode(r: Prng, segs: Segment[], notes: string[]): { mode: Mode; closeAfter: number } {
  const x = r.next();
  if (x < 0.45) return { mode: 'interactive', closeAfter: -1 };
  if (x < 0.75) {
    notes.push('burst, never read');
    return { mode: 'burst', closeAfter: -1 };
  }
  return { mode: 'abrupt', closeAfter: truncate(r, segs, notes) };
}
