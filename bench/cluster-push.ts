// Issue 15: push across nodes behind HAProxy. Three Pillarbox nodes on one PostgreSQL schema,
// HAProxy (Debian's /usr/sbin/haproxy, TCP mode, `send-proxy-v2`, round robin, health checks)
// in front of their IMAP and SMTP listeners. One IDLE client per account connects through HAProxy
// (so spread over the nodes); BENCH_PUSH_DELIVERIES (1000) SMTP deliveries go through HAProxy
// (so mostly to another node than the IDLE client's), one account at a time per worker. Reports
// p50/p99 of SMTP 250 → `* n EXISTS` on the IDLE client (the issue's goal: p99 within 1 s).
// Halfway, one node is SIGKILLed: its IDLE clients reconnect through HAProxy to the others
// (arrivals meanwhile are seen at SELECT, not counted as push samples), SMTP clients whose
// connection broke before 250 retry; at the end every account is read afresh and the messages
// found are compared with the deliveries acknowledged (nothing acknowledged may be lost).
// Not a timed assertion: figures only. No Dovecot/Postfix figure (they have no comparable
// multi-node setup here). Env: BENCH_PUSH_DELIVERIES (1000), BENCH_PUSH_ACCOUNTS (30),
// BENCH_PUSH_WORKERS (6), BENCH_PUSH_KILL (1: kill a node halfway; 0: not).
import { spawn, type ChildProcess } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type TestServer } from '../test/helpers/server.ts';
import { RawImap } from '../test/e2e/imap/raw-client.ts';
import { PG_URL, dropSchema, freshSchemaName } from '../test/store/pg-env.ts';
import { freePort } from './lib/peers.ts';
import { deliver, Watcher } from './lib/push.ts';
import { envInt, percentile } from './lib/util.ts';

const HAPROXY = '/usr/sbin/haproxy';
const N = envInt('BENCH_PUSH_DELIVERIES', 1000);
const ACCOUNTS = envInt('BENCH_PUSH_ACCOUNTS', 30);
const WORKERS = envInt('BENCH_PUSH_WORKERS', 6);
const KILL = envInt('BENCH_PUSH_KILL', 1) === 1;
const addr = (i: number) => `push${i}@example.com`;
const PW = 'pw-push-1';

