// IMAP conformance defects found by an independent suite (issue 14), one test per rule, each
// against the real server (both store backends) with exact expected responses and the RFC section
// it checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crlf, eachBackend, mailbox, ok } from './conformance-env.ts';
import { RawImap } from './raw-client.ts';

eachBackend('IMAP conformance', ({ login }) => {
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

  test('RFC 6851 §3.1/§4.3 MOVE into the selected mailbox: new UIDs, COPYUID, the old ones expunged', async () => {
    const c = await login();
    try {
      await mailbox(c, 'Selfmove', [crlf(['Subject: one', '', 'a']), crlf(['Subject: two', '', 'b'])]);
      assert.match((await c.cmd('STORE 1 +FLAGS (\\Flagged)')).tagged, / OK /);
      const uv = /UIDVALIDITY (\d+)/.exec((await c.cmd('STATUS Selfmove (UIDVALIDITY)')).lines[0]!)![1];
      const r = await c.cmd('UID MOVE 1 Selfmove');
      // IMAP4rev1: the moved message is new to the mailbox, so \Recent (RFC 3501 §2.3.2) for this session.
      assert.deepEqual(r.lines, [`* OK [COPYUID ${uv} 1 3] Moved`, '* 1 EXPUNGE', '* 2 EXISTS', '* 2 RECENT']);
      assert.match(r.tagged, /^t\d+ OK /);
      const f = await c.cmd('FETCH 1:* (UID FLAGS)');
      assert.deepEqual(f.lines, ['* 1 FETCH (UID 2 FLAGS (\\Recent))', '* 2 FETCH (UID 3 FLAGS (\\Flagged \\Recent))']);
      const st = await c.cmd('STATUS Selfmove (MESSAGES UIDNEXT)');
      assert.deepEqual(st.lines, ['* STATUS "Selfmove" (MESSAGES 2 UIDNEXT 4)']);
    } finally {
      c.close();
    }
  });
  test('RFC 3501 §7.2.6 a new keyword (STORE or APPEND) is announced in FLAGS/PERMANENTFLAGS to every session first', async () => {
    const a = await login();
    const b = await login();
    const SYS = '\\Seen \\Answered \\Flagged \\Deleted \\Draft';
    const announce = (kw: string) => [`* FLAGS (${SYS} ${kw})`, `* OK [PERMANENTFLAGS (${SYS} ${kw} \\*)] Flags permitted`];
    try {
      // IMAP4rev2 sessions: no \Recent in the flags (RFC 9051), so the lines are the same whoever sees a message first.
      await ok(a, 'ENABLE IMAP4rev2');
      await ok(b, 'ENABLE IMAP4rev2');
      await mailbox(a, 'Kw', [crlf(['Subject: one', '', 'a'])]);
      assert.equal((await ok(b, 'SELECT Kw'))[0], `* FLAGS (${SYS})`);
      // STORE: the storing session gets FLAGS before its FETCH; the other one at its next command.
      assert.deepEqual(await ok(a, 'STORE 1 +FLAGS ($Label1)'), [...announce('$Label1'), '* 1 FETCH (FLAGS ($Label1))']);
      assert.deepEqual(await ok(b, 'NOOP'), [...announce('$Label1'), '* 1 FETCH (UID 1 FLAGS ($Label1))']);
      // APPEND with a new keyword: both sessions hear of it before (or with) the EXISTS.
      const ap = await a.append('Kw', crlf(['Subject: two', '', 'b']), '($Label2)');
      assert.match(ap.tagged, / OK /);
      assert.deepEqual(ap.lines, [...announce('$Label1 $Label2'), '* 2 EXISTS']);
      assert.deepEqual(await ok(b, 'NOOP'), [...announce('$Label1 $Label2'), '* 2 EXISTS']);
      assert.deepEqual(await ok(b, 'FETCH 2 FLAGS'), ['* 2 FETCH (FLAGS ($Label2))']);
      // A FETCH that shows a keyword another session just set: FLAGS comes before that FETCH.
      await ok(a, 'STORE 1 +FLAGS.SILENT ($Label3)');
      const f = await ok(b, 'FETCH 1 FLAGS');
      assert.deepEqual(f.slice(0, 3), [...announce('$Label1 $Label2 $Label3'), '* 1 FETCH (FLAGS ($Label1 $Label3))']);
      assert.ok(f.slice(3).every((l) => l === '* 1 FETCH (UID 1 FLAGS ($Label1 $Label3))'), f.join('\n'));
      // Known keywords: no FLAGS again.
      assert.deepEqual(await ok(a, 'STORE 2 +FLAGS ($label1)'), ['* 2 FETCH (FLAGS ($Label2 $label1))']);
    } finally {
      a.close();
      b.close();
    }
  });
  test('RFC 7162 §3.1: the first CONDSTORE enabling command with a mailbox selected returns HIGHESTMODSEQ first', async () => {
    const c = await login();
    const d = await login();
    try {
      await mailbox(c, 'Cs1', [crlf(['Subject: one', '', 'a']), crlf(['Subject: two', '', 'b'])]);
      await ok(c, 'STORE 2 +FLAGS.SILENT (\\Seen)');
      const h = Number(/HIGHESTMODSEQ (\d+)/.exec((await ok(c, 'STATUS Cs1 (HIGHESTMODSEQ)')).join(''))![1]);
      // A new session: its first FETCH MODSEQ is its first enabling command.
      const c2 = await login();
      await ok(c2, 'SELECT Cs1');
      const f = await ok(c2, 'FETCH 1:* (MODSEQ)');
      assert.equal(f[0], `* OK [HIGHESTMODSEQ ${h}] Highest`);
      assert.equal(f.length, 3);
      assert.deepEqual(await ok(c2, 'FETCH 2 (MODSEQ)'), [`* 2 FETCH (MODSEQ (${h}))`], 'only the first enabling command');
      c2.close();
      // STATUS HIGHESTMODSEQ with a mailbox selected is an enabling command too.
      await ok(d, 'SELECT Cs1');
      assert.deepEqual(await ok(d, 'STATUS Cs1 (HIGHESTMODSEQ)'), [`* OK [HIGHESTMODSEQ ${h}] Highest`, `* STATUS "Cs1" (HIGHESTMODSEQ ${h})`]);
    } finally {
      c.close();
      d.close();
    }
  });

  test('RFC 7162 §3.1.5 + RFC 4731 §3.2: SEARCH RETURN (MIN/MAX) MODSEQ gives the MODSEQ of the returned messages', async () => {
    const c = await login();
    try {
      await mailbox(c, 'Cs2', ['one', 'two', 'three'].map((x) => crlf([`Subject: ${x}`, '', x])));
      for (const st of ['STORE 3 +FLAGS.SILENT (\\Seen)', 'STORE 1 +FLAGS.SILENT (\\Seen)', 'STORE 2 +FLAGS.SILENT (\\Flagged)']) await ok(c, st);
      const f = await ok(c, 'FETCH 1:* (MODSEQ)');
      const [m1, m2, m3] = [1, 2, 3].map((n) => Number(new RegExp(`^\\* ${n} FETCH \\(MODSEQ \\((\\d+)\\)\\)$`).exec(f.find((l) => l.startsWith(`* ${n} FETCH`))!)![1]));
      assert.ok(m3! < m1! && m1! < m2!, f.join('\n'));
      const esearch = async (ret: string, want: string) => {
        const r = await c.cmd(`SEARCH RETURN (${ret}) MODSEQ 1`);
        const tag = r.tagged.split(' ')[0];
        assert.deepEqual(r.lines, [`* ESEARCH (TAG "${tag}") ${want}`], ret);
      };
      await esearch('MIN', `MIN 1 MODSEQ ${m1}`);
      await esearch('MAX', `MAX 3 MODSEQ ${m3}`);
      await esearch('MIN MAX', `MIN 1 MAX 3 MODSEQ ${m1}`);
      await esearch('COUNT', `COUNT 3 MODSEQ ${m2}`);
      await esearch('ALL', `ALL 1:3 MODSEQ ${m2}`);
      assert.deepEqual(await ok(c, 'SEARCH MODSEQ 1'), [`* SEARCH 1 2 3 (MODSEQ ${m2})`]);
    } finally {
      c.close();
    }
  });
  test('RFC 3501 §6.4.4 FROM/TO/CC/BCC match the parsed addresses (name, mailbox@host) as well as the raw text', async () => {
    const c = await login();
    try {
      await mailbox(c, 'Addr', [
        crlf(['From: "Name Q" <user-from (comment)@ (comment) domain.org>', 'To: team: a@b.example, d@e.example;', 'Cc: plain@x.example (Real Name)', 'Subject: a', '', 'x']),
        crlf(['From: other@domain.org', 'To: z@b.example', 'Subject: b', '', 'y']),
      ]);
      const search = async (q: string) => (await ok(c, `SEARCH ${q}`))[0];
      assert.equal(await search('FROM "user-from@domain.org"'), '* SEARCH 1');
      assert.equal(await search('FROM "from@domain"'), '* SEARCH 1');
      assert.equal(await search('FROM "name q"'), '* SEARCH 1');
      assert.equal(await search('FROM "(comment)"'), '* SEARCH 1', 'the raw text still matches');
      assert.equal(await search('FROM "domain.org"'), '* SEARCH 1 2');
      assert.equal(await search('TO "team"'), '* SEARCH 1');
      assert.equal(await search('TO "d@e.example"'), '* SEARCH 1');
      assert.equal(await search('CC "plain@x.example"'), '* SEARCH 1');
      assert.equal(await search('FROM "user-from@domain.orgx"'), '* SEARCH');
      assert.equal(await search('OR FROM "user-from@domain.org" TO "z@b"'), '* SEARCH 1 2');
    } finally {
      c.close();
    }
  });
  test('RFC 3501 §6.4.4 SENTBEFORE/SENTON/SENTSINCE compare the Date: as written, disregarding time and timezone', async () => {
    const c = await login();
    try {
      await mailbox(c, 'SentDates', [
        crlf(['Date: Sun, 25 Mar 2007 00:00:00 +0200', 'Subject: a', '', 'x']), // 24 March in UTC
        crlf(['Date: 25 Mar 2007 23:30:00 -0500', 'Subject: b', '', 'y']), // 26 March in UTC
        crlf(['Date: Mon, 26 Mar 07 08:00:00 GMT', 'Subject: c', '', 'z']), // 2-digit year (RFC 5322 §4.3)
      ]);
      const search = async (q: string) => (await ok(c, `SEARCH ${q}`))[0];
      assert.equal(await search('SENTON 25-Mar-2007'), '* SEARCH 1 2');
      assert.equal(await search('SENTON 24-Mar-2007'), '* SEARCH');
      assert.equal(await search('SENTBEFORE 25-Mar-2007'), '* SEARCH');
      assert.equal(await search('SENTBEFORE 26-Mar-2007'), '* SEARCH 1 2');
      assert.equal(await search('SENTSINCE 26-Mar-2007'), '* SEARCH 3');
      assert.equal(await search('SENTSINCE 25-Mar-2007'), '* SEARCH 1 2 3');
    } finally {
      c.close();
    }
  });
  test('RFC 3501 §6.3.6/§6.3.9, RFC 9051 §6.3.7, RFC 5258: subscriptions are names of their own; LSUB \\Noselect parents; \\NonExistent; CHILDINFO', async () => {
    const c = await login();
    try {
      await ok(c, 'CREATE Sb/Child');
      // CREATE subscribes nothing (neither the mailbox nor the parent it made).
      assert.deepEqual(await ok(c, 'LSUB "" "Sb*"'), []);
      assert.deepEqual(await ok(c, 'LIST "" "Sb*" RETURN (SUBSCRIBED)'), ['* LIST (\\HasChildren) "/" "Sb"', '* LIST (\\HasNoChildren) "/" "Sb/Child"']);
      await ok(c, 'SUBSCRIBE Sb/Child');
      // RFC 3501 §6.3.9: "%" stops above a subscribed child of an unsubscribed parent: the parent, \Noselect.
      assert.deepEqual(await ok(c, 'LSUB "" "Sb%"'), ['* LSUB (\\Noselect) "/" "Sb"']);
      assert.deepEqual(await ok(c, 'LSUB "" "Sb*"'), ['* LSUB () "/" "Sb/Child"']);
      // RFC 5258 §3.5: CHILDINFO where a subscribed child is not returned by the pattern; not where it is.
      assert.deepEqual(await ok(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "Sb%"'), ['* LIST (\\HasChildren) "/" "Sb" ("CHILDINFO" ("SUBSCRIBED"))']);
      assert.deepEqual(await ok(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "Sb*"'), ['* LIST (\\HasNoChildren \\Subscribed) "/" "Sb/Child"']);
      assert.deepEqual(await ok(c, 'LIST (SUBSCRIBED) "" "Sb%"'), []);
      // DELETE keeps the subscription (RFC 9051 §6.3.7); LIST-EXTENDED shows the name \NonExistent.
      await ok(c, 'DELETE Sb/Child');
      assert.deepEqual(await ok(c, 'LSUB "" "Sb*"'), ['* LSUB () "/" "Sb/Child"']);
      assert.deepEqual(await ok(c, 'LIST (SUBSCRIBED) "" "Sb*"'), ['* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" "Sb/Child"']);
      assert.deepEqual(await ok(c, 'LIST "" "Sb*" RETURN (SUBSCRIBED)'), ['* LIST (\\HasNoChildren) "/" "Sb"']);
      // A name whose mailbox is gone can be unsubscribed; an unsubscribed name is not \Subscribed.
      await ok(c, 'UNSUBSCRIBE Sb/Child');
      assert.deepEqual(await ok(c, 'LSUB "" "Sb*"'), []);
      await ok(c, 'CREATE Sc');
      await ok(c, 'SUBSCRIBE Sc');
      assert.deepEqual(await ok(c, 'LIST "" "Sc" RETURN (SUBSCRIBED)'), ['* LIST (\\HasNoChildren \\Subscribed) "/" "Sc"']);
      await ok(c, 'UNSUBSCRIBE Sc');
      assert.deepEqual(await ok(c, 'LIST "" "Sc" RETURN (SUBSCRIBED)'), ['* LIST (\\HasNoChildren) "/" "Sc"']);
      assert.match((await c.cmd('SUBSCRIBE NoSuchBox')).tagged, /^t\d+ NO \[NONEXISTENT\]/);
    } finally {
      c.close();
    }
  });
  test('RFC 3501 §4.3 / RFC 9051 §4.3, RFC 3516 §4.2: no NUL in a BODY[] literal (0x80, as Dovecot); ~{n} only for BINARY[]', async () => {
    const c = await login();
    try {
      const part = Buffer.from([0x61, 0x62, 0x00, 0x63, 0x64, 0x01, 0xff]);
      const msg = Buffer.concat([
        Buffer.from(crlf(['From: a@b.example', 'Subject: bin', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary=zz', '', '--zz', 'Content-Type: text/plain', '', 'hello', '--zz', 'Content-Type: application/octet-stream', 'Content-Transfer-Encoding: binary', ''])),
        part,
        Buffer.from('\r\n--zz--\r\n'),
      ]);
      await ok(c, 'CREATE Bin');
      const tag = c.nextTag();
      c.write(Buffer.concat([Buffer.from(`${tag} APPEND Bin ~{${msg.length}+}\r\n`), msg, Buffer.from('\r\n')]));
      assert.match((await c.until(tag)).tagged, / OK /);
      await ok(c, 'SELECT Bin');
      const clean = Buffer.from(part).fill(0x80, 2, 3);
      const body = await c.cmd('FETCH 1 (BODY.PEEK[2])');
      assert.deepEqual(body.raw.subarray(0, body.raw.indexOf('\r\nt')), Buffer.concat([Buffer.from('* 1 FETCH (BODY[2] {7}\r\n'), clean, Buffer.from(')')]));
      const partial = await c.cmd('FETCH 1 (BODY.PEEK[2]<1.3>)');
      assert.deepEqual(RawImap.literalAfter(partial.raw, 'BODY[2]<1>'), clean.subarray(1, 4));
      const whole = await c.cmd('FETCH 1 (BODY.PEEK[])');
      const w = RawImap.literalAfter(whole.raw, 'BODY[]')!;
      assert.equal(w.length, msg.length);
      assert.equal(w.indexOf(0), -1, 'no NUL in BODY[]');
      const bin = await c.cmd('FETCH 1 (BINARY.PEEK[2])');
      assert.deepEqual(bin.raw.subarray(0, bin.raw.indexOf('\r\nt')), Buffer.concat([Buffer.from('* 1 FETCH (BINARY[2] ~{7}\r\n'), part, Buffer.from(')')]));
    } finally {
      c.close();
    }
  });
  test('RFC 3501 §2.3.2/§6.4.4/§7.3.2 \\Recent: the first read-write session gets it; EXAMINE looks only; none in IMAP4rev2', async () => {
    const a = await login();
    const b = await login();
    const c = await login();
    try {
      await ok(c, 'ENABLE IMAP4rev2');
      await ok(a, 'CREATE Rc');
      for (const x of ['one', 'two']) assert.match((await a.append('Rc', crlf([`Subject: ${x}`, '', x]))).tagged, / OK /);
      assert.deepEqual(await ok(a, 'STATUS Rc (RECENT)'), ['* STATUS "Rc" (RECENT 2)']);
      // IMAP4rev2: no RECENT response, no \Recent flag, nothing claimed.
      const sel2 = await ok(c, 'SELECT Rc');
      assert.ok(!sel2.some((l) => /RECENT/.test(l)), sel2.join('\n'));
      assert.deepEqual(await ok(c, 'FETCH 1:* FLAGS'), ['* 1 FETCH (FLAGS ())', '* 2 FETCH (FLAGS ())']);
      // EXAMINE sees \Recent but does not take it.
      assert.ok((await ok(b, 'EXAMINE Rc')).includes('* 2 RECENT'));
      assert.deepEqual(await ok(b, 'FETCH 1:* FLAGS'), ['* 1 FETCH (FLAGS (\\Recent))', '* 2 FETCH (FLAGS (\\Recent))']);
      // The first SELECT claims both.
      assert.ok((await ok(a, 'SELECT Rc')).includes('* 2 RECENT'));
      assert.deepEqual(await ok(a, 'FETCH 1 FLAGS'), ['* 1 FETCH (FLAGS (\\Recent))']);
      assert.deepEqual(await ok(a, 'STORE 1 +FLAGS (\\Seen)'), ['* 1 FETCH (FLAGS (\\Seen \\Recent))']);
      assert.deepEqual(await ok(a, 'SEARCH RECENT'), ['* SEARCH 1 2']);
      assert.deepEqual(await ok(a, 'SEARCH NEW'), ['* SEARCH 2']);
      assert.deepEqual(await ok(a, 'SEARCH OLD'), ['* SEARCH']);
      assert.deepEqual(await ok(a, 'STATUS Rc (RECENT)'), ['* STATUS "Rc" (RECENT 2)']);
      // Later sessions do not get them.
      const again = await ok(b, 'EXAMINE Rc');
      assert.ok(again.includes('* 0 RECENT'), again.join('\n'));
      assert.deepEqual(await ok(b, 'SEARCH RECENT'), ['* SEARCH']);
      assert.deepEqual(await ok(b, 'STATUS Rc (RECENT)'), ['* STATUS "Rc" (RECENT 0)']);
      // New mail: EXISTS then the session's RECENT count (§7.3.2), \Recent in FETCH.
      const ap = await c.append('Rc', crlf(['Subject: three', '', '3']));
      assert.match(ap.tagged, / OK /);
      assert.deepEqual(ap.lines, ['* 1 FETCH (UID 1 FLAGS (\\Seen))', '* 3 EXISTS'], 'IMAP4rev2: no RECENT');
      assert.deepEqual(await ok(a, 'NOOP'), ['* 3 EXISTS', '* 3 RECENT']);
      assert.deepEqual(await ok(a, 'FETCH 3 FLAGS'), ['* 3 FETCH (FLAGS (\\Recent))']);
      // Two sessions selecting at once: exactly one gets the new message as recent.
      await ok(a, 'CREATE Rd');
      assert.match((await a.append('Rd', crlf(['Subject: race', '', 'r']))).tagged, / OK /);
      const d = await login();
      try {
        const both = await Promise.all([a.cmd('SELECT Rd'), d.cmd('SELECT Rd')]);
        assert.deepEqual(both.map((r) => r.lines.find((l) => / RECENT$/.test(l))).sort(), ['* 0 RECENT', '* 1 RECENT']);
      } finally {
        d.close();
      }
    } finally {
      a.close();
      b.close();
      c.close();
    }
  });
});
