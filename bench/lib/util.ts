// Shared pieces of the benchmark suite: cleanup of every process we start (also on Ctrl-C and
// errors), process-tree memory, percentiles, the side-by-side table and the results file.

import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, hostname, release, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = resolve(BENCH_DIR, '..');
export const RESULTS_DIR = join(BENCH_DIR, 'results');

// ---------------------------------------------------------------- environment knobs

export function envInt(name: string, def: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v} is not a non-negative number`);
  return Math.floor(n);
}

export function envStr(name: string, def: string): string {
  const v = process.env[name];
  return v === undefined || v === '' ? def : v;
}

/** BENCH_SCALE multiplies the default sizes (e.g. 5 for the full sizes of issue #6 where defaults are reduced). */
export const SCALE = Number(process.env.BENCH_SCALE ?? '1') || 1;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const now = () => performance.now();

export function log(msg: string): void {
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[${t}] ${msg}\n`);
}

// ---------------------------------------------------------------- cleanup

type Cleanup = { name: string; sync: () => void; async?: () => Promise<void> };
const cleanups: Cleanup[] = [];
let cleaning = false;

/** Registers something to stop: `sync` must work inside process.on('exit') (kill by pid). */
export function onCleanup(name: string, sync: () => void, asyncStop?: () => Promise<void>): () => void {
  const c: Cleanup = { name, sync, ...(asyncStop ? { async: asyncStop } : {}) };
  cleanups.push(c);
  return () => {
    const i = cleanups.indexOf(c);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

/** Runs the async stops (newest first), then the sync ones of anything left. */
export async function cleanupAll(): Promise<void> {
  if (cleaning) return;
  cleaning = true;
  while (cleanups.length) {
    const c = cleanups.pop()!;
    try {
      if (c.async) await Promise.race([c.async(), sleep(20_000)]);
    } catch (err) {
      log(`cleanup ${c.name}: ${(err as Error).message}`);
    }
    try {
      c.sync();
    } catch {
      /* already gone */
    }
  }
  cleaning = false;
}

/** Set on Ctrl-C/SIGTERM: no new server or load is started after it. */
export let stopping = false;

let handlersInstalled = false;
export function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        c.sync();
      } catch {
        /* ignore */
      }
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      stopping = true;
      log(`${sig}: stopping every server started by the benchmark`);
      cleanupAll().finally(() => process.exit(130));
    });
  }
}

