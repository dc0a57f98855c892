// Benchmark (issue 15): IMAP persistent sessions, the load of Dovecot's imaptest in its
// persistent-session mode. N clients (default 10) log in once, then loop: LIST, STATUS, SELECT,
// FETCH of up to 100 messages with random items (FLAGS, ENVELOPE, BODYSTRUCTURE, INTERNALDATE,
// RFC822.SIZE, header fields), FETCH of one message's header, text or a part, STORE of flags,
// STORE \Deleted (more likely the fuller the mailbox), EXPUNGE, APPEND. The mailboxes start empty
// and fill by APPEND. Both servers stay up; each round runs the load on one then the other (fresh
// accounts every round, the order swapped every round, so a busy machine's noise falls on both).
// Figures per round: commands/s per command and in total, and the server's CPU per command
// (/proc/PID/stat utime+stime of the server's processes — every Dovecot process summed, children
// reaped meanwhile included — over the measured window). Then a single-client round-trip table
// (LIST, STATUS, NOOP, SELECT, APPEND; 500 each, sequential). Printed: the median over rounds and
// the range of the per-round Pillarbox ÷ Dovecot ratio.
//
// Env: BENCH_PERSIST_WORKERS (Pillarbox's --workers: auto = a process per core; default 1 = one process, as npm start),
//      BENCH_PERSIST_CLIENTS (10), BENCH_PERSIST_SECONDS (30 per server per round),
//      BENCH_PERSIST_ROUNDS (3), BENCH_PERSIST_RTT (500 round trips per command), BENCH_PERSIST_MAX_BYTES (50000),
//      BENCH_PERSIST_UNIQUE (1: every APPEND a message of its own, as a saved Sent copy; default: imaptest's repeats)

import { readFileSync } from 'node:fs';
import { corpusMessage, mulberry32 } from './lib/corpus.ts';
import { ImapConn, existsOf, type Reply } from './lib/imap-client.ts';
import { startDovecot } from './lib/peers.ts';
import { benchLimits, startPillarbox } from './lib/pillarbox.ts';
import { attempt, benchAccounts, benchMain, cleanupAll, descendants, envInt, isMain, log, now, percentile, report, row, withTimeout, type Row } from './lib/util.ts';

export const OPS = ['LIST', 'STATUS', 'SELECT', 'FETCH range', 'FETCH one', 'STORE flags', 'STORE \\Deleted', 'EXPUNGE', 'APPEND'] as const;
export const RTT_OPS = ['NOOP', 'LIST', 'STATUS', 'SELECT', 'APPEND'] as const;
type Op = (typeof OPS)[number];
type RttOp = (typeof RTT_OPS)[number];

export interface PersistParams {
  clients: number;
  seconds: number;
  rounds: number;
  rtt: number;
  maxBytes: number;
  /**
   * BENCH_PERSIST_UNIQUE=1: every APPEND's message made unique (an X-Bench-Seq header first), as a
   * client's saved Sent copy is. Default off: the pool's 100 messages again and again, as imaptest
   * appends its mbox file's, which a content-addressed store keeps once per body.
   */
  unique: boolean;
  /** Pillarbox's `--workers` (BENCH_PERSIST_WORKERS: a number or auto; default 1, as `npm start`). */
  workers: number | 'auto';
}

