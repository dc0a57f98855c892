// `npm run fuzz -- [--seed N] [--minutes M] [--protocol imap|pop3|smtp|mime|all] [--clients N]
//  [--rtt-ms 100] [--rss-growth-mb 200] [--first I] [--stall-ms 100]
//  [--replay fuzz/crashes/X.json | --replay mime-s12-i579]`
//
// Seeded, time-bounded fuzzing of the real server (IMAP, POP3, SMTP: `pillarbox serve` on loopback,
// see target.ts) and of the MIME parser in-process (generators/mime.ts). The oracle, checked
// throughout: the server process lives; a second, well-behaved client (probe-worker.ts: logged in,
// NOOP every ~50 ms on its own connection) is answered within --rtt-ms; the server's RSS stays
// within --rss-growth-mb of its start. A violation saves the inputs in flight to fuzz/crashes/
// (<name>.bin: the bytes; <name>.json: how they were sent, what went wrong) and prints them.
// Not part of `npm test`; test/fuzz.test.ts runs a short seeded run of it.

import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Prng } from './prng.ts';
import { loadMessages, loadSessions, type Protocol, type Segment } from './corpus.ts';
import { makeSessionInput } from './generators/sessions.ts';
import { totalBytes, type FuzzInput } from './generators/mutate.ts';
import { checkMime, makeMimeInput, build, MIME_MAX_GROWTH, MIME_MIN_MS } from './generators/mime.ts';
import { runInput, startTarget, type ServerMemory, type Target } from './target.ts';
import { rssOf } from '../test/helpers/probe.ts';

export interface FuzzOptions {
  seed: number;
  /** Per protocol. */
  seconds: number;
  protocols: Protocol[];
  /** The second client's round-trip bound (ms). */
  rttLimitMs: number;
  /** Allowed RSS growth over the server's RSS after set-up (bytes). */
  rssGrowthLimit: number;
  /** Concurrent fuzz connections. */
  clients: number;
  crashDir: string;
  log: (line: string) => void;
  /** Stop after this many inputs per protocol (whichever comes first: time or count). */
  maxInputs?: number;
  /** Index of the first input (default 0): reach a long run's later inputs in a short one. */
  first?: number;
  /** The server's `server.loop-stall` threshold in ms (default the server's, 100). */
  stallMs?: number;
}

export interface Violation {
  kind: 'rtt' | 'hang' | 'rss' | 'exit' | 'probe-lost' | 'mime-throws' | 'mime-nonlinear';
  detail: string;
  saved: string[];
}

export interface Figures {
  protocol: Protocol;
  inputs: number;
  bytes: number;
  seconds: number;
  /** Second client (network protocols). */
  roundTrips: number;
  rttWorst: number;
  rttP99: number;
  rssStart: number;
  rssMax: number;
  /** Network protocols: the server's V8 heap in use after a full GC, before the first input and after the last (fuzz/server-mem.ts). */
  heapStart?: number;
  heapEnd?: number;
  /** `server.loop-stall` lines the server logged. */
  stalls: string[];
  /** MIME: the largest per-byte growth seen (4× the repeats), the slowest µs/byte, the longest parse. */
  mimeWorstGrowth?: number;
  mimeWorstPerByte?: number;
  mimeMaxMs?: number;
  violations: Violation[];
}

const MB = 1024 * 1024;
const MAX_SAVED = 30;

interface Running {
  id: string;
  input: FuzzInput;
  start: number;
  end: number;
}

function preview(b: Buffer, n = 240): string {
  const s = JSON.stringify(b.subarray(0, n).toString('latin1'));
  return b.length > n ? `${s}… (${b.length} bytes)` : s;
}

function sentBytes(input: FuzzInput): Buffer {
  const all = Buffer.concat(input.segments.map((s) => s.bytes));
  return input.mode === 'abrupt' ? all.subarray(0, Math.max(0, input.closeAfter)) : all;
}

