// Queue memory and restart (issue 13): N messages (default 100,000, ~2 KB) submitted by C clients
// (default 20) over 587 with AUTH for a domain whose MX is dead (a loopback port nobody listens on:
// connection refused), so they all stay queued. Measured: the enqueue rate (submission accepted),
// the server's memory with them queued, then SIGKILL and a restart on the same data folder: the
// time until "Ready.", memory right after and 10 s later, and that the queue still holds all N
// (store.queue.stats, what `pillarbox queue list` reads). A restart with an empty queue first gives
// the baseline ready time. Pillarbox only (no peer); figures printed, never asserted.
//
// Env: BENCH_QUEUE_MESSAGES (100000), BENCH_QUEUE_SIZE (2048 bytes), BENCH_QUEUE_CLIENTS (20),
//      BENCH_QUEUE_DKIM (0; 1 = sign with rsa-2048 + ed25519 keys), BENCH_QUEUE_TIMEOUT (3600 s).
// Flags when run directly: --messages N, --quick (5,000 messages).

import { sizedMessage } from './lib/corpus.ts';
import { freePort } from './lib/peers.ts';
import { benchLimits, startPillarbox } from './lib/pillarbox.ts';
import { SmtpConn } from './lib/smtp-client.ts';
import { benchAccounts, benchMain, envInt, isMain, killTree, log, memoryOf, now, onCleanup, report, sleep, type Mem, type Row } from './lib/util.ts';
import { runCli, type TestServer } from '../test/helpers/server.ts';
import { startDns } from '../test/helpers/dns.ts';
import { openStore, defaultDatabase } from '../src/store/open.ts';

const DOMAIN = 'dead.test';

function flag(name: string): string | undefined {
  const a = process.argv.indexOf(`--${name}`);
  return a >= 0 ? process.argv[a + 1] : undefined;
}

export function queueParams() {
  const quick = process.argv.includes('--quick');
  return {
    messages: Number(flag('messages') ?? (quick ? 5000 : envInt('BENCH_QUEUE_MESSAGES', 100_000))),
    size: envInt('BENCH_QUEUE_SIZE', 2048),
    clients: envInt('BENCH_QUEUE_CLIENTS', 20),
    dkim: envInt('BENCH_QUEUE_DKIM', 0) !== 0,
    timeoutSeconds: envInt('BENCH_QUEUE_TIMEOUT', 3600),
  };
}

async function queueCount(dataDir: string): Promise<number> {
  const s = await openStore(defaultDatabase(dataDir), dataDir);
  try {
    return (await s.queue.stats(Date.now())).messages;
  } finally {
    await s.close();
  }
}

const mb = (m: Mem) => ({ rssMB: m.rss / 2 ** 20, pssMB: m.pss / 2 ** 20 });

/** Kills the server (SIGKILL), starts it again on its data folder; returns the new one and the time to "Ready.". */
async function killAndRestart(srv: TestServer): Promise<{ srv: TestServer; readySeconds: number }> {
  await srv.kill();
  const t = now();
  const next = await srv.restart();
  const readySeconds = (now() - t) / 1000;
  onCleanup('pillarbox (restarted)', () => killTree(next.proc.pid!), () => next.stop());
  return { srv: next, readySeconds };
}

