// Benchmark 5 (issue #6): one mailbox of N messages (default 100,000). Times SELECT,
// `UID FETCH 1:* (FLAGS)`, `UID SEARCH SUBJECT "…"`, `UID SEARCH BODY "…"`, `UID SORT` by ARRIVAL,
// DATE and SUBJECT and `UID THREAD REFERENCES` (RFC 5256; both servers up at once, alternating
// rounds, bench/lib/sort-rounds.ts: first run after SELECT and warm, the per-round ratio, the worst
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
//      flag changes stay in it). SORT/THREAD: BENCH_LARGE_SORT_ROUNDS (3) alternating rounds of
//      one first run after SELECT and BENCH_LARGE_SORT_WARM (3) more; BENCH_LARGE_SORT_ONLY=1
//      skips the other figures (development).

import { corpusMessage, BODY_NEEDLE, SUBJECT_NEEDLE } from './lib/corpus.ts';
import { ImapConn, respCode, searchResult, warmUpClient, type Reply } from './lib/imap-client.ts';
import { fillMaildir, startDovecot } from './lib/peers.ts';
import { fillStore, startPillarbox } from './lib/pillarbox.ts';
import { coldAfterSelect, median as medianOf, ratioRows, renderRatios, sortRounds, SORTS, type CommandFigures, type SortName, type SortTarget } from './lib/sort-rounds.ts';
import { attempt, benchAccounts, benchMain, cleanupAll, envInt, isMain, log, now, percentile, report, row, type Mem, type Row } from './lib/util.ts';

export interface LargeParams {
  messages: number;
  maxBytes: number;
  reps: number;
  bodyReps: number;
  sortRounds: number;
  sortWarm: number;
  /** BENCH_LARGE_SORT_ONLY=1: only the first SELECT and SORT/THREAD (while iterating on them). */
  sortOnly: boolean;
}