function workersEnv(v: string | undefined): number | 'auto' {
  if (v === undefined || v === '') return 1;
  if (v === 'auto') return 'auto';
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_PERSIST_WORKERS: "${v}" is not auto or a number of processes`);
  return n;
}

export function persistParams(): PersistParams {
  return {
    clients: Math.max(1, envInt('BENCH_PERSIST_CLIENTS', 10)),
    seconds: Math.max(1, envInt('BENCH_PERSIST_SECONDS', 30)),
    rounds: Math.max(1, envInt('BENCH_PERSIST_ROUNDS', 3)),
    rtt: envInt('BENCH_PERSIST_RTT', 500),
    maxBytes: envInt('BENCH_PERSIST_MAX_BYTES', 50_000),
    unique: process.env.BENCH_PERSIST_UNIQUE === '1',
    workers: workersEnv(process.env.BENCH_PERSIST_WORKERS),
  };
}

/** One round's load on one server. */
export interface LoadFigures {
  seconds: number;
  commands: number;
  perSec: number;
  perOp: Record<Op, number>;
  /** Server CPU (user+system) over the window, ms. */
  cpuMs: number;
  cpuPerCommandMs: number;
  /** The load generator's own CPU per command (this process), ms: what the server cannot have of the machine's cores. */
  clientCpuPerCommandMs: number;
  /** Mean time from a command's send to its tagged reply, per kind, ms (where the clients wait). */
  meanMs: Record<Op, number>;
  errors: number;
}

/** Clock ticks per second of /proc/PID/stat (USER_HZ; 100 on Linux). */
const HZ = 100;

/** utime+stime+cutime+cstime (ms) of every process in the list: reaped children are in their parent's c-times. */
export function cpuMsOf(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      // fields 14-17 (1-based) = utime stime cutime cstime; f[0] is field 3.
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      /* exited */
    }
  }
  return (ticks * 1000) / HZ;
}

const FETCH_ITEMS = ['FLAGS', 'ENVELOPE', 'BODYSTRUCTURE', 'INTERNALDATE', 'RFC822.SIZE', 'BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)]'];
const ONE_PARTS = ['BODY.PEEK[HEADER]', 'BODY.PEEK[TEXT]', 'BODY.PEEK[1]', 'BODY.PEEK[]'];
const FLAGS = ['\\Seen', '\\Flagged', '\\Answered', '$Label1'];
const CMD_TIMEOUT = 60_000;

function appendPool(maxBytes: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; out.length < 100; i++) {
    const m = corpusMessage(20_000 + i);
    if (m.raw.length <= maxBytes) out.push(m.raw);
  }
  return out;
}

/** The persistent-session load: `clients` sessions (one account each) for `seconds`. */
async function runLoad(port: number, accounts: Array<{ address: string; password: string }>, p: PersistParams, pids: () => number[], seed: number, pool: Buffer[]): Promise<LoadFigures> {
  const conns: ImapConn[] = [];
  for (const a of accounts) {
    const c = await ImapConn.connect(port);
    await c.login(a.address, a.password);
    conns.push(c);
  }
  const counts = Object.fromEntries(OPS.map((o) => [o, 0])) as Record<Op, number>;
  const waited = Object.fromEntries(OPS.map((o) => [o, 0])) as Record<Op, number>;
  let errors = 0;
  const procs = pids();
  const cpu0 = cpuMsOf(procs);
  const own0 = process.cpuUsage();
  const start = now();
  const end = start + p.seconds * 1000;
  const run = async (c: ImapConn, op: Op, cmd: string, extra: Array<string | Buffer> = []): Promise<Reply> => {
    const t0 = now();
    const r = await withTimeout(c.command(cmd, extra, { countOnly: op !== 'SELECT' }), CMD_TIMEOUT, op);
    waited[op] += now() - t0;
    counts[op]++;
    if (r.status !== 'OK') errors++;
    return r;
  };
  const client = async (c: ImapConn, ci: number) => {
    const rnd = mulberry32(seed * 1000 + ci);
    let appended = 0;
    const pick = <T>(a: readonly T[]) => a[Math.floor(rnd() * a.length)]!;
    while (now() < end) {
      await run(c, 'LIST', 'LIST "" "*"');
      await run(c, 'STATUS', 'STATUS INBOX (MESSAGES RECENT UIDNEXT UNSEEN)');
      const exists = existsOf(await run(c, 'SELECT', 'SELECT INBOX')) ?? 0;
      if (exists > 0) {
        const n = 1 + Math.floor(rnd() * Math.min(100, exists));
        const from = 1 + Math.floor(rnd() * (exists - n + 1));
        const items = FETCH_ITEMS.filter(() => rnd() < 0.4);
        if (!items.length) items.push(pick(FETCH_ITEMS));
        await run(c, 'FETCH range', `FETCH ${from}:${from + n - 1} (${items.join(' ')})`);
        const one = 1 + Math.floor(rnd() * exists);
        await run(c, 'FETCH one', `FETCH ${one} (${pick(ONE_PARTS)})`);
        const s = 1 + Math.floor(rnd() * exists);
        await run(c, 'STORE flags', `STORE ${s} ${rnd() < 0.7 ? '+' : '-'}FLAGS (${pick(FLAGS)})`);
        // The fuller the mailbox, the likelier a deletion: it settles near 100 messages.
        if (rnd() < exists / 100) await run(c, 'STORE \\Deleted', `STORE ${1 + Math.floor(rnd() * exists)} +FLAGS (\\Deleted)`);
      }
      await run(c, 'EXPUNGE', 'EXPUNGE');
      const body = pick(pool);
      const raw = p.unique ? Buffer.concat([Buffer.from(`X-Bench-Seq: ${seed}-${ci}-${appended++}\r\n`), body]) : body;
      await run(c, 'APPEND', `APPEND INBOX {${raw.length}+}\r\n`, [raw]);
    }
  };
  await Promise.all(conns.map((c, i) => client(c, i)));
  const seconds = (now() - start) / 1000;
  const cpuMs = cpuMsOf([...new Set([...procs, ...pids()])]) - cpu0;
  const own = process.cpuUsage(own0);
  const clientMs = (own.user + own.system) / 1000;
  for (const c of conns) await c.logout();
  const commands = OPS.reduce((s, o) => s + counts[o], 0);
  const perOp = Object.fromEntries(OPS.map((o) => [o, counts[o] / seconds])) as Record<Op, number>;
  const meanMs = Object.fromEntries(OPS.map((o) => [o, counts[o] ? waited[o] / counts[o] : 0])) as Record<Op, number>;
  return { seconds, commands, perSec: commands / seconds, perOp, cpuMs, cpuPerCommandMs: cpuMs / commands, clientCpuPerCommandMs: clientMs / commands, meanMs, errors };
}

/** Single-client round trips: median µs of `n` sequential runs of each command. */
async function runRtt(port: number, a: { address: string; password: string }, n: number, pool: Buffer[]): Promise<Record<RttOp, number>> {
  const c = await ImapConn.connect(port);
  await c.login(a.address, a.password);
  const out = {} as Record<RttOp, number>;
  const cmds: Record<RttOp, (i: number) => [string, Array<string | Buffer>]> = {
    NOOP: () => ['NOOP', []],
    LIST: () => ['LIST "" "*"', []],
    STATUS: () => ['STATUS INBOX (MESSAGES RECENT UIDNEXT UNSEEN)', []],
    SELECT: () => ['SELECT INBOX', []],
    APPEND: (i) => {
      const raw = pool[i % pool.length]!;
      return [`APPEND INBOX {${raw.length}+}\r\n`, [raw]];
    },
  };
  // A few messages first so SELECT and STATUS have something to count.
  for (let i = 0; i < 20; i++) await c.ok(...cmds.APPEND(i));
  for (const op of RTT_OPS) {
    const t: number[] = [];
    for (let i = 0; i < n; i++) {
      const [cmd, extra] = cmds[op](i);
      const t0 = now();
      await c.ok(cmd, extra, { countOnly: true });
      t.push((now() - t0) * 1000);
    }
    out[op] = percentile(t.sort((x, y) => x - y), 50);
  }
  await c.logout();
  return out;
}

interface SideResult {
  loads: LoadFigures[];
  rtts: Array<Record<RttOp, number>>;
}

const median = (a: number[]) => percentile([...a].sort((x, y) => x - y), 50);

export async function imapPersistent(): Promise<string> {
  const started = Date.now();
  const p = persistParams();
  // Fresh accounts every round (mailboxes start empty), one more per round for the round trips.
  const perRound = (r: number) => benchAccounts(p.clients + 1, `ps${r}x`);
  const accounts = Array.from({ length: p.rounds }, (_, r) => perRound(r)).flat();
  log(`IMAP persistent sessions: ${p.clients} clients, ${p.seconds} s per server, ${p.rounds} alternating rounds, ${p.rtt} round trips per command`);
  const pool = appendPool(p.maxBytes);
  const sides: Record<'pillarbox' | 'dovecot', { port: number; pids: () => number[] } | null> = { pillarbox: null, dovecot: null };
  const res: Record<'pillarbox' | 'dovecot', SideResult> = { pillarbox: { loads: [], rtts: [] }, dovecot: { loads: [], rtts: [] } };
  const which = (process.env.BENCH_SIDES ?? 'pillarbox,peer').toLowerCase().split(',');
  let failure: Partial<Record<'pillarbox' | 'dovecot', string>> = {};
  try {
    if (which.includes('peer')) {
      try {
        const d = await startDovecot({ accounts, maxConnections: p.clients + 50 });
        sides.dovecot = { port: d.ports.imap, pids: () => [d.masterPid(), ...descendants(d.masterPid())] };
      } catch (err) {
        failure.dovecot = (err as Error).message.split('\n')[0]!.slice(0, 70);
      }
    } else failure.dovecot = 'skipped (BENCH_SIDES)';
    if (which.includes('pillarbox')) {
      try {
        const s = await startPillarbox({ accounts, limits: benchLimits(p.clients + 50), workers: p.workers });
        log(`pillarbox: --workers ${p.workers}`);
        sides.pillarbox = { port: s.ports.imap, pids: () => [s.pid, ...descendants(s.pid)] };
      } catch (err) {
        failure.pillarbox = (err as Error).message.split('\n')[0]!.slice(0, 70);
      }
    } else failure.pillarbox = 'skipped (BENCH_SIDES)';
    for (let r = 0; r < p.rounds; r++) {
      const acc = perRound(r);
      const order = (r % 2 === 0 ? (['pillarbox', 'dovecot'] as const) : (['dovecot', 'pillarbox'] as const)).filter((n) => sides[n]);
      for (const name of order) {
        const side = sides[name]!;
        try {
          const f = await runLoad(side.port, acc.slice(0, p.clients), p, side.pids, r + 1, pool);
          res[name].loads.push(f);
          log(`  round ${r + 1} ${name.padEnd(9)}: ${f.perSec.toFixed(0)} commands/s, ${f.cpuPerCommandMs.toFixed(3)} ms CPU per command (load generator ${f.clientCpuPerCommandMs.toFixed(3)}), ${f.errors} errors`);
          log(`  round ${r + 1} ${name.padEnd(9)}: mean wait (ms) ${OPS.map((o) => `${o} ${f.meanMs[o].toFixed(2)}`).join(', ')}`);
          if (p.rtt) {
            const t = await runRtt(side.port, acc[p.clients]!, p.rtt, pool);
            res[name].rtts.push(t);
            log(`  round ${r + 1} ${name.padEnd(9)}: round trips (µs) ${RTT_OPS.map((o) => `${o} ${t[o].toFixed(0)}`).join(', ')}`);
          }
        } catch (err) {
          log(`${name} round ${r + 1} failed: ${(err as Error).stack}`);
          failure[name] ??= (err as Error).message.split('\n')[0]!.slice(0, 70);
        }
      }
    }
  } finally {
    await cleanupAll();
  }
  const outcome = (n: 'pillarbox' | 'dovecot') =>
    res[n].loads.length ? ({ ok: true, value: res[n] } as const) : ({ ok: false, reason: failure[n] ?? 'no figures' } as const);
  const pb = outcome('pillarbox');
  const dc = outcome('dovecot');
  const medLoad = (g: (l: LoadFigures) => number) => (x: SideResult) => median(x.loads.map(g));
  const medRtt = (o: RttOp) => (x: SideResult) => (x.rtts.length ? median(x.rtts.map((t) => t[o])) : null);
  const rows: Row[] = [
    row('all commands', 'commands/s', 'higher', pb, dc, medLoad((l) => l.perSec), medLoad((l) => l.perSec)),
    row('server CPU per command', 'ms', 'lower', pb, dc, medLoad((l) => l.cpuPerCommandMs), medLoad((l) => l.cpuPerCommandMs)),
    ...OPS.map((o) => row(o, 'commands/s', 'higher', pb, dc, medLoad((l) => l.perOp[o]), medLoad((l) => l.perOp[o]))),
    ...RTT_OPS.map((o) => row(`${o} round trip, 1 client`, 'µs', 'lower', pb, dc, medRtt(o), medRtt(o))),
    row('errors (NO/BAD)', 'count', 'lower', pb, dc, (x) => x.loads.reduce((s, l) => s + l.errors, 0), (x) => x.loads.reduce((s, l) => s + l.errors, 0)),
  ];
  // Per-round ratios (rounds alternate, so each pair ran close together): median and range.
  const ratioLine = (what: string, g: (l: LoadFigures) => number, lowerBetter: boolean) => {
    if (!pb.ok || !dc.ok) return '';
    const k = Math.min(pb.value.loads.length, dc.value.loads.length);
    const rs = Array.from({ length: k }, (_, i) => (lowerBetter ? g(dc.value.loads[i]!) / g(pb.value.loads[i]!) : g(pb.value.loads[i]!) / g(dc.value.loads[i]!)));
    return `${what}: ratio per round ${rs.map((x) => x.toFixed(2)).join(', ')} (median ${median(rs).toFixed(2)}, range ${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)})`;
  };
  const notes = [ratioLine('commands/s', (l) => l.perSec, false), ratioLine('CPU per command', (l) => l.cpuPerCommandMs, true)].filter(Boolean);
  const table = report({
    name: 'imap-persistent',
    title: `IMAP persistent sessions: ${p.clients} clients, ${p.seconds} s × ${p.rounds} alternating rounds (median of rounds)`,
    peer: 'Dovecot',
    started,
    params: { ...p },
    rows,
    details: { pillarbox: res.pillarbox, dovecot: res.dovecot, ratios: notes },
  });
  for (const n of notes) process.stdout.write(n + '\n');
  return table + (notes.length ? '\n' + notes.join('\n\n') + '\n' : '');
}

if (isMain(import.meta.url)) await benchMain(async () => void (await imapPersistent()));
