// SORT and THREAD side by side (issue 14): both servers up at once with the same mailbox, the
// commands run on one then the other, the order swapped every round, so a busy machine's noise
// falls on both. Per round and server: SELECT (untimed), the command once ("cold": its first run
// after SELECT), then `warm` more runs (their median). Then as many rounds with new mail: one
// message APPENDed, NOOP, the command once ("after one new message"). Another session's NOOP round trips on each
// server (bench/lib/noop-probe.ts, its own thread) give the worst stall any other user saw.
// Figures: per command the median over rounds of each server's time, and the median and range of
// the per-round ratio Pillarbox ÷ Dovecot (below 1: Pillarbox is faster).

import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { ImapConn } from './imap-client.ts';
import { log, now, percentile, type Mem } from './util.ts';

export const SORTS = {
  arrival: 'UID SORT (ARRIVAL) UTF-8 ALL',
  date: 'UID SORT (DATE) UTF-8 ALL',
  subject: 'UID SORT (SUBJECT) UTF-8 ALL',
  thread: 'UID THREAD REFERENCES UTF-8 ALL',
} as const;
export type SortName = keyof typeof SORTS;

export interface SortTarget {
  name: 'pillarbox' | 'dovecot';
  port: number;
  account: { address: string; password: string };
  /** The server's memory, read after the last round while the sessions are still logged in. */
  memory?: () => Mem;
}

export interface SideFigures {
  /** The first run of every round (after a fresh SELECT); [0] is the first since the server started. */
  cold: number[];
  /** The run right after one new message was appended (APPEND by this session), every round. */
  afterNew: number[];
  /** Median of each round's warm runs. */
  warm: number[];
  /** Worst NOOP round trip of another session on this server while this command ran (all rounds). */
  worstNoop: number;
  numbers: number;
  /** SHA-256 (12 hex) of the answer line: equal on both servers = the same order. */
  digest: string;
  /** The same of the last round's answer after new mail. */
  digestAfter?: string;
}

const count = (line: string) => (line.match(/\d+/g) ?? []).length;
const digest = (line: string) => createHash('sha256').update(line.toUpperCase()).digest('hex').slice(0, 12);

export interface RoundsResult {
  figures: CommandFigures[];
  memory: Partial<Record<SortTarget['name'], Mem>>;
}

export interface CommandFigures {
  command: string;
  sides: Partial<Record<SortTarget['name'], SideFigures>>;
}

export const median = (a: readonly number[]): number => percentile([...a].sort((x, y) => x - y), 50);

/** Another session's NOOPs on its own thread (bench/lib/noop-probe.ts). */
async function startProbe(t: SortTarget) {
  const w = new Worker(new URL('./noop-probe.ts', import.meta.url), { workerData: { port: t.port, user: t.account.address, pass: t.account.password } });
  await new Promise<void>((resolve, reject) => {
    w.once('message', () => resolve());
    w.once('error', reject);
  });
  const ask = <T>(cmd: string) =>
    new Promise<T>((resolve) => {
      w.once('message', (m: T) => resolve(m));
      w.postMessage({ cmd });
    });
  return {
    mark: () => w.postMessage({ cmd: 'mark' }),
    report: () => ask<{ worst: number; median: number; count: number }>('report'),
    stop: async () => {
      w.postMessage({ cmd: 'stop' });
      await new Promise((r) => w.once('exit', r));
    },
  };
}

type Probe = Awaited<ReturnType<typeof startProbe>>;

interface Side {
  t: SortTarget;
  c: ImapConn;
  probe: Probe;
}

async function runOnce(side: Side, cmd: string): Promise<{ ms: number; line: string }> {
  const t0 = now();
  const r = await side.c.ok(cmd);
  const ms = now() - t0;
  return { ms, line: r.untagged.find((l) => /^\* (SORT|THREAD)/i.test(l)) ?? '' };
}

/**
 * Runs every command `rounds` times on every target, alternating; `expect`: messages in the
 * mailbox at the start; `newMessage(k)`: the k-th message appended (the same on every server).
 */
