// Outbound throughput (issue 13): N messages of ~10 KB (default 20,000) submitted by C parallel
// clients (default 10) for a remote domain whose MX is a sink (bench/lib/sink.ts), timed from the
// first MAIL FROM until the sink has accepted all N. Pillarbox: submission on its 587 listener with
// AUTH, DKIM-signed (rsa-2048 + ed25519, `pillarbox dkim generate`), queued durably, delivered by MX
// (a test DNS server: MX sink.test → 127.0.0.1, --outbound-port = the sink's port). Peer: a private
// Postfix relay (peers.ts) that accepts the same load over SMTP from mynetworks (no AUTH, no DKIM:
// plain Postfix has no signer) and relays it by a transport map to the same sink. Both relays get
// the same number of connections to the destination (Pillarbox outbound.concurrency and
// perDomainConcurrency, Postfix default_destination_concurrency_limit). Rounds alternate the order
// (R1: Pillarbox first, R2: Postfix first, …); the servers stay up across rounds, queues empty
// between them. Figures are printed, never asserted: per round, then the median and range.
//
// Env: BENCH_OUTBOUND_MESSAGES (20000), BENCH_OUTBOUND_SIZE (10240 bytes), BENCH_OUTBOUND_CLIENTS (10),
//      BENCH_OUTBOUND_ROUNDS (3), BENCH_OUTBOUND_CONCURRENCY (20), BENCH_OUTBOUND_SINK (smtp-sink | postfix),
//      BENCH_OUTBOUND_DKIM (1; 0 = no DKIM keys, Pillarbox then sends unsigned), BENCH_OUTBOUND_TIMEOUT (900 s per run),
//      BENCH_OUTBOUND_DELIVERY_THREADS (Pillarbox outbound.deliveryThreads; unset = its default, 0 = SMTP client on the event loop).
// Flags when run directly: --messages N, --rounds N, --quick (2,000 messages, 3 rounds).

import { sizedMessage } from './lib/corpus.ts';
import { startPostfixInstance, type Postfix } from './lib/peers.ts';
import { benchLimits, startPillarbox, type Pillarbox } from './lib/pillarbox.ts';
import { startSink, type Sink, type SinkKind } from './lib/sink.ts';
import { SmtpConn } from './lib/smtp-client.ts';
import { benchAccounts, benchMain, envInt, envStr, isMain, log, now, report, sleep, threadCpuByName, threadCpuSeconds, treeCpuSeconds, treeMemory, type Row } from './lib/util.ts';
import { runCli } from '../test/helpers/server.ts';
import { startDns } from '../test/helpers/dns.ts';

const DOMAIN = 'sink.test';

export interface OutboundParams {
  messages: number;
  size: number;
  clients: number;
  rounds: number;
  concurrency: number;
  sink: SinkKind;
  dkim: boolean;
  timeoutSeconds: number;
  /** outbound.deliveryThreads of Pillarbox (null: its default). */
  deliveryThreads: number | null;
}

function flag(name: string): string | undefined {
  const a = process.argv.indexOf(`--${name}`);
  return a >= 0 ? process.argv[a + 1] : undefined;
}

export function outboundParams(): OutboundParams {
  const quick = process.argv.includes('--quick');
  const sink = envStr('BENCH_OUTBOUND_SINK', 'smtp-sink');
  if (sink !== 'smtp-sink' && sink !== 'postfix') throw new Error(`BENCH_OUTBOUND_SINK=${sink}: smtp-sink or postfix`);
  return {
    messages: Number(flag('messages') ?? (quick ? 2000 : envInt('BENCH_OUTBOUND_MESSAGES', 20000))),
    size: envInt('BENCH_OUTBOUND_SIZE', 10240),
    clients: envInt('BENCH_OUTBOUND_CLIENTS', 10),
    rounds: Math.max(1, Number(flag('rounds') ?? envInt('BENCH_OUTBOUND_ROUNDS', 3))),
    concurrency: envInt('BENCH_OUTBOUND_CONCURRENCY', 20),
    sink,
    dkim: envInt('BENCH_OUTBOUND_DKIM', 1) !== 0,
    timeoutSeconds: envInt('BENCH_OUTBOUND_TIMEOUT', 900),
    deliveryThreads: process.env.BENCH_OUTBOUND_DELIVERY_THREADS ? Number(process.env.BENCH_OUTBOUND_DELIVERY_THREADS) : null,
  };
}

