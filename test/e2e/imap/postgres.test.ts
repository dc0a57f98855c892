// The same IMAP behaviour on the PostgreSQL store: streamed APPEND, partial FETCH, IDLE
// notifications between two sessions, QRESYNC. Skipped when PostgreSQL is unreachable (CI=true: fails).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RawImap } from './raw-client.ts';
import { startImapServer, messageWithAttachment, simpleMessage, type ImapTestServer } from './harness.ts';
import { pgAvailability, probePostgres } from '../../store/pg-env.ts';

const avail = pgAvailability(await probePostgres());
let srv: ImapTestServer | undefined;
const U = 'pg-user@example.com';
const PW = 'pg-pass';

before(async () => {
  if (avail.fail) throw new Error(avail.fail);
  if (avail.skip) return;
  srv = await startImapServer({ postgres: true });
  await srv.addUser(U, PW);
});
after(async () => {
  await srv?.done();
});

async function login(): Promise<RawImap> {
  const c = await RawImap.connect(srv!.ports.imaps, { tls: true, ca: srv!.ca });
  await c.login(U, PW);
  return c;
}

test('PostgreSQL store: APPEND, partial FETCH, BINARY, IDLE between sessions, QRESYNC', { skip: avail.skip }, async () => {
  const a = await login();
  const b = await login();
  try {
    const attachment = randomBytes(70_000);
    const msg = messageWithAttachment(attachment);
    assert.match((await a.append('INBOX', msg)).tagged, /OK \[APPENDUID \d+ 1\]/);
    await a.cmd('ENABLE QRESYNC');
    const sel = await a.cmd('SELECT INBOX');
    const uidValidity = Number(/UIDVALIDITY (\d+)/.exec(sel.lines.join('\n'))![1]);
    const modseq = Number(/HIGHESTMODSEQ (\d+)/.exec(sel.lines.join('\n'))![1]);
    const bin = await a.cmd('UID FETCH 1 (BINARY.PEEK[2] BODY.PEEK[]<0.100>)');
    assert.deepEqual(RawImap.literalAfter(bin.raw, 'BINARY[2]'), attachment);
    assert.deepEqual(RawImap.literalAfter(bin.raw, 'BODY[]<0>'), msg.subarray(0, 100));

    // a idles; b appends, flags, expunges.
    a.write('i1 IDLE\r\n');
    assert.equal(await a.readLine(), '+ idling');
    await b.cmd('SELECT INBOX');
    await b.append('INBOX', simpleMessage('second'));
    assert.equal(await a.readLine(1000), '* 2 EXISTS');
    // IMAP4rev1 \Recent (RFC 3501 §2.3.2): a or b, whichever learnt of it first, has it.
    assert.match(await a.readLine(1000), /^\* [12] RECENT$/);
    await b.cmd('STORE 2 +FLAGS (\\Flagged)');
    assert.match(await a.readLine(1000), /^\* 2 FETCH \(UID 2 FLAGS \(\\Flagged( \\Recent)?\) MODSEQ \(\d+\)\)$/);
    await b.cmd('STORE 1 +FLAGS.SILENT (\\Deleted)');
    assert.match(await a.readLine(1000), /^\* 1 FETCH \(UID 1 FLAGS \(\\Deleted \\Recent\)/);
    await b.cmd('EXPUNGE');
    assert.equal(await a.readLine(1000), '* VANISHED 1');
    a.write('DONE\r\n');
    assert.equal(await a.readLine(), 'i1 OK IDLE terminated');

    const c = await login();
    await c.cmd('ENABLE QRESYNC');
    const r = await c.cmd(`SELECT INBOX (QRESYNC (${uidValidity} ${modseq}))`);
    assert.ok(r.lines.includes('* VANISHED (EARLIER) 1'), r.lines.join('\n'));
    assert.ok(r.lines.some((l) => /^\* 1 FETCH \(UID 2 FLAGS \(\\Flagged\) MODSEQ/.test(l)), r.lines.join('\n'));
    c.close();
  } finally {
    a.close();
    b.close();
  }
});
