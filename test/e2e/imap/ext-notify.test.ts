// Issue 14 extensions: NOTIFY (RFC 5465) against the real server (both store backends), raw lines
// in, exact responses out: the command's grammar and rules, and the RFC's examples. What other
// sessions' changes bring is in ext-notify-sessions.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crlf, eachBackend, ok } from './conformance-env.ts';
import type { RawImap } from './raw-client.ts';

const SUPPORTED = 'BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)';

/** The tagged reply without its tag. */
async function reply(c: RawImap, cmd: string): Promise<string> {
  const r = await c.cmd(cmd);
  return r.tagged.slice(r.tagged.indexOf(' ') + 1);
}

/** The next line the server sends unasked (a notification), within `ms`. */
function next(c: RawImap, ms = 3000): Promise<string> {
  return c.readLine(ms);
}

/** Asserts that nothing arrives for `ms`. */
async function silence(c: RawImap, ms = 300): Promise<void> {
  await assert.rejects(c.readLine(ms), /timeout/, 'no notification expected');
}

async function uidValidity(c: RawImap, name: string): Promise<number> {
  return Number(/UIDVALIDITY (\d+)/.exec((await ok(c, `STATUS ${name} (UIDVALIDITY)`))[0]!)![1]);
}

eachBackend('IMAP extensions: NOTIFY', ({ login }) => {
  test('RFC 5465 §3: NOTIFY is advertised once logged in; RFC 5465 §8: NOTIFY NONE and NOTIFY SET, anything else is BAD', async () => {
    const c = await login();
    try {
      assert.match((await ok(c, 'CAPABILITY'))[0]!, / NOTIFY( |$)/);
      assert.equal(await reply(c, 'NOTIFY NONE'), 'OK NOTIFY completed');
      assert.equal(await reply(c, 'notify set (personal (MailboxName)) (Selected NONE)'), 'OK NOTIFY completed', '§8: case-insensitive');
      for (const bad of [
        'NOTIFY',
        'NOTIFY SET',
        'NOTIFY SET STATUS',
        'NOTIFY SET ()',
        'NOTIFY SET (personal)',
        'NOTIFY SET (personal ())',
        'NOTIFY SET (everything (MessageNew MessageExpunge))',
        'NOTIFY SET (subtree (MailboxName))',
        'NOTIFY SET (personal (MailboxName)) extra',
        'NOTIFY SET (selected (MessageNew (NOSUCHITEM) MessageExpunge))',
        'NOTIFY ALL',
      ]) {
        assert.match(await reply(c, bad), /^BAD /, bad);
      }
    } finally {
      c.close();
    }
  });

  test('RFC 5465 §5: MessageNew and MessageExpunge only together, FlagChange only with both; §6.1: one SELECTED filter, message events only; §8: fetch-att only for SELECTED', async () => {
    const c = await login();
    try {
      const cases: Array<[string, string]> = [
        ['NOTIFY SET (selected (MessageNew))', 'BAD MessageNew and MessageExpunge must be asked for together (RFC 5465 §5)'],
        ['NOTIFY SET (personal (MessageExpunge))', 'BAD MessageNew and MessageExpunge must be asked for together (RFC 5465 §5)'],
        ['NOTIFY SET (personal (FlagChange))', 'BAD FlagChange needs MessageNew and MessageExpunge (RFC 5465 §5)'],
        ['NOTIFY SET (inboxes (AnnotationChange))', 'BAD AnnotationChange needs MessageNew and MessageExpunge (RFC 5465 §5)'],
        ['NOTIFY SET (selected (MessageNew MessageExpunge)) (selected-delayed (MessageNew MessageExpunge))', 'BAD Only one SELECTED or SELECTED-DELAYED filter (RFC 5465 §6.1)'],
        ['NOTIFY SET (selected NONE) (selected NONE)', 'BAD Only one SELECTED or SELECTED-DELAYED filter (RFC 5465 §6.1)'],
        ['NOTIFY SET (selected (MailboxName))', 'BAD MailboxName cannot be asked for the selected mailbox (RFC 5465 §6.1)'],
        ['NOTIFY SET (selected-delayed (MessageNew MessageExpunge SubscriptionChange))', 'BAD SubscriptionChange cannot be asked for the selected mailbox (RFC 5465 §6.1)'],
        ['NOTIFY SET (personal (MessageNew (UID) MessageExpunge))', 'BAD MessageNew attributes only for SELECTED or SELECTED-DELAYED (RFC 5465 §8)'],
      ];
      for (const [cmd, want] of cases) assert.equal(await reply(c, cmd), want, cmd);
      // The §5 rule before support: AnnotationChange with both is refused as unsupported (below).
      assert.equal(await reply(c, 'NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange))'), 'OK NOTIFY completed');
    } finally {
      c.close();
    }
  });

  test('RFC 5465 §3.1: an unsupported event is NO [BADEVENT (…)] listing every event the server supports (not BAD); nothing changes', async () => {
    const c = await login();
    const b = await login();
    try {
      await ok(c, 'CREATE Nb1');
      await ok(c, 'NOTIFY SET (mailboxes Nb1 (MessageNew MessageExpunge))');
      for (const [cmd, named] of [
        ['NOTIFY SET (personal (MessageNew MessageExpunge AnnotationChange))', 'AnnotationChange'],
        ['NOTIFY SET (selected (MessageNew MessageExpunge FlagChange AnnotationChange))', 'AnnotationChange'],
        ['NOTIFY SET (personal (MailboxMetadataChange))', 'MailboxMetadataChange'],
        ['NOTIFY SET (personal (ServerMetadataChange MailboxName))', 'ServerMetadataChange'],
        ['NOTIFY SET (subscribed (MessageRead))', 'MessageRead'],
      ]) {
        assert.equal(await reply(c, cmd!), `NO [${SUPPORTED}] Not supported: ${named}`, cmd);
      }
      // The earlier NOTIFY SET still holds.
      await b.append('Nb1', crlf(['Subject: x', '', 'x']));
      assert.match(await next(c), /^\* STATUS "Nb1" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1\)$/);
    } finally {
      c.close();
      b.close();
    }
  });

  test('RFC 5465 §3.1: a NOTIFY too big to follow is refused NO [LIMIT] (64 event groups, 1000 mailbox names)', async () => {
    const c = await login();
    try {
      const groups = (n: number) => Array.from({ length: n }, (_, i) => `(mailboxes g${i} (MailboxName))`).join(' ');
      assert.equal(await reply(c, `NOTIFY SET ${groups(64)}`), 'OK NOTIFY completed');
      assert.equal(await reply(c, `NOTIFY SET ${groups(65)}`), 'NO [LIMIT] NOTIFY SET takes at most 64 event groups');
      const names = (n: number) => `(${Array.from({ length: n }, (_, i) => `m${i}`).join(' ')})`;
      assert.equal(await reply(c, `NOTIFY SET (subtree ${names(1000)} (MessageNew MessageExpunge))`), 'OK NOTIFY completed');
      assert.equal(await reply(c, `NOTIFY SET (subtree ${names(600)} (MessageNew MessageExpunge)) (mailboxes ${names(401)} (MailboxName))`), 'NO [LIMIT] NOTIFY SET takes at most 1000 mailbox names');
    } finally {
      c.close();
    }
  });

  test('RFC 5465 §3.1 example, event lists in parentheses as §8 requires: STATUS per watched mailbox, then STATUS and EXISTS + FETCH as mail arrives', async () => {
    const c = await login();
    const b = await login();
    try {
      await ok(b, 'CREATE Lists/Lemonade');
      await ok(b, 'CREATE Lists/Im2000');
      await ok(b, 'CREATE misc');
      for (const s of ['one', 'two']) await b.append('Lists/Lemonade', crlf([`Subject: ${s}`, '', s]));
      const uv = { lists: await uidValidity(b, 'Lists'), lemonade: await uidValidity(b, 'Lists/Lemonade'), im2000: await uidValidity(b, 'Lists/Im2000') };
      // The example as printed has no parentheses around the events, and MessageNew without
      // MessageExpunge: both are refused (§8 events = "(" event *(SP event) ")", §5).
      assert.match(await reply(c, 'notify set status (selected MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge) (subtree Lists MessageNew)'), /^BAD /);
      assert.equal(await reply(c, 'notify set status (subtree Lists (MessageNew))'), 'BAD MessageNew and MessageExpunge must be asked for together (RFC 5465 §5)');
      const r = await c.cmd('notify set status (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge))');
      assert.equal(r.tagged.replace(/^\S+ /, ''), 'OK NOTIFY completed');
      assert.deepEqual(r.lines, [
        `* STATUS "Lists" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY ${uv.lists} UNSEEN 0)`,
        `* STATUS "Lists/Im2000" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY ${uv.im2000} UNSEEN 0)`,
        `* STATUS "Lists/Lemonade" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY ${uv.lemonade} UNSEEN 2)`,
      ]);
      await ok(c, 'ENABLE IMAP4rev2');
      await ok(c, 'select inbox');
      // "Time passes. A new message is delivered to mailbox Lists/Lemonade."
      await b.append('Lists/Lemonade', crlf(['Subject: three', '', '3']));
      assert.equal(await next(c), `* STATUS "Lists/Lemonade" (MESSAGES 3 UIDNEXT 4 UIDVALIDITY ${uv.lemonade} UNSEEN 3)`);
      // "Time passes. A new message is delivered to inbox."
      const msg = crlf(['Subject: Re: good morning', 'From: alice@example.org', 'To: bob@example.org', '', 'Good morning!']);
      const uid = Number(/APPENDUID \d+ (\d+)/.exec((await b.append('INBOX', msg)).tagged)![1]);
      const exists = await next(c);
      const n = Number(/^\* (\d+) EXISTS$/.exec(exists)![1]);
      const header = 'Subject: Re: good morning\r\nFrom: alice@example.org\r\nTo: bob@example.org\r\n\r\n';
      assert.equal(await next(c), `* ${n} FETCH (UID ${uid} BODY[HEADER.FIELDS (FROM TO SUBJECT)] {${header.length}}\r\n${header})`);
      // "The client decides it wants to know about one more mailbox": STATUS first, then NOTIFY
      // SET without STATUS (no STATUS responses).
      const st = await ok(c, 'STATUS misc (UIDVALIDITY UIDNEXT MESSAGES)');
      assert.match(st[0]!, /^\* STATUS "misc" \(UIDVALIDITY \d+ UIDNEXT 1 MESSAGES 0\)$/);
      const e = await c.cmd('notify set (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge)) (mailboxes misc (MessageNew MessageExpunge))');
      assert.deepEqual([e.lines, e.tagged.replace(/^\S+ /, '')], [[], 'OK NOTIFY completed']);
      await b.append('misc', crlf(['Subject: m', '', 'm']));
      assert.match(await next(c), /^\* STATUS "misc" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1\)$/);
      await silence(c);
      // §3.1: with FlagChange (the server supports CONDSTORE) the STATUS has HIGHESTMODSEQ too.
      const hms = /HIGHESTMODSEQ (\d+)/.exec((await ok(b, 'STATUS misc (HIGHESTMODSEQ)'))[0]!)![1];
      const f = await ok(c, 'notify set status (mailboxes misc (MessageNew MessageExpunge FlagChange))');
      assert.deepEqual(f.map((l) => l.replace(/UIDVALIDITY \d+/, 'UIDVALIDITY v')), [`* STATUS "misc" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY v UNSEEN 1 HIGHESTMODSEQ ${hms})`]);
    } finally {
      c.close();
      b.close();
    }
  });

  test('RFC 5465 §6 example: (mailboxes INBOX (MessageNew MessageExpunge)) (personal (SubscriptionChange)): STATUS for INBOX, LIST for a subscription, nothing else', async () => {
    const c = await login();
    const b = await login();
    try {
      await ok(b, 'CREATE Six1');
      await ok(c, 'ENABLE IMAP4rev2');
      await ok(c, 'SELECT Six1');
      assert.equal(await reply(c, 'notify set (mailboxes INBOX (Messagenew messageExpunge)) (personal (SubscriptionChange))'), 'OK NOTIFY completed');
      const before = Number(/MESSAGES (\d+)/.exec((await ok(b, 'STATUS INBOX (MESSAGES)'))[0]!)![1]);
      await b.append('INBOX', crlf(['Subject: six', '', 'six']));
      assert.match(await next(c), new RegExp(`^\\* STATUS "INBOX" \\(MESSAGES ${before + 1} UIDNEXT \\d+ UIDVALIDITY \\d+ UNSEEN \\d+\\)$`));
      // INBOX starts subscribed: a SUBSCRIBE that changes nothing is no event.
      await ok(b, 'SUBSCRIBE INBOX');
      await ok(b, 'UNSUBSCRIBE INBOX');
      assert.equal(await next(c), '* LIST (\\HasNoChildren) "/" "INBOX"');
      await ok(b, 'SUBSCRIBE INBOX');
      assert.equal(await next(c), '* LIST (\\HasNoChildren \\Subscribed) "/" "INBOX"');
      // Six1 is selected: no SELECTED filter, so another session's message there is not told (§3.1).
      await b.append('Six1', crlf(['Subject: s', '', 's']));
      await ok(b, 'CREATE Six2'); // no MailboxName asked for
      await silence(c);
      assert.deepEqual(await ok(c, 'NOOP'), []);
    } finally {
      c.close();
      b.close();
    }
  });
});
