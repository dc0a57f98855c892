// POP3 session lifecycle: autologout, server shutdown and plaintext on loopback when allowed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, addAccount, deliverMessages, makeMessage, LineClient } from './harness.ts';

test('autologout after inactivity: -ERR, connection closed, DELE marks not applied (RFC 1939 §3)', async () => {
  const h = await startHarness({ pop3Timeout: 1000 });
  try {
    const acc = await addAccount(h.store, 'idle@example.com', 'pw');
    await deliverMessages(h.store, acc.id, [makeMessage(1), makeMessage(2)]);
    const c = await LineClient.connect(h.tlsPort, true);
    assert.match(await c.login('idle@example.com', 'pw'), /^\+OK/);
    assert.equal(await c.cmd('DELE 1'), '+OK Message 1 deleted');
    assert.equal(await c.line(), '-ERR [SYS/TEMP] Disconnected for inactivity; no changes were made');
    await c.waitClosed();
    const inbox = (await h.store.getMailbox(acc.id, 'INBOX'))!;
    assert.equal((await h.store.listMessages(inbox.id)).length, 2);
    // The lock went with the session.
    const d = await LineClient.connect(h.tlsPort, true);
    assert.match(await d.login('idle@example.com', 'pw'), /^\+OK Logged in; 2 messages/);
    await d.cmd('QUIT');
  } finally {
    await h.close();
  }
});

test('server shutdown: open sessions get -ERR [SYS/TEMP] and nothing is deleted; new connections are refused', async () => {
  const h = await startHarness();
  let closed = false;
  try {
    const acc = await addAccount(h.store, 'shut@example.com', 'pw');
    await deliverMessages(h.store, acc.id, [makeMessage(1)]);
    const inbox = (await h.store.getMailbox(acc.id, 'INBOX'))!;
    const c = await LineClient.connect(h.tlsPort, true);
    assert.match(await c.login('shut@example.com', 'pw'), /^\+OK/);
    assert.equal(await c.cmd('DELE 1'), '+OK Message 1 deleted');
    const idle = await LineClient.connect(h.port);
    const closing = h.pop3.close();
    assert.equal(await c.line(), '-ERR [SYS/TEMP] Server shutting down; no changes were made');
    assert.equal(await idle.line(), '-ERR [SYS/TEMP] Server shutting down; no changes were made');
    await Promise.all([c.waitClosed(), idle.waitClosed()]);
    await closing;
    const { connect } = await import('node:net');
    const late = connect({ port: h.port, host: '127.0.0.1' });
    let text = '';
    late.on('data', (d) => (text += d));
    await new Promise((r) => late.on('close', r));
    assert.equal(text, '-ERR [SYS/TEMP] Server shutting down\r\n');
    assert.equal((await h.store.listMessages(inbox.id)).length, 1);
    await h.close();
    closed = true;
  } finally {
    if (!closed) await h.close();
  }
});

test('plaintext USER/PASS on loopback when the config allows it', async () => {
  const h = await startHarness({ allowPlaintextLoopback: true });
  try {
    const acc = await addAccount(h.store, 'plain@example.com', 'pw');
    await deliverMessages(h.store, acc.id, [makeMessage(1)]);
    const c = await LineClient.connect(h.port);
    const [, caps] = await c.multiCmd('CAPA');
    assert.ok(caps.includes('USER') && caps.includes('SASL PLAIN') && caps.includes('STLS'));
    assert.match(await c.login('plain@example.com', 'pw'), /^\+OK Logged in; 1 message/);
    assert.match(await c.cmd('QUIT'), /^\+OK/);
  } finally {
    await h.close();
  }
});
