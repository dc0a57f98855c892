// The SMTP client session of the queue (src/queue/transport.ts) against real smtp-server peers on
// loopback: STARTTLS, per-recipient replies, SMTPUTF8 refusal, connection reuse, SIZE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { SmtpSession, TransportError, type OutgoingMessage, type TransportOptions } from '../../../src/queue/transport.ts';
import type { MxHost } from '../../../src/queue/mx.ts';
import { startPeer } from '../../helpers/smtp-peer.ts';

const BODY = Buffer.from('From: a@here.test\r\nTo: b@there.test\r\nSubject: hi\r\n\r\nHello\r\n.leading dot\r\n');
const opts = (port: number): TransportOptions => ({ hostname: 'out.here.test', port, connectTimeoutMs: 5000, replyTimeoutMs: 5000, deadlineMs: 10_000 });
const hosts: MxHost[] = [{ exchange: 'mx.there.test', priority: 10, implicit: false, A: ['127.0.0.1'], AAAA: [] }];
const msg = (to: string[], from = 'a@here.test', body = BODY): OutgoingMessage => ({
  mailFrom: from,
  recipients: to.map((address, i) => ({ id: i + 1, address, notify: null, orcpt: null })),
  size: body.length,
  envid: null,
  ret: null,
  body: () => Readable.from([body]),
});

test('STARTTLS is used when offered; EHLO carries our hostname; dot-stuffed body arrives intact', async () => {
  const peer = await startPeer();
  try {
    const s = await SmtpSession.toMx('there.test', hosts, opts(peer.port));
    assert.equal(s.secure, true);
    const replies = await s.send(msg(['b@there.test']), 10_000);
    s.close();
    assert.deepEqual(replies.map((r) => [r.id, r.code]), [[1, 250]]);
    assert.equal(peer.messages.length, 1);
    assert.equal(peer.messages[0]!.secure, true);
    assert.deepEqual(peer.messages[0]!.body, BODY);
    assert.deepEqual(peer.helos, ['out.here.test']);
  } finally {
    await peer.close();
  }
});

test('no STARTTLS offered: plaintext (opportunistic)', async () => {
  const peer = await startPeer({ server: { hideSTARTTLS: true } });
  try {
    const s = await SmtpSession.toMx('there.test', hosts, opts(peer.port));
    assert.equal(s.secure, false);
    const replies = await s.send(msg(['b@there.test']), 10_000);
    s.close();
    assert.equal(replies[0]!.code, 250);
    assert.equal(peer.messages[0]!.secure, false);
  } finally {
    await peer.close();
  }
});

test('per-recipient replies: RCPT 550 and 451 for some, DATA reply for the accepted ones', async () => {
  const peer = await startPeer({
    rcpt: (a) => (a.startsWith('gone@') ? [550, '5.1.1 no such user'] : a.startsWith('later@') ? [451, '4.2.1 try later'] : null),
  });
  try {
    const s = await SmtpSession.toMx('there.test', hosts, opts(peer.port));
    const replies = await s.send(msg(['ok1@there.test', 'gone@there.test', 'later@there.test', 'ok2@there.test']), 10_000);
    s.close();
    const by = new Map(replies.map((r) => [r.id, r]));
    assert.equal(by.get(1)!.code, 250);
    assert.equal(by.get(2)!.code, 550);
    assert.match(by.get(2)!.reply, /^550 5\.1\.1 no such user/);
    assert.equal(by.get(3)!.code, 451);
    assert.equal(by.get(4)!.code, 250);
    assert.deepEqual(peer.messages[0]!.to, ['ok1@there.test', 'ok2@there.test']);
    // Every recipient refused: each still gets its own reply.
    const s2 = await SmtpSession.toMx('there.test', hosts, opts(peer.port));
    const r2 = await s2.send(msg(['gone@there.test', 'later@there.test']), 10_000);
    s2.close();
    assert.deepEqual(r2.map((r) => r.code), [550, 451]);
  } finally {
    await peer.close();
  }
});

test('a DATA refusal applies to the accepted recipients; RCPT refusals keep theirs', async () => {
  const peer = await startPeer({ rcpt: (a) => (a.startsWith('gone@') ? [550, '5.1.1 nope'] : null), data: () => [554, '5.7.1 spam'] });
  try {
    const s = await SmtpSession.toMx('there.test', hosts, opts(peer.port));
    const replies = await s.send(msg(['a@there.test', 'gone@there.test']), 10_000);
    s.close();
    assert.deepEqual(replies.map((r) => r.code), [554, 550]);
    assert.match(replies[0]!.reply, /5\.7\.1 spam/);
  } finally {
    await peer.close();
  }
});

test('non-ASCII addresses to a server without SMTPUTF8: 553 5.6.7 with the reason; the others still go', async () => {
  const peer = await startPeer({ server: { hideSMTPUTF8: true } });
  try {
    const s = await SmtpSession.toMx('there.test', hosts, opts(peer.port));
    const replies = await s.send(msg(['jürgen@there.test', 'plain@there.test']), 10_000);
    assert.equal(replies.find((r) => r.id === 1)!.code, 553);
    assert.match(replies.find((r) => r.id === 1)!.reply, /^553 5\.6\.7 .*SMTPUTF8.*mx\.there\.test/);
    assert.equal(replies.find((r) => r.id === 2)!.code, 250);
    assert.deepEqual(peer.messages.map((m) => m.to), [['plain@there.test']]);
    // A non-ASCII sender fails everyone.
    const r2 = await s.send(msg(['plain@there.test'], 'andré@here.test'), 10_000);
    s.close();
    assert.deepEqual(r2.map((r) => r.code), [553]);
    assert.equal(peer.messages.length, 1);
  } finally {
    await peer.close();
  }
  // With SMTPUTF8 offered, the same message goes.
  const peer2 = await startPeer();
  try {
    const s = await SmtpSession.toMx('there.test', hosts, opts(peer2.port));
    const replies = await s.send(msg(['jürgen@there.test']), 10_000);
    s.close();
    assert.equal(replies[0]!.code, 250);
    assert.equal(peer2.messages[0]!.params.SMTPUTF8, true);
  } finally {
    await peer2.close();
  }
});

test('connection reuse: several transactions on one connection', async () => {
  const peer = await startPeer();
  try {
    const s = await SmtpSession.toMx('there.test', hosts, opts(peer.port));
    for (let i = 0; i < 3; i++) {
      const r = await s.send(msg([`r${i}@there.test`]), 10_000);
      assert.equal(r[0]!.code, 250);
      assert.equal(await s.reset(), true);
    }
    s.close();
    assert.equal(peer.connections, 1);
    assert.equal(new Set(peer.messages.map((m) => m.session)).size, 1);
    assert.equal(peer.messages.length, 3);
  } finally {
    await peer.close();
  }
});

test('SIZE: a message over the advertised limit is refused permanently without sending it', async () => {
  const peer = await startPeer({ server: { size: 50 } });
  try {
    const s = await SmtpSession.toMx('there.test', hosts, opts(peer.port));
    const r = await s.send(msg(['b@there.test']), 10_000);
    s.close();
    assert.equal(r[0]!.code, 552);
    assert.equal(peer.messages.length, 0);
  } finally {
    await peer.close();
  }
});

test('nobody listening: TransportError, temporary (code 0)', async () => {
  const peer = await startPeer();
  const port = peer.port;
  await peer.close();
  await assert.rejects(SmtpSession.toMx('there.test', hosts, opts(port)), (e: unknown) => e instanceof TransportError && e.code === 0 && /^451 4\.4\.1 /.test(e.reply));
});
