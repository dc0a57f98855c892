// IDLE keepalive (`* OK Still here`, configurable) and autologout without a command, which never
// hits a session in IDLE (RFC 9051 §5.4). Limits shortened through DATA/config.json.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawImap } from './raw-client.ts';
import { startImapServer, type ImapTestServer } from './harness.ts';

let srv: ImapTestServer;
const U = 'judy@example.com';
const PW = 'judy-pw';

before(async () => {
  srv = await startImapServer({ limits: { imapIdleKeepalive: 200, imapIdleTimeout: 1000 } });
  await srv.addUser(U, PW);
});
after(async () => {
  await srv?.done();
});

test('IDLE gets "* OK Still here" keepalives and outlives the autologout timeout', async () => {
  const c = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
  try {
    await c.login(U, PW);
    await c.cmd('SELECT INBOX');
    c.write('i1 IDLE\r\n');
    assert.equal(await c.readLine(), '+ idling');
    const started = Date.now();
    let keepalives = 0;
    while (Date.now() - started < 2500) {
      const line = await c.readLine(1000);
      assert.equal(line, '* OK Still here');
      keepalives++;
    }
    assert.ok(keepalives >= 8, `keepalives: ${keepalives}`);
    c.write('DONE\r\n');
    let line = await c.readLine();
    while (line === '* OK Still here') line = await c.readLine();
    assert.equal(line, 'i1 OK IDLE terminated');
    assert.match((await c.cmd('NOOP')).tagged, /OK/);
  } finally {
    c.close();
  }
});

test('a session without commands is logged out after the timeout', async () => {
  const c = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
  await c.login(U, PW);
  const t0 = Date.now();
  const line = await c.readLine(5000);
  assert.match(line, /^\* BYE Autologout/);
  assert.ok(Date.now() - t0 >= 600, `logged out after ${Date.now() - t0} ms`);
  await c.readLine(2000).then(
    () => assert.fail('connection still open'),
    (err: Error) => assert.match(err.message, /closed/),
  );
});