export async function sortRounds(
  targets: SortTarget[],
  opts: { rounds: number; warm: number; expect: number; newMessage: (k: number) => { raw: Buffer; internalDate: string } },
): Promise<RoundsResult> {
  const sides: Side[] = [];
  try {
    for (const t of targets) {
      const c = await ImapConn.connect(t.port);
      await c.login(t.account.address, t.account.password);
      sides.push({ t, c, probe: await startProbe(t) });
    }
    const out: CommandFigures[] = (Object.values(SORTS) as string[]).map((command) => ({ command, sides: {} }));
    const cmds = Object.values(SORTS) as string[];
    // Phase 1, the mailbox unchanged: first run after SELECT, then warm runs.
    for (let round = 0; round < opts.rounds; round++) {
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const [index, cmd] of cmds.entries()) {
        for (const side of order) {
          await side.c.ok('SELECT INBOX');
          side.probe.mark();
          const first = await runOnce(side, cmd);
          const numbers = count(first.line);
          if (/SORT/.test(cmd) && numbers !== opts.expect) throw new Error(`${side.t.name} ${cmd}: ${numbers} numbers, expected ${opts.expect}`);
          const warm: number[] = [];
          for (let i = 0; i < opts.warm; i++) warm.push((await runOnce(side, cmd)).ms);
          const noop = await side.probe.report();
          await side.c.ok('UNSELECT');
          const f = (out[index]!.sides[side.t.name] ??= { cold: [], afterNew: [], warm: [], worstNoop: 0, numbers, digest: digest(first.line) });
          f.cold.push(first.ms);
          f.warm.push(median(warm));
          f.worstNoop = Math.max(f.worstNoop, noop.worst);
          log(`  round ${round + 1} ${side.t.name.padEnd(9)} ${cmd}: first ${first.ms.toFixed(1)} ms, warm median ${median(warm).toFixed(1)} ms, worst NOOP ${noop.worst.toFixed(0)} ms`);
        }
      }
    }
    // Phase 2, new mail: one message APPENDed (the same on every server: a reply to an older
    // message, usually), the client told (NOOP), then the command.
    const appended = new Map<Side, number>(sides.map((x) => [x, 0]));
    for (const side of sides) await side.c.ok('SELECT INBOX');
    for (let round = 0; round < opts.rounds; round++) {
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const [index, cmd] of cmds.entries()) {
        for (const side of order) {
          const k = appended.get(side)!;
          const m = opts.newMessage(k);
          appended.set(side, k + 1);
          await side.c.append('INBOX', m.raw, '', m.internalDate);
          await side.c.ok('NOOP');
          side.probe.mark();
          const after = await runOnce(side, cmd);
          const noop = await side.probe.report();
          if (/SORT/.test(cmd) && count(after.line) !== opts.expect + k + 1) throw new Error(`${side.t.name} ${cmd} after APPEND: ${count(after.line)} numbers, expected ${opts.expect + k + 1}`);
          const f = out[index]!.sides[side.t.name]!;
          f.afterNew.push(after.ms);
          f.worstNoop = Math.max(f.worstNoop, noop.worst);
          if (round === opts.rounds - 1) f.digestAfter = digest(after.line);
          log(`  new mail ${round + 1} ${side.t.name.padEnd(9)} ${cmd}: ${after.ms.toFixed(1)} ms, worst NOOP ${noop.worst.toFixed(0)} ms`);
        }
      }
    }
    const memory: RoundsResult['memory'] = {};
    for (const s of sides) if (s.t.memory) memory[s.t.name] = s.t.memory();
    return { figures: out, memory };
  } finally {
    for (const s of sides) {
      await s.probe.stop().catch(() => {});
      await s.c.logout().catch(() => {});
    }
  }
}

/** The first runs after SELECT of rounds 2… (round 1's alone when there is one round). */
export const coldAfterSelect = (f: SideFigures): number[] => (f.cold.length > 1 ? f.cold.slice(1) : f.cold);

/** Per-round ratios a ÷ b of two series (same rounds). */
function ratios(a: readonly number[], b: readonly number[]): number[] {
  return a.map((x, i) => x / b[i]!).filter((r) => Number.isFinite(r));
}

export interface RatioRow {
  figure: string;
  pillarbox: number;
  dovecot: number;
  /** Pillarbox ÷ Dovecot per round: median, lowest, highest. */
  median: number;
  min: number;
  max: number;
}

export function ratioRows(figs: readonly CommandFigures[]): RatioRow[] {
  const rows: RatioRow[] = [];
  for (const f of figs) {
    const p = f.sides.pillarbox;
    const d = f.sides.dovecot;
    if (!p || !d) continue;
    const add = (figure: string, a: number[], b: number[]) => {
      const r = ratios(a, b);
      rows.push({ figure, pillarbox: median(a), dovecot: median(b), median: median(r), min: Math.min(...r), max: Math.max(...r) });
    };
    add(`${f.command} (warm)`, p.warm, d.warm);
    // Round 1's first run is the first since the server started (Dovecot builds its caches then):
    // reported apart (coldAfterSelect); later rounds' first runs are "first after SELECT".
    add(`${f.command} (first after SELECT)`, coldAfterSelect(p), coldAfterSelect(d));
    add(`${f.command} (first since the server started)`, p.cold.slice(0, 1), d.cold.slice(0, 1));
    add(`${f.command} (after one new message)`, p.afterNew, d.afterNew);
  }
  return rows;
}

export function renderRatios(title: string, rows: readonly RatioRow[]): string {
  const head = ['command', 'Pillarbox ms', 'Dovecot ms', 'Pillarbox ÷ Dovecot', 'range'];
  const body = rows.map((r) => [r.figure, r.pillarbox.toFixed(1), r.dovecot.toFixed(1), r.median.toFixed(2), `${r.min.toFixed(2)}–${r.max.toFixed(2)}`]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
  const sep = '|' + widths.map((w, i) => (i === 0 ? ':' + '-'.repeat(w + 1) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  return [`### ${title}`, '', line(head), sep, ...body.map(line), '', 'Pillarbox ÷ Dovecot: median (and range) of the per-round ratio of times; below 1 = Pillarbox faster.', ''].join('\n');
}
