// Where a queued body lives (issue 13): a message only the queue takes, up to QUEUE_INLINE_BODY
// bytes, is kept in the database with its queue rows (blobs.data, no file); a bigger one, or one a
// local mailbox also gets, is a blob file. Either way the receiver gets the bytes we were sent
// (without our Return-Path), and a body that waits for a retry survives a SIGKILL and restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startDns, type TestDns } from '../../helpers/dns.ts';
import { startPeer, type Peer } from '../../helpers/smtp-peer.ts';
import { stored } from '../smtp/util.ts';
import { blobPath } from '../../../src/store/blob/fs-blob-store.ts';
import { QUEUE_INLINE_BODY } from '../../../src/store/queue.ts';
import { startSender, submit, waitFor, type Sender } from './util.ts';

let dns: TestDns;
let peer: Peer;
let a: Sender;
let holding = true;

before(async () => {
  // hold@ is greylisted until the test lets it through.
  peer = await startPeer({ rcpt: (addr) => (addr.startsWith('hold') && holding ? [451, '4.7.1 greylisted, try again'] : null) });
  dns = await startDns([
    { name: 'there.test', type: 'MX', priority: 10, exchange: 'mx.there.test' },
    { name: 'mx.there.test', type: 'A', address: '127.0.0.1' },
  ]);
  a = await startSender({ hostname: 'mail.a.test', dnsServers: dns.servers, port: peer.port, outbound: { retryBase: 300, retryMax: 600, timeout: 5000 } });
  await a.addUser('adam@a.test', 'adam-pw');
});
after(async () => {
  await a?.done();
  await peer?.close();
  await dns?.close();
});

/** The queued body of the message with this subject: its id and whether its bytes are in the database. */
function queuedBody(srv: Sender, subject: string): { id: string; inDb: boolean; file: boolean } | null {
  const db = new Database(join(srv.dataDir, 'pillarbox.sqlite'), { readonly: true });
  try {
    for (const r of db.prepare('SELECT b.id, b.data FROM queue_messages q JOIN blobs b ON b.id = q.blob_id').all() as Array<{ id: string; data: Buffer | null }>) {
      const bytes = r.data ?? null;
      const file = existsSync(blobPath(join(srv.dataDir, 'blobs'), r.id));
      const text = (bytes ?? Buffer.alloc(0)).toString('latin1');
      if (bytes ? text.includes(`Subject: ${subject}`) : file) return { id: r.id, inDb: bytes !== null, file };
    }
    return null;
  } finally {
    db.close();
  }
}

const received = (subject: string) => peer.messages.find((m) => m.body.toString('latin1').includes(`Subject: ${subject}`));

test('a small message for other domains only: kept in the database while queued, survives SIGKILL, arrives intact', async () => {
  const text = 'small body line\n'.repeat(50);
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['hold@there.test'], subject: 'small held', text });
  const q = await waitFor('the queued body', () => queuedBody(a, 'small held'));
  assert.deepEqual([q.inDb, q.file], [true, false], 'in the database, no file');
  await a.kill();
  const old = a;
  const next = await a.restart();
  a = Object.assign(next, {
    async done() {
      await next.stop();
      await old.done();
    },
  });
  holding = false;
  const m = await waitFor('delivery after the restart', () => received('small held'));
  const s = m.body.toString('latin1');
  assert.ok(s.includes(text.replaceAll('\n', '\r\n')));
  assert.ok(!/^Return-Path:/im.test(s.slice(0, s.indexOf('\r\n\r\n'))), 'no Return-Path leaves');
  holding = true;
});

test(`a message over ${QUEUE_INLINE_BODY} bytes is a blob file while queued, and arrives intact`, async () => {
  const text = `${'0123456789abcdef'.repeat(4)}\n`.repeat(Math.ceil((QUEUE_INLINE_BODY + 50_000) / 65));
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['hold2@there.test'], subject: 'big held', text });
  const q = await waitFor('the queued body', () => queuedBody(a, 'big held'));
  assert.deepEqual([q.inDb, q.file], [false, true], 'a file, not in the database');
  holding = false;
  const m = await waitFor('delivery', () => received('big held'));
  assert.ok(m.body.toString('latin1').includes(text.replaceAll('\n', '\r\n')));
  holding = true;
});

test('one message to a local mailbox and another domain: the mailbox gets it and so does the other domain', async () => {
  await submit(a, 'adam@a.test', 'adam-pw', { to: ['adam@a.test', 'bob@there.test'], subject: 'local and remote' });
  await waitFor('remote delivery', () => received('local and remote'));
  const inbox = await stored(a.dataDir, 'adam@a.test');
  assert.equal(inbox.filter((b) => b.toString('latin1').includes('Subject: local and remote')).length, 1);
});
