// Benchmark 3 (issue #6): SMTP ingest. S concurrent senders (default 50) deliver N messages
// (default 20,000) of ~10 KB to local accounts over SMTP; the clock stops when every message is
// readable in its mailbox (IMAP STATUS on every INBOX). Peer: Postfix on a high port delivering to
// Dovecot over LMTP. Each message is distinct (its own Message-ID and X-Bench-Seq).
//
// Env: BENCH_SMTP_MESSAGES (20000), BENCH_SMTP_SENDERS (50), BENCH_SMTP_ACCOUNTS (10),
//      BENCH_SMTP_SIZE (10240 bytes), BENCH_SMTP_TIMEOUT (300 s per server)

import { sizedMessage } from './lib/corpus.ts';
import { ImapConn } from './lib/imap-client.ts';
import { startDovecot, startPostfix } from './lib/peers.ts';
import { benchLimits, startPillarbox } from './lib/pillarbox.ts';
import { SmtpConn } from './lib/smtp-client.ts';
import { attempt, benchAccounts, benchMain, envInt, isMain, log, now, percentile, report, row, sleep, type Row } from './lib/util.ts';

export interface IngestParams {
  messages: number;
  senders: number;
  accounts: number;
  size: number;
  timeoutSeconds: number;
}

export function ingestParams(): IngestParams {
  return {
    messages: envInt('BENCH_SMTP_MESSAGES', 20000),
    senders: envInt('BENCH_SMTP_SENDERS', 50),
    accounts: envInt('BENCH_SMTP_ACCOUNTS', 10),
    size: envInt('BENCH_SMTP_SIZE', 10240),
    timeoutSeconds: envInt('BENCH_SMTP_TIMEOUT', 300),
  };
}

interface IngestResult {
  messages: number;
  acceptSeconds: number;
  storedSeconds: number;
  acceptedPerSec: number;
  storedPerSec: number;
  mbPerSec: number;
  p50: number;
  p99: number;
  rejected: number;
}