export async function queueRestart(): Promise<string> {
  const started = Date.now();
  const p = queueParams();
  log(`queue-restart: ${p.messages} messages of ${p.size} bytes for a dead destination, ${p.clients} clients, DKIM ${p.dkim ? 'on' : 'off'}`);
  const accounts = benchAccounts(Math.min(p.clients, 10), 'queue');
  const deadPort = await freePort();
  const dns = await startDns([
    { name: DOMAIN, type: 'MX', priority: 10, exchange: `mx.${DOMAIN}` },
    { name: `mx.${DOMAIN}`, type: 'A', address: '127.0.0.1' },
  ]);
  const pb = await startPillarbox({
    accounts,
    limits: { ...benchLimits(p.clients + 50), sendMessagesPerHour: 1e9, sendRecipientsPerDay: 1e9 },
    // One attempt per message at most while it piles up; then nothing is due for an hour.
    config: { outbound: { retryBase: 3_600_000, retryMax: 3_600_000, timeout: 30_000, statsInterval: 0 } },
    args: ['--hostname', 'mail.example.com', '--dns-servers', dns.servers.join(','), '--outbound-port', String(deadPort)],
    beforeStart: async (dir) => {
      if (!p.dkim) return;
      const r = await runCli(['dkim', 'generate', 'example.com', '--data', dir]);
      if (r.code !== 0) throw new Error(`dkim generate: ${r.stderr}`);
    },
  });
  let srv = pb.server;
  try {
    const empty = await killAndRestart(srv);
    srv = empty.srv;
    log(`  empty queue: Ready. ${empty.readySeconds.toFixed(2)} s after the restart`);
    const memEmpty = memoryOf([srv.proc.pid!]);

    const bases = accounts.map((a) => sizedMessage(p.size - 100, { seed: 17, from: `<${a.address}>`, to: `<q@${DOMAIN}>`, subject: 'queued for a dead destination' }));
    const deadline = now() + p.timeoutSeconds * 1000;
    let next = 0;
    let rejected = 0;
    let lastAccept = 0;
    const port = srv.ports.submission;
    const t0 = now();
    let lastLog = t0;
    const client = async (ci: number) => {
      const a = accounts[ci % accounts.length]!;
      const open = async () => {
        const c = await SmtpConn.open(port, `client${ci}.bench.example`);
        await c.auth(a.address, a.password);
        return c;
      };
      let conn = await open();
      while (next < p.messages) {
        if (now() > deadline) throw new Error(`timeout: ${next} of ${p.messages} submitted`);
        const i = next++;
        const body = Buffer.concat([Buffer.from(`Message-ID: <q.${i}@bench.example>\r\n`), bases[ci % bases.length]!]);
        let r;
        try {
          r = await conn.send(a.address, `r${i % 1000}@${DOMAIN}`, body);
        } catch {
          conn = await open();
          r = await conn.send(a.address, `r${i % 1000}@${DOMAIN}`, body);
        }
        if (r.code !== 250) {
          if (++rejected <= 5) log(`  rejected: ${r.code} ${r.text}`);
          if (rejected > 200) throw new Error(`too many rejections (${r.code} ${r.text.slice(0, 80)})`);
          next--;
          await sleep(100);
          continue;
        }
        lastAccept = now();
        if (lastAccept - lastLog > 15_000) {
          lastLog = lastAccept;
          log(`  ${next} submitted, ${(next / ((lastAccept - t0) / 1000)).toFixed(0)} msg/s so far`);
        }
      }
      await conn.quit();
    };
    await Promise.all(Array.from({ length: p.clients }, (_, i) => client(i)));
    const enqueueSeconds = (lastAccept - t0) / 1000;
    log(`  ${p.messages} queued in ${enqueueSeconds.toFixed(1)} s (${(p.messages / enqueueSeconds).toFixed(0)} msg/s)`);
    await sleep(5000);
    const memQueued = memoryOf([srv.proc.pid!]);
    const before = await queueCount(srv.dataDir);
    const full = await killAndRestart(srv);
    srv = full.srv;
    const memAfter = memoryOf([srv.proc.pid!]);
    log(`  ${before} queued: Ready. ${full.readySeconds.toFixed(2)} s after the restart`);
    await sleep(10_000);
    const memAfter10 = memoryOf([srv.proc.pid!]);
    const after = await queueCount(srv.dataDir);
    log(`  queue after the restart: ${after} messages (before the kill: ${before})`);

    const r = (figure: string, unit: string, v: number): Row => ({ figure, unit, better: 'none', pillarbox: v, peer: null, peerNote: '—' });
    const rows: Row[] = [
      r('enqueue (submission accepted, DKIM ' + (p.dkim ? 'on' : 'off') + ')', 'msg/s', p.messages / enqueueSeconds),
      r('server memory, empty queue (RSS)', 'MB', mb(memEmpty).rssMB),
      r(`server memory, ${p.messages.toLocaleString('en-US')} queued (RSS)`, 'MB', mb(memQueued).rssMB),
      r('restart to "Ready.", empty queue', 's', empty.readySeconds),
      r(`SIGKILL + restart to "Ready.", ${p.messages.toLocaleString('en-US')} queued`, 's', full.readySeconds),
      r('memory right after the restart (RSS)', 'MB', mb(memAfter).rssMB),
      r('memory 10 s after the restart (RSS)', 'MB', mb(memAfter10).rssMB),
      r('queued before the kill', 'messages', before),
      r('queued after the restart', 'messages', after),
    ];
    const table = report({
      name: 'queue-restart',
      title: `Queue: ${p.messages.toLocaleString('en-US')} messages of ~${Math.round(p.size / 1024)} KB for a dead destination, SIGKILL, restart`,
      peer: 'peer',
      started,
      params: { ...p },
      rows,
      details: { enqueueSeconds, rejected, memEmpty, memQueued, memAfter, memAfter10, before, after, intact: before === after && after === p.messages },
    });
    if (after !== p.messages) log(`  QUEUE NOT INTACT: ${after} of ${p.messages} after the restart`);
    return table;
  } finally {
    await srv.stop();
    await pb.stop();
    await dns.close();
  }
}

if (isMain(import.meta.url)) await benchMain(async () => void (await queueRestart()));
