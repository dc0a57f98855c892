// Benchmark 2 (issue #6): idle connections. Up to N connections (default 10,000) logged in, with
// INBOX selected and in IDLE (the file-descriptor limit is raised first). Reports the resident
// memory of the server's processes in total and per connection (RSS sum, and PSS sum which
// counts shared pages once), and the time from an SMTP delivery's 250 to the EXISTS seen by an
// IDLE client on that mailbox (p50, p99) while the other connections idle. Peer: Dovecot, mail
// arriving through Postfix → LMTP.
//
// Opening connections is bounded in time (BENCH_IDLE_LOGIN_SECONDS): a server whose logins are
// slow reaches fewer connections, and the per-connection figures are computed on what it reached.
//
// Env: BENCH_IDLE_CONNECTIONS (10000), BENCH_IDLE_ACCOUNTS (50), BENCH_IDLE_LOGIN_SECONDS (100),
//      BENCH_IDLE_CONCURRENCY (64 logins in flight), BENCH_IDLE_SAMPLES (100)

import { sizedMessage } from './lib/corpus.ts';
import { ImapConn } from './lib/imap-client.ts';
import { startDovecot, startPostfix } from './lib/peers.ts';
import { benchLimits, startPillarbox } from './lib/pillarbox.ts';
import { SmtpConn } from './lib/smtp-client.ts';
import { attempt, benchAccounts, benchMain, envInt, isMain, log, now, percentile, report, row, sleep, softFdLimit, type Mem, type Row } from './lib/util.ts';

export interface IdleParams {
  connections: number;
  accounts: number;
  loginSeconds: number;
  concurrency: number;
  samples: number;
}

export function idleParams(): IdleParams {
  return {
    connections: envInt('BENCH_IDLE_CONNECTIONS', 10000),
    accounts: envInt('BENCH_IDLE_ACCOUNTS', 50),
    loginSeconds: envInt('BENCH_IDLE_LOGIN_SECONDS', 100),
    concurrency: envInt('BENCH_IDLE_CONCURRENCY', 64),
    samples: envInt('BENCH_IDLE_SAMPLES', 100),
  };
}

interface IdleResult {
  target: number;
  established: number;
  failed: number;
  loginSeconds: number;
  loginsPerSec: number;
  baseline: Mem;
  loaded: Mem;
  rssPerConnKB: number;
  pssPerConnKB: number;
  /** MAIL FROM sent → EXISTS seen (the whole delivery), ms. */
  txP50: number;
  txP99: number;
  /** Final 250 → EXISTS seen, ms (0 when the EXISTS came first). */
  pushP50: number;
  pushP99: number;
  pushMax: number;
  pushLost: number;
  pushBefore250: number;
}

async function openIdle(port: number, a: { address: string; password: string }): Promise<ImapConn> {
  const c = await ImapConn.connect(port, '127.0.0.1', 60_000);
  try {
    await c.login(a.address, a.password);
    await c.ok('SELECT INBOX');
    await c.idle();
    return c;
  } catch (err) {
    c.destroy();
    throw err;
  }
}

async function idleLoad(
  imapPort: number,
  smtpPort: number,
  accounts: Array<{ address: string; password: string }>,
  p: IdleParams,
  memory: () => Mem,
): Promise<IdleResult> {
  const fdRoom = softFdLimit() - 200;
  const target = Math.min(p.connections, fdRoom);
  if (target < p.connections) log(`  file-descriptor limit ${softFdLimit()}: at most ${target} connections`);
  const conns: ImapConn[] = [];
  try {
    // One watcher per account first (their EXISTS is timed), then the idle crowd. The memory
    // baseline is taken with the watchers in IDLE (every account logged in once), so the
    // per-connection figure is the slope over the crowd.
    const watchers: ImapConn[] = [];
    for (const a of accounts) watchers.push(await openIdle(imapPort, a));
    conns.push(...watchers);
    await sleep(2000);
    const baseline = memory();
    const t0 = now();
    const end = t0 + p.loginSeconds * 1000;
    let next = watchers.length;
    let failed = 0;
    let lastLog = t0;
    await Promise.all(
      Array.from({ length: p.concurrency }, async () => {
        while (next < target && now() < end && failed < 200) {
          const k = next++;
          try {
            conns.push(await openIdle(imapPort, accounts[k % accounts.length]!));
          } catch (err) {
            failed++;
            if (failed <= 3) log(`  connection ${k}: ${(err as Error).message}`);
          }
          if (now() - lastLog > 15_000) {
            lastLog = now();
            log(`  ${conns.length} connections in IDLE after ${((now() - t0) / 1000).toFixed(0)} s`);
          }
        }
      }),
    );
    const loginSeconds = (now() - t0) / 1000;
    const established = conns.length;
    log(`  ${established} connections in IDLE (${failed} failed) after ${loginSeconds.toFixed(1)} s`);
    await sleep(3000);
    const loaded = memory();

    // Push latency: one message at a time to a watched mailbox; 250 → EXISTS on the watcher.
    const smtp = await SmtpConn.open(smtpPort);
    const lat: number[] = [];
    const fromStart: number[] = [];
    let lost = 0;
    let before = 0;
    for (let k = 0; k < p.samples; k++) {
      const ai = k % accounts.length;
      const w = watchers[ai]!;
      let seenAt = 0;
      const seen = new Promise<void>((res) => {
        w.onUntagged = (line) => {
          if (/^\* \d+ EXISTS/i.test(line)) {
            seenAt = now();
            res();
          }
        };
      });
      const body = sizedMessage(2048, { seed: 5, i: k, to: `<${accounts[ai]!.address}>`, subject: `push ${k}` });
      const tStart = now();
      const r = await smtp.send('pusher@example.org', accounts[ai]!.address, body);
      const t250 = now();
      if (r.code !== 250) throw new Error(`SMTP ${r.code} ${r.text}`);
      await Promise.race([seen, sleep(10_000)]);
      w.onUntagged = null;
      if (!seenAt) lost++;
      else {
        if (seenAt < t250) before++;
        lat.push(Math.max(0, seenAt - t250));
        fromStart.push(seenAt - tStart);
      }
      await sleep(20);
    }
    await smtp.quit();
    lat.sort((a, b) => a - b);
    fromStart.sort((a, b) => a - b);
    const n = Math.max(1, established - watchers.length);
    return {
      target,
      established,
      failed,
      loginSeconds,
      loginsPerSec: (established - watchers.length) / loginSeconds,
      baseline,
      loaded,
      rssPerConnKB: (loaded.rss - baseline.rss) / n / 1024,
      pssPerConnKB: (loaded.pss - baseline.pss) / n / 1024,
      txP50: percentile(fromStart, 50),
      txP99: percentile(fromStart, 99),
      pushP50: percentile(lat, 50),
      pushP99: percentile(lat, 99),
      pushMax: lat.length ? lat[lat.length - 1]! : NaN,
      pushLost: lost,
      pushBefore250: before,
    };
  } finally {
    for (const c of conns) c.destroy();
  }
}