interface RunResult {
  acceptSeconds: number;
  sinkSeconds: number;
  /** N ÷ time until the sink had all of them. */
  perSec: number;
  acceptedPerSec: number;
  peakPssMB: number;
  rejected: number;
  /** CPU of the relay's processes (every thread, children included) per message, ms. */
  cpuMsPerMessage: number;
  /** Pillarbox: CPU of its event-loop thread per message, ms (NaN for Postfix). */
  loopCpuMsPerMessage: number;
  /** Pillarbox: CPU per message of its threads by name (threadCpuByName), ms. */
  threadMsPerMessage: Record<string, number>;
  /** CPU per message of this process (the submitting clients) and of the sink, ms: what the relay shares the cores with. */
  clientsCpuMsPerMessage: number;
  sinkCpuMsPerMessage: number;
  /** SMTP sessions the sink had during the run (connection reuse: at most the connection count when all are reused). */
  sinkSessions: number;
}

interface Side {
  name: string;
  port: number;
  auth: ((client: number) => [string, string]) | null;
  memory: () => number;
  /** CPU seconds of the relay's processes so far (treeCpuSeconds). */
  cpu: () => number;
  /** CPU seconds of the event-loop thread (Pillarbox). */
  loopCpu?: () => number;
  /** CPU seconds of each thread of the relay by name (Pillarbox). */
  threads?: () => Map<string, number>;
}

