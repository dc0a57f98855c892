// NOTIFY (RFC 5465) with two sessions and SMTP against the real server (both store backends): what
// another session's APPEND / STORE / EXPUNGE / CREATE / RENAME / SUBSCRIBE and a delivery bring to
// a session that asked, with no command from it (§3.1: "the client listens for event notifications
// all the time"). The grammar and the RFC's examples are in ext-notify.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { crlf, eachBackend, mailbox, ok } from './conformance-env.ts';
import type { RawImap } from './raw-client.ts';

const next = (c: RawImap, ms = 3000): Promise<string> => c.readLine(ms);

async function silence(c: RawImap, ms = 300): Promise<void> {
  await assert.rejects(c.readLine(ms), /timeout/, 'no notification expected');
}

/** STATUS values as numbers. */
async function status(c: RawImap, name: string, items: string): Promise<Record<string, number>> {
  const line = (await ok(c, `STATUS ${name} (${items})`))[0]!;
  const out: Record<string, number> = {};
  for (const m of line.matchAll(/([A-Z]+) (\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}

const msg = (subject: string) => crlf([`Subject: ${subject}`, 'From: b@example.com', '', subject]);

eachBackend('IMAP NOTIFY with other sessions', (env) => {
  const { login } = env;
  const smtpPort = () => env.srv.ports.smtp; // the server starts in before()
  test('RFC 5465 §5.2, §5.3, §5.1: INBOX watched while another mailbox is selected: another session\'s APPEND, an SMTP delivery, STORE and EXPUNGE each bring * STATUS, unasked', async () => {
    const a = await login();
    const b = await login();
    const smtp = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort(), secure: false, ignoreTLS: true });
    try {
      await ok(a, 'ENABLE IMAP4rev2');
      await mailbox(a, 'Ns1', []);
      assert.deepEqual(await ok(a, 'NOTIFY SET (mailboxes INBOX (MessageNew MessageExpunge FlagChange))'), []);
      const st = await status(b, 'INBOX', 'MESSAGES UIDNEXT UIDVALIDITY UNSEEN');
      const line = (m: number, u: number, unseen: number) => `* STATUS "INBOX" (MESSAGES ${m} UIDNEXT ${u} UIDVALIDITY ${st.UIDVALIDITY} UNSEEN ${unseen})`;
      await b.append('INBOX', msg('by APPEND'));
      assert.equal(await next(a), line(st.MESSAGES! + 1, st.UIDNEXT! + 1, st.UNSEEN! + 1));
      await smtp.sendMail({ from: 'someone@elsewhere.example', to: 'conf@example.com', subject: 'by SMTP', text: 'Delivered' });
      assert.equal(await next(a), line(st.MESSAGES! + 2, st.UIDNEXT! + 2, st.UNSEEN! + 2));
      // §5.1 without CONDSTORE: a flag change is told by UNSEEN, only when UNSEEN moves.
      await ok(b, 'SELECT INBOX');
      const last = st.UIDNEXT! + 1;
      await ok(b, `UID STORE ${last} +FLAGS.SILENT (\\Flagged)`);
      await silence(a);
      await ok(b, `UID STORE ${last} +FLAGS.SILENT (\\Seen \\Deleted)`);
      assert.equal(await next(a), `* STATUS "INBOX" (UNSEEN ${st.UNSEEN! + 1})`);
      await ok(b, `UID EXPUNGE ${last}`);
      assert.equal(await next(a), line(st.MESSAGES! + 1, st.UIDNEXT! + 2, st.UNSEEN! + 1));
      // With CONDSTORE (§5.1–§5.3): HIGHESTMODSEQ in every STATUS; a flag change always told.
      await ok(a, 'ENABLE CONDSTORE');
      await ok(b, `UID STORE ${last - 1} +FLAGS.SILENT (\\Flagged)`);
      const hms = (await status(b, 'INBOX', 'HIGHESTMODSEQ')).HIGHESTMODSEQ;
      assert.equal(await next(a), `* STATUS "INBOX" (UIDVALIDITY ${st.UIDVALIDITY} UNSEEN ${st.UNSEEN! + 1} HIGHESTMODSEQ ${hms})`);
      await b.append('INBOX', msg('with CONDSTORE'));
      const hms2 = (await status(b, 'INBOX', 'HIGHESTMODSEQ')).HIGHESTMODSEQ;
      assert.equal(await next(a), `* STATUS "INBOX" (MESSAGES ${st.MESSAGES! + 2} UIDNEXT ${st.UIDNEXT! + 3} UIDVALIDITY ${st.UIDVALIDITY} UNSEEN ${st.UNSEEN! + 2} HIGHESTMODSEQ ${hms2})`);
      // §5: the client's own changes are not notified.
      await a.append('INBOX', msg('own'));
      await silence(a);
      // Nothing about the selected mailbox: no SELECTED filter (§3.1).
      await b.append('Ns1', msg('in the selected one'));
      await silence(a);
    } finally {
      smtp.close();
      a.close();
      b.close();
    }
  });

  test('RFC 5465 §5.2, §5.1, §5.3 in the selected mailbox (SELECTED): EXISTS then FETCH with the MessageNew attributes, FETCH (UID FLAGS) for a flag change, EXPUNGE at once; no FETCH for the client\'s own APPEND', async () => {
    const a = await login();
    const b = await login();
    try {
      await ok(a, 'ENABLE IMAP4rev2');
      await mailbox(a, 'Ns2', []);
      assert.deepEqual(await ok(a, 'NOTIFY SET (selected (MessageNew (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)]) MessageExpunge FlagChange))'), []);
      await b.append('Ns2', msg('one'));
      assert.equal(await next(a), '* 1 EXISTS');
      assert.equal(await next(a), '* 1 FETCH (UID 1 FLAGS () BODY[HEADER.FIELDS (SUBJECT)] {16}\r\nSubject: one\r\n\r\n)');
      await ok(b, 'SELECT Ns2');
      await ok(b, 'STORE 1 +FLAGS.SILENT ($Junk)');
      // RFC 3501 §7.2.6: the new keyword is announced before a FETCH shows it.
      assert.equal(await next(a), '* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Junk)');
      assert.equal(await next(a), '* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Junk \\*)] Flags permitted');
      assert.equal(await next(a), '* 1 FETCH (UID 1 FLAGS ($Junk))', 'the §5.1 example: * 99 FETCH (UID 9999 FLAGS ($Junk))');
      await ok(b, 'STORE 1 +FLAGS.SILENT (\\Deleted)');
      assert.equal(await next(a), '* 1 FETCH (UID 1 FLAGS (\\Deleted $Junk))');
      await ok(b, 'EXPUNGE');
      assert.equal(await next(a), '* 1 EXPUNGE');
      // §5.2: no FETCH for a message the client added itself.
      const own = await a.append('Ns2', msg('own'));
      assert.deepEqual(own.lines, ['* 1 EXISTS']);
      await silence(a);
      // QRESYNC: VANISHED instead of EXPUNGE (§5.3 example: * VANISHED 5444).
      await ok(a, 'ENABLE QRESYNC');
      await ok(b, 'NOOP');
      await ok(b, 'UID STORE 2 +FLAGS.SILENT (\\Deleted)');
      assert.match(await next(a), /^\* 1 FETCH \(UID 2 FLAGS \(\\Deleted\) MODSEQ \(\d+\)\)$/);
      await ok(b, 'UID EXPUNGE 2');
      assert.equal(await next(a), '* VANISHED 2');
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5465 §5.2 with an SMTP delivery into the selected INBOX: EXISTS and the FETCH asked for, at once', async () => {
    const a = await login();
    const smtp = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort(), secure: false, ignoreTLS: true });
    try {
      await ok(a, 'ENABLE IMAP4rev2');
      const sel = await ok(a, 'SELECT INBOX');
      const n = Number(/^\* (\d+) EXISTS$/.exec(sel.find((l) => l.endsWith(' EXISTS'))!)![1]);
      const uidNext = Number(/UIDNEXT (\d+)/.exec(sel.find((l) => l.includes('[UIDNEXT'))!)![1]);
      await ok(a, 'NOTIFY SET (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (Subject)]) MessageExpunge))');
      await smtp.sendMail({ from: 'someone@elsewhere.example', to: 'conf@example.com', subject: 'Pushed', text: 'Hello' });
      assert.equal(await next(a), `* ${n + 1} EXISTS`);
      assert.equal(await next(a), `* ${n + 1} FETCH (UID ${uidNext} BODY[HEADER.FIELDS (SUBJECT)] {19}\r\nSubject: Pushed\r\n\r\n)`);
    } finally {
      smtp.close();
      a.close();
    }
  });

  test('RFC 5465 §6.1.2 SELECTED-DELAYED: new mail at once, an expunge only at a command that allows it — not in a FETCH by number (RFC 3501 §7.4.1), at NOOP', async () => {
    const a = await login();
    const b = await login();
    try {
      await ok(a, 'ENABLE IMAP4rev2');
      await mailbox(a, 'Ns3', ['a', 'b', 'c'].map(msg));
      await ok(a, 'NOTIFY SET (selected-delayed (MessageNew (UID) MessageExpunge))');
      await ok(b, 'SELECT Ns3');
      await ok(b, 'UID STORE 2 +FLAGS.SILENT (\\Deleted)');
      await ok(b, 'UID EXPUNGE 2');
      await silence(a);
      assert.deepEqual(await ok(a, 'FETCH 1:* (UID)'), ['* 1 FETCH (UID 1)', '* 3 FETCH (UID 3)']);
      assert.deepEqual(await ok(a, 'NOOP'), ['* 2 EXPUNGE']);
      await b.append('Ns3', msg('d'));
      assert.equal(await next(a), '* 3 EXISTS');
      assert.equal(await next(a), '* 3 FETCH (UID 4)');
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5465 §3.1: without SELECTED, no message event of the selected mailbox reaches the client; its own APPEND still gets its EXISTS; a NOTIFY SET with SELECTED then returns what accumulated (implicit NOOP)', async () => {
    const a = await login();
    const b = await login();
    try {
      await ok(a, 'ENABLE IMAP4rev2');
      await mailbox(a, 'Ns4', [msg('first')]);
      await ok(a, 'NOTIFY SET (personal (MailboxName))');
      await b.append('Ns4', msg('b1'));
      await b.append('Ns4', msg('b2'));
      await silence(a);
      assert.deepEqual(await ok(a, 'NOOP'), []);
      assert.deepEqual(await ok(a, 'UID FETCH 1:* (UID)'), ['* 1 FETCH (UID 1)']);
      // The client's own APPEND is answered with EXISTS; the count has the other session's too.
      assert.deepEqual((await a.append('Ns4', msg('own'))).lines, ['* 4 EXISTS']);
      await b.append('Ns4', msg('b3'));
      await ok(b, 'SELECT Ns4');
      await ok(b, 'UID STORE 1 +FLAGS.SILENT (\\Deleted)');
      await ok(b, 'UID EXPUNGE 1');
      assert.deepEqual(await ok(a, 'NOOP'), []);
      assert.deepEqual(await ok(a, 'NOTIFY SET (selected (MessageNew (UID) MessageExpunge))'), ['* 1 EXPUNGE', '* 4 EXISTS', '* 4 FETCH (UID 5)']);
      // NOTIFY NONE (§3.1): no events at all.
      await ok(a, 'NOTIFY NONE');
      await b.append('Ns4', msg('b4'));
      await silence(a);
      assert.deepEqual(await ok(a, 'NOOP'), []);
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5465 §5.4 MailboxName, §5.5 SubscriptionChange: LIST for another session\'s CREATE (and the parent), RENAME (OLDNAME, once for the subtree), DELETE (\\NonExistent), SUBSCRIBE; none for the client\'s own (§5)', async () => {
    const a = await login();
    const b = await login();
    try {
      await ok(a, 'NOTIFY SET (subtree Mn (MailboxName SubscriptionChange))');
      await ok(b, 'CREATE Mn');
      assert.equal(await next(a), '* LIST (\\HasNoChildren) "/" "Mn"');
      await ok(b, 'CREATE Mn/sub');
      assert.equal(await next(a), '* LIST (\\HasNoChildren) "/" "Mn/sub"');
      assert.equal(await next(a), '* LIST (\\HasChildren) "/" "Mn"', '§5.4: the direct parent is affected too');
      await ok(b, 'CREATE Mn/sub/deep');
      assert.equal(await next(a), '* LIST (\\HasNoChildren) "/" "Mn/sub/deep"');
      assert.equal(await next(a), '* LIST (\\HasChildren) "/" "Mn/sub"');
      await ok(b, 'RENAME Mn/sub Mn/moved');
      assert.equal(await next(a), '* LIST (\\HasChildren) "/" "Mn/moved" ("OLDNAME" ("Mn/sub"))');
      await silence(a); // nothing for Mn/sub/deep, which moved with it
      await ok(b, 'DELETE Mn/moved/deep');
      assert.equal(await next(a), '* LIST (\\NonExistent) "/" "Mn/moved/deep"');
      assert.equal(await next(a), '* LIST (\\HasNoChildren) "/" "Mn/moved"');
      await ok(b, 'SUBSCRIBE Mn/moved');
      assert.equal(await next(a), '* LIST (\\HasNoChildren \\Subscribed) "/" "Mn/moved"');
      await ok(b, 'UNSUBSCRIBE Mn/moved');
      assert.equal(await next(a), '* LIST (\\HasNoChildren) "/" "Mn/moved"');
      // The client's own changes, and names outside the subtree: nothing.
      assert.deepEqual(await ok(a, 'CREATE Mn/own'), []);
      assert.deepEqual(await ok(a, 'SUBSCRIBE Mn/own'), []);
      await ok(b, 'CREATE Elsewhere');
      await silence(a);
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5465 §4: during IDLE the server sends exactly the NOTIFY events: STATUS for another mailbox, EXISTS + FETCH for the selected one', async () => {
    const a = await login();
    const b = await login();
    try {
      await ok(a, 'ENABLE IMAP4rev2');
      await ok(b, 'CREATE Ns5other');
      await mailbox(a, 'Ns5', []);
      await ok(a, 'NOTIFY SET (selected (MessageNew (UID) MessageExpunge)) (mailboxes Ns5other (MessageNew MessageExpunge))');
      a.write('i1 IDLE\r\n');
      assert.equal(await next(a), '+ idling');
      await b.append('Ns5other', msg('x'));
      assert.match(await next(a), /^\* STATUS "Ns5other" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1\)$/);
      await b.append('Ns5', msg('y'));
      assert.equal(await next(a), '* 1 EXISTS');
      assert.equal(await next(a), '* 1 FETCH (UID 1)');
      a.write('DONE\r\n');
      assert.equal(await next(a), 'i1 OK IDLE terminated');
    } finally {
      a.close();
      b.close();
    }
  });
});