export async function idle(): Promise<string> {
  const started = Date.now();
  const p = idleParams();
  const accounts = benchAccounts(p.accounts, 'idle');
  log(`Idle: up to ${p.connections} IDLE connections on ${p.accounts} accounts (${p.loginSeconds} s to open them), ${p.samples} push samples`);

  const peer = await attempt('Dovecot', async () => {
    const d = await startDovecot({ accounts, maxConnections: p.connections + 100 });
    const pf = await startPostfix({ lmtpPort: d.ports.lmtp, accounts });
    const r = await idleLoad(d.ports.imap, pf.port, accounts, p, () => d.memory());
    log(`dovecot: ${r.established} connections, ${(r.loaded.pss / 2 ** 20).toFixed(0)} MB PSS, push p99 ${r.pushP99.toFixed(1)} ms`);
    await pf.stop();
    await d.stop();
    return r;
  });

  const pb = await attempt('Pillarbox', async () => {
    const s = await startPillarbox({
      accounts,
      imapMaxConnections: Math.ceil(p.connections / p.accounts) + 10,
      limits: benchLimits(p.connections + 100),
    });
    const r = await idleLoad(s.ports.imap, s.ports.smtp, accounts, p, () => s.memory());
    log(`pillarbox: ${r.established} connections, ${(r.loaded.pss / 2 ** 20).toFixed(0)} MB PSS, push p99 ${r.pushP99.toFixed(1)} ms`);
    await s.stop();
    return r;
  });

  const mb = (b: number) => b / 2 ** 20;
  const rows: Row[] = [
    row('connections in IDLE reached', 'count', 'higher', pb, peer, (x) => x.established, (x) => x.established),
    row('logins while opening', 'per s', 'higher', pb, peer, (x) => x.loginsPerSec, (x) => x.loginsPerSec),
    row('memory per connection (PSS)', 'KB', 'lower', pb, peer, (x) => x.pssPerConnKB, (x) => x.pssPerConnKB),
    row('memory per connection (RSS sum)', 'KB', 'lower', pb, peer, (x) => x.rssPerConnKB, (x) => x.rssPerConnKB),
    row('total memory at that count (PSS)', 'MB', 'lower', pb, peer, (x) => mb(x.loaded.pss), (x) => mb(x.loaded.pss)),
    row('total memory at that count (RSS sum)', 'MB', 'lower', pb, peer, (x) => mb(x.loaded.rss), (x) => mb(x.loaded.rss)),
    row(`memory projected to ${p.connections.toLocaleString('en-US')} (PSS)`, 'MB', 'lower', pb, peer, (x) => mb(x.baseline.pss) + (x.pssPerConnKB * p.connections) / 1024, (x) => mb(x.baseline.pss) + (x.pssPerConnKB * p.connections) / 1024),
    row('server processes', 'count', 'none', pb, peer, (x) => x.loaded.processes, (x) => x.loaded.processes),
    row('SMTP 250 → EXISTS p50 (0: EXISTS came first)', 'ms', 'none', pb, peer, (x) => x.pushP50, (x) => x.pushP50),
    row('SMTP 250 → EXISTS p99', 'ms', 'none', pb, peer, (x) => x.pushP99, (x) => x.pushP99),
    row('SMTP MAIL FROM → EXISTS p50', 'ms', 'lower', pb, peer, (x) => x.txP50, (x) => x.txP50),
    row('SMTP MAIL FROM → EXISTS p99', 'ms', 'lower', pb, peer, (x) => x.txP99, (x) => x.txP99),
    row('EXISTS before the 250 (of the samples)', 'count', 'none', pb, peer, (x) => x.pushBefore250, (x) => x.pushBefore250),
    row('pushes not seen within 10 s', 'count', 'lower', pb, peer, (x) => x.pushLost, (x) => x.pushLost),
  ];
  return report({
    name: 'idle',
    title: `Idle connections: up to ${p.connections.toLocaleString('en-US')} in IDLE, push latency while idling`,
    peer: 'Dovecot',
    started,
    params: { ...p, fdLimit: softFdLimit() },
    rows,
    details: { pillarbox: pb, dovecot: peer, note: 'Dovecot push goes SMTP → Postfix → LMTP → Dovecot; Pillarbox SMTP → store → IDLE.' },
  });
}

if (isMain(import.meta.url)) await benchMain(async () => void (await idle()), { fdLimit: 65536 });
