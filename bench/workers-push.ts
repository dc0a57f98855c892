// Issue 15: push across the worker processes of one server. `pillarbox serve --workers 2` on the
// embedded SQLite store; two IDLE clients (RFC 2177) per account, one on each worker at the start;
// BENCH_WPUSH_DELIVERIES (1000) SMTP deliveries, each on a new connection (round-robin: either
// worker), one account at a time per sender. A delivery's latency is SMTP 250 → `* n EXISTS` on
// an IDLE client; every delivery gives one sample per IDLE client, sorted by whether that client's
// session is on the other worker than the SMTP session (the issue's figure: p99 within 50 ms) or on
// the same one. Which worker serves a connection is read from its `net.open worker=N … remote=…`
// log line (the client port). The EXISTS count n is matched to its delivery through the mailbox
// itself: at the end every account is read (FETCH of the Subject fields, in sequence order), which
// also compares the messages acknowledged with those found: none may be missing or be there twice.
// BENCH_WPUSH_KILLS=10: worker 2 is SIGKILLed that many times during the flood (spread over the
// deliveries; the next kill once the primary has restarted it), the flood going on until the last
// kill; SMTP sessions cut before their 250 are retried (a new Subject), IDLE clients reconnect
// (arrivals meanwhile are seen at SELECT: not push samples). Figures only, no assertion.
// Env: BENCH_WPUSH_DELIVERIES (1000), BENCH_WPUSH_ACCOUNTS (20), BENCH_WPUSH_SENDERS (6), BENCH_WPUSH_KILLS (0).
import type { TestServer } from '../test/helpers/server.ts';
import { RawImap } from '../test/e2e/imap/raw-client.ts';
import { startPillarbox } from './lib/pillarbox.ts';
import { deliver, Watcher } from './lib/push.ts';
import { benchAccounts, benchMain, envInt, log, percentile, sleep } from './lib/util.ts';

const N = envInt('BENCH_WPUSH_DELIVERIES', 1000);
const ACCOUNTS = envInt('BENCH_WPUSH_ACCOUNTS', 20);
const SENDERS = Math.min(envInt('BENCH_WPUSH_SENDERS', 6), ACCOUNTS);
const KILLS = envInt('BENCH_WPUSH_KILLS', 0);
const accounts = benchAccounts(ACCOUNTS, 'wpush');

/** Reads the server's log as it grows: which worker opened a connection, each worker's current pid. */
class WorkerLog {
  readonly #s: TestServer;
  #at = 0;
  /** `listener:port` → [offset of the net.open line, worker] in log order (a port can come back). */
  readonly #opens = new Map<string, Array<[number, number]>>();
  /** Worker id → its pids, in the order of their ready/restarted lines. */
  readonly #pids = new Map<number, number[]>();
  constructor(s: TestServer) {
    this.#s = s;
  }

  /** The log's length now: a connection opened after this has its net.open line past it. */
  mark(): number {
    return this.#s.output().length;
  }

  #scan(): void {
    const out = this.#s.output();
    const end = out.lastIndexOf('\n') + 1;
    for (let i = this.#at; i < end; ) {
      const nl = out.indexOf('\n', i);
      const line = out.slice(i, nl);
      if (line.includes(' net.open worker=')) {
        const m = / net\.open worker=(\d+) listener=(\w+) remote=127\.0\.0\.1:(\d+) /.exec(line); // linear: fixed text, three runs
        if (m) {
          const key = `${m[2]}:${m[3]}`;
          const list = this.#opens.get(key) ?? [];
          list.push([i, Number(m[1])]);
          this.#opens.set(key, list);
        }
      } else if (line.includes(' server.worker-')) {
        const m = / server\.worker-(?:ready|restarted) worker=(\d+) pid=(\d+)/.exec(line); // linear: fixed text, two \d+ runs
        if (m) this.#pids.set(Number(m[1]), [...(this.#pids.get(Number(m[1])) ?? []), Number(m[2])]);
      }
      i = nl + 1;
    }
    this.#at = Math.max(this.#at, end);
  }

  /** The worker that served the `listener` connection from client port `port` opened after `mark`. */
  async workerOf(listener: string, port: number, mark: number): Promise<number> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      this.#scan();
      const hit = this.#opens.get(`${listener}:${port}`)?.find(([at]) => at >= mark);
      if (hit) return hit[1];
      if (Date.now() > deadline) throw new Error(`no net.open line for ${listener} port ${port}`);
      await sleep(10);
    }
  }

  /** Worker `id`'s latest pid once it is not `not` (waits for its restart). */
  async pidOf(id: number, not = 0): Promise<number> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      this.#scan();
      const pid = this.#pids.get(id)?.at(-1) ?? 0;
      if (pid && pid !== not) return pid;
      if (Date.now() > deadline) throw new Error(`worker ${id} did not come back`);
      await sleep(20);
    }
  }
}

