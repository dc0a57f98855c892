// IMAP conformance defects found by an independent suite (issue 14), one test per rule, each
// against the real server with exact expected responses and the RFC section it checks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawImap } from './raw-client.ts';
import { startImapServer, type ImapTestServer } from './harness.ts';

let srv: ImapTestServer;
const A = 'conf@example.com';
const PW = 'pw-conf-1';

before(async () => {
  srv = await startImapServer();
  await srv.addUser(A, PW);
});
after(async () => {
  await srv?.done();
});

async function login(): Promise<RawImap> {
  const c = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
  await c.login(A, PW);
  return c;
}

/** A fresh mailbox holding `messages`, selected. */
async function mailbox(c: RawImap, name: string, messages: string[]): Promise<void> {
  assert.match((await c.cmd(`CREATE ${name}`)).tagged, / OK /);
  for (const m of messages) assert.match((await c.append(name, m)).tagged, / OK /);
  assert.match((await c.cmd(`SELECT ${name}`)).tagged, / OK /);
}

const crlf = (lines: string[]): string => lines.join('\r\n') + '\r\n';

test('RFC 3501 §7.4.2 ENVELOPE: a comment in an empty group is no mailbox; the group is its start/end pair', async () => {
  const c = await login();
  try {
    await mailbox(c, 'Envgroup', [crlf([
      'From: a@b.example',
      'To: undisclosed-recipients:(foo);',
      'Cc: g: (c1), (c2) ;, x@y.example',
      'Bcc: (only a comment)',
      'Subject: t',
      '',
      'hi',
    ])]);
    const r = await c.cmd('FETCH 1 ENVELOPE');
    assert.deepEqual(r.lines, [
      '* 1 FETCH (ENVELOPE (NIL "t" ((NIL NIL "a" "b.example")) ((NIL NIL "a" "b.example")) ((NIL NIL "a" "b.example"))' +
        ' ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))' +
        ' ((NIL NIL "g" NIL)(NIL NIL NIL NIL)(NIL NIL "x" "y.example")) NIL NIL NIL))',
    ]);
  } finally {
    c.close();
  }
});
