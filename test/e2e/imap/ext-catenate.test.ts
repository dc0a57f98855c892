// Issue 14 extensions, part 5: CATENATE (RFC 4469), also with REPLACE (RFC 8508 §4.2), against the
// real server (both store backends): the RFC's examples, raw lines in, exact responses and bytes out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { continued, crlf, eachBackend, ok, ownServer, uidValidity } from './conformance-env.ts';
import { RawImap } from './raw-client.ts';

const B = '--------------030308070208000400050907';
/** "The original message in examples 1 and 2 (UID = 20)": multipart/mixed, 1. text/plain, 2. application/x-zip-compressed. */
const ORIGINAL = crlf([
  'From: Bob Ar <bar@example.org>',
  'To: foo@example.net',
  'Subject: Holiday trip',
  'MIME-Version: 1.0',
  `Content-Type: multipart/mixed; boundary="${B.slice(2)}"`,
  '',
  B,
  'Content-Type: text/plain; charset=us-ascii; format=flowed',
  'Content-Transfer-Encoding: 7bit',
  '',
  'Our travel agent has sent the schedule.',
  B,
  'Content-Type: application/x-zip-compressed; name="schedule.zip"',
  'Content-Transfer-Encoding: base64',
  '',
  'UEsDBBQAAAAIAAAAIQBzY2hlZHVsZQ==',
  `${B}--`,
]);
const OTHER = crlf(['From: Bob Ar <bar@example.org>', 'Subject: the new schedule', '', 'Leaving at noon.']);

async function body(c: RawImap, box: string, uid: number): Promise<Buffer> {
  await ok(c, `EXAMINE ${box}`);
  return RawImap.literalAfter((await c.cmd(`UID FETCH ${uid} BODY.PEEK[]`)).raw, 'BODY[]')!;
}