/** IMAP sessions opened, each with where to find its worker. */
type Opened = Map<RawImap, { port: number; mark: number }>;

/** Two IDLE clients per account: the first placed on worker 1, the second on worker 2 (reconnections land anywhere). */
async function startWatchers(s: TestServer, wlog: WorkerLog, opened: Opened): Promise<Watcher[]> {
  const open = async (want: number, again: boolean): Promise<RawImap> => {
    for (let i = 0; i < 20; i++) {
      const mark = wlog.mark();
      const c = await RawImap.connect(s.ports.imap);
      const port = c.socket.localPort!;
      opened.set(c, { port, mark });
      if (again || (await wlog.workerOf('imap', port, mark)) === want) return c;
      c.close();
    }
    throw new Error(`no IMAP connection reached worker ${want}`);
  };
  const watchers: Watcher[] = [];
  for (let a = 0; a < ACCOUNTS; a++) {
    for (const want of [1, 2]) {
      const w = new Watcher(a, accounts[a]!.address, accounts[a]!.password, (again) => open(want, again));
      await w.start();
      watchers.push(w);
    }
  }
  return watchers;
}

interface Ack {
  account: number;
  at: number;
  port: number;
  mark: number;
}

interface Flood {
  acks: Map<string, Ack>;
  retries: number;
  ms: number;
  kills: number;
}

/** SENDERS clients deliver N messages (and on until the last kill), one account at a time each; the killer SIGKILLs worker 2. */
async function flood(s: TestServer, wlog: WorkerLog): Promise<Flood> {
  const f: Flood = { acks: new Map(), retries: 0, ms: 0, kills: 0 };
  let next = 0;
  let killing = KILLS > 0;
  const sender = async (w: number) => {
    // Accounts w, w+SENDERS, …: one sender per account, so its deliveries arrive in order.
    const mine = accounts.map((_, a) => a).filter((a) => a % SENDERS === w);
    while (next < N || killing) {
      const k = next++;
      const account = mine[k % mine.length]!;
      for (let attempt = 0; ; attempt++) {
        const tag = `${k}-${attempt}`;
        const mark = wlog.mark();
        const port = await deliver(s.ports.smtp, accounts[account]!.address, tag);
        if (port) {
          f.acks.set(tag, { account, at: Date.now(), port, mark });
          break;
        }
        f.retries++;
        await sleep(100);
      }
    }
  };
  const killer = async () => {
    try {
      let pid = await wlog.pidOf(2);
      let since = Date.now();
      for (let j = 0; j < KILLS; j++) {
        while (f.acks.size < ((j + 1) * N) / (KILLS + 1) || Date.now() - since < 300 + ((j * 137) % 400)) await sleep(20);
        process.kill(pid, 'SIGKILL');
        f.kills++;
        log(`SIGKILL worker 2 (pid ${pid}) after ${f.acks.size} acknowledged deliveries`);
        pid = await wlog.pidOf(2, pid);
        since = Date.now();
      }
    } finally {
      killing = false;
    }
  };
  const t0 = Date.now();
  await Promise.all([...Array.from({ length: SENDERS }, (_, w) => sender(w)), ...(KILLS ? [killer()] : [])]);
  f.ms = Date.now() - t0;
  return f;
}

/** Every account read afresh: the Subject tag at each sequence number (RFC 9051 §6.4.5 FETCH). */
async function readMailboxes(s: TestServer): Promise<string[][]> {
  const all: string[][] = [];
  for (const acc of accounts) {
    const c = await RawImap.connect(s.ports.imap);
    try {
      await c.login(acc.address, acc.password);
      await c.cmd('SELECT INBOX');
      const r = await c.cmd('FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])', 60_000);
      const tags: string[] = [];
      for (const l of r.lines) {
        const seq = /^\* (\d+) FETCH /.exec(l); // linear: one \d+ group
        const tag = /Subject: push (\d+-\d+)/.exec(l); // linear: fixed text, two \d+ runs
        if (seq && tag) tags[Number(seq[1]) - 1] = tag[1]!;
      }
      all.push(tags);
    } finally {
      c.close();
    }
  }
  return all;
}

interface Tally {
  cross: number[];
  same: number[];
  atSelect: number;
  neverPushed: number;
  smtpOn: [number, number];
}

