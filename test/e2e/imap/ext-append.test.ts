// Issue 14 extensions, part 2: MULTIAPPEND (RFC 3502) and REPLACE (RFC 8508), with UIDPLUS
// APPENDUID (RFC 4315). The RFCs' examples against the real server (both store backends): raw
// lines in, exact responses out; all or nothing; the OK only after the commit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { continued, crlf, eachBackend, mailbox, ok, ownServer, uidValidity } from './conformance-env.ts';
import { RawImap } from './raw-client.ts';

// RFC 3502 §6.3.11 example messages (329 and 295 octets).
const FRED = crlf([
  'Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)',
  'From: Fred Foobar <foobar@Blurdybloop.example.COM>',
  'Subject: afternoon meeting',
  'To: mooch@owatagu.example.net',
  'Message-Id: <B27397-0100000@Blurdybloop.example.COM>',
  'MIME-Version: 1.0',
  'Content-Type: TEXT/PLAIN; CHARSET=US-ASCII',
  '',
  'Hello Joe, do you think we can meet at 3:30 tomorrow?',
]);
const JOE = crlf([
  'Date: Mon, 7 Feb 1994 22:43:04 -0800 (PST)',
  'From: Joe Mooch <mooch@OWaTaGu.example.net>',
  'Subject: Re: afternoon meeting',
  'To: foobar@blurdybloop.example.com',
  'Message-Id: <a0434793874930@OWaTaGu.example.net>',
  'MIME-Version: 1.0',
  'Content-Type: TEXT/PLAIN; CHARSET=US-ASCII',
  '',
  '3:30 is fine with me.',
]);
// RFC 8508 §3.2 example message (312 octets).
const FRITZ = (n: string, extra: string[] = []) =>
  crlf([
    'Date: Thu, 1 Jan 2015 00:05:00 -0500 (EST)',
    'From: Fritz Schmidt <fritz.ze@example.org>',
    'Subject: happy new year !!',
    'To: miss.mitzy@example.org',
    `Message-Id: <B23882238${n}-0100000@example.org>`,
    'MIME-Version: 1.0',
    'Content-Type: TEXT/PLAIN; CHARSET=US-ASCII',
    '',
    'Just saw the best fireworks show. Wish you were here.',
    ...extra,
    '',
  ]);

