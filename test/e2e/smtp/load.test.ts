// Issue #3: 100 concurrent senders × 20 messages each are all stored exactly once; and with the
// server SIGKILLed half-way, every message that got a 250 is there after a restart.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { withStore } from './util.ts';

const USERS = ['l1@example.com', 'l2@example.com', 'l3@example.com', 'l4@example.com'];
const tmp = mkdtempSync(join(tmpdir(), 'pb-smtp-load-'));
const configFile = join(tmp, 'config.json');
writeFileSync(configFile, JSON.stringify({ limits: { maxConnectionsPerIp: 500 } }));
const servers: TestServer[] = [];
after(async () => {
  for (const s of servers) await s.stop().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
});

async function start(dataDir?: string): Promise<TestServer> {
  const s = await startServer({ args: ['--config', configFile], ...(dataDir ? { dataDir } : {}) });
  servers.push(s);
  return s;
}

/** Message-ID → number of stored copies, over every test account. */
async function census(dataDir: string): Promise<Map<string, number>> {
  return withStore(dataDir, async (s) => {
    const seen = new Map<string, number>();
    for (const u of USERS) {
      const acc = (await s.getAccount(u))!;
      const mb = (await s.getMailbox(acc.id, 'INBOX'))!;
      for (const m of await s.getMessages(mb.id, (await s.listMessages(mb.id)).map((x) => x.uid))) {
        const id = m.meta.envelope.messageId ?? '';
        seen.set(id, (seen.get(id) ?? 0) + 1);
      }
    }
    return seen;
  });
}

/** `senders` connections (nodemailer pools of one), each sending `perSender` messages in turn. */
function blast(srv: TestServer, senders: number, perSender: number, onAck: (id: string) => void, stop: () => boolean) {
  return Promise.all(
    Array.from({ length: senders }, async (_, s) => {
      const t = nodemailer.createTransport({ pool: true, maxConnections: 1, maxMessages: Infinity, host: '127.0.0.1', port: srv.ports.smtp, secure: false, ignoreTLS: true });
      try {
        for (let i = 0; i < perSender && !stop(); i++) {
          const id = `<load-${s}-${i}@test.example>`;
          const to = USERS[(s + i) % USERS.length]!;
          try {
            const info = await t.sendMail({ envelope: { from: `sender${s}@elsewhere.example`, to: [to] }, raw: `Message-ID: ${id}\r\nSubject: load ${s}/${i}\r\n\r\n${'z'.repeat(600)}\r\n` });
            if (info.accepted.length === 1) onAck(id);
          } catch {
            if (!stop()) throw new Error(`send ${id} failed while the server was up`);
          }
        }
      } finally {
        t.close();
      }
    }),
  );
}

test('100 concurrent senders × 20 messages: all 2,000 stored exactly once', { timeout: 180_000 }, async () => {
  const srv = await start();
  for (const u of USERS) await srv.addUser(u, 'pw');
  const acked: string[] = [];
  await blast(srv, 100, 20, (id) => acked.push(id), () => false);
  assert.equal(acked.length, 2000);
  const seen = await census(srv.dataDir);
  assert.equal(seen.size, 2000);
  for (const id of acked) assert.equal(seen.get(id), 1, id);
  await srv.stop();
});

test('SIGKILL half-way: every message that got a 250 is present after restart', { timeout: 180_000 }, async () => {
  const dataDir = mkdtempSync(join(tmp, 'data-'));
  const srv = await start(dataDir);
  for (const u of USERS) await srv.addUser(u, 'pw');
  const acked = new Set<string>();
  let killed = false;
  let killing: Promise<void> | null = null;
  await blast(
    srv,
    100,
    20,
    (id) => {
      acked.add(id);
      if (acked.size >= 700 && !killing) {
        killing = srv.kill().then(() => {
          killed = true;
        });
      }
    },
    () => killing !== null,
  );
  await killing;
  assert.ok(killed);
  const again = await srv.restart();
  servers.push(again);
  const seen = await census(dataDir);
  const missing = [...acked].filter((id) => !seen.has(id));
  assert.deepEqual(missing, [], `${missing.length} acknowledged messages lost`);
  for (const [id, n] of seen) assert.equal(n, 1, `${id} stored ${n} times`);
  assert.ok(acked.size >= 700 && acked.size < 2000);
  await again.stop();
});