async function waitPort(port: number, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = netConnect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not start`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<void> {
  const schema = freshSchemaName();
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-push-'));
  const nodes: TestServer[] = [];
  let haproxy: ChildProcess | null = null;
  const watchers: Watcher[] = [];
  try {
    for (const name of ['a', 'b', 'c']) {
      const dataDir = mkdtempSync(join(tmpdir(), `pillarbox-push-${name}-`));
      writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ cluster: { node: `node-${name}` }, proxyProtocol: { listeners: ['imap', 'smtp'], trusted: ['127.0.0.1'] } }));
      nodes.push(await startServer({ dataDir, plaintext: true, database: `${PG_URL}?schema=${schema}` }));
    }
    for (let i = 0; i < ACCOUNTS; i++) await nodes[0]!.addUser(addr(i), PW);
    const imapPort = await freePort();
    const smtpPort = await freePort();
    const backend = (l: 'imap' | 'smtp') => nodes.map((n, i) => `  server n${i} 127.0.0.1:${n.ports[l]} send-proxy-v2 check inter 500ms fall 1 rise 2`).join('\n');
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      `defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n\n` +
        `frontend f-imap\n  bind 127.0.0.1:${imapPort}\n  default_backend b-imap\nbackend b-imap\n  balance roundrobin\n${backend('imap')}\n` +
        `frontend f-smtp\n  bind 127.0.0.1:${smtpPort}\n  default_backend b-smtp\nbackend b-smtp\n  balance roundrobin\n  retries 3\n  option redispatch\n${backend('smtp')}\n`,
    );
    haproxy = spawn(HAPROXY, ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
    await waitPort(imapPort, 'haproxy');
    await waitPort(smtpPort, 'haproxy');

    for (let i = 0; i < ACCOUNTS; i++) {
      const w = new Watcher(i, addr(i), PW, () => RawImap.connect(imapPort));
      await w.start();
      watchers.push(w);
    }
    // Per account: the ack time of its n-th acknowledged delivery (one delivery per account at a time).
    const ackAt = Array.from({ length: ACCOUNTS }, () => [] as number[]);
    let next = 0;
    let retries = 0;
    let killedAt = 0;
    const worker = async (w: number) => {
      for (;;) {
        const k = next++;
        if (k >= N) return;
        if (KILL && k === Math.floor(N / 2) && !killedAt) {
          killedAt = Date.now();
          await nodes[1]!.kill();
          console.log(`# SIGKILL node-b after ${k} deliveries`);
        }
        // Accounts w, w+WORKERS, …: one worker per account, so its deliveries are in order.
        const accts = Math.ceil((ACCOUNTS - w) / WORKERS);
        const a = w + WORKERS * (k % accts);
        for (;;) {
          if (await deliver(smtpPort, addr(a), k)) break;
          retries++;
          await new Promise((r) => setTimeout(r, 100));
        }
        ackAt[a]!.push(Date.now());
      }
    };
    const t0 = Date.now();
    await Promise.all(Array.from({ length: Math.min(WORKERS, ACCOUNTS) }, (_, w) => worker(w)));
    const sendMs = Date.now() - t0;
    // Let the last pushes arrive.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && watchers.some((w) => w.seenAt.size < ackAt[w.account]!.length)) await new Promise((r) => setTimeout(r, 100));

    const lat: number[] = [];
    let missingPush = 0;
    for (const w of watchers) {
      ackAt[w.account]!.forEach((at, i) => {
        const seen = w.seenAt.get(i + 1);
        if (seen === undefined) missingPush++;
        else if (!w.atSelect.has(i + 1)) lat.push(Math.max(0, seen - at));
      });
    }
    lat.sort((x, y) => x - y);
    // Nothing acknowledged lost: every account read afresh through HAProxy.
    let acked = 0;
    let found = 0;
    for (let i = 0; i < ACCOUNTS; i++) {
      const c = await RawImap.connect(imapPort);
      await c.login(addr(i), PW);
      const sel = await c.cmd('SELECT INBOX');
      const m = sel.lines.map((l) => /^\* (\d+) EXISTS$/.exec(l)).find(Boolean);
      found += m ? Number(m[1]) : 0;
      acked += ackAt[i]!.length;
      c.close();
    }
    const reconnects = watchers.reduce((s, w) => s + w.reconnects, 0);
    console.log(`# cluster-push: 3 nodes on one PostgreSQL behind HAProxy (send-proxy-v2), ${ACCOUNTS} IDLE clients, ${N} SMTP deliveries in ${sendMs} ms over ${WORKERS} workers`);
    console.log(`#   SMTP 250 -> EXISTS on the IDLE client: p50 ${percentile(lat, 50)} ms, p99 ${percentile(lat, 99)} ms, max ${lat.at(-1)} ms (${lat.length} samples; goal p99 <= 1000 ms)`);
    console.log(`#   node killed: ${KILL ? 'node-b (SIGKILL) halfway' : 'none'}; IDLE reconnects ${reconnects}; SMTP retries ${retries}; never pushed ${missingPush}`);
    console.log(`#   acknowledged ${acked}, found in the mailboxes ${found}: ${found >= acked ? 'nothing acknowledged lost' : `${acked - found} LOST`}${found > acked ? ` (${found - acked} more than acknowledged: delivered, the 250 lost with the node)` : ''}`);
  } finally {
    for (const w of watchers) await w.stop();
    haproxy?.kill('SIGTERM');
    for (const n of nodes) await n.stop().catch(() => {});
    await dropSchema(schema).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
