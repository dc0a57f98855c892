// Failed IMAP logins are throttled (per account and per IP, in the authenticator): past the limit
// even the right password is refused with NO [UNAVAILABLE], and the session itself stays usable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawImap } from './raw-client.ts';
import { startImapServer, type ImapTestServer } from './harness.ts';

let srv: ImapTestServer;
const U = 'mallory-target@example.com';
const PW = 'the-real-password';

before(async () => {
  srv = await startImapServer();
  await srv.addUser(U, PW);
});
after(async () => {
  await srv?.done();
});

test('ten wrong passwords, then even the right one is refused as throttled', async () => {
  const c = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
  try {
    for (let i = 0; i < 10; i++) {
      assert.match((await c.cmd(`LOGIN ${U} wrong${i}`)).tagged, /NO \[AUTHENTICATIONFAILED\] Invalid credentials/);
    }
    assert.match((await c.cmd(`LOGIN ${U} ${PW}`)).tagged, /NO \[UNAVAILABLE\]/);
    assert.match((await c.cmd(`AUTHENTICATE PLAIN ${Buffer.from(`\0${U}\0${PW}`).toString('base64')}`)).tagged, /NO \[UNAVAILABLE\]/);
    assert.match((await c.cmd('CAPABILITY')).tagged, /OK/);
  } finally {
    c.close();
  }
});