/** Push samples: each IDLE client's first sight of count n against the 250 of the message at n. */
async function tally(wlog: WorkerLog, watchers: Watcher[], opened: Opened, acks: Map<string, Ack>, mailboxes: string[][]): Promise<Tally> {
  const t: Tally = { cross: [], same: [], atSelect: 0, neverPushed: 0, smtpOn: [0, 0] };
  const smtpWorker = new Map<string, number>();
  for (const [tag, a] of acks) {
    const w = await wlog.workerOf('smtp', a.port, a.mark);
    smtpWorker.set(tag, w);
    t.smtpOn[w - 1]++;
  }
  const imapWorker = new Map<RawImap, number>();
  for (const [c, o] of opened) imapWorker.set(c, await wlog.workerOf('imap', o.port, o.mark));
  for (const w of watchers) {
    mailboxes[w.account]!.forEach((tag, i) => {
      const ack = acks.get(tag);
      if (!ack) return; // committed, its 250 lost with the worker
      const seen = w.seenAt.get(i + 1);
      if (seen === undefined) t.neverPushed++;
      else if (w.atSelect.has(i + 1)) t.atSelect++;
      else (imapWorker.get(w.via.get(i + 1)!) === smtpWorker.get(tag) ? t.same : t.cross).push(Math.max(0, seen - ack.at));
    });
  }
  t.cross.sort((x, y) => x - y);
  t.same.sort((x, y) => x - y);
  return t;
}

const figures = (xs: number[]) => (xs.length ? `p50 ${percentile(xs, 50)} ms, p99 ${percentile(xs, 99)} ms, max ${xs.at(-1)} ms (${xs.length} samples)` : 'no samples');

function print(f: Flood, t: Tally, watchers: Watcher[], mailboxes: string[][], killLines: number): void {
  const found = new Map<string, number>();
  for (const tags of mailboxes) for (const tag of tags) if (tag) found.set(tag, (found.get(tag) ?? 0) + 1);
  const missing = [...f.acks.keys()].filter((tag) => !found.has(tag));
  const twice = [...found.values()].filter((n) => n > 1).length;
  const extra = [...found.keys()].filter((tag) => !f.acks.has(tag)).length;
  const reconnects = watchers.reduce((n, w) => n + w.reconnects, 0);
  console.log(`# workers-push: serve --workers 2 on SQLite, ${ACCOUNTS} accounts × 2 IDLE clients, ${f.acks.size} SMTP deliveries in ${f.ms} ms over ${SENDERS} senders (SMTP sessions on worker 1: ${t.smtpOn[0]}, worker 2: ${t.smtpOn[1]})`);
  console.log(`#   SMTP 250 -> EXISTS, IDLE on the other worker: ${figures(t.cross)} (goal p99 <= 50 ms)`);
  console.log(`#   SMTP 250 -> EXISTS, IDLE on the same worker:  ${figures(t.same)}`);
  console.log(`#   SIGKILLs of worker 2: ${f.kills} (server.worker-exited … SIGKILL lines: ${killLines}); IDLE reconnects ${reconnects}; SMTP retries ${f.retries}; seen at a reconnect's SELECT ${t.atSelect}; never pushed ${t.neverPushed}`);
  console.log(`#   acknowledged ${f.acks.size}, found ${[...found.values()].reduce((a, b) => a + b, 0)}: missing ${missing.length}${missing.length ? ` (${missing.slice(0, 10).join(', ')})` : ''}, twice ${twice}, committed without their 250 ${extra}`);
}

await benchMain(async () => {
  const pb = await startPillarbox({ accounts, workers: 2 });
  const s = pb.server;
  const wlog = new WorkerLog(s);
  const opened: Opened = new Map();
  let watchers: Watcher[] = [];
  try {
    watchers = await startWatchers(s, wlog, opened);
    log(`${watchers.length} IDLE clients; ${N} deliveries${KILLS ? `, ${KILLS} SIGKILLs of worker 2` : ''}`);
    const f = await flood(s, wlog);
    // Let the last pushes arrive.
    const acked = accounts.map((_, a) => [...f.acks.values()].filter((x) => x.account === a).length);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && watchers.some((w) => w.seenAt.size < acked[w.account]!)) await sleep(100);
    const mailboxes = await readMailboxes(s);
    const t = await tally(wlog, watchers, opened, f.acks, mailboxes);
    const killLines = s.output().match(/server\.worker-exited worker=2 pid=\d+ code=null signal=SIGKILL/g)?.length ?? 0; // linear: fixed text, one \d+
    print(f, t, watchers, mailboxes, killLines);
  } finally {
    for (const w of watchers) await w.stop();
    await pb.stop();
  }
});