export function largeParams(): LargeParams {
  return {
    messages: envInt('BENCH_LARGE_MESSAGES', 100_000),
    maxBytes: envInt('BENCH_LARGE_MAX_BYTES', 8000),
    reps: Math.max(1, envInt('BENCH_LARGE_REPS', 3)),
    bodyReps: Math.max(1, envInt('BENCH_LARGE_BODY_REPS', 1)),
    sortRounds: Math.max(1, envInt('BENCH_LARGE_SORT_ROUNDS', 3)),
    sortWarm: Math.max(1, envInt('BENCH_LARGE_SORT_WARM', 3)),
    sortOnly: process.env.BENCH_LARGE_SORT_ONLY === '1',
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
  if (p.sortOnly) {
    const mem = memory();
    await c.logout();
    const x = NaN;
    return { fillSeconds, firstSelect, select: x, fetchFlags: x, fetchLines: 0, searchSubject: x, subjectHits: 0, searchBody: x, bodyHits: 0, qresync: x, qresyncFetches: 0, memory: mem };
  }

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

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** IMAP date-time (RFC 9051 §9) of a UTC instant. */
function imapDate(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
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

  // Both servers stay up after their own figures: SORT/THREAD then run on both, alternating.
  const targets: SortTarget[] = [];
  const peer = await attempt('Dovecot', async () => {
    const d = await startDovecot({ accounts: [account], maxConnections: 20, packages: ['dovecot-imapd'] });
    const t = performance.now();
    fillMaildir(d.maildir(account.address), gen());
    const fillSeconds = (performance.now() - t) / 1000;
    log(`dovecot: Maildir filled in ${fillSeconds.toFixed(1)} s`);
    const r = await measure(d.ports.imap, account, p, fillSeconds, () => d.memory());
    targets.push({ name: 'dovecot', port: d.ports.imap, account, memory: () => d.memory() });
    return r;
  }, { keep: true });

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
    targets.push({ name: 'pillarbox', port: s.ports.imap, account, memory: () => s.memory() });
    return r;
  }, { keep: true });

  let sorts: CommandFigures[] = [];
  let memAfterSorts: { pillarbox: Mem | null; dovecot: Mem | null } = { pillarbox: null, dovecot: null };
  try {
    if (targets.length) {
      log(`SORT/THREAD: ${p.sortRounds} rounds alternating between ${targets.map((t) => t.name).join(' and ')}, ${p.sortWarm} warm runs each`);
      const newMessage = (k: number) => {
        // After the fill's messages, in its INTERNALDATE steps (one minute each).
        const j = p.messages + k;
        return { raw: corpusMessage(j, { maxBytes: p.maxBytes, extraHeaders: [`X-Bench-Seq: ${j}`] }).raw, internalDate: imapDate(Date.UTC(2024, 0, 1) + j * 60_000) };
      };
      const r = await sortRounds(targets, { rounds: p.sortRounds, warm: p.sortWarm, expect: p.messages, newMessage });
      sorts = r.figures;
      memAfterSorts = { pillarbox: r.memory.pillarbox ?? null, dovecot: r.memory.dovecot ?? null };
    }
  } finally {
    await cleanupAll();
  }
  const fig = (name: SortName) => sorts.find((f) => f.command === SORTS[name]);
  const side = (k: 'pillarbox' | 'dovecot') => (name: SortName) => fig(name)?.sides[k];
  const sortRow = (figure: string, get: (f: NonNullable<ReturnType<ReturnType<typeof side>>>) => number, names: SortName[] = []) => {
    const one = (k: 'pillarbox' | 'dovecot') => {
      const fs = names.map(side(k));
      return fs.every((f) => f) ? Math.max(...fs.map((f) => get(f!))) : null;
    };
    return row(figure, 'ms', 'lower', pb, peer, () => one('pillarbox'), () => one('dovecot'));
  };
  const names = Object.keys(SORTS) as SortName[];
  const ratioTable = renderRatios(`SORT / THREAD on ${p.messages.toLocaleString('en-US')} messages: ${p.sortRounds} alternating rounds`, ratioRows(sorts));
  const rows: Row[] = [
    row('SELECT', 'ms', 'lower', pb, peer, (x) => x.select, (x) => x.select),
    row('UID FETCH 1:* (FLAGS)', 'ms', 'lower', pb, peer, (x) => x.fetchFlags, (x) => x.fetchFlags),
    row(`UID SEARCH SUBJECT "${SUBJECT_NEEDLE}"`, 'ms', 'lower', pb, peer, (x) => x.searchSubject, (x) => x.searchSubject),
    row(`UID SEARCH BODY "${BODY_NEEDLE}"`, 'ms', 'lower', pb, peer, (x) => x.searchBody, (x) => x.searchBody),
    ...names.map((k) => sortRow(SORTS[k], (f) => medianOf(f.warm), [k])),
    ...names.map((k) => sortRow(`first ${SORTS[k]} after SELECT`, (f) => medianOf(coldAfterSelect(f)), [k])),
    ...names.map((k) => sortRow(`first ${SORTS[k]} after the server started`, (f) => f.cold[0]!, [k])),
    ...names.map((k) => sortRow(`${SORTS[k]} after one new message`, (f) => medianOf(f.afterNew), [k])),
    sortRow('worst NOOP of another session during SORT/THREAD', (f) => f.worstNoop, names),
    row('QRESYNC re-select after 100 flag changes', 'ms', 'lower', pb, peer, (x) => x.qresync, (x) => x.qresync),
    row('first SELECT after the fill (index build)', 'ms', 'lower', pb, peer, (x) => x.firstSelect, (x) => x.firstSelect),
    row('server memory after (PSS)', 'MB', 'lower', pb, peer, (x) => x.memory.pss / 2 ** 20, (x) => x.memory.pss / 2 ** 20),
    row('server memory after SORT/THREAD (PSS)', 'MB', 'lower', pb, peer, () => (memAfterSorts.pillarbox ? memAfterSorts.pillarbox.pss / 2 ** 20 : null), () => (memAfterSorts.dovecot ? memAfterSorts.dovecot.pss / 2 ** 20 : null)),
  ];
  process.stdout.write('\n' + ratioTable + '\n');
  return report({
    name: p.sortOnly ? 'large-mailbox-sort' : 'large-mailbox',
    title: `Large mailbox: ${p.messages.toLocaleString('en-US')} messages in one INBOX (median of ${p.reps}; BODY search ${p.bodyReps}; SORT/THREAD ${p.sortRounds} alternating rounds)`,
    peer: 'Dovecot',
    started,
    params: { ...p },
    rows,
    details: {
      pillarbox: pb,
      dovecot: peer,
      sorts,
      sortRatios: ratioRows(sorts),
      sortRatioTable: ratioTable,
      memoryAfterSorts: memAfterSorts,
      // Same corpus, same order, same INTERNALDATEs: the SORT/THREAD answers should be identical.
      sameAnswers: Object.fromEntries(sorts.map((f) => [f.command, f.sides.pillarbox && f.sides.dovecot ? f.sides.pillarbox.digest === f.sides.dovecot.digest : null])),
      sameAnswersAfterNewMail: Object.fromEntries(sorts.map((f) => [f.command, f.sides.pillarbox && f.sides.dovecot ? f.sides.pillarbox.digestAfter === f.sides.dovecot.digestAfter : null])),
    },
  });
}

if (isMain(import.meta.url)) await benchMain(async () => void (await largeMailbox()));