/** One run: C clients send N messages through `side`; done when the sink counted N more. */
async function push(side: Side, sink: Sink, p: OutboundParams, tag: string, accounts: string[]): Promise<RunResult> {
  const bases = accounts.map((a) => sizedMessage(p.size - 120, { seed: 13, from: `<${a}>`, to: `<r@${DOMAIN}>`, subject: 'outbound benchmark' }));
  const before = sink.count();
  const deadline = now() + p.timeoutSeconds * 1000;
  let peak = side.memory();
  const sampler = setInterval(() => (peak = Math.max(peak, side.memory())), 1000);
  let next = 0;
  let rejected = 0;
  let lastAccept = 0;
  const cpu0 = side.cpu();
  const loop0 = side.loopCpu?.() ?? NaN;
  const threads0 = side.threads?.() ?? new Map<string, number>();
  const self0 = process.cpuUsage();
  const sink0 = sink.pid ? treeCpuSeconds(sink.pid) : NaN;
  const sess0 = sink.sessions();
  const t0 = now();
  try {
    const client = async (ci: number) => {
      const from = accounts[ci % accounts.length]!;
      const open = async () => {
        const c = await SmtpConn.open(side.port, `client${ci}.bench.example`);
        if (side.auth) await c.auth(...side.auth(ci));
        return c;
      };
      let conn = await open();
      while (next < p.messages) {
        if (now() > deadline) throw new Error(`timeout: ${next} of ${p.messages} submitted`);
        const i = next++;
        const body = Buffer.concat([Buffer.from(`Message-ID: <${tag}.${i}@bench.example>\r\n`), bases[ci % bases.length]!]);
        let r;
        try {
          r = await conn.send(from, `r${i % 100}@${DOMAIN}`, body);
        } catch {
          conn = await open();
          r = await conn.send(from, `r${i % 100}@${DOMAIN}`, body);
        }
        if (r.code !== 250) {
          if (++rejected <= 5) log(`  ${side.name} rejected: ${r.code} ${r.text}`);
          if (rejected > 200) throw new Error(`${side.name}: too many rejections (${r.code} ${r.text.slice(0, 80)})`);
          next--;
          await sleep(100);
          continue;
        }
        lastAccept = Math.max(lastAccept, now());
      }
      await conn.quit();
    };
    await Promise.all(Array.from({ length: p.clients }, (_, i) => client(i)));
    const acceptSeconds = (lastAccept - t0) / 1000;
    for (;;) {
      const got = sink.count() - before;
      if (got >= p.messages) break;
      if (now() > deadline) throw new Error(`timeout: the sink has ${got} of ${p.messages}`);
      await sleep(50);
    }
    const sinkSeconds = (now() - t0) / 1000;
    const cpuMsPerMessage = ((side.cpu() - cpu0) * 1000) / p.messages;
    const loopCpuMsPerMessage = (((side.loopCpu?.() ?? NaN) - loop0) * 1000) / p.messages;
    const threadMsPerMessage: Record<string, number> = {};
    for (const [name, s] of side.threads?.() ?? []) threadMsPerMessage[name] = ((s - (threads0.get(name) ?? 0)) * 1000) / p.messages;
    const self = process.cpuUsage(self0);
    const clientsCpuMsPerMessage = (self.user + self.system) / 1000 / p.messages;
    const sinkCpuMsPerMessage = ((sink.pid ? treeCpuSeconds(sink.pid) : NaN) - sink0) * 1000 / p.messages;
    return { acceptSeconds, sinkSeconds, perSec: p.messages / sinkSeconds, acceptedPerSec: p.messages / acceptSeconds, peakPssMB: peak / 2 ** 20, rejected, cpuMsPerMessage, loopCpuMsPerMessage, threadMsPerMessage, clientsCpuMsPerMessage, sinkCpuMsPerMessage, sinkSessions: sink.sessions() - sess0 };
  } finally {
    clearInterval(sampler);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export async function outbound(): Promise<string> {
  const started = Date.now();
  const p = outboundParams();
  log(`outbound: ${p.rounds} rounds × ${p.messages} messages of ${p.size} bytes, ${p.clients} clients, ${p.concurrency} connections to the sink (${p.sink}), DKIM ${p.dkim ? 'on' : 'off'}`);
  const accounts = benchAccounts(Math.min(p.clients, 10), 'out');
  const sink = await startSink(p.sink, DOMAIN);
  const dns = await startDns([
    { name: DOMAIN, type: 'MX', priority: 10, exchange: `mx.${DOMAIN}` },
    { name: `mx.${DOMAIN}`, type: 'A', address: '127.0.0.1' },
  ]);
  let pb: Pillarbox | null = null;
  let pf: Postfix | null = null;
  try {
    pb = await startPillarbox({
      accounts,
      limits: { ...benchLimits(p.clients + 50), sendMessagesPerHour: 1e9, sendRecipientsPerDay: 1e9 },
      config: { outbound: { concurrency: p.concurrency, perDomainConcurrency: p.concurrency, timeout: 120_000, retryBase: 5000, retryMax: 30_000, statsInterval: 0, deliveryThreads: p.deliveryThreads } },
      args: ['--hostname', 'mail.example.com', '--dns-servers', dns.servers.join(','), '--outbound-port', String(sink.port)],
      beforeStart: async (dir) => {
        if (!p.dkim) return;
        const r = await runCli(['dkim', 'generate', 'example.com', '--data', dir]);
        if (r.code !== 0) throw new Error(`dkim generate: ${r.stderr}`);
      },
    });
    // BENCH_SIDES=pillarbox (or =peer): one side only (while iterating on a fix); no ratios then.
    const which = (process.env.BENCH_SIDES ?? 'pillarbox,peer').toLowerCase().split(',');
    if (which.includes('peer')) pf = await startPostfixInstance({
      name: 'bench-relay',
      files: { transport: `${DOMAIN} smtp:[127.0.0.1]:${sink.port}\n` },
      main: {
        relay_domains: DOMAIN,
        transport_maps: 'texthash:$config_directory/transport',
        default_destination_concurrency_limit: String(p.concurrency),
        smtp_destination_concurrency_limit: String(p.concurrency),
        default_process_limit: String(Math.max(100, p.clients + p.concurrency + 20)),
      },
    });
    const pbx = pb;
    const pfx = pf;
    const sides: Side[] = [];
    if (which.includes('pillarbox')) sides.push(
      { name: 'Pillarbox', port: pbx.ports.submission, auth: (ci) => [accounts[ci % accounts.length]!.address, accounts[ci % accounts.length]!.password], memory: () => pbx.memory().pss, cpu: () => treeCpuSeconds(pbx.pid), loopCpu: () => threadCpuSeconds(pbx.pid), threads: () => threadCpuByName(pbx.pid) });
    if (pfx) sides.push({ name: 'Postfix', port: pfx.port, auth: null, memory: () => treeMemory(pfx.masterPid()).pss, cpu: () => treeCpuSeconds(pfx.masterPid()) });
    const addrs = accounts.map((a) => a.address);
    // Untimed warm-up of both paths (connections, JIT, first DNS answers).
    for (const s of sides) await push(s, sink, { ...p, messages: Math.min(200, p.messages) }, `warm.${s.name}`, addrs);
    const results: Record<string, RunResult[]> = { Pillarbox: [], Postfix: [] };
    for (let r = 0; r < p.rounds; r++) {
      const order = r % 2 === 0 ? sides : [...sides].reverse();
      for (const s of order) {
        const x = await push(s, sink, p, `r${r}.${s.name}`, addrs);
        results[s.name]!.push(x);
        log(`  round ${r + 1} ${s.name}: ${x.perSec.toFixed(0)} msg/s to the sink (accepted ${x.acceptedPerSec.toFixed(0)} msg/s, ${x.sinkSeconds.toFixed(1)} s, peak PSS ${x.peakPssMB.toFixed(0)} MB, CPU ${x.cpuMsPerMessage.toFixed(2)} ms/msg${Number.isNaN(x.loopCpuMsPerMessage) ? '' : `, event-loop thread ${x.loopCpuMsPerMessage.toFixed(2)} ms/msg`})`);
        const byThread = Object.entries(x.threadMsPerMessage).filter(([, ms]) => ms >= 0.005).sort((a, b) => b[1] - a[1]);
        if (byThread.length) log(`    ${s.name} CPU by thread (ms/msg): ${byThread.map(([n, ms]) => `${n} ${ms.toFixed(2)}`).join(', ')}`);
        log(`    beside it: clients (this process) ${x.clientsCpuMsPerMessage.toFixed(2)} ms/msg, sink ${x.sinkCpuMsPerMessage.toFixed(2)} ms/msg; ${x.sinkSessions} sessions at the sink`);
      }
    }
    const ratios = results.Pillarbox!.length && results.Postfix!.length ? results.Pillarbox!.map((x, i) => x.perSec / results.Postfix![i]!.perSec) : [NaN];
    const med = (side: string, f: (x: RunResult) => number) => (results[side]!.length ? median(results[side]!.map(f)) : NaN);
    const mk = (figure: string, unit: string, better: Row['better'], f: (x: RunResult) => number): Row => ({ figure, unit, better, pillarbox: med('Pillarbox', f), peer: med('Postfix', f) });
    const rows: Row[] = [
      mk('submitted → accepted by the sink (median)', 'msg/s', 'higher', (x) => x.perSec),
      mk('submission accepted (last 250, median)', 'msg/s', 'higher', (x) => x.acceptedPerSec),
      mk('time until the sink has all (median)', 's', 'lower', (x) => x.sinkSeconds),
      mk('relay CPU per message (all processes and threads, median)', 'ms', 'lower', (x) => x.cpuMsPerMessage),
      mk('relay peak memory (PSS, median)', 'MB', 'lower', (x) => x.peakPssMB),
      mk('temporary rejections (median)', 'count', 'lower', (x) => x.rejected),
    ];
    const ratioLine = `Pillarbox ÷ Postfix, msg/s to the sink, per round: ${ratios.map((x) => x.toFixed(2)).join(', ')}; median ${median(ratios).toFixed(2)}, range ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)} (${p.rounds} alternating rounds).`;
    const perRound = Object.entries(results).map(([k, v]) => `${k}: ${v.map((x) => x.perSec.toFixed(0)).join(', ')} msg/s`).join('; ');
    const table = report({
      name: 'outbound',
      title: `Outbound: ${p.messages.toLocaleString('en-US')} messages of ~${Math.round(p.size / 1024)} KB to a ${p.sink} sink, ${p.clients} clients, ${p.concurrency} connections out`,
      peer: 'Postfix relay',
      started,
      params: { ...p },
      rows,
      details: { results, ratios, ratioMedian: median(ratios), ratioMin: Math.min(...ratios), ratioMax: Math.max(...ratios), note: 'Pillarbox: AUTH on submission, DKIM-signed when dkim=true, MX lookups against a loopback DNS; Postfix: no AUTH, unsigned, literal next hop.' },
    });
    const text = `${table}\n${ratioLine}\nPer round: ${perRound}.\n`;
    process.stdout.write(`${ratioLine}\nPer round: ${perRound}.\n`);
    return text;
  } finally {
    await pf?.stop();
    await pb?.stop();
    await sink.stop();
    await dns.close();
  }
}

if (isMain(import.meta.url)) await benchMain(async () => void (await outbound()));
