// Benchmark (issue 15, diagnostic): server CPU per IMAP command, one command kind at a time, side by
// side with Dovecot. Where bench/imap-persistent.ts gives one figure for its mix, this says which
// commands of that mix cost the server what: each account's INBOX is filled with FILL messages by
// APPEND, then for each command kind C clients (one account each) send it N times in a loop while the
// server's CPU (utime+stime of all its processes, as imap-persistent.ts) is read before and after.
// Rounds alternate the servers (the order swapped each round); printed: per kind, the median µs of
// server CPU per command and commands/s, and the per-round Pillarbox ÷ Dovecot ratio (median, range).
//
// Env: BENCH_OPCOST_CLIENTS (4), BENCH_OPCOST_N (400 per client per kind), BENCH_OPCOST_ROUNDS (3),
//      BENCH_OPCOST_FILL (100), BENCH_PERSIST_WORKERS (Pillarbox's --workers, default 1),
//      BENCH_OPCOST_ONLY (comma-separated name prefixes, e.g. APPEND,STORE: only those kinds),
//      BENCH_SIDES (pillarbox or peer: one server only, e.g. while profiling).

import { cpuMsOf, persistParams } from './imap-persistent.ts';
import { corpusMessage } from './lib/corpus.ts';
import { ImapConn } from './lib/imap-client.ts';
import { startDovecot } from './lib/peers.ts';
import { benchLimits, startPillarbox } from './lib/pillarbox.ts';
import { benchAccounts, benchMain, cleanupAll, descendants, envInt, isMain, log, now, percentile } from './lib/util.ts';

type Kind = { name: string; cmd: (i: number, fill: number) => [string, Array<string | Buffer>] };

const ALL_ITEMS = 'FLAGS ENVELOPE BODYSTRUCTURE INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)]';

function pool(): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; out.length < 100; i++) {
    const m = corpusMessage(20_000 + i);
    if (m.raw.length <= 50_000) out.push(m.raw);
  }
  return out;
}

function kinds(msgs: Buffer[]): Kind[] {
  const only = (process.env.BENCH_OPCOST_ONLY ?? '').split(',').filter(Boolean);
  const all = allKinds(msgs);
  const picked = all.filter((k) => !only.length || only.some((o) => k.name.startsWith(o)));
  // The \Deleted + EXPUNGE kind removes what APPEND added: it needs APPEND to run first.
  if (picked.some((k) => k.name.startsWith('STORE \\Deleted')) && !picked.some((k) => k.name === 'APPEND')) return all.filter((k) => picked.includes(k) || k.name === 'APPEND');
  return picked;
}

function allKinds(msgs: Buffer[]): Kind[] {
  const at = (i: number, fill: number) => 1 + (i % fill);
  return [
    { name: 'NOOP', cmd: () => ['NOOP', []] },
    { name: 'LIST', cmd: () => ['LIST "" "*"', []] },
    { name: 'STATUS', cmd: () => ['STATUS INBOX (MESSAGES RECENT UIDNEXT UNSEEN)', []] },
    { name: 'SELECT', cmd: () => ['SELECT INBOX', []] },
    { name: 'FETCH 1:100 (all items)', cmd: () => [`FETCH 1:100 (${ALL_ITEMS})`, []] },
    { name: 'FETCH 1:100 (FLAGS)', cmd: () => ['FETCH 1:100 (FLAGS)', []] },
    { name: 'FETCH one BODY.PEEK[]', cmd: (i, f) => [`FETCH ${at(i, f)} (BODY.PEEK[])`, []] },
    { name: 'FETCH one BODY.PEEK[1]', cmd: (i, f) => [`FETCH ${at(i, f)} (BODY.PEEK[1])`, []] },
    { name: 'STORE +/-FLAGS', cmd: (i, f) => [`STORE ${at(i, f)} ${i % 2 ? '-' : '+'}FLAGS (\\Flagged)`, []] },
    {
      name: 'APPEND',
     
      cmd: (i) => {
        const raw = msgs[i % msgs.length]!;
        return [`APPEND INBOX {${raw.length}+}\r\n`, [raw]];
      },
    },
    // Each STORE \Deleted + EXPUNGE pair removes the message an APPEND above added: the mailbox stays near FILL.
    { name: 'STORE \\Deleted + EXPUNGE', cmd: (i, f) => [`STORE ${f + 1} +FLAGS (\\Deleted)`, []] },
  ];
}

interface KindFigures {
  cpuUsPerCommand: number;
  perSec: number;
}

