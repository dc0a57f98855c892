// Benchmark 5 (issue #6): one mailbox of N messages (default 100,000). Times SELECT,
// `UID FETCH 1:* (FLAGS)`, `UID SEARCH SUBJECT "…"`, `UID SEARCH BODY "…"`, `UID SORT` by ARRIVAL,
// DATE and SUBJECT and `UID THREAD REFERENCES` (RFC 5256; first run and median, with the worst
// NOOP round trip of another session meanwhile, and whether both servers gave the same answer),
// and a QRESYNC re-select (RFC 7162 §3.2.5) after 100 flag changes made by another session; against Dovecot.
// The mailbox is filled before the server starts (Pillarbox: through the Store API; Dovecot:
// Maildir files), then each server gets one untimed warm-up SELECT (Dovecot builds its index
// there; reported as "first SELECT"). The client's own parser is warmed up on a local stub first, so
// a 100,000-line response measures the server, not the load generator's JIT.
//
// Env: BENCH_LARGE_MESSAGES (100000), BENCH_LARGE_MAX_BYTES (8000), BENCH_LARGE_REPS (3; BODY
//      search: BENCH_LARGE_BODY_REPS, 1); for development, BENCH_LARGE_REUSE=DIR fills a Pillarbox
//      data folder once and reuses it in later runs (not for published figures: earlier runs'
//      flag changes stay in it).

import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { corpusMessage, BODY_NEEDLE, SUBJECT_NEEDLE } from './lib/corpus.ts';
import { ImapConn, respCode, searchResult, warmUpClient, type Reply } from './lib/imap-client.ts';
import { fillMaildir, startDovecot } from './lib/peers.ts';
import { fillStore, startPillarbox } from './lib/pillarbox.ts';
import { attempt, benchAccounts, benchMain, envInt, isMain, log, now, percentile, report, row, type Mem, type Row } from './lib/util.ts';

export interface LargeParams {
  messages: number;
  maxBytes: number;
  reps: number;
  bodyReps: number;
}

export function largeParams(): LargeParams {
  return {
    messages: envInt('BENCH_LARGE_MESSAGES', 100_000),
    maxBytes: envInt('BENCH_LARGE_MAX_BYTES', 8000),
    reps: Math.max(1, envInt('BENCH_LARGE_REPS', 3)),
    bodyReps: Math.max(1, envInt('BENCH_LARGE_BODY_REPS', 1)),
  };
}

interface LargeResult {
  fillSeconds: number;
  firstSelect: number;
  select: number;
  fetchFlags: number;
  fetchLines: number;
  searchSubject: number;
  subjectHits: number;
  searchBody: number;
  bodyHits: number;
  qresync: number;
  qresyncFetches: number;
  sort: Record<SortName, SortFigure>;
  memory: Mem;
}

const SORTS = {
  arrival: 'UID SORT (ARRIVAL) UTF-8 ALL',
  date: 'UID SORT (DATE) UTF-8 ALL',
  subject: 'UID SORT (SUBJECT) UTF-8 ALL',
  thread: 'UID THREAD REFERENCES UTF-8 ALL',
} as const;
type SortName = keyof typeof SORTS;

interface SortFigure {
  /** The first run after SELECT (Dovecot builds its sort index or thread cache there). */
  first: number;
  median: number;
  /** Worst NOOP round trip of another session while the command ran (all runs). */
  worstNoop: number;
  /** Numbers in the answer (SORT: must be every message). */
  numbers: number;
  /** SHA-256 (12 hex) of the answer line: equal on both servers = the same order. */
  digest: string;
}

