// OBJECTID (RFC 8474) against the real server on both store backends: the RFC's examples with a
// raw-line client (ids are server-chosen, so the test checks their syntax and which are equal),
// then imapflow, which reads EMAILID / THREADID and searches by them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImapFlow } from 'imapflow';
import { crlf, eachBackend, ok } from './conformance-env.ts';

const OBJECTID = /^[A-Za-z0-9_-]{1,255}$/;

const msgA = crlf(['From: a@example.com', 'Subject: Message A', 'Message-ID: <fake.1521475657.54797@example.com>', '', 'a']);
const msgB = crlf(['From: b@example.org', 'Subject: Re: Message A', 'Message-ID: <fake.1521475657.21213@example.org>', 'References: <fake.1521475657.54797@example.com>', '', 'b']);
const msgC = crlf(['From: a@example.com', 'Subject: Message C', 'Message-ID: <fake.1521475657.60280@example.com>', '', 'c']);

eachBackend('OBJECTID', (env) => {
  const { login } = env;
  test('RFC 8474 §4.1–§4.3: MAILBOXID in CREATE, STATUS, LIST-STATUS and SELECT; kept by RENAME, never shared', async () => {
    const c = await login();
    try {
      assert.ok((await ok(c, 'CAPABILITY'))[0]!.split(' ').includes('OBJECTID'));
      const foo = await c.cmd('CREATE oidfoo');
      const fooId = /^t\d+ OK \[MAILBOXID \(([^)]+)\)\] /.exec(foo.tagged)?.[1];
      assert.ok(fooId && OBJECTID.test(fooId), foo.tagged);
      const barId = /\[MAILBOXID \(([^)]+)\)\]/.exec((await c.cmd('CREATE oidbar')).tagged)?.[1];
      assert.ok(barId && barId !== fooId);
      assert.match((await c.cmd('CREATE oidfoo')).tagged, /^t\d+ NO /);
      assert.deepEqual(await ok(c, 'STATUS oidfoo (MAILBOXID)'), [`* STATUS "oidfoo" (MAILBOXID (${fooId}))`]);
      await ok(c, 'RENAME oidfoo oidrenamed');
      assert.deepEqual(await ok(c, 'STATUS oidrenamed (MAILBOXID)'), [`* STATUS "oidrenamed" (MAILBOXID (${fooId}))`]);
      assert.deepEqual(await ok(c, 'STATUS oidbar (MAILBOXID)'), [`* STATUS "oidbar" (MAILBOXID (${barId}))`]);
      const list = await ok(c, 'LIST "" "oid*" RETURN (STATUS (MAILBOXID))');
      assert.ok(list.includes(`* STATUS "oidrenamed" (MAILBOXID (${fooId}))`) && list.includes(`* STATUS "oidbar" (MAILBOXID (${barId}))`), list.join('\n'));
      assert.ok((await ok(c, 'SELECT oidrenamed')).includes(`* OK [MAILBOXID (${fooId})] Ok`));
      // A new mailbox under the old name is a new mailbox.
      const again = /\[MAILBOXID \(([^)]+)\)\]/.exec((await c.cmd('CREATE oidfoo')).tagged)?.[1];
      assert.ok(again && again !== fooId && again !== barId);
    } finally {
      c.close();
    }
  });

  test('RFC 8474 §5.3/§6 example: EMAILID and THREADID in FETCH, kept by MOVE; SEARCH EMAILID / THREADID', async () => {
    const c = await login();
    try {
      await ok(c, 'CREATE oidmsgs');
      await ok(c, 'CREATE oiddst');
      for (const m of [msgA, msgB, msgC]) assert.match((await c.append('oidmsgs', m, '"20-Mar-2018 03:07:37 +1100"')).tagged, / OK /);
      await ok(c, 'SELECT oidmsgs');
      const ids = (lines: string[]) =>
        lines.map((l) => {
          const m = /^\* (\d+) FETCH \(EMAILID \(([^)]+)\) THREADID \(([^)]+)\)\)$/.exec(l);
          assert.ok(m, l);
          return { seq: Number(m[1]), email: m[2]!, thread: m[3]! };
        });
      const before = ids(await ok(c, 'FETCH 1:* (EMAILID THREADID)'));
      assert.equal(before.length, 3);
      for (const x of before) assert.ok(OBJECTID.test(x.email) && OBJECTID.test(x.thread));
      assert.equal(new Set(before.map((x) => x.email)).size, 3);
      assert.equal(before[0]!.thread, before[1]!.thread, 'the reply is in the thread of Message A');
      assert.notEqual(before[2]!.thread, before[0]!.thread);
      assert.ok(!before.some((x) => x.email === x.thread), 'EMAILIDs and THREADIDs never share a value (§5.2)');
      assert.deepEqual(await ok(c, `SEARCH EMAILID ${before[0]!.email}`), ['* SEARCH 1']);
      assert.deepEqual(await ok(c, `SEARCH THREADID ${before[0]!.thread}`), ['* SEARCH 1 2']);
      assert.deepEqual(await ok(c, 'SEARCH THREADID Tnothere'), ['* SEARCH']);
      const mv = await ok(c, 'MOVE 2 oiddst');
      assert.match(mv[0]!, /^\* OK \[COPYUID \d+ 2 1\] /);
      const after = ids(await ok(c, 'FETCH 1:* (EMAILID THREADID)'));
      assert.deepEqual(after.map((x) => [x.email, x.thread]), [[before[0]!.email, before[0]!.thread], [before[2]!.email, before[2]!.thread]]);
      await ok(c, 'SELECT oiddst');
      const moved = ids(await ok(c, 'FETCH 1:* (EMAILID THREADID)'));
      assert.deepEqual(moved.map((x) => [x.email, x.thread]), [[before[1]!.email, before[1]!.thread]]);
      assert.deepEqual(await ok(c, `UID SEARCH THREADID ${before[0]!.thread}`), ['* SEARCH 1']);
      assert.match((await c.cmd('SEARCH EMAILID bad!id')).tagged, /^t\d+ BAD /);
    } finally {
      c.close();
    }
  });

  test('imapflow reads EMAILID / THREADID and searches by THREADID', async () => {
    const srv = env.srv;
    const client = new ImapFlow({ host: '127.0.0.1', port: srv.ports.imaps, secure: true, tls: { ca: [srv.ca], servername: 'localhost' }, auth: { user: 'conf@example.com', pass: 'pw-conf-1' }, logger: false });
    await client.connect();
    try {
      await client.mailboxCreate('oidflow');
      for (const m of [msgA, msgB, msgC]) await client.append('oidflow', m);
      const lock = await client.getMailboxLock('oidflow');
      try {
        const got: Array<{ uid: number; emailId?: string; threadId?: string }> = [];
        for await (const m of client.fetch('1:*', { uid: true, emailId: true, threadId: true })) got.push({ uid: m.uid, emailId: m.emailId, threadId: m.threadId });
        assert.equal(got.length, 3);
        assert.ok(got.every((m) => m.emailId && m.threadId), JSON.stringify(got));
        assert.equal(got[0]!.threadId, got[1]!.threadId);
        assert.notEqual(got[2]!.threadId, got[0]!.threadId);
        assert.deepEqual(await client.search({ threadId: got[0]!.threadId! }, { uid: true }), [got[0]!.uid, got[1]!.uid]);
        assert.deepEqual(await client.search({ emailId: got[2]!.emailId! }, { uid: true }), [got[2]!.uid]);
      } finally {
        lock.release();
      }
    } finally {
      await client.logout();
    }
  });
});
