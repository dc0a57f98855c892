// Benchmark 1 (issue #6): IMAP mixed load. N concurrent clients (default 100) on M accounts, each
// looping over a realistic mix: SELECT, FETCH (UID FLAGS ENVELOPE BODYSTRUCTURE) of new messages,
// FETCH BODY.PEEK[] of a few, STORE +FLAGS \Seen and \Deleted, APPEND, EXPUNGE, UID SEARCH, IDLE
// for a moment, LOGOUT/LOGIN now and then. Mailboxes pre-filled from the generated corpus.
// Reports operations per second per command and p50/p99 latency, Pillarbox against Dovecot.
//
// Env: BENCH_IMAP_CLIENTS (100), BENCH_IMAP_ACCOUNTS (25), BENCH_IMAP_SECONDS (30),
//      BENCH_IMAP_PREFILL (messages per INBOX, 200), BENCH_IMAP_RELOGIN_EVERY (10 iterations),
//      BENCH_IMAP_READONLY=1 (diagnostic: no STORE/APPEND/EXPUNGE)

import { corpusMessage, SUBJECT_NEEDLE } from './lib/corpus.ts';
import { ImapConn, existsOf, respCode, uidsOfFetch, type Reply } from './lib/imap-client.ts';
import { fillMaildir, startDovecot } from './lib/peers.ts';
import { benchLimits, fillStore, startPillarbox } from './lib/pillarbox.ts';
import {
  attempt,
  benchAccounts,
  benchMain,
  envInt,
  isMain,
  log,
  now,
  pool,
  Recorder,
  report,
  row,
  sleep,
  withTimeout,
  type Row,
} from './lib/util.ts';
import { mulberry32 } from './lib/corpus.ts';

const OPS = ['LOGIN', 'SELECT', 'FETCH headers', 'FETCH BODY[]', 'STORE', 'APPEND', 'EXPUNGE', 'UID SEARCH', 'IDLE', 'LOGOUT'] as const;

export interface MixedParams {
  clients: number;
  accounts: number;
  seconds: number;
  prefill: number;
  reloginEvery: number;
  /** Diagnostic: leave out STORE, APPEND and EXPUNGE (BENCH_IMAP_READONLY=1). */
  readOnly: boolean;
}

export function mixedParams(): MixedParams {
  return {
    clients: envInt('BENCH_IMAP_CLIENTS', 100),
    accounts: envInt('BENCH_IMAP_ACCOUNTS', 25),
    seconds: envInt('BENCH_IMAP_SECONDS', 30),
    prefill: envInt('BENCH_IMAP_PREFILL', 200),
    reloginEvery: envInt('BENCH_IMAP_RELOGIN_EVERY', 10),
    readOnly: envInt('BENCH_IMAP_READONLY', 0) === 1,
  };
}

interface MixResult {
  seconds: number;
  totalOps: number;
  opsPerSec: number;
  perOp: Record<string, { count: number; opsPerSec: number; p50: number; p99: number; errors: number }>;
  errors: number;
  memory?: { rss: number; pss: number; processes: number };
}

const CMD_TIMEOUT = 60_000;

