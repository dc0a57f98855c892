// Issue 14 extensions, part 3: UIDONLY (RFC 9586) against the real server (both store backends):
// raw lines in, exact responses out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crlf, eachBackend, mailbox, ok, uidValidity } from './conformance-env.ts';

const REQUIRED = 'BAD [UIDREQUIRED] Message numbers are not allowed once UIDONLY is enabled';

eachBackend('IMAP extensions: UIDONLY', ({ session }) => {
  test('RFC 9586 §3: once enabled, every message sequence number in a command is BAD [UIDREQUIRED]', () =>
    session(async (c) => {
      assert.match((await ok(c, 'CAPABILITY'))[0]!, / UIDONLY( |$)/);
      await mailbox(c, 'Uo1', ['a', 'b', 'c'].map((x) => crlf([`Subject: ${x}`, '', x])));
      assert.deepEqual(await ok(c, 'ENABLE UIDONLY'), ['* ENABLED UIDONLY']);
      for (const cmd of [
        'FETCH 1:* (FLAGS)',
        'STORE 1 +FLAGS (\\Seen)',
        'SEARCH ALL',
        'COPY 1 INBOX',
        'MOVE 1 INBOX',
        'UID SEARCH 1:2',
        'UID SEARCH OR UID 1 NOT 2',
        'FETCH 1 (FLAGS) (CHANGEDSINCE 1)',
      ]) {
        const r = await c.cmd(cmd);
        assert.deepEqual([r.lines, r.tagged.slice(r.tagged.indexOf(' ') + 1)], [[], REQUIRED], cmd);
      }
      // REPLACE by sequence number: refused before its data ("+" never comes).
      c.write('r1 REPLACE 1 Uo1 {5}\r\n');
      assert.equal(await c.readLine(), `r1 ${REQUIRED}`);
      // The same with UIDs (and "$", a saved UID set) work.
      assert.deepEqual(await ok(c, 'UID SEARCH RETURN (SAVE) UID 2:*'), []);
      assert.deepEqual(await ok(c, 'UID SEARCH $'), ['* SEARCH 2 3']);
      assert.deepEqual(await ok(c, 'UID SEARCH NOT UID 1'), ['* SEARCH 2 3']);
      // QRESYNC's seq-match-data holds sequence numbers too.
      await ok(c, 'ENABLE QRESYNC');
      const uv = await uidValidity(c, 'Uo1');
      assert.equal((await c.cmd(`SELECT Uo1 (QRESYNC (${uv} 1 1:3 (1:3 1:3)))`)).tagged.replace(/^\S+ /, ''), REQUIRED);
      assert.match((await c.cmd(`SELECT Uo1 (QRESYNC (${uv} 1 1:3))`)).tagged, / OK /);
    }));

  test('RFC 9586 §3.3: FETCH responses become UIDFETCH, EXPUNGE becomes VANISHED; no UNSEEN sequence number at SELECT', () =>
    session(async (c, another) => {
      const other = await another();
      await mailbox(c, 'Uo2', ['a', 'b', 'c', 'd'].map((x) => crlf([`Subject: ${x}`, '', x])));
      await ok(c, 'UID STORE 1 +FLAGS.SILENT (\\Seen)');
      await ok(c, 'ENABLE UIDONLY');
      await ok(other, 'SELECT Uo2');
      const sel = await ok(c, 'SELECT Uo2');
      assert.ok(!sel.some((l) => l.includes('[UNSEEN')), sel.join('\n'));
      assert.ok(sel.includes('* 4 EXISTS'), 'EXISTS is a count, not a message number');
      // The §3.3 example response: "* 25997 UIDFETCH (FLAGS (\Flagged \Answered))".
      assert.deepEqual(await ok(c, 'UID STORE 3 FLAGS (\\Flagged \\Answered)'), ['* 3 UIDFETCH (FLAGS (\\Answered \\Flagged))']);
      assert.deepEqual(await ok(c, 'UID FETCH 2:3 (FLAGS RFC822.SIZE)'), ['* 2 UIDFETCH (FLAGS () RFC822.SIZE 17)', '* 3 UIDFETCH (FLAGS (\\Answered \\Flagged) RFC822.SIZE 17)']);
      assert.deepEqual(await ok(c, 'UID FETCH 4 (UID)'), ['* 4 UIDFETCH (UID 4)'], 'UID asked for: kept (a msg-att list is never empty)');
      const f = await c.cmd('UID FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
      assert.deepEqual(f.lines, ['* 2 UIDFETCH (BODY[HEADER.FIELDS (SUBJECT)] {14}\r\nSubject: b\r\n\r\n)']);
      // Implicit \Seen is reported the same way.
      assert.deepEqual(await ok(c, 'UID FETCH 2 (BODY[TEXT])'), ['* 2 UIDFETCH (BODY[TEXT] {3}\r\nb\r\n FLAGS (\\Seen))']);
      // Another session's flag change and expunge: UIDFETCH and VANISHED, never a sequence number.
      await ok(other, 'STORE 4 +FLAGS.SILENT (\\Flagged)');
      await ok(other, 'STORE 1 +FLAGS.SILENT (\\Deleted)');
      await ok(other, 'EXPUNGE');
      assert.deepEqual(await ok(c, 'NOOP'), ['* VANISHED 1', '* 4 UIDFETCH (FLAGS (\\Flagged))']);
      // The client's own EXPUNGE and MOVE.
      await ok(c, 'UID STORE 2 +FLAGS.SILENT (\\Deleted)');
      assert.deepEqual(await ok(c, 'EXPUNGE'), ['* VANISHED 2']);
      const uvInbox = await uidValidity(c, 'INBOX');
      const mv = await ok(c, 'UID MOVE 3 INBOX');
      assert.equal(mv.length, 2);
      assert.match(mv[0]!, new RegExp(`^\\* OK \\[COPYUID ${uvInbox} 3 \\d+\\] Moved$`));
      assert.equal(mv[1], '* VANISHED 3');
      // A new message: EXISTS (a count) and its flags by UID (\Recent: this is the only session
      // with the mailbox selected, RFC 3501 §2.3.2).
      await ok(other, 'UNSELECT');
      assert.match((await other.append('Uo2', crlf(['Subject: e', '', 'e']), '($Hot)')).tagged, / OK /);
      const n = await ok(c, 'NOOP');
      assert.ok(n.includes('* 2 EXISTS'), n.join('\n'));
      assert.deepEqual(await ok(c, 'UID FETCH 5 (FLAGS)'), ['* 5 UIDFETCH (FLAGS (\\Recent $Hot))'], 'IMAP4rev1: new to this session');
    }));
});