/** Another session's NOOPs on its own thread (bench/lib/noop-probe.ts). */
async function startProbe(port: number, a: { address: string; password: string }) {
  const w = new Worker(new URL('./lib/noop-probe.ts', import.meta.url), { workerData: { port, user: a.address, pass: a.password } });
  await new Promise<void>((resolve, reject) => {
    w.once('message', () => resolve());
    w.once('error', reject);
  });
  const ask = <T>(cmd: string) => new Promise<T>((resolve) => {
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

async function measureSorts(c: ImapConn, port: number, a: { address: string; password: string }, p: LargeParams): Promise<Record<SortName, SortFigure>> {
  const probe = await startProbe(port, a);
  const out = {} as Record<SortName, SortFigure>;
  try {
    for (const [name, cmd] of Object.entries(SORTS) as Array<[SortName, string]>) {
      probe.mark();
      let t = now();
      const r = await c.ok(cmd);
      const first = now() - t;
      const line = r.untagged.find((l) => /^\* (SORT|THREAD)/i.test(l)) ?? '';
      const numbers = (line.match(/\d+/g) ?? []).length;
      if (name !== 'thread' && numbers !== p.messages) throw new Error(`${cmd}: ${numbers} numbers, expected ${p.messages}`);
      const times: number[] = [];
      for (let i = 0; i < p.reps; i++) {
        t = now();
        await c.ok(cmd);
        times.push(now() - t);
      }
      const noop = await probe.report();
      out[name] = { first, median: median(times), worstNoop: noop.worst, numbers, digest: createHash('sha256').update(line.toUpperCase()).digest('hex').slice(0, 12) };
      log(`  ${cmd}: first ${first.toFixed(0)} ms, median ${median(times).toFixed(0)} ms, worst NOOP meanwhile ${noop.worst.toFixed(0)} ms (${noop.count} NOOPs), answer ${out[name].digest}`);
    }
  } finally {
    await probe.stop();
  }
  return out;
}

const median = (a: number[]) => percentile([...a].sort((x, y) => x - y), 50);

/** Median time of `reps` runs of cmd. countOnly: the client counts untagged responses, keeps none. */
async function timeIt(c: ImapConn, cmd: string, reps: number, countOnly = false): Promise<{ ms: number; reply: Reply }> {
  const times: number[] = [];
  let reply!: Reply;
  for (let i = 0; i < reps; i++) {
    const t = now();
    reply = await c.ok(cmd, [], { countOnly });
    times.push(now() - t);
  }
  return { ms: median(times), reply };
}

async function measure(port: number, a: { address: string; password: string }, p: LargeParams, fillSeconds: number, memory: () => Mem): Promise<LargeResult> {
  // The load generator's parser, JIT-warm before either server is timed (no server involved).
  await warmUpClient(p.messages);
  const c = await ImapConn.connect(port);
  await c.login(a.address, a.password);
  let t = now();
  const first = await c.ok('SELECT INBOX');
  const firstSelect = now() - t;
  const exists = Number(/\* (\d+) EXISTS/i.exec(first.untagged.join('\n'))?.[1] ?? 0);
  if (exists !== p.messages) throw new Error(`INBOX has ${exists} messages, expected ${p.messages}`);
  await c.ok('UNSELECT');

  const sel = await timeIt(c, 'SELECT INBOX', p.reps);
  const ff = await timeIt(c, 'UID FETCH 1:* (FLAGS)', p.reps, true);
  if (ff.reply.untaggedCount !== p.messages) throw new Error(`UID FETCH 1:* (FLAGS) gave ${ff.reply.untaggedCount} responses, expected ${p.messages}`);
  const subj = await timeIt(c, `UID SEARCH SUBJECT "${SUBJECT_NEEDLE}"`, p.reps);
  const body = await timeIt(c, `UID SEARCH BODY "${BODY_NEEDLE}"`, p.bodyReps);
  const sort = await measureSorts(c, port, a, p);
  await c.ok('UNSELECT');

  // QRESYNC: remember the state, let another session change 100 flags, re-select with QRESYNC.
  await c.ok('ENABLE QRESYNC');
  const s1 = await c.ok('SELECT INBOX (CONDSTORE)');
  const uidValidity = respCode(s1, 'UIDVALIDITY');
  const modseq = respCode(s1, 'HIGHESTMODSEQ');
  if (!uidValidity || !modseq) throw new Error('no UIDVALIDITY/HIGHESTMODSEQ in SELECT');
  await c.ok('UNSELECT');
  const other = await ImapConn.connect(port);
  await other.login(a.address, a.password);
  await other.ok('SELECT INBOX');
  const uids = searchResult(await other.ok('UID SEARCH ALL'));
  for (let k = 0; k < 100; k++) await other.ok(`UID STORE ${uids[Math.floor((k * uids.length) / 100)]!} +FLAGS (\\Flagged)`);
  await other.logout();
  t = now();
  const q = await c.ok(`SELECT INBOX (QRESYNC (${uidValidity} ${modseq}))`);
  const qresync = now() - t;
  const qresyncFetches = q.untagged.filter((l) => / FETCH /i.test(l)).length;
  const mem = memory();
  await c.logout();
  return {
    fillSeconds,
    firstSelect,
    select: sel.ms,
    fetchFlags: ff.ms,
    fetchLines: ff.reply.untaggedCount,
    searchSubject: subj.ms,
    subjectHits: searchResult(subj.reply).length,
    searchBody: body.ms,
    bodyHits: searchResult(body.reply).length,
    qresync,
    qresyncFetches,
    sort,
    memory: mem,
  };
}

export async function largeMailbox(): Promise<string> {
  const started = Date.now();
  const p = largeParams();
  const [account] = benchAccounts(1, 'large') as [{ address: string; password: string }];
  log(`Large mailbox: ${p.messages.toLocaleString('en-US')} messages (≤ ${p.maxBytes} bytes each) in one INBOX`);
  const gen = function* () {
    // mtime = the INTERNALDATE the Pillarbox fill gives (bench/lib/fill-worker.ts): SORT (ARRIVAL) comparable.
    for (let j = 0; j < p.messages; j++) yield { raw: corpusMessage(j, { maxBytes: p.maxBytes, extraHeaders: [`X-Bench-Seq: ${j}`] }).raw, seq: j, seen: j % 2 === 0, mtime: Date.UTC(2024, 0, 1) + j * 60_000 };
  };

  const peer = await attempt('Dovecot', async () => {
    const d = await startDovecot({ accounts: [account], maxConnections: 20, packages: ['dovecot-imapd'] });
    const t = performance.now();
    fillMaildir(d.maildir(account.address), gen());
    const fillSeconds = (performance.now() - t) / 1000;
    log(`dovecot: Maildir filled in ${fillSeconds.toFixed(1)} s`);
    const r = await measure(d.ports.imap, account, p, fillSeconds, () => d.memory());
    await d.stop();
    return r;
  });

  const pb = await attempt('Pillarbox', async () => {
    let fillSeconds = 0;
    const s = await startPillarbox({
      accounts: [account],
      reuseDir: process.env.BENCH_LARGE_REUSE || undefined,
      beforeStart: async (dir) => {
        const t = performance.now();
        await fillStore(dir, [{ addresses: [account.address], mailbox: 'INBOX', from: 0, count: p.messages, maxBytes: p.maxBytes, unique: true, seenEvery: 2 }]);
        fillSeconds = (performance.now() - t) / 1000;
      },
    });
    const r = await measure(s.ports.imap, account, p, fillSeconds, () => s.memory());
    await s.stop();
    return r;
  });

  const rows: Row[] = [
    row('SELECT', 'ms', 'lower', pb, peer, (x) => x.select, (x) => x.select),
    row('UID FETCH 1:* (FLAGS)', 'ms', 'lower', pb, peer, (x) => x.fetchFlags, (x) => x.fetchFlags),
    row(`UID SEARCH SUBJECT "${SUBJECT_NEEDLE}"`, 'ms', 'lower', pb, peer, (x) => x.searchSubject, (x) => x.searchSubject),
    row(`UID SEARCH BODY "${BODY_NEEDLE}"`, 'ms', 'lower', pb, peer, (x) => x.searchBody, (x) => x.searchBody),
    ...(Object.entries(SORTS) as Array<[SortName, string]>).map(([k, cmd]) => row(cmd, 'ms', 'lower', pb, peer, (x) => x.sort[k].median, (x) => x.sort[k].median)),
    row(`first ${SORTS.date} after SELECT`, 'ms', 'lower', pb, peer, (x) => x.sort.date.first, (x) => x.sort.date.first),
    row(`first ${SORTS.thread} after SELECT`, 'ms', 'lower', pb, peer, (x) => x.sort.thread.first, (x) => x.sort.thread.first),
    row('worst NOOP of another session during SORT/THREAD', 'ms', 'lower', pb, peer, (x) => Math.max(...Object.values(x.sort).map((f) => f.worstNoop)), (x) => Math.max(...Object.values(x.sort).map((f) => f.worstNoop))),
    row('QRESYNC re-select after 100 flag changes', 'ms', 'lower', pb, peer, (x) => x.qresync, (x) => x.qresync),
    row('first SELECT after the fill (index build)', 'ms', 'lower', pb, peer, (x) => x.firstSelect, (x) => x.firstSelect),
    row('server memory after (PSS)', 'MB', 'lower', pb, peer, (x) => x.memory.pss / 2 ** 20, (x) => x.memory.pss / 2 ** 20),
  ];
  return report({
    name: 'large-mailbox',
    title: `Large mailbox: ${p.messages.toLocaleString('en-US')} messages in one INBOX (median of ${p.reps}; BODY search ${p.bodyReps})`,
    peer: 'Dovecot',
    started,
    params: { ...p },
    rows,
    details: {
      pillarbox: pb,
      dovecot: peer,
      // Same corpus, same order, same INTERNALDATEs: the SORT/THREAD answers should be identical.
      sameAnswers: pb.ok && peer.ok ? Object.fromEntries(Object.keys(SORTS).map((k) => [k, pb.value.sort[k as SortName].digest === peer.value.sort[k as SortName].digest])) : null,
    },
  });
}

if (isMain(import.meta.url)) await benchMain(async () => void (await largeMailbox()));