/** The load: returns per-command counts and latencies within the measuring window. */
async function runMix(port: number, accounts: Array<{ address: string; password: string }>, p: MixedParams, memory: () => { rss: number; pss: number; processes: number }): Promise<MixResult> {
  // Messages to APPEND: the corpus, capped at 200 KB so the mix stays a mix.
  const appendPool: Buffer[] = [];
  for (let i = 0; appendPool.length < 200; i++) {
    const m = corpusMessage(10_000 + i);
    if (m.raw.length <= 200_000) appendPool.push(m.raw);
  }
  // Warm-up: every account's INBOX selected once (Dovecot builds its index here), untimed.
  await pool(accounts, 8, async (a) => {
    const c = await ImapConn.connect(port);
    await c.login(a.address, a.password);
    await c.ok('SELECT INBOX');
    await c.logout();
  });

  const rec = new Recorder();
  const start = now();
  const end = start + p.seconds * 1000;
  let peakMem = { rss: 0, pss: 0, processes: 0 };
  const memTimer = setInterval(() => {
    try {
      const m = memory();
      if (m.rss > peakMem.rss) peakMem = m;
    } catch {
      /* ignore */
    }
  }, 2000);

  async function timed(op: string, fn: () => Promise<Reply>): Promise<Reply> {
    const t = now();
    let r: Reply;
    try {
      r = await withTimeout(fn(), CMD_TIMEOUT, op);
    } catch (err) {
      rec.error(op);
      throw err;
    }
    const t2 = now();
    if (r.status !== 'OK') rec.error(op);
    if (r.status !== 'OK' && process.env.BENCH_VERBOSE) log(`${op}: ${r.status} ${r.text}`);
    else if (t2 <= end) rec.add(op, t2 - t);
    return r;
  }

  const client = async (ci: number) => {
    const acct = accounts[ci % accounts.length]!;
    const rnd = mulberry32(1000 + ci);
    let conn: ImapConn | null = null;
    let lastUidNext = 0;
    let iter = 0;
    // Stagger the start over the first second.
    await sleep(rnd() * 1000);
    while (now() < end) {
      try {
        if (!conn) {
          conn = await ImapConn.connect(port);
          const c = conn;
          await timed('LOGIN', () => c.login(acct.address, acct.password));
          lastUidNext = 0;
        }
        const c = conn;
        const sel = await timed('SELECT', () => c.command('SELECT INBOX'));
        const exists = existsOf(sel) ?? 0;
        const uidNext = Number(respCode(sel, 'UIDNEXT') ?? 0);
        let uids: number[] = [];
        if (exists > 0) {
          const cmd =
            lastUidNext && uidNext > lastUidNext
              ? `UID FETCH ${lastUidNext}:* (UID FLAGS ENVELOPE BODYSTRUCTURE)`
              : `FETCH ${Math.max(1, exists - 19)}:${exists} (UID FLAGS ENVELOPE BODYSTRUCTURE)`;
          const f = await timed('FETCH headers', () => c.command(cmd));
          uids = uidsOfFetch(f);
        }
        lastUidNext = uidNext;
        if (now() >= end) break;
        const searches = [`UID SEARCH UNSEEN`, `UID SEARCH SUBJECT "${SUBJECT_NEEDLE}"`, `UID SEARCH FROM "smith" SINCE 1-Jan-2024`];
        await timed('UID SEARCH', () => c.command(searches[iter % searches.length]!));
        for (let k = 0; k < 3 && uids.length; k++) {
          const u = uids[Math.floor(rnd() * uids.length)]!;
          await timed('FETCH BODY[]', () => c.command(`UID FETCH ${u} (BODY.PEEK[])`));
        }
        if (uids.length && !p.readOnly) {
          const s = uids[Math.floor(rnd() * uids.length)]!;
          await timed('STORE', () => c.command(`UID STORE ${s} +FLAGS (\\Seen)`));
          const d = uids[Math.floor(rnd() * uids.length)]!;
          await timed('STORE', () => c.command(`UID STORE ${d} +FLAGS (\\Deleted)`));
        }
        if (!p.readOnly) {
          const raw = appendPool[Math.floor(rnd() * appendPool.length)]!;
          await timed('APPEND', () => c.append('INBOX', raw));
          await timed('EXPUNGE', () => c.command('EXPUNGE'));
        }
        if (now() >= end) break;
        // IDLE for a moment: latency counts the two round trips, not the dwell.
        {
          const t = now();
          const idle = await withTimeout(c.idle(), CMD_TIMEOUT, 'IDLE');
          const t1 = now();
          await sleep(100 + rnd() * 200);
          const t2 = now();
          const r = await withTimeout(idle.done(), CMD_TIMEOUT, 'DONE');
          const t3 = now();
          if (r.status !== 'OK') rec.error('IDLE');
          else if (t3 <= end) rec.add('IDLE', t1 - t + (t3 - t2));
        }
        iter++;
        if (p.reloginEvery && iter % p.reloginEvery === 0) {
          const t = now();
          await c.logout();
          if (now() <= end) rec.add('LOGOUT', now() - t);
          conn = null;
        }
      } catch (err) {
        if (process.env.BENCH_VERBOSE) log(`client ${ci}: ${(err as Error).message}`);
        conn?.destroy();
        conn = null;
        await sleep(200);
      }
    }
    if (conn) await conn.logout();
  };

  await Promise.all(Array.from({ length: p.clients }, (_, i) => client(i)));
  clearInterval(memTimer);
  const seconds = p.seconds;
  const perOp: MixResult['perOp'] = {};
  let totalOps = 0;
  let errors = 0;
  for (const op of OPS) {
    const s = rec.summary(op);
    const e = rec.errors.get(op) ?? 0;
    errors += e;
    totalOps += s.count;
    perOp[op] = { count: s.count, opsPerSec: s.count / seconds, p50: s.p50, p99: s.p99, errors: e };
  }
  return { seconds, totalOps, opsPerSec: totalOps / seconds, perOp, errors, memory: peakMem };
}