eachBackend('IMAP extensions: MULTIAPPEND, REPLACE', (env) => {
  const { session } = env;
  test('RFC 3502 §6.3.11 example: two messages in one APPEND, one APPENDUID with both UIDs; TRYCREATE before any data', () =>
    session(async (c) => {
      assert.match((await ok(c, 'CAPABILITY'))[0]!, / MULTIAPPEND( |$)/);
      await ok(c, 'ENABLE IMAP4rev2'); // no \Recent in the FETCH below
      await ok(c, 'CREATE saved-messages');
      const uv = await uidValidity(c, 'saved-messages');
      assert.equal([FRED.length, JOE.length].join(), '329,295');
      await continued(c, `A003 APPEND saved-messages (\\Seen) {329}`);
      await continued(c, `${FRED} (\\Seen) " 7-Feb-1994 22:43:04 -0800" {295}`);
      c.write(`${JOE}\r\n`);
      assert.equal((await c.until('A003')).tagged, `A003 OK [APPENDUID ${uv} 1:2] APPEND completed`);
      await ok(c, 'EXAMINE saved-messages');
      const f = await c.cmd('FETCH 1:2 (FLAGS INTERNALDATE BODY.PEEK[])');
      assert.equal(RawImap.literalAfter(f.raw, 'BODY[]')!.toString(), FRED);
      assert.ok(f.raw.toString().includes(`* 2 FETCH (FLAGS (\\Seen) INTERNALDATE "08-Feb-1994 06:43:04 +0000" BODY[] {295}\r\n${JOE})`), f.raw.toString());
      // The second command of the example: no such mailbox, NO [TRYCREATE] instead of "+".
      c.write('A004 APPEND bogusname (\\Flagged) {1023}\r\n');
      assert.equal(await c.readLine(), 'A004 NO [TRYCREATE] Mailbox bogusname does not exist');
      assert.deepEqual(await ok(c, 'NOOP'), []);
    }));

  test('RFC 3502 §6.3.11 example 3: a later message over the quota fails the whole APPEND; nothing is added', async () => {
    const quota = { user: 'quota-ma@example.com', password: 'pw-quota-1' };
    await env.srv.addUser(quota.user, quota.password, { quota: '2KB' });
    await session(async (c) => {
      await ok(c, 'CREATE test');
      const first = crlf(['Date: Mon, 7 Feb 2000 22:43:04 -0800 (PST)', 'From: Fred Foobar <fred@example.com>', 'Subject: hmm...']);
      assert.equal(first.length, 99);
      await continued(c, 'A005 APPEND test (\\Flagged) {99}');
      // The quota is checked again before each literal: the whole command is refused, no "+".
      c.write(`${first} {35403}\r\n`);
      assert.equal(await c.readLine(), 'A005 NO [OVERQUOTA] The message does not fit in the mailbox quota');
      assert.deepEqual(await ok(c, 'STATUS test (MESSAGES UIDNEXT)'), ['* STATUS "test" (MESSAGES 0 UIDNEXT 1)']);
      // Within the quota, the same message goes in.
      assert.match((await c.append('test', first, '(\\Flagged)')).tagged, /^t\d+ OK \[APPENDUID \d+ 1\] /);
    }, quota);
  });

  test('RFC 3502: LITERAL+ messages; a zero-length message cancels the APPEND (NO), the earlier ones are not added', () =>
    session(async (c) => {
      await mailbox(c, 'Multi', []);
      // Into the selected mailbox: the new messages are announced with EXISTS before the OK.
      const a = crlf(['Subject: a', '', 'aaa']);
      const b = crlf(['Subject: b', '', 'bb']);
      c.write(`m1 APPEND Multi {${a.length}+}\r\n${a} ($Label1) {${b.length}+}\r\n${b} {${a.length}+}\r\n${a}\r\n`);
      const r = await c.until('m1');
      const uv = await uidValidity(c, 'Multi');
      assert.deepEqual(r.lines, ['* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Label1)', '* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Label1 \\*)] Flags permitted', '* 3 EXISTS', '* 3 RECENT']);
      assert.equal(r.tagged, `m1 OK [APPENDUID ${uv} 1:3] APPEND completed`);
      // Cancelled by {0+}: the data of the first message was read, nothing committed.
      c.write(`m2 APPEND Multi {${a.length}+}\r\n${a} {0+}\r\n\r\n`);
      assert.deepEqual(await c.until('m2'), { lines: [], tagged: 'm2 NO Empty message: APPEND cancelled', raw: Buffer.from('m2 NO Empty message: APPEND cancelled\r\n') });
      // And by a synchronizing {0}: NO instead of "+".
      await continued(c, `m3 APPEND Multi {${a.length}}`);
      c.write(`${a} {0}\r\n`);
      assert.equal(await c.readLine(), 'm3 NO Empty message: APPEND cancelled');
      assert.deepEqual(await ok(c, 'STATUS Multi (MESSAGES UIDNEXT)'), ['* STATUS "Multi" (MESSAGES 3 UIDNEXT 4)']);
      assert.deepEqual(await ok(c, 'FETCH 1:3 (FLAGS RFC822.SIZE)'), [
        `* 1 FETCH (FLAGS (\\Recent) RFC822.SIZE ${a.length})`,
        `* 2 FETCH (FLAGS (\\Recent $Label1) RFC822.SIZE ${b.length})`,
        `* 3 FETCH (FLAGS (\\Recent) RFC822.SIZE ${a.length})`,
      ]);
      // A syntax error after the messages were uploaded: BAD, nothing added.
      c.write(`m4 APPEND Multi {${a.length}+}\r\n${a} junk\r\n`);
      assert.match((await c.until('m4')).tagged, /^m4 BAD /);
      assert.deepEqual(await ok(c, 'NOOP'), []);
    }));

  test('RFC 8508 §3.2/§3.3 examples: REPLACE and UID REPLACE; APPENDUID first, the old message expunged in the same step', () =>
    session(async (c, another) => {
      const other = await another();
      assert.match((await ok(c, 'CAPABILITY'))[0]!, / REPLACE( |$)/);
      await ok(c, 'ENABLE IMAP4rev2');
      await ok(other, 'ENABLE IMAP4rev2');
      await mailbox(c, 'RDrafts', ['1', '2', '3', '4'].map((n) => crlf([`Subject: draft ${n}`, '', n])));
      await ok(other, 'SELECT RDrafts');
      const uv = await uidValidity(c, 'RDrafts');
      const v1 = FRITZ('8');
      assert.equal(v1.length, 312);
      await continued(c, 'A003 REPLACE 4 RDrafts (\\Seen \\Draft) {312}');
      c.write(`${v1}\r\n`);
      const r1 = await c.until('A003');
      assert.deepEqual(r1.lines, [`* OK [APPENDUID ${uv} 5] Replacement message ready`, '* 4 EXPUNGE', '* 4 EXISTS']);
      assert.equal(r1.tagged, 'A003 OK REPLACE completed');
      const v2 = FRITZ('9', ['Hopefully next year you can join us.']);
      await continued(c, `A004 UID REPLACE 5 RDrafts (\\Seen \\Draft) {${v2.length}}`);
      c.write(`${v2}\r\n`);
      const r2 = await c.until('A004');
      assert.deepEqual(r2.lines, [`* OK [APPENDUID ${uv} 6] Replacement message ready`, '* 4 EXPUNGE', '* 4 EXISTS']);
      assert.equal(r2.tagged, 'A004 OK UID REPLACE completed');
      assert.deepEqual(await ok(c, 'UID FETCH 1:* (FLAGS RFC822.SIZE)'), [
        '* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 23)',
        '* 2 FETCH (UID 2 FLAGS () RFC822.SIZE 23)',
        '* 3 FETCH (UID 3 FLAGS () RFC822.SIZE 23)',
        `* 4 FETCH (UID 6 FLAGS (\\Seen \\Draft) RFC822.SIZE ${v2.length})`,
      ]);
      // Another session sees one message gone and one new, never both or neither.
      assert.deepEqual(await ok(other, 'NOOP'), ['* 4 EXPUNGE', '* 4 EXISTS']);
      // Into another mailbox (\Drafts → \Sent after submission, §3.4): only the EXPUNGE here.
      await ok(c, 'CREATE RSent');
      const uvs = await uidValidity(c, 'RSent');
      await continued(c, `A005 UID REPLACE 6 RSent (\\Seen) {${v2.length}}`);
      c.write(`${v2}\r\n`);
      const r3 = await c.until('A005');
      assert.deepEqual(r3.lines, [`* OK [APPENDUID ${uvs} 1] Replacement message ready`, '* 4 EXPUNGE']);
      assert.deepEqual(await ok(c, 'STATUS RSent (MESSAGES)'), ['* STATUS "RSent" (MESSAGES 1)']);
    }));

  test('RFC 8508 §3.4/§3.5: a failed REPLACE changes nothing; selected state only; QRESYNC gets VANISHED', () =>
    session(async (c) => {
      const m = crlf(['Subject: new', '', 'n']);
      // §3.5: not valid in the authenticated state; refused before the data.
      c.write(`r0 REPLACE 1 INBOX {${m.length}}\r\n`);
      assert.equal(await c.readLine(), 'r0 BAD REPLACE: Select a mailbox first');
      await mailbox(c, 'RFail', [crlf(['Subject: one', '', '1']), crlf(['Subject: two', '', '2'])]);
      const before = await ok(c, 'STATUS RFail (MESSAGES UIDNEXT)');
      c.write(`r1 REPLACE 3 RFail {${m.length}+}\r\n${m}\r\n`);
      assert.deepEqual(await c.until('r1'), { lines: [], tagged: 'r1 BAD Invalid message sequence number (there are 2 messages)', raw: Buffer.from('r1 BAD Invalid message sequence number (there are 2 messages)\r\n') });
      c.write(`r2 UID REPLACE 99 RFail {${m.length}+}\r\n${m}\r\n`);
      assert.equal((await c.until('r2')).tagged, 'r2 NO [NONEXISTENT] No message with UID 99');
      c.write(`r3 REPLACE 1 Nowhere {${m.length}}\r\n`);
      assert.equal(await c.readLine(), 'r3 NO [TRYCREATE] Mailbox Nowhere does not exist');
      assert.deepEqual(await ok(c, 'STATUS RFail (MESSAGES UIDNEXT)'), before);
      await ok(c, 'EXAMINE RFail');
      c.write(`r4 REPLACE 1 RFail {${m.length}+}\r\n${m}\r\n`);
      assert.equal((await c.until('r4')).tagged, 'r4 NO [READ-ONLY] Mailbox is read-only');
      assert.deepEqual(await ok(c, 'STATUS RFail (MESSAGES UIDNEXT)'), before);
      // §4.5: with QRESYNC the replaced message is reported like a UID EXPUNGE: VANISHED.
      await ok(c, 'ENABLE QRESYNC');
      await ok(c, 'SELECT RFail');
      c.write(`r5 UID REPLACE 1 RFail {${m.length}+}\r\n${m}\r\n`);
      const r5 = await c.until('r5');
      const uv = await uidValidity(c, 'RFail');
      assert.deepEqual(r5.lines, [`* OK [APPENDUID ${uv} 3] Replacement message ready`, '* VANISHED 1', '* 2 EXISTS', '* 1 RECENT']);
    }));
});

test('MULTIAPPEND: one APPEND stages at most 10 × APPENDLIMIT bytes (NO [LIMIT], nothing added)', () =>
  ownServer({ appendLimit: 1000 }, async (c) => {
    const m = crlf(['Subject: x', '', 'y'.repeat(880)]);
    assert.equal(m.length, 896);
    const ten = Array.from({ length: 11 }, () => `{${m.length}+}\r\n${m}`).join(' ');
    c.write(`l1 APPEND INBOX ${ten}\r\n`);
    assert.equal((await c.until('l1')).tagged, 'l1 OK [APPENDUID ' + (await uidValidity(c, 'INBOX')) + ' 1:11] APPEND completed');
    const twelve = Array.from({ length: 12 }, () => `{${m.length}+}\r\n${m}`).join(' ');
    c.write(`l2 APPEND INBOX ${twelve}\r\n`);
    assert.equal((await c.until('l2')).tagged, 'l2 NO [LIMIT] One APPEND may carry at most 10000 bytes; send the messages in several');
    assert.deepEqual(await ok(c, 'STATUS INBOX (MESSAGES)'), ['* STATUS "INBOX" (MESSAGES 11)']);
  }));