eachBackend('IMAP extensions: CATENATE', ({ session }) => {

  test('RFC 4469 Appendix A example 1: an attachment replaced from URLs without downloading it; no \\Seen on the source', () =>
    session(async (c) => {
      assert.match((await ok(c, 'CAPABILITY'))[0]!, / CATENATE( |$)/);
      await ok(c, 'ENABLE IMAP4rev2'); // no \\Recent in the FETCH below
      await ok(c, 'CREATE CDrafts');
      for (const m of [ORIGINAL, OTHER]) assert.match((await c.append('CDrafts', m)).tagged, / OK /);
      const v = await uidValidity(c, 'CDrafts');
      const url = (rest: string) => `"/CDrafts;UIDVALIDITY=${v}/;UID=${rest}"`;
      const t1 = `\r\n${B}\r\n`;
      const t2 = `\r\n${B}--\r\n`;
      assert.deepEqual([t1.length, t2.length], [42, 44]);
      await continued(c, `A003 APPEND CDrafts (\\Seen \\Draft $MDNSent) CATENATE (URL ${url('1/;section=HEADER')} TEXT {42}`);
      await continued(c, `${t1} URL ${url('1/;section=1.MIME')} URL ${url('1/;section=1')} TEXT {42}`);
      await continued(c, `${t1} URL ${url('2')} TEXT {44}`);
      c.write(`${t2})\r\n`);
      assert.equal((await c.until('A003')).tagged, `A003 OK [APPENDUID ${v} 3] APPEND completed`);
      const head = ORIGINAL.slice(0, ORIGINAL.indexOf('\r\n\r\n') + 4);
      const p1 = ORIGINAL.slice(ORIGINAL.indexOf('Content-Type: text/plain'));
      const mime1 = p1.slice(0, p1.indexOf('\r\n\r\n') + 4);
      const text1 = 'Our travel agent has sent the schedule.';
      assert.equal((await body(c, 'CDrafts', 3)).toString(), head + t1 + mime1 + text1 + t1 + OTHER + t2);
      // Parsed as it was stored: the new message's structure and flags; the source unread.
      const f = await ok(c, 'UID FETCH 1:3 (FLAGS BODYSTRUCTURE)');
      assert.equal(
        f[2],
        '* 3 FETCH (UID 3 FLAGS (\\Seen \\Draft $MDNSent) BODYSTRUCTURE (("text" "plain" ("charset" "us-ascii" "format" "flowed") NIL NIL "7bit" 39 0 NIL NIL NIL NIL)' +
          `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 18 1 NIL NIL NIL NIL) "mixed" ("boundary" "${B.slice(2)}") NIL NIL NIL))`,
      );
      assert.match(f[0]!, /^\* 1 FETCH \(UID 1 FLAGS \(\) /);
      assert.match(f[1]!, /^\* 2 FETCH \(UID 2 FLAGS \(\) /);
    }));

  test('RFC 4469 Appendix A example 2: new top-level header and text, the old attachment by URL; APPENDUID', () =>
    session(async (c) => {
      await ok(c, 'CREATE CDrafts2');
      assert.match((await c.append('CDrafts2', ORIGINAL)).tagged, / OK /);
      const v = await uidValidity(c, 'CDrafts2');
      const t1 = crlf([
        'Return-Path: <bar@example.org>',
        'Received: from [127.0.0.2]',
        '          by rufus.example.org via TCP (internal) with ESMTPA;',
        '          Thu, 11 Nov 2004 16:57:07 +0000',
        'Message-ID: <419399E1.6000505@example.org>',
        'Date: Thu, 12 Nov 2004 16:57:05 +0000',
        'From: Bob Ar <bar@example.org>',
        'X-Accept-Language: en-us, en',
        'MIME-Version: 1.0',
        'To: foo@example.net',
        'Subject: About our holiday trip',
        'Content-Type: multipart/mixed;',
        `              boundary="${B.slice(2)}"`,
        '',
        B,
        'Content-Type: text/plain; charset=us-ascii; format=flowed',
        'Content-Transfer-Encoding: 7bit',
        '',
        'Our travel agent has sent the updated schedule.',
        '',
        'Cheers,',
        'Bob',
        B,
      ]);
      // The RFC's {738}; its text as printed comes to 721 octets with CRLFs (whitespace lost in print).
      assert.equal(t1.length, 721);
      const t2 = `\r\n${B}--\r\n`;
      const url = (section: string) => `"/CDrafts2;UIDVALIDITY=${v}/;UID=1/;Section=${section}"`;
      // LITERAL+ for the first part this time; the second is synchronizing.
      await continued(c, `A003 APPEND CDrafts2 (\\Seen \\Draft $MDNSent) CATENATE (TEXT {${t1.length}+}\r\n${t1} URL ${url('2.MIME')} URL ${url('2')} TEXT {44}`);
      c.write(`${t2})\r\n`);
      assert.equal((await c.until('A003')).tagged, `A003 OK [APPENDUID ${v} 2] APPEND completed`);
      const p2 = ORIGINAL.slice(ORIGINAL.indexOf('Content-Type: application'));
      const mime2 = p2.slice(0, p2.indexOf('\r\n\r\n') + 4);
      const body2 = 'UEsDBBQAAAAIAAAAIQBzY2hlZHVsZQ==';
      assert.equal((await body(c, 'CDrafts2', 2)).toString(), t1 + mime2 + body2 + t2);
      const bs = await ok(c, 'UID FETCH 2 (BODYSTRUCTURE ENVELOPE)');
      assert.match(bs[0]!, /"APPLICATION" "X-ZIP-COMPRESSED" \("NAME" "schedule\.zip"\) NIL NIL "BASE64" 32 .*"MIXED"/i);
      assert.match(bs[0]!, /"About our holiday trip"/);
    }));

  test('RFC 4469 §4.1 / example 4: NO [BADURL url] for the first URL that cannot be read; nothing appended', () =>
    session(async (c) => {
      await ok(c, 'CREATE CSent');
      assert.match((await c.append('CSent', OTHER)).tagged, / OK /);
      const v = await uidValidity(c, 'CSent');
      const text = crlf(['Subject: digest', 'Content-Type: multipart/digest; boundary="d"', '', '--d', '']);
      const bad = async (urls: string, want: string) => {
        const r = await c.cmd(`APPEND CSent (\\Seen) CATENATE (TEXT {${text.length}+}\r\n${text} ${urls})`);
        assert.equal(r.tagged.replace(/^\S+ /, ''), want, urls);
      };
      await bad(`URL "/CSent;UIDVALIDITY=${v}/;UID=1" URL "/CSent;UIDVALIDITY=${v}/;UID=99" URL "/CSent/;UID=98"`, `NO [BADURL /CSent;UIDVALIDITY=${v}/;UID=99] CATENATE: no such message`);
      await bad(`URL "/CSent;UIDVALIDITY=${Number(v) + 1}/;UID=1"`, `NO [BADURL /CSent;UIDVALIDITY=${Number(v) + 1}/;UID=1] CATENATE: UIDVALIDITY changed`);
      await bad('URL "/Nowhere/;UID=1"', 'NO [BADURL /Nowhere/;UID=1] CATENATE: no such mailbox');
      await bad('URL "/CSent/;UID=1/;section=7"', 'NO [BADURL /CSent/;UID=1/;section=7] CATENATE: no such body part');
      await bad('URL "imap://other.example/CSent/;UID=1"', 'NO [BADURL imap://other.example/CSent/;UID=1] CATENATE: unsupported or invalid IMAP URL');
      await bad('URL ";UID=1"', 'NO [BADURL ;UID=1] CATENATE: no mailbox selected');
      assert.deepEqual(await ok(c, 'STATUS CSent (MESSAGES)'), ['* STATUS "CSent" (MESSAGES 1)']);
      // Relative to the selected mailbox, with a partial range and a header-fields section.
      await ok(c, 'SELECT CSent');
      const r = await c.cmd('APPEND CSent CATENATE (URL ";UID=1/;SECTION=HEADER.FIELDS%20(SUBJECT)" URL ";UID=1/;SECTION=TEXT/;PARTIAL=0.7" TEXT {2+}\r\n\r\n)');
      assert.equal(r.tagged.replace(/^\S+ /, ''), `OK [APPENDUID ${v} 2] APPEND completed`);
      assert.equal((await body(c, 'CSent', 2)).toString(), 'Subject: the new schedule\r\n\r\nLeaving\r\n');
    }));

  test('RFC 8508 §4.2 example: UID REPLACE with CATENATE, the new header before the old message by URL', () =>
    session(async (c) => {
      await ok(c, 'ENABLE IMAP4rev2');
      await ok(c, 'CREATE RDraftsCat');
      for (const n of ['1', '2', '3']) assert.match((await c.append('RDraftsCat', crlf([`Subject: other ${n}`, '', n]))).tagged, / OK /);
      const draft = crlf(['Date: Thu, 1 Jan 2015 00:10:00 -0500 (EST)', 'From: Fritz Schmidt <fritz.ze@example.org>', 'MIME-Version: 1.0', '', 'Here is picture from the fireworks']);
      assert.match((await c.append('RDraftsCat', draft, '(\\Seen \\Draft)')).tagged, / OK /);
      await ok(c, 'SELECT RDraftsCat');
      const v = await uidValidity(c, 'RDraftsCat');
      const head = crlf(['To: Mitzy <miss.mitzy@example.org>', 'Subject: My view of the fireworks']);
      assert.equal(head.length, 71);
      await continued(c, 'A011 UID REPLACE 4 RDraftsCat CATENATE (TEXT {71}');
      c.write(`${head} URL "/RDraftsCat/;UID=4")\r\n`);
      const r = await c.until('A011');
      assert.deepEqual(r.lines, [`* OK [APPENDUID ${v} 5] Replacement message ready`, '* 4 EXPUNGE', '* 4 EXISTS']);
      assert.equal(r.tagged, 'A011 OK UID REPLACE completed');
      assert.equal((await body(c, 'RDraftsCat', 5)).toString(), head + draft);
    }));
});

test('RFC 4469 §4.2: NO [TOOBIG] when the catenated message would pass APPENDLIMIT', () =>
  ownServer({ appendLimit: 1000 }, async (c) => {
    const m = crlf(['Subject: x', '', 'y'.repeat(580)]);
    assert.match((await c.append('INBOX', m)).tagged, / OK /);
    const r = await c.cmd('APPEND INBOX CATENATE (URL "/INBOX/;UID=1" URL "/INBOX/;UID=1")');
    assert.equal(r.tagged.replace(/^\S+ /, ''), `NO [TOOBIG] The catenated message (${2 * m.length} bytes) is larger than the APPENDLIMIT of 1000 bytes`);
    assert.deepEqual(await ok(c, 'STATUS INBOX (MESSAGES)'), ['* STATUS "INBOX" (MESSAGES 1)']);
  }));