export async function imapMixed(): Promise<string> {
  const started = Date.now();
  const p = mixedParams();
  const accounts = benchAccounts(p.accounts, 'mix');
  log(`IMAP mixed load: ${p.clients} clients on ${p.accounts} accounts, ${p.prefill} messages per INBOX, ${p.seconds} s per server`);
  const perAccount = Math.ceil(p.clients / p.accounts);

  const peer = await attempt('Dovecot', async () => {
    const d = await startDovecot({ accounts, maxConnections: p.clients + 50 });
    const t = performance.now();
    accounts.forEach((a, k) => {
      const msgs = function* () {
        for (let j = 0; j < p.prefill; j++) yield { raw: corpusMessage(k * 80 + j).raw, seen: j % 3 === 0, seq: j };
      };
      fillMaildir(d.maildir(a.address), msgs());
    });
    log(`dovecot: Maildirs filled in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const r = await runMix(d.ports.imap, accounts, p, () => d.memory());
    log(`dovecot: ${r.opsPerSec.toFixed(0)} ops/s, ${r.errors} errors`);
    await d.stop();
    return r;
  });

  const pb = await attempt('Pillarbox', async () => {
    const s = await startPillarbox({
      accounts,
      imapMaxConnections: perAccount + 5,
      limits: benchLimits(p.clients + 50),
      beforeStart: (dir) =>
        fillStore(
          dir,
          accounts.map((a, k) => ({ addresses: [a.address], mailbox: 'INBOX', from: k * 80, count: p.prefill, seenEvery: 3 })),
        ),
    });
    const r = await runMix(s.ports.imap, accounts, p, () => s.memory());
    log(`pillarbox: ${r.opsPerSec.toFixed(0)} ops/s, ${r.errors} errors`);
    await s.stop();
    return r;
  });

  const rows: Row[] = [row('all commands', 'ops/s', 'higher', pb, peer, (x) => x.opsPerSec, (x) => x.opsPerSec)];
  for (const op of OPS) {
    rows.push(row(`${op}`, 'ops/s', 'higher', pb, peer, (x) => x.perOp[op]!.opsPerSec, (x) => x.perOp[op]!.opsPerSec));
    rows.push(row(`${op} p50`, 'ms', 'lower', pb, peer, (x) => x.perOp[op]!.p50, (x) => x.perOp[op]!.p50));
    rows.push(row(`${op} p99`, 'ms', 'lower', pb, peer, (x) => x.perOp[op]!.p99, (x) => x.perOp[op]!.p99));
  }
  rows.push(row('errors (NO/BAD/timeouts)', 'count', 'lower', pb, peer, (x) => x.errors, (x) => x.errors));
  rows.push(row('peak server memory (PSS)', 'MB', 'lower', pb, peer, (x) => (x.memory ? x.memory.pss / 2 ** 20 : null), (x) => (x.memory ? x.memory.pss / 2 ** 20 : null)));
  return report({
    name: 'imap-mixed',
    title: `IMAP mixed load: ${p.clients} clients, ${p.accounts} accounts, ${p.seconds} s`,
    peer: 'Dovecot',
    started,
    params: { ...p },
    rows,
    details: { pillarbox: pb, dovecot: peer },
  });
}

if (isMain(import.meta.url)) await benchMain(async () => void (await imapMixed()));
