// The delivery workers (src/queue/delivery-pool.ts): SMTP client sessions on a worker thread against
// real smtp-server peers on loopback. What the engine relies on: one reply per recipient as the
// receiver gave it, sessions reused (RSET after a failed transaction), and a worker that dies in a
// transaction failing that transaction (never reporting it sent) with the next open on a new worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, ConfigError } from '../../../src/config/load.ts';
import { DeliveryPool } from '../../../src/queue/delivery-pool.ts';
import type { OutgoingMessage, TransportOptions } from '../../../src/queue/transport.ts';
import type { MxHost } from '../../../src/queue/mx.ts';
import { startPeer } from '../../helpers/smtp-peer.ts';

const BODY = Buffer.from('From: a@here.test\r\nTo: b@there.test\r\nSubject: hi\r\n\r\nHello\r\n.leading dot\r\n');
const opts = (port: number): TransportOptions => ({ hostname: 'out.here.test', port, connectTimeoutMs: 5000, replyTimeoutMs: 5000, deadlineMs: 10_000 });
const hosts: MxHost[] = [{ exchange: 'mx.there.test', priority: 10, implicit: false, A: ['127.0.0.1'], AAAA: [] }];
const msg = (to: string[], body = BODY): OutgoingMessage => ({
  mailFrom: 'a@here.test',
  recipients: to.map((address, i) => ({ id: i + 1, address, notify: null, orcpt: null })),
  size: body.length,
  envid: null,
  ret: null,
  body: () => body,
});
/** The pool's own worker module, remembered so a test can end it. */
const spawnInto = (workers: Worker[]) => () => {
  const w = new Worker(new URL('../../../src/queue/delivery-worker.ts', import.meta.url));
  workers.push(w);
  return w;
};

test('on a worker: STARTTLS, one reply per recipient as the receiver gave it, the body intact', async () => {
  const peer = await startPeer({ rcpt: (a) => (a.startsWith('gone@') ? [550, '5.1.1 no such user'] : a.startsWith('later@') ? [451, '4.2.1 try later'] : null) });
  const pool = new DeliveryPool({ threads: 1 });
  try {
    const s = await pool.open('there.test', hosts, null, opts(peer.port));
    assert.ok(s, 'a worker session');
    assert.equal(s.remote, true);
    const replies = await s.send(msg(['ok1@there.test', 'gone@there.test', 'later@there.test']), 10_000);
    const by = new Map(replies.map((r) => [r.id, r]));
    assert.equal(by.get(1)!.code, 250);
    assert.equal(by.get(2)!.code, 550);
    assert.match(by.get(2)!.reply, /^550 5\.1\.1 no such user/);
    assert.equal(by.get(3)!.code, 451);
    assert.equal(peer.messages.length, 1);
    assert.deepEqual(peer.messages[0]!.to, ['ok1@there.test']);
    assert.deepEqual(peer.messages[0]!.body, BODY);
    assert.equal(peer.messages[0]!.secure, true);
    s.close();
  } finally {
    await pool.close();
    await peer.close();
  }
});

test('a worker session is reused; after a refused transaction it is reset and the next one goes', async () => {
  let refuse = true;
  const peer = await startPeer({ data: () => (refuse ? [554, '5.7.1 not this one'] : null) });
  const pool = new DeliveryPool({ threads: 1 });
  try {
    const s = (await pool.open('there.test', hosts, null, opts(peer.port)))!;
    const r1 = await s.send(msg(['b@there.test']), 10_000);
    assert.equal(r1[0]!.code, 554);
    refuse = false;
    assert.equal(await s.reset(), true);
    const r2 = await s.send(msg(['b@there.test']), 10_000);
    assert.equal(r2[0]!.code, 250);
    assert.equal(s.sent, 2);
    assert.equal(peer.connections, 1, 'one connection for both transactions');
    s.close();
  } finally {
    await pool.close();
    await peer.close();
  }
});

test('a refused connection is a TransportError from open, as on the event loop', async () => {
  const peer = await startPeer();
  const port = peer.port;
  await peer.close();
  const pool = new DeliveryPool({ threads: 1 });
  try {
    await assert.rejects(pool.open('there.test', hosts, null, opts(port)), (e: Error & { reply?: string }) => /^451 4\.4\.1 /.test(e.reply ?? ''));
  } finally {
    await pool.close();
  }
});

test('the worker dies in a transaction: that transaction fails (not reported sent), the session is unusable, the next open gets a new worker', async () => {
  const peer = await startPeer({ dataDelayMs: 2000 });
  const workers: Worker[] = [];
  const pool = new DeliveryPool({ threads: 1, spawn: spawnInto(workers) });
  try {
    const s = (await pool.open('there.test', hosts, null, opts(peer.port)))!;
    const sending = s.send(msg(['b@there.test']), 10_000);
    // The receiver holds its DATA reply for 2 s; the worker ends meanwhile (or earlier in the
    // transaction on a slow machine: the same outcome is expected either way).
    await new Promise((r) => setTimeout(r, 300));
    await workers[0]!.terminate();
    await assert.rejects(sending, /delivery worker/);
    assert.equal(s.usable, false);
    const again = (await pool.open('there.test', hosts, null, opts(peer.port)))!;
    assert.equal(workers.length, 2, 'a new worker');
    const r = await again.send(msg(['b@there.test']), 10_000);
    assert.equal(r[0]!.code, 250);
    again.close();
  } finally {
    await pool.close();
    await peer.close();
  }
});

test('threads 0: no worker, open() answers null (the engine then opens the session on the loop)', async () => {
  const pool = new DeliveryPool({ threads: 0 });
  assert.equal(pool.enabled, false);
  assert.equal(await pool.open('there.test', hosts, null, opts(1)), null);
  await pool.close();
});

test('config outbound.deliveryThreads: null by default, a whole number 0-64, anything else refused with its name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-deliverycfg-'));
  try {
    assert.equal(loadConfig({ data: dir }, {}).outbound?.deliveryThreads, null);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ outbound: { deliveryThreads: 0 } }));
    assert.equal(loadConfig({ data: dir }, {}).outbound?.deliveryThreads, 0);
    for (const bad of [-1, 1.5, 65, 'two']) {
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ outbound: { deliveryThreads: bad } }));
      assert.throws(() => loadConfig({ data: dir }, {}), (e: Error) => e instanceof ConfigError && /outbound\.deliveryThreads/.test(e.message));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