/** Process ids of every descendant of pid (children, grandchildren, …). */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), Number(rest[1]));
    } catch {
      /* exited */
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    for (const [c, pp] of parent) if (pp === p) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

export function killTree(pid: number, sig: NodeJS.Signals = 'SIGKILL'): void {
  const all = [pid, ...descendants(pid)];
  for (const p of all) {
    try {
      process.kill(p, sig);
    } catch {
      /* gone */
    }
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Spawns a child that is killed (with its whole tree) at cleanup. */
export function spawnTracked(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  const pid = p.pid!;
  const off = onCleanup(name, () => killTree(pid));
  p.once('exit', () => off());
  return p;
}

export function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    input: opts.input ?? '',
    env: opts.env ?? process.env,
    cwd: opts.cwd ?? ROOT,
    timeout: opts.timeoutMs ?? 600_000,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

// ---------------------------------------------------------------- memory

export interface Mem {
  /** Sum of VmRSS (bytes): counts shared pages once per process. */
  rss: number;
  /** Sum of Pss (bytes): shared pages divided among the processes sharing them. */
  pss: number;
  processes: number;
}

function statusField(pid: number, field: string): number {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(s);
  return m ? Number(m[1]) * 1024 : 0;
}

function pssOf(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const m = /^Pss:\s+(\d+) kB/m.exec(s);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Memory of pid and (optionally) all its descendants. */
export function memoryOf(pids: number[]): Mem {
  let rss = 0;
  let pss = 0;
  let n = 0;
  for (const p of pids) {
    try {
      rss += statusField(p, 'VmRSS');
      pss += pssOf(p);
      n++;
    } catch {
      /* exited meanwhile */
    }
  }
  return { rss, pss, processes: n };
}

/**
 * CPU seconds used so far by pid and its descendants (user + system, threads included), plus what
 * their reaped children used (cutime/cstime): the difference of two readings is the work done in
 * between, even by processes that exited meanwhile (Postfix's smtp/cleanup children).
 */
export function treeCpuSeconds(rootPid: number): number {
  const tick = 100; // USER_HZ on Linux
  let t = 0;
  for (const p of [rootPid, ...descendants(rootPid)]) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields 14-17 of proc(5): utime stime cutime cstime (f[0] is field 3)
      t += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / tick;
    } catch {
      /* exited meanwhile */
    }
  }
  return t;
}

/** CPU seconds (user + system) of one thread of pid; the main thread's id is pid's own. */
export function threadCpuSeconds(pid: number, tid = pid): number {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * CPU seconds (user + system) of each thread of pid, summed by thread name (/proc/PID/task/TID/comm:
 * the main thread carries the process name; node names its libuv pool threads `libuv-worker`, V8's GC and compiler helpers
 * `V8Worker`; worker threads by their Worker name: pb-dkim, pb-delivery, pb-checkpoint, pb-body-scan).
 */
export function threadCpuByName(pid: number): Map<string, number> {
  const by = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return by;
  }
  for (const tid of tids) {
    try {
      const name = Number(tid) === pid ? 'event loop' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      by.set(name, (by.get(name) ?? 0) + threadCpuSeconds(pid, Number(tid)));
    } catch {
      /* exited meanwhile */
    }
  }
  return by;
}

export function treeMemory(rootPid: number, includeRoot = true): Mem {
  return memoryOf([...(includeRoot ? [rootPid] : []), ...descendants(rootPid)]);
}

export function softFdLimit(): number {
  try {
    const s = readFileSync('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\d+)/m.exec(s);
    return m ? Number(m[1]) : 1024;
  } catch {
    return 1024;
  }
}

export function hardFdLimit(): number {
  try {
    const s = readFileSync('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+\d+\s+(\d+|unlimited)/m.exec(s);
    return m ? (m[1] === 'unlimited' ? 1 << 20 : Number(m[1])) : 1024;
  } catch {
    return 1024;
  }
}

/**
 * Makes sure this process (and so every server it starts) runs with a high RLIMIT_NOFILE: when the
 * soft limit is below `want`, re-runs the same script under `bash -c 'ulimit -n N; exec …'` with N the
 * lower of `want` and the hard limit. Returns true if the caller should stop (the child did the work).
 */
export async function ensureFdLimit(want = 65536): Promise<boolean> {
  const soft = softFdLimit();
  const target = Math.min(want, hardFdLimit());
  if (soft >= target || process.env.BENCH_FD_RAISED) return false;
  const cmd = `ulimit -n ${target} && exec "$0" "$@"`;
  const p = spawn('bash', ['-c', cmd, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_FD_RAISED: '1' },
  });
  const forward = (sig: NodeJS.Signals) => p.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const code = await new Promise<number>((r) => p.on('exit', (c, s) => r(c ?? (s ? 130 : 1))));
  process.exitCode = code;
  return true;
}

// ---------------------------------------------------------------- statistics

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export class Recorder {
  readonly samples = new Map<string, number[]>();
  readonly errors = new Map<string, number>();
  add(name: string, ms: number): void {
    let a = this.samples.get(name);
    if (!a) this.samples.set(name, (a = []));
    a.push(ms);
  }
  error(name: string): void {
    this.errors.set(name, (this.errors.get(name) ?? 0) + 1);
  }
  summary(name: string): { count: number; p50: number; p99: number; mean: number } {
    const a = [...(this.samples.get(name) ?? [])].sort((x, y) => x - y);
    const mean = a.length ? a.reduce((s, x) => s + x, 0) / a.length : NaN;
    return { count: a.length, p50: percentile(a, 50), p99: percentile(a, 99), mean };
  }
  names(): string[] {
    return [...this.samples.keys()];
  }
}

// ---------------------------------------------------------------- the table

/** Which way is better; 'none' = informational (no ratio). */
export type Better = 'higher' | 'lower' | 'none';

export interface Row {
  figure: string;
  unit: string;
  better: Better;
  pillarbox: number | null;
  peer: number | null;
  /** Why pillarbox (or the peer) has no figure. */
  pillarboxNote?: string;
  peerNote?: string;
}

/** Pillarbox ÷ peer for "higher is better", peer ÷ Pillarbox for "lower is better": >1 means Pillarbox wins. */
export function advantage(r: Row): number | null {
  if (r.better === 'none' || r.pillarbox === null || r.peer === null || !Number.isFinite(r.pillarbox) || !Number.isFinite(r.peer)) return null;
  if (r.better === 'higher') return r.peer === 0 ? null : r.pillarbox / r.peer;
  return r.pillarbox === 0 ? null : r.peer / r.pillarbox;
}

export function fmt(n: number | null, unit = ''): string {
  if (n === null || !Number.isFinite(n)) return 'n/a';
  const abs = Math.abs(n);
  const s = abs >= 1000 ? Math.round(n).toLocaleString('en-US') : abs >= 100 ? n.toFixed(0) : abs >= 10 ? n.toFixed(1) : abs >= 1 ? n.toFixed(2) : n.toFixed(3);
  return unit ? `${s} ${unit}` : s;
}

export function renderTable(title: string, peerName: string, rows: Row[]): string {
  const head = ['figure', 'Pillarbox', peerName, 'ratio'];
  const body = rows.map((r) => {
    const a = advantage(r);
    return [
      `${r.figure}${r.unit ? ` (${r.unit})` : ''}`,
      r.pillarbox === null ? `n/a${r.pillarboxNote ? ` (${r.pillarboxNote})` : ''}` : fmt(r.pillarbox),
      r.peer === null ? `n/a${r.peerNote ? ` (${r.peerNote})` : ''}` : fmt(r.peer),
      a === null ? '' : `${a.toFixed(2)}×${a >= 1 ? '' : ' (behind)'}`,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
  const sep = '|' + widths.map((w, i) => (i === 0 ? ':' + '-'.repeat(w + 1) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  return [`### ${title}`, '', line(head), sep, ...body.map(line), '', 'ratio: how many times better Pillarbox is (higher-is-better figures: Pillarbox ÷ peer; lower-is-better: peer ÷ Pillarbox).', ''].join('\n');
}

export function machineInfo(): Record<string, unknown> {
  const c = cpus();
  let dovecot = '';
  let postfix = '';
  try {
    dovecot = execFileSync('dovecot', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    /* not installed */
  }
  try {
    postfix = execFileSync('postconf', ['-h', '-d', 'mail_version'], { encoding: 'utf8' }).trim();
  } catch {
    /* not installed */
  }
  return {
    cores: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    hostname: hostname(),
    kernel: release(),
    node: process.version,
    /** 1/5/15-minute load averages when the result was written (other work on the machine skews figures). */
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
    dovecot,
    postfix,
  };
}

export interface BenchResult {
  name: string;
  title: string;
  peer: string;
  startedAt: string;
  durationSeconds: number;
  machine: Record<string, unknown>;
  params: Record<string, unknown>;
  rows: Array<Row & { ratio: number | null }>;
  details: Record<string, unknown>;
  table: string;
}

export function writeResult(r: Omit<BenchResult, 'machine' | 'table'> & { table?: string }): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const table = r.table ?? renderTable(r.title, r.peer, r.rows);
  const full: BenchResult = { ...r, machine: machineInfo(), table };
  const file = join(RESULTS_DIR, `${r.name}.json`);
  writeFileSync(file, JSON.stringify(full, null, 2) + '\n');
  return file;
}

/** Standard main(): fd limit, signal handlers, always cleanup, exit code. */
export async function benchMain(fn: () => Promise<void>, opts: { fdLimit?: number } = {}): Promise<void> {
  if (opts.fdLimit && (await ensureFdLimit(opts.fdLimit))) return;
  installSignalHandlers();
  try {
    await fn();
  } catch (err) {
    log(`benchmark failed: ${(err as Error).stack ?? err}`);
    process.exitCode = 1;
  } finally {
    await cleanupAll();
  }
}

export function isMain(metaUrl: string): boolean {
  return process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(metaUrl);
}

/** Runs `fn` with a deadline: resolves to its value, or to `onTimeout()` after ms. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<T>((_, rej) => {
        t = setTimeout(() => rej(new Error(`${what}: no answer within ${Math.round(ms / 1000)} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}

/** Runs tasks with at most `limit` at a time. */
export async function pool<T>(items: T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
}

export function writeFileEnsured(path: string, data: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
}

// ---------------------------------------------------------------- benchmark plumbing

export type Outcome<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Runs one side of a benchmark; a failure becomes a short reason for the table ("n/a (reason)"). */
export async function attempt<T>(what: string, fn: () => Promise<T>, opts: { keep?: boolean } = {}): Promise<Outcome<T>> {
  // BENCH_SIDES=pillarbox (or =peer) runs one side only, e.g. while iterating on a fix.
  const sides = (process.env.BENCH_SIDES ?? 'pillarbox,peer').toLowerCase().split(',');
  const side = what === 'Pillarbox' ? 'pillarbox' : 'peer';
  if (!sides.includes(side)) return { ok: false, reason: 'skipped (BENCH_SIDES)' };
  if (stopping) return { ok: false, reason: 'interrupted' };
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    const msg = (err as Error).message ?? String(err);
    log(`${what} failed: ${(err as Error).stack ?? msg}`);
    const first = msg.split('\n')[0]!.trim();
    return { ok: false, reason: first.length > 70 ? first.slice(0, 67) + '…' : first };
  } finally {
    // keep: the side's servers stay up for a later side-by-side step (the caller stops them).
    if (!opts.keep) await cleanupAll();
  }
}

export function benchAccounts(n: number, prefix = 'bench'): Array<{ address: string; password: string }> {
  return Array.from({ length: n }, (_, i) => ({ address: `${prefix}${i}@example.com`, password: `pass-${prefix}-${i}` }));
}

/** Builds a row from two outcomes and a getter. */
export function row<A, B>(
  figure: string,
  unit: string,
  better: Better,
  p: Outcome<A>,
  q: Outcome<B>,
  getP: (a: A) => number | null,
  getQ: (b: B) => number | null,
): Row {
  const pv = p.ok ? getP(p.value) : null;
  const qv = q.ok ? getQ(q.value) : null;
  return {
    figure,
    unit,
    better,
    pillarbox: pv === null || pv === undefined || Number.isNaN(pv) ? null : pv,
    peer: qv === null || qv === undefined || Number.isNaN(qv) ? null : qv,
    ...(p.ok ? (pv === null ? { pillarboxNote: 'not measured' } : {}) : { pillarboxNote: p.reason }),
    ...(q.ok ? (qv === null ? { peerNote: 'not measured' } : {}) : { peerNote: q.reason }),
  };
}

/** Prints the table, writes bench/results/<name>.json, returns the table text. */
export function report(r: {
  name: string;
  title: string;
  peer: string;
  started: number;
  params: Record<string, unknown>;
  rows: Row[];
  details: Record<string, unknown>;
}): string {
  const table = renderTable(r.title, r.peer, r.rows);
  // A one-sided or diagnostic run must not overwrite the side-by-side result.
  const partial = process.env.BENCH_SIDES || r.params.readOnly ? '-partial' : '';
  const file = writeResult({
    name: r.name + partial,
    title: r.title,
    peer: r.peer,
    startedAt: new Date(r.started).toISOString(),
    durationSeconds: Math.round((Date.now() - r.started) / 100) / 10,
    params: r.params,
    rows: r.rows.map((x) => ({ ...x, ratio: advantage(x) })),
    details: r.details,
    table,
  });
  process.stdout.write('\n' + table + `(written to ${file.replace(ROOT + '/', '')})\n\n`);
  return table;
}