async function runSide(port: number, pids: () => number[], accounts: Array<{ address: string; password: string }>, fill: number, n: number, msgs: Buffer[]): Promise<Record<string, KindFigures>> {
  const conns: ImapConn[] = [];
  for (const a of accounts) {
    const c = await ImapConn.connect(port);
    await c.login(a.address, a.password);
    for (let i = 0; i < fill; i++) {
      const raw = msgs[i % msgs.length]!;
      await c.ok(`APPEND INBOX {${raw.length}+}\r\n`, [raw]);
    }
    conns.push(c);
  }
  const out: Record<string, KindFigures> = {};
  for (const k of kinds(msgs)) {
    for (const c of conns) await c.ok('SELECT INBOX', [], { countOnly: true });
    const cpu0 = cpuMsOf(pids());
    const t0 = now();
    let count = 0;
    await Promise.all(
      conns.map(async (c) => {
        for (let i = 0; i < n; i++) {
          const [cmd, extra] = k.cmd(i, fill);
          await c.ok(cmd, extra, { countOnly: true });
          count++;
          if (k.name.startsWith('STORE \\Deleted')) {
            await c.ok('EXPUNGE', [], { countOnly: true });
            count++;
          }
        }
      }),
    );
    const sec = (now() - t0) / 1000;
    const cpu = cpuMsOf(pids()) - cpu0;
    out[k.name] = { cpuUsPerCommand: (cpu * 1000) / count, perSec: count / sec };
  }
  for (const c of conns) await c.logout();
  return out;
}

const median = (a: number[]) => percentile([...a].sort((x, y) => x - y), 50);

export async function imapOpCost(): Promise<string> {
  const clients = Math.max(1, envInt('BENCH_OPCOST_CLIENTS', 4));
  const n = Math.max(10, envInt('BENCH_OPCOST_N', 400));
  const rounds = Math.max(1, envInt('BENCH_OPCOST_ROUNDS', 3));
  const fill = Math.max(10, envInt('BENCH_OPCOST_FILL', 100));
  const workers = persistParams().workers;
  const msgs = pool();
  const perRound = (r: number) => benchAccounts(clients, `oc${r}x`);
  const accounts = Array.from({ length: rounds }, (_, r) => perRound(r)).flat();
  log(`IMAP per-command CPU: ${clients} clients × ${n} commands per kind, INBOX of ${fill}, ${rounds} alternating rounds, --workers ${workers}`);
  const sides: Record<string, { port: number; pids: () => number[] }> = {};
  const res: Record<string, Array<Record<string, KindFigures>>> = { pillarbox: [], dovecot: [] };
  try {
    const which = (process.env.BENCH_SIDES ?? 'pillarbox,peer').toLowerCase().split(',');
    if (which.includes('peer')) {
      const d = await startDovecot({ accounts, maxConnections: clients + 50 });
      sides.dovecot = { port: d.ports.imap, pids: () => [d.masterPid(), ...descendants(d.masterPid())] };
    }
    if (which.includes('pillarbox')) {
      const s = await startPillarbox({ accounts, limits: benchLimits(clients + 50), workers });
      sides.pillarbox = { port: s.ports.imap, pids: () => [s.pid, ...descendants(s.pid)] };
    }
    for (let r = 0; r < rounds; r++) {
      for (const name of (r % 2 === 0 ? ['pillarbox', 'dovecot'] : ['dovecot', 'pillarbox']).filter((x) => sides[x])) {
        const f = await runSide(sides[name]!.port, sides[name]!.pids, perRound(r), fill, n, msgs);
        res[name]!.push(f);
        log(`  round ${r + 1} ${name}: ${Object.entries(f).map(([k, v]) => `${k} ${v.cpuUsPerCommand.toFixed(0)} µs`).join(', ')}`);
      }
    }
  } finally {
    await cleanupAll();
  }
  const lines = ['| command | Pillarbox CPU µs/command | Dovecot CPU µs/command | ratio (median, range) | Pillarbox commands/s | Dovecot commands/s |', '|:--|--:|--:|--:|--:|--:|'];
  for (const k of kinds(msgs)) {
    const p = res.pillarbox!.map((x) => x[k.name]!);
    const d = res.dovecot!.map((x) => x[k.name]!);
    if (!p.length || !d.length) {
      const one = p.length ? p : d;
      lines.push(`| ${k.name} | ${p.length ? median(one.map((x) => x.cpuUsPerCommand)).toFixed(0) : 'n/a'} | ${d.length ? median(one.map((x) => x.cpuUsPerCommand)).toFixed(0) : 'n/a'} | | ${p.length ? median(one.map((x) => x.perSec)).toFixed(0) : ''} | ${d.length ? median(one.map((x) => x.perSec)).toFixed(0) : ''} |`);
      continue;
    }
    const rs = p.map((x, i) => d[i]!.cpuUsPerCommand / x.cpuUsPerCommand);
    lines.push(
      `| ${k.name} | ${median(p.map((x) => x.cpuUsPerCommand)).toFixed(0)} | ${median(d.map((x) => x.cpuUsPerCommand)).toFixed(0)} | ${median(rs).toFixed(2)} (${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)}) | ${median(p.map((x) => x.perSec)).toFixed(0)} | ${median(d.map((x) => x.perSec)).toFixed(0)} |`,
    );
  }
  const out = lines.join('\n') + '\nratio: Dovecot ÷ Pillarbox CPU per command (above 1: Pillarbox costs less).\n';
  process.stdout.write(out);
  return out;
}

if (isMain(import.meta.url)) await benchMain(async () => void (await imapOpCost()));
