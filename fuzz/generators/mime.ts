// MIME inputs, run in-process: a corpus message with byte flips and a hostile unit (a run of
// blanks, nested comments, encoded words, header fields, boundaries, nested multiparts, HTML
// comments…) repeated k times at one place. Every input is parsed the way a delivery parses it
// (streamed in chunks), then everything computed from message data: ENVELOPE, BODYSTRUCTURE, the
// text plan and the SEARCH text. The oracle: nothing throws, and time per byte stays flat when the
// hostile unit is repeated 4× as often (linear time: a quadratic step shows as ~4× per byte).

import type { Prng } from '../prng.ts';
import { MimeParser } from '../../src/protocol/mime/parser.ts';
import type { MessageMeta } from '../../src/protocol/mime/types.ts';
import { writeEnvelope } from '../../src/protocol/imap/envelope.ts';
import { writeBodyStructure } from '../../src/protocol/imap/bodystructure.ts';
import { extractText } from '../../src/protocol/imap/section.ts';

export interface MimeInput {
  base: string;
  prefix: Buffer;
  unit: Buffer;
  suffix: Buffer;
  /** Repeats of `unit` in the smaller of the two sizes measured. */
  k: number;
  chunk: number;
  notes: string[];
}

const HEADER_UNITS = [' ', '\t', '\r\n ', '(', '((a)', ')', '"', '\\"', '=?utf-8?q?a_b?= ', '=?', '=?utf-8?b?', ',', 'a@b.test, ', '"x" <a@b>,', '<', ':', ';', 'g: ;', 'X-F: v\r\n', 'X-F:\r\n \r\n', "; p*0*=utf-8''a%C3", '; a=b', '%', '=', '\r', '\n'];
const BODY_UNITS = ['<!--', '<script>', '<style>', '<', '&#', '&amp', '&', '<a href="', '=\r\n', '=', '--b\r\n\r\n', '--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n', '\r\n--', '--', 'Content-Type: message/rfc822\r\n\r\n', '\r\n', '\n', ' ', 'A', '\r\n.\r\n'];

export function makeMimeInput(r: Prng, messages: ReadonlyArray<{ name: string; bytes: Buffer }>): MimeInput {
  const m = r.pick(messages);
  const b = Buffer.from(m.bytes);
  const notes = [m.name];
  // A few byte flips first.
  const flips = r.chance(0.5) ? r.size(6) : 0;
  for (let i = 0; i < flips; i++) b[r.int(0, b.length - 1)] = r.pick([0x20, 0x0a, 0x0d, 0x3a, 0x3b, 0x22, 0x28, 0x2d, 0x3d, 0x3c, 0x00, 0xff, r.int(0, 255)]);
  if (flips) notes.push(`${flips} byte flips`);
  const headerEnd = b.indexOf('\r\n\r\n');
  const inHeader = headerEnd > 0 && r.chance(0.5);
  const at = inHeader ? r.int(0, headerEnd) : r.int(Math.max(0, headerEnd), b.length);
  const unitText = r.chance(0.85) ? r.pick(inHeader ? HEADER_UNITS : BODY_UNITS) : b.subarray(at, at + r.size(24)).toString('latin1') || 'x';
  const unit = Buffer.from(unitText, 'latin1');
  // The smaller size: 16 KiB to 1 MiB of repeats (the larger is 4×).
  const target = r.size(1 << 20) + 16 * 1024;
  const k = Math.max(1, Math.floor(target / unit.length));
  notes.push(`${JSON.stringify(unitText)} ×${k} / ×${4 * k} in the ${inHeader ? 'header' : 'body'} at ${at}`);
  return { base: m.name, prefix: b.subarray(0, at), unit, suffix: b.subarray(at), k, chunk: r.chance(0.3) ? 1 << 30 : r.int(512, 65536), notes };
}

export function build(input: MimeInput, times: number): Buffer {
  const mid = Buffer.alloc(input.unit.length * times, input.unit);
  return Buffer.concat([input.prefix, mid, input.suffix]);
}

/** Parses and derives everything from one message; returns the milliseconds it took. */
export function processMessage(raw: Buffer, chunk: number): { ms: number; meta: MessageMeta } {
  const t0 = performance.now();
  const p = new MimeParser();
  for (let i = 0; i < raw.length; i += chunk) p.write(raw.subarray(i, i + chunk));
  const meta = p.end();
  writeEnvelope(meta.envelope, false);
  writeEnvelope(meta.envelope, true);
  writeBodyStructure(meta.root, true);
  writeBodyStructure(meta.root, false);
  extractText(raw, meta);
  return { ms: performance.now() - t0, meta };
}

export interface MimeVerdict {
  bytes: number;
  /** CPU ms of the larger input. */
  ms: number;
  /** µs per byte, smaller and larger input. */
  perByteSmall: number;
  perByteBig: number;
  /** perByteBig / perByteSmall (≈ 1 when linear, ≈ 4 when quadratic). */
  growth: number;
  error: string | null;
}

/** Below this (ms, larger input) timing noise dominates: no linearity verdict. */
export const MIME_MIN_MS = 40;
export const MIME_MAX_GROWTH = 2.5;

/** CPU time of this process (ms): unlike wall time, not inflated when a busy machine preempts us. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** CPU ms per run of `reps` runs of processMessage. */
function sampleCpu(raw: Buffer, chunk: number, reps: number): number {
  const t = cpuMs();
  for (let i = 0; i < reps; i++) processMessage(raw, chunk);
  return (cpuMs() - t) / reps;
}

/**
 * The growth verdict, as test/unit/linear.test.ts measures: CPU time (a preempted process gets
 * no CPU, so a loaded machine does not read as growth), the smaller input run 4× per sample so
 * both samples do the same work when linear, samples alternated, the best of 5 each, and up to 3
 * attempts (a superlinear parser fails all of them; noise does not repeat). Wall time of one run
 * measured 13-59 ms for the same 253 KB input at load 15 on 2 cores: a single wall-clock pair
 * flagged ×4-9 growth on inputs that are linear.
 */
export function checkMime(input: MimeInput): MimeVerdict {
  const small = build(input, input.k);
  const big = build(input, 4 * input.k);
  try {
    let l = sampleCpu(big, input.chunk, 1);
    let s = sampleCpu(small, input.chunk, 1);
    let growth = (l / big.length) / (Math.max(s, 1e-3) / small.length);
    for (let attempt = 0; attempt < 3 && growth > MIME_MAX_GROWTH && l > MIME_MIN_MS; attempt++) {
      s = Infinity;
      l = Infinity;
      for (let i = 0; i < 5; i++) {
        s = Math.min(s, sampleCpu(small, input.chunk, 4));
        l = Math.min(l, sampleCpu(big, input.chunk, 1));
      }
      growth = Math.min(growth, (l / big.length) / (Math.max(s, 1e-3) / small.length));
    }
    return { bytes: big.length, ms: l, perByteSmall: (s * 1000) / small.length, perByteBig: (l * 1000) / big.length, growth, error: null };
  } catch (err) {
    return { bytes: big.length, ms: 0, perByteSmall: 0, perByteBig: 0, growth: 0, error: (err as Error).stack ?? String(err) };
  }
}