class Crashes {
  saved = 0;
  readonly #done = new Set<string>();
  readonly opts: FuzzOptions;
  constructor(opts: FuzzOptions) {
    this.opts = opts;
  }
  save(id: string, what: Record<string, unknown>, bytes: Buffer): string | null {
    if (this.#done.has(id)) return join(this.opts.crashDir, `${id}.json`);
    if (this.saved >= MAX_SAVED) return null;
    this.#done.add(id);
    this.saved++;
    mkdirSync(this.opts.crashDir, { recursive: true });
    writeFileSync(join(this.opts.crashDir, `${id}.bin`), bytes);
    writeFileSync(join(this.opts.crashDir, `${id}.json`), JSON.stringify(what, null, 1) + '\n');
    this.opts.log(`  saved ${join(this.opts.crashDir, id)}.{bin,json}: ${preview(bytes)}`);
    return join(this.opts.crashDir, `${id}.json`);
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! : 0;
}

/** One network protocol for opts.seconds. */
async function fuzzNetwork(protocol: Exclude<Protocol, 'mime'>, opts: FuzzOptions, crashes: Crashes, replay?: FuzzInput): Promise<Figures> {
  const corpus = loadSessions(protocol);
  const target: Target = await startTarget(opts.clients, { loopStallMs: opts.stallMs });
  const pid = target.srv.proc.pid!;
  const violations: Violation[] = [];
  const rtts: number[] = [];
  const running = new Map<string, Running>();
  const recent: Running[] = [];
  let inputs = 0;
  let bytes = 0;
  let fatal = false;
  let exited = false;
  target.srv.proc.once('exit', () => (exited = true));

  const culprits = (from: number, to: number): Running[] =>
    [...running.values(), ...recent].filter((r) => r.start <= to && (r.end === 0 || r.end >= from)).slice(0, 4);
  const violate = (kind: Violation['kind'], detail: string, suspects: Running[]) => {
    const saved: string[] = [];
    for (const s of suspects) {
      const p = crashes.save(`${protocol}-${s.id}`, { protocol, id: s.id, seed: opts.seed, violation: `${kind}: ${detail}`, port: s.input.port, mode: s.input.mode, closeAfter: s.input.closeAfter, notes: s.input.notes, segments: s.input.segments.map((g) => [g.kind, g.bytes.length]) }, sentBytes(s.input));
      if (p) saved.push(p);
    }
    violations.push({ kind, detail, saved });
    opts.log(`VIOLATION ${protocol} ${kind}: ${detail}${suspects.length ? `; inputs in flight: ${suspects.map((s) => `${s.id} [${s.input.notes.join('; ')}]`).join(' | ')}` : ''}`);
  };

  // Before the second client starts: the GC holds the server's loop for a moment.
  const memStart = await target.memory();
  await new Promise((r) => setTimeout(r, 150)); // a stall line that GC causes is logged now, and not counted
  const outFrom = target.srv.output().length;
  const probePort = target.srv.ports[protocol];
  const worker = new Worker(new URL('./probe-worker.ts', import.meta.url), { workerData: { protocol, port: probePort, user: target.probe.user, pass: target.probe.pass, everyMs: 50 } });
  let lastSample = Date.now();
  let ready!: () => void;
  const readyP = new Promise<void>((r) => (ready = r));
  worker.on('message', (m: { rtt?: number; at?: number; lost?: string; ready?: boolean }) => {
    if (m.ready) {
      lastSample = Date.now();
      ready();
    }
    if (m.rtt !== undefined) {
      rtts.push(m.rtt);
      lastSample = m.at!;
      if (m.rtt > opts.rttLimitMs) violate('rtt', `second client's NOOP took ${m.rtt.toFixed(1)} ms (limit ${opts.rttLimitMs})`, culprits(m.at! - m.rtt, m.at!));
    }
    if (m.lost && !fatal) violate('probe-lost', `second client's connection: ${m.lost}`, culprits(m.at! - 1000, m.at!));
  });
  worker.on('error', (err) => opts.log(`probe worker failed: ${err.stack}`));
  await Promise.race([readyP, new Promise((r) => setTimeout(r, 30_000))]);

  const rssStart = rssOf(pid);
  let rssMax = rssStart;
  let rssFlagged = false;
  const t0 = Date.now();
  const end = t0 + opts.seconds * 1000;
  let lastReport = t0;
  const monitor = setInterval(() => {
    if (exited) {
      if (!fatal) violate('exit', `server exited: ${target.srv.output().slice(-2000)}`, culprits(Date.now() - 5000, Date.now()));
      fatal = true;
      return;
    }
    try {
      const rss = rssOf(pid);
      rssMax = Math.max(rssMax, rss);
      if (rss - rssStart > opts.rssGrowthLimit && !rssFlagged) {
        rssFlagged = true;
        violate('rss', `server RSS ${(rss / MB).toFixed(1)} MB, ${((rss - rssStart) / MB).toFixed(1)} MB over its start`, culprits(Date.now() - 3000, Date.now()));
        void explainRss(target, memStart, violations.at(-1)!, opts.log);
      }
    } catch {
      /* exiting */
    }
    const silent = Date.now() - lastSample;
    if (silent > Math.max(5000, opts.rttLimitMs * 10) && !fatal) {
      violate('hang', `second client unanswered for ${silent} ms`, culprits(Date.now() - silent, Date.now()));
      lastSample = Date.now();
    }
    if (Date.now() - lastReport > 30_000) {
      lastReport = Date.now();
      const s = [...rtts].sort((a, b) => a - b);
      opts.log(`  ${protocol} ${Math.round((Date.now() - t0) / 1000)} s: ${inputs} inputs, worst ${(s.at(-1) ?? 0).toFixed(1)} ms, p99 ${percentile(s, 0.99).toFixed(1)} ms, RSS max ${(rssMax / MB).toFixed(1)} MB`);
    }
  }, 100);

  const first = opts.first ?? 0;
  let next = first;
  const client = async (slot: number) => {
    while (!fatal && Date.now() < end && next - first < (opts.maxInputs ?? Infinity)) {
      const index = next++;
      const r = Prng.forInput(opts.seed, index);
      const input = replay ?? makeSessionInput(r, protocol, corpus, target.accounts[slot]!);
      const pauseMs = r.int(200, 2500);
      const run: Running = { id: `s${opts.seed}-i${index}-c${slot}`, input, start: Date.now(), end: 0 };
      running.set(run.id, run);
      inputs++;
      bytes += totalBytes(input.segments);
      const res = await runInput(target.srv.ports[input.port as 'imap'], input, 4000, pauseMs).catch(() => null);
      run.end = Date.now();
      // $FUZZ_TRACE: one line per input, to match the server's samples (server-mem.ts) by port and time.
      if (process.env.FUZZ_TRACE) appendFileSync(process.env.FUZZ_TRACE, JSON.stringify({ id: run.id, start: run.start, end: run.end, port: res?.localPort, mode: input.mode, bytes: totalBytes(input.segments), received: res?.received, notes: input.notes }) + '\n');
      running.delete(run.id);
      recent.push(run);
      while (recent.length && recent[0]!.end < Date.now() - 3000) recent.shift();
      if (replay) break;
    }
  };
  await Promise.all(Array.from({ length: replay ? 1 : opts.clients }, (_, i) => client(i)));
  if (replay) await new Promise((r) => setTimeout(r, 2000));
  // In-flight work finishes; the second client's last samples arrive.
  await new Promise((r) => setTimeout(r, 300));
  worker.postMessage({ cmd: 'stop' });
  await Promise.race([new Promise((r) => worker.once('exit', r)), new Promise((r) => setTimeout(r, 3000))]);
  await worker.terminate();
  const outTo = target.srv.output().length;
  const memEnd = exited ? null : await target.memory();
  clearInterval(monitor);
  if (exited && !fatal) violate('exit', `server exited: ${target.srv.output().slice(-2000)}`, culprits(Date.now() - 5000, Date.now()));
  const stalls = target.srv.output().slice(outFrom, outTo).split('\n').filter((l) => l.includes('server.loop-stall'));
  await target.stop().catch(() => {});
  const s = [...rtts].sort((a, b) => a - b);
  return { protocol, inputs, bytes, seconds: (Date.now() - t0) / 1000, roundTrips: s.length, rttWorst: s.at(-1) ?? 0, rttP99: percentile(s, 0.99), rssStart, rssMax, heapStart: memStart?.heapUsed, heapEnd: memEnd?.heapUsed, stalls, violations };
}

/**
 * After an RSS trip: the server's heap after a full GC against its start tells live data that
 * stays (a leak: heap up by about the RSS growth) from memory freed but not given back to the
 * system (heap back near its start, RSS still high: V8's grown heap, malloc arenas). Either way
 * the violation stands; this only says which, in its detail. The GC holds the server's loop.
 */
async function explainRss(target: Target, start: ServerMemory | null, v: Violation, log: (l: string) => void): Promise<void> {
  const now = await target.memory();
  if (!start || !now) return;
  const f = (x: number) => (x / MB).toFixed(1);
  const note = `after a full GC: heap used ${f(now.heapUsed)} MB (start ${f(start.heapUsed)}; ${f(now.heapUsedBeforeGc)} before this GC), heap total ${f(now.heapTotal)} (start ${f(start.heapTotal)}), external ${f(now.external)} (start ${f(start.external)}), RSS ${f(now.rss)}`;
  v.detail += `; ${note}`;
  log(`  rss: ${note}`);
}

/** The MIME parser and everything derived from message data, in this process. */
async function fuzzMime(opts: FuzzOptions, crashes: Crashes): Promise<Figures> {
  const messages = loadMessages();
  const violations: Violation[] = [];
  const t0 = Date.now();
  const end = t0 + opts.seconds * 1000;
  let inputs = 0;
  let bytes = 0;
  let worstGrowth = 0;
  let worstPerByte = 0;
  let maxMs = 0;
  let lastReport = t0;
  for (let index = opts.first ?? 0; Date.now() < end && index - (opts.first ?? 0) < (opts.maxInputs ?? Infinity); index++) {
    const input = makeMimeInput(Prng.forInput(opts.seed, index), messages);
    const v = checkMime(input);
    inputs++;
    bytes += v.bytes;
    maxMs = Math.max(maxMs, v.ms);
    if (v.ms > MIME_MIN_MS) {
      worstGrowth = Math.max(worstGrowth, v.growth);
      worstPerByte = Math.max(worstPerByte, v.perByteBig);
    }
    const id = `mime-s${opts.seed}-i${index}`;
    const what = (violation: string) => ({ protocol: 'mime', id, seed: opts.seed, violation, base: input.base, notes: input.notes, chunk: input.chunk, repeats: 4 * input.k });
    if (v.error) {
      const p = crashes.save(id, what(`throws: ${v.error}`), build(input, 4 * input.k));
      violations.push({ kind: 'mime-throws', detail: v.error.split('\n')[0]!, saved: p ? [p] : [] });
      opts.log(`VIOLATION mime throws on ${id} [${input.notes.join('; ')}]: ${v.error}`);
    } else if (v.growth > MIME_MAX_GROWTH && v.ms > MIME_MIN_MS) {
      const detail = `time per byte ×${v.growth.toFixed(2)} for 4× the repeats (${v.perByteSmall.toFixed(3)} → ${v.perByteBig.toFixed(3)} µs/byte, ${v.ms.toFixed(0)} ms for ${v.bytes} bytes)`;
      const p = crashes.save(id, what(`nonlinear: ${detail}`), build(input, 4 * input.k));
      violations.push({ kind: 'mime-nonlinear', detail, saved: p ? [p] : [] });
      opts.log(`VIOLATION mime nonlinear on ${id} [${input.notes.join('; ')}]: ${detail}`);
    }
    if (Date.now() - lastReport > 30_000) {
      lastReport = Date.now();
      opts.log(`  mime ${Math.round((Date.now() - t0) / 1000)} s: ${inputs} inputs, worst growth ×${worstGrowth.toFixed(2)}, slowest ${worstPerByte.toFixed(3)} µs/byte`);
    }
    if (index % 8 === 7) await new Promise((r) => setImmediate(r));
  }
  return {
    protocol: 'mime',
    inputs,
    bytes,
    seconds: (Date.now() - t0) / 1000,
    roundTrips: 0,
    rttWorst: 0,
    rttP99: 0,
    rssStart: process.memoryUsage().rss,
    rssMax: process.memoryUsage().rss,
    stalls: [],
    mimeWorstGrowth: worstGrowth,
    mimeWorstPerByte: worstPerByte,
    mimeMaxMs: maxMs,
    violations,
  };
}

export async function runFuzz(opts: FuzzOptions): Promise<Figures[]> {
  const crashes = new Crashes(opts);
  const out: Figures[] = [];
  for (const p of opts.protocols) out.push(p === 'mime' ? await fuzzMime(opts, crashes) : await fuzzNetwork(p, opts, crashes));
  return out;
}

/** A MIME input id: `mime-s<seed>-i<index>` (the input is made again from Prng.forInput). */
const MIME_ID = /^mime-s(\d+)-i(\d+)$/; // linear: anchored, digit runs separated by literals

/**
 * Makes one MIME input again from its id and checks it with the fuzz oracle, `times` times (the
 * verdict is timing: several runs tell a real growth from a busy machine). With `dump`, the larger
 * input's bytes go to that file (for `node --cpu-prof` on parseMessage).
 */
export function replayMime(id: string, opts: FuzzOptions, times = 3, dump?: string): Figures {
  const m = MIME_ID.exec(id);
  if (!m) throw new Error(`not a MIME input id: ${id} (mime-s<seed>-i<index>)`);
  const seed = Number(m[1]);
  const input = makeMimeInput(Prng.forInput(seed, Number(m[2])), loadMessages());
  opts.log(`${id}: [${input.notes.join('; ')}], chunks of ${input.chunk}`);
  if (dump) writeFileSync(dump, build(input, 4 * input.k));
  const violations: Violation[] = [];
  let worst = 0;
  let maxMs = 0;
  for (let i = 0; i < times; i++) {
    const v = checkMime(input);
    opts.log(`  run ${i + 1}: ${v.error ? `throws: ${v.error}` : `time per byte ×${v.growth.toFixed(2)} (${v.perByteSmall.toFixed(3)} → ${v.perByteBig.toFixed(3)} µs/byte, ${v.ms.toFixed(0)} ms for ${v.bytes} bytes)`}`);
    if (v.error) violations.push({ kind: 'mime-throws', detail: v.error.split('\n')[0]!, saved: [] });
    else if (v.growth > MIME_MAX_GROWTH && v.ms > MIME_MIN_MS) violations.push({ kind: 'mime-nonlinear', detail: `×${v.growth.toFixed(2)}`, saved: [] });
    if (v.ms > MIME_MIN_MS) worst = Math.max(worst, v.growth);
    maxMs = Math.max(maxMs, v.ms);
  }
  const rss = process.memoryUsage().rss;
  return { protocol: 'mime', inputs: times, bytes: 0, seconds: 0, roundTrips: 0, rttWorst: 0, rttP99: 0, rssStart: rss, rssMax: rss, stalls: [], mimeWorstGrowth: worst, mimeWorstPerByte: 0, mimeMaxMs: maxMs, violations };
}

/**
 * Sends one saved input (a .json and its .bin from fuzz/crashes/) again, with the same oracle.
 * MIME: a saved .json or just the id (`mime-s12-i579`); the input is made again from the seed.
 */
export async function replayCrash(file: string, opts: FuzzOptions): Promise<Figures> {
  if (MIME_ID.test(file)) return replayMime(file, opts);
  const what = JSON.parse(readFileSync(file, 'utf8')) as { protocol: Protocol; id: string; port: string; mode: FuzzInput['mode']; closeAfter: number; notes: string[]; segments: Array<[Segment['kind'], number]> };
  if (what.protocol === 'mime') return replayMime(what.id, opts);
  const bytes = readFileSync(file.replace(/\.json$/, '.bin'));
  const segments: Segment[] = [];
  let at = 0;
  for (const [kind, n] of what.segments) {
    segments.push({ kind, bytes: bytes.subarray(at, at + n) });
    at += n;
  }
  const input: FuzzInput = { protocol: what.protocol, port: what.port, segments, mode: what.mode === 'abrupt' ? 'abrupt' : what.mode, closeAfter: what.closeAfter, notes: what.notes };
  return fuzzNetwork(what.protocol, { ...opts, seconds: 3600 }, new Crashes({ ...opts, crashDir: join(opts.crashDir, 'replays') }), input);
}

export function formatFigures(f: Figures, opts: Pick<FuzzOptions, 'seed' | 'rttLimitMs'>): string {
  const head = `${f.protocol}: ${f.inputs} inputs (${(f.bytes / MB).toFixed(1)} MB) in ${f.seconds.toFixed(0)} s, seed ${opts.seed}`;
  const v = `violations ${f.violations.length}${f.violations.length ? ` (${[...new Set(f.violations.map((x) => x.kind))].join(', ')})` : ''}`;
  if (f.protocol === 'mime')
    return `${head}; worst growth of time per byte ×${(f.mimeWorstGrowth ?? 0).toFixed(2)} (limit ×${MIME_MAX_GROWTH}), slowest ${(f.mimeWorstPerByte ?? 0).toFixed(3)} µs/byte, longest ${(f.mimeMaxMs ?? 0).toFixed(0)} ms; fuzzer RSS ${(f.rssMax / MB).toFixed(0)} MB; ${v}`;
  const heap = f.heapStart !== undefined && f.heapEnd !== undefined ? `, heap used after GC ${(f.heapStart / MB).toFixed(1)} → ${(f.heapEnd / MB).toFixed(1)} MB` : '';
  return `${head}; second client ${f.roundTrips} round trips, worst ${f.rttWorst.toFixed(1)} ms, p99 ${f.rttP99.toFixed(1)} ms (limit ${opts.rttLimitMs}); server RSS max ${(f.rssMax / MB).toFixed(1)} MB (start ${(f.rssStart / MB).toFixed(1)})${heap}; loop stalls logged ${f.stalls.length}; ${v}`;
}

function parseArgs(argv: string[]): FuzzOptions & { replay: string | null } {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
    return v;
  };
  const num = (name: string, dflt: number): number => {
    const v = get(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: not a number: ${v}`);
    return n;
  };
  const known = new Set(['seed', 'minutes', 'protocol', 'clients', 'rtt-ms', 'rss-growth-mb', 'replay', 'first', 'stall-ms']);
  for (const a of argv) if (a.startsWith('--') && !known.has(a.slice(2))) throw new Error(`unknown option ${a} (known: ${[...known].map((k) => '--' + k).join(' ')})`);
  const p = get('protocol') ?? 'all';
  const all: Protocol[] = ['imap', 'pop3', 'smtp', 'mime'];
  if (p !== 'all' && !all.includes(p as Protocol)) throw new Error(`--protocol: one of imap, pop3, smtp, mime, all (not ${p})`);
  const protocols = p === 'all' ? all : [p as Protocol];
  return {
    seed: Math.floor(num('seed', Date.now() % 1_000_000)),
    // --minutes is per protocol.
    seconds: num('minutes', 1) * 60,
    protocols,
    clients: Math.max(1, Math.floor(num('clients', 3))),
    rttLimitMs: num('rtt-ms', 100),
    rssGrowthLimit: num('rss-growth-mb', 200) * MB,
    first: Math.floor(num('first', 0)),
    stallMs: num('stall-ms', 0) || undefined,
    crashDir: new URL('./crashes/', import.meta.url).pathname,
    log: (l) => console.log(l),
    replay: get('replay') ?? null,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  let opts: ReturnType<typeof parseArgs>;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`fuzz: ${(err as Error).message}`);
    process.exit(2);
  }
  const figures = opts.replay ? [await replayCrash(opts.replay, opts)] : await runFuzz(opts);
  console.log(`\nfuzz figures (seed ${opts.seed}, ${opts.clients} fuzz clients):`);
  for (const f of figures) {
    console.log(formatFigures(f, opts));
    for (const s of f.stalls.slice(0, 20)) console.log(`  stall: ${s}`);
    for (const v of f.violations.slice(0, 20)) console.log(`  ${v.kind}: ${v.detail}${v.saved.length ? ` → ${v.saved.join(', ')}` : ''}`);
  }
  process.exit(figures.some((f) => f.violations.length) ? 1 : 0);
}
