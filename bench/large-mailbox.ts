// Benchmark 5 (issue #6): one mailbox of N messages (default 100,000). Times SELECT,
// `UID FETCH 1:* (FLAGS)`, `UID SEARCH SUBJECT "…"`, `UID SEARCH BODY "…"`, and a QRESYNC re-select
// (RFC 7162 §3.2.5) after 100 flag changes made by another session; against Dovecot.
// The mailbox is filled before the server starts (Pillarbox: through the Store API; Dovecot:
// Maildir files), then each server gets one untimed warm-up SELECT (Dovecot builds its index
// there; reported as "first SELECT"). The client's own parser is warmed up on a local stub first, so
// a 100,000-line response measures the server, not the load generator's JIT.
//
// Env: BENCH_LARGE_MESSAGES (100000), BENCH_LARGE_MAX_BYTES (8000), BENCH_LARGE_REPS (3; BODY
//      search: BENCH_LARGE_BODY_REPS, 1); for development, BENCH_LARGE_REUSE=DIR fills a Pillarbox
//      data folder once and reuses it in later runs (not for published figures: earlier runs'
//      flag changes stay in it).

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
  memory: Mem;
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
    memory: mem,
  };
}

export async function largeMailbox(): Promise<string> {
  const started = Date.now();
  const p = largeParams();
  const [account] = benchAccounts(1, 'large') as [{ address: string; password: string }];
  log(`Large mailbox: ${p.messages.toLocaleString('en-US')} messages (≤ ${p.maxBytes} bytes each) in one INBOX`);
  const gen = function* () {
    for (let j = 0; j < p.messages; j++) yield { raw: corpusMessage(j, { maxBytes: p.maxBytes, extraHeaders: [`X-Bench-Seq: ${j}`] }).raw, seq: j, seen: j % 2 === 0 };
  };

  const peer = await attempt('Dovecot', async () => {
    const d = await startDovecot({ accounts: [account], maxConnections: 20 });
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
    details: { pillarbox: pb, dovecot: peer },
  });
}

if (isMain(import.meta.url)) await benchMain(async () => void (await largeMailbox()));