async function totalMessages(conns: ImapConn[]): Promise<number> {
  const counts = await Promise.all(
    conns.map(async (c) => {
      const r = await c.ok('STATUS INBOX (MESSAGES)');
      const m = /MESSAGES (\d+)/i.exec(r.untagged.join(' '));
      return m ? Number(m[1]) : 0;
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}

export async function ingest(smtpPort: number, imapPort: number, accounts: Array<{ address: string; password: string }>, p: IngestParams): Promise<IngestResult> {
  const base = sizedMessage(p.size - 120, { seed: 11, to: '<undisclosed-recipients:;>' });
  const watchers = await Promise.all(
    accounts.map(async (a) => {
      const c = await ImapConn.connect(imapPort);
      await c.login(a.address, a.password);
      return c;
    }),
  );
  const before = await totalMessages(watchers);
  const deadline = now() + p.timeoutSeconds * 1000;
  const lat: number[] = [];
  let next = 0;
  let rejected = 0;
  let lastAccept = 0;
  const t0 = now();
  const sender = async (si: number) => {
    let conn = await SmtpConn.open(smtpPort, `sender${si}.example.org`);
    while (next < p.messages) {
      if (now() > deadline) throw new Error(`timeout: ${next} of ${p.messages} sent in ${p.timeoutSeconds} s`);
      const i = next++;
      const to = accounts[i % accounts.length]!.address;
      const body = Buffer.concat([Buffer.from(`Message-ID: <ingest.${i}@bench.example.org>\r\nX-Bench-Seq: ${i}\r\n`), base]);
      const t = now();
      let r;
      try {
        r = await conn.send(`sender${si}@example.org`, to, body);
      } catch {
        // Connection dropped: reconnect once and retry this message.
        conn = await SmtpConn.open(smtpPort, `sender${si}.example.org`);
        r = await conn.send(`sender${si}@example.org`, to, body);
      }
      const t2 = now();
      if (r.code !== 250) {
        rejected++;
        if (rejected < 5) log(`rejected: ${r.code} ${r.text}`);
        if (rejected > 100) throw new Error(`too many rejections (${r.code} ${r.text.slice(0, 60)})`);
        next--; // retry later (4xx flow control)
        await sleep(100);
        continue;
      }
      lat.push(t2 - t);
      lastAccept = Math.max(lastAccept, t2);
    }
    await conn.quit();
  };
  await Promise.all(Array.from({ length: p.senders }, (_, i) => sender(i)));
  const acceptSeconds = (lastAccept - t0) / 1000;
  log(`  all ${p.messages} accepted in ${acceptSeconds.toFixed(1)} s; waiting until readable`);
  let stored = 0;
  for (;;) {
    stored = (await totalMessages(watchers)) - before;
    if (stored >= p.messages) break;
    if (now() > deadline) throw new Error(`timeout: ${stored} of ${p.messages} readable after ${p.timeoutSeconds} s`);
    await sleep(100);
  }
  const storedSeconds = (now() - t0) / 1000;
  for (const w of watchers) await w.logout();
  lat.sort((a, b) => a - b);
  return {
    messages: p.messages,
    acceptSeconds,
    storedSeconds,
    acceptedPerSec: p.messages / acceptSeconds,
    storedPerSec: p.messages / storedSeconds,
    mbPerSec: (p.messages * p.size) / 2 ** 20 / storedSeconds,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    rejected,
  };
}

export async function smtpIngest(): Promise<string> {
  const started = Date.now();
  const p = ingestParams();
  const accounts = benchAccounts(p.accounts, 'ingest');
  log(`SMTP ingest: ${p.messages} messages of ${p.size} bytes, ${p.senders} senders, ${p.accounts} accounts`);

  const peer = await attempt('Postfix → Dovecot', async () => {
    const d = await startDovecot({ accounts, maxConnections: 200 });
    const pf = await startPostfix({ lmtpPort: d.ports.lmtp, accounts });
    const r = await ingest(pf.port, d.ports.imap, accounts, p);
    log(`postfix→dovecot: ${r.storedPerSec.toFixed(0)} messages/s stored`);
    await pf.stop();
    await d.stop();
    return r;
  });

  const pb = await attempt('Pillarbox', async () => {
    const s = await startPillarbox({ accounts, limits: benchLimits(p.senders + 50) });
    const r = await ingest(s.ports.smtp, s.ports.imap, accounts, p);
    log(`pillarbox: ${r.storedPerSec.toFixed(0)} messages/s stored`);
    await s.stop();
    return r;
  });

  const rows: Row[] = [
    row('stored (sent → all readable)', 'msg/s', 'higher', pb, peer, (x) => x.storedPerSec, (x) => x.storedPerSec),
    row('stored', 'MB/s', 'higher', pb, peer, (x) => x.mbPerSec, (x) => x.mbPerSec),
    row('accepted (last 250)', 'msg/s', 'higher', pb, peer, (x) => x.acceptedPerSec, (x) => x.acceptedPerSec),
    row('time until all readable', 's', 'lower', pb, peer, (x) => x.storedSeconds, (x) => x.storedSeconds),
    row('MAIL FROM → final 250 p50', 'ms', 'lower', pb, peer, (x) => x.p50, (x) => x.p50),
    row('MAIL FROM → final 250 p99', 'ms', 'lower', pb, peer, (x) => x.p99, (x) => x.p99),
    row('temporary rejections', 'count', 'lower', pb, peer, (x) => x.rejected, (x) => x.rejected),
  ];
  return report({
    name: 'smtp-ingest',
    title: `SMTP ingest: ${p.messages.toLocaleString('en-US')} messages of ~${Math.round(p.size / 1024)} KB, ${p.senders} senders`,
    peer: 'Postfix→Dovecot',
    started,
    params: { ...p },
    rows,
    details: { pillarbox: pb, postfixDovecot: peer },
  });
}

if (isMain(import.meta.url)) await benchMain(async () => void (await smtpIngest()));
