// IMAP sessions against the real server: TLS on 993 and STARTTLS on 143 (LOGINDISABLED before),
// bad input of every kind, the unbounded line, the per-account connection limit, isolation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { RawImap } from './raw-client.ts';
import { startImapServer, simpleMessage, type ImapTestServer } from './harness.ts';

let srv: ImapTestServer;
const A = 'alice@example.com';
const B = 'bob@example.com';
const PW = 'correct horse';

before(async () => {
  srv = await startImapServer({ args: ['--max-message-size', '1MB'] });
  await srv.addUser(A, PW);
  await srv.addUser(B, PW);
});
after(async () => {
  await srv?.done();
});

async function tlsLogin(user = A): Promise<RawImap> {
  const c = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
  await c.login(user, `"${PW}"`);
  return c;
}

test('port 143 advertises STARTTLS and LOGINDISABLED; login works only after STARTTLS', async () => {
  const c = await RawImap.connect(srv.ports.imap);
  try {
    const cap = await c.cmd('CAPABILITY');
    assert.match(cap.lines[0]!, /^\* CAPABILITY .*IMAP4rev2.*IMAP4rev1/);
    assert.match(cap.lines[0]!, / STARTTLS/);
    assert.match(cap.lines[0]!, / LOGINDISABLED/);
    const denied = await c.cmd(`LOGIN ${A} "${PW}"`);
    assert.match(denied.tagged, /^t\d+ NO \[PRIVACYREQUIRED\]/);
    await c.startTls(srv.ca);
    const cap2 = await c.cmd('CAPABILITY');
    assert.doesNotMatch(cap2.lines[0]!, /STARTTLS|LOGINDISABLED/);
    assert.match(cap2.lines[0]!, /AUTH=PLAIN/);
    const ok = await c.cmd(`LOGIN ${A} "${PW}"`);
    assert.match(ok.tagged, /OK \[CAPABILITY [^\]]*IDLE[^\]]*QRESYNC[^\]]*\] Logged in/);
    const list = await c.cmd('LIST "" "*"');
    assert.deepEqual(
      list.lines.map((l) => l.replace(/^\* LIST \(([^)]*)\) "\/" /, '$1 ')),
      ['\\HasNoChildren "INBOX"', '\\HasNoChildren \\Archive "Archive"', '\\HasNoChildren \\Drafts "Drafts"', '\\HasNoChildren \\Junk "Junk"', '\\HasNoChildren \\Sent "Sent"', '\\HasNoChildren \\Trash "Trash"'],
    );
  } finally {
    c.close();
  }
});

test('port 993 (implicit TLS): AUTHENTICATE PLAIN with SASL-IR, wrong password refused', async () => {
  const c = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
  try {
    const bad = await c.cmd(`AUTHENTICATE PLAIN ${Buffer.from(`\0${A}\0wrong`).toString('base64')}`);
    assert.match(bad.tagged, /NO \[AUTHENTICATIONFAILED\]/);
    const ok = await c.cmd(`AUTHENTICATE PLAIN ${Buffer.from(`\0${A}\0${PW}`).toString('base64')}`);
    assert.match(ok.tagged, /OK/);
    const sel = await c.cmd('SELECT INBOX');
    assert.match(sel.tagged, /OK \[READ-WRITE\]/);
  } finally {
    c.close();
  }
});

test('bad input gets BAD/NO and the session keeps working', async () => {
  const c = await tlsLogin();
  try {
    await c.cmd('SELECT INBOX');
    assert.match((await c.append('INBOX', simpleMessage('keep me'))).tagged, /OK \[APPENDUID/);
    assert.match((await c.cmd('FROBNICATE now')).tagged, /^t\d+ BAD .*Unknown command/);
    assert.match((await c.cmd('FETCH 1:x (FLAGS)')).tagged, /^t\d+ BAD .*sequence set/);
    assert.match((await c.cmd('FETCH 99 (FLAGS)')).tagged, /^t\d+ BAD .*sequence number/);
    assert.match((await c.cmd('FETCH 1 (FLAGS UID')).tagged, /^t\d+ BAD .*[Uu]nbalanced/);
    assert.match((await c.cmd('SEARCH (FLAGGED')).tagged, /^t\d+ BAD/);
    assert.match((await c.cmd('FETCH 1 (FLAGS))')).tagged, /^t\d+ BAD/);
    assert.match((await c.cmd('SELECT "no such box"')).tagged, /^t\d+ NO \[NONEXISTENT\]/);
    assert.match((await c.cmd('LOGIN x y')).tagged, /^t\d+ BAD/);
    // RFC 9051 §6.3.2: the failed SELECT left no mailbox selected.
    assert.match((await c.cmd('FETCH 1 (FLAGS)')).tagged, /^t\d+ BAD/);
    assert.match((await c.cmd('SELECT INBOX')).tagged, /OK/);

    // A synchronizing literal over APPENDLIMIT: NO [TOOBIG] before any data is sent.
    const tag = c.nextTag();
    c.write(`${tag} APPEND INBOX {${2 * 1024 * 1024}}\r\n`);
    assert.match(await c.readLine(), new RegExp(`^${tag} NO \\[TOOBIG\\] .*APPENDLIMIT`));
    const f = await c.cmd('FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
    assert.match(f.tagged, /OK/);
    assert.match(f.lines[0]!, /Subject: keep me/);
    assert.match((await c.cmd('NOOP')).tagged, /OK/);
    const st = await c.cmd('STATUS INBOX (MESSAGES)');
    assert.match(st.lines[0]!, /MESSAGES 1\)/);

    // A non-synchronizing one over APPENDLIMIT: BAD [TOOBIG] and close, nothing of it is read
    // (RFC 7888 §4-5: reading it would cost what the limit is there to prevent).
    const big = Buffer.alloc(1024 * 1024 + 10, 0x61);
    const tag2 = c.nextTag();
    c.write(Buffer.concat([Buffer.from(`${tag2} APPEND INBOX {${big.length}+}\r\n`), big, Buffer.from('\r\n')]));
    assert.match(await c.readLine(10000), new RegExp(`^${tag2} BAD \\[TOOBIG\\]`));
    assert.match(await c.readLine(10000), /^\* BYE \[TOOBIG\]/);
  } finally {
    c.close();
  }
});

test('a 100 MB line gets BYE and close; the server keeps serving other sessions', async () => {
  const other = await tlsLogin();
  const sock = netConnect({ host: '127.0.0.1', port: srv.ports.imap });
  let received = '';
  sock.on('data', (d) => (received += d.toString('latin1')));
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise<void>((r) => sock.once('connect', () => r()));
  const chunk = Buffer.alloc(1024 * 1024, 0x41);
  let sent = 0;
  const writer = (async () => {
    sock.write('a1 LOGIN ');
    while (sent < 100 && !sock.destroyed) {
      sent++;
      if (!sock.write(chunk)) await new Promise<void>((r) => {
        sock.once('drain', r);
        sock.once('close', r);
      });
    }
  })();
  await closed;
  await writer;
  assert.match(received, /\* BYE \[TOOBIG\] Line longer than/);
  assert.ok(sent < 100, `server closed before the whole line was sent (sent ${sent} MB)`);
  try {
    assert.match((await other.cmd('NOOP')).tagged, /OK/);
    const fresh = await tlsLogin();
    assert.match((await fresh.cmd('SELECT INBOX')).tagged, /OK/);
    fresh.close();
  } finally {
    other.close();
  }
});

test('the sixth simultaneous login is refused with the limit; the first five keep working', async () => {
  const five: RawImap[] = [];
  try {
    for (let i = 0; i < 5; i++) five.push(await tlsLogin(B));
    const sixth = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
    const r = await sixth.cmd(`LOGIN ${B} "${PW}"`);
    assert.match(r.tagged, /^t\d+ NO \[LIMIT\] .*at most 5/);
    for (const c of five) assert.match((await c.cmd('NOOP')).tagged, /OK/);
    // The refused session is still usable and may try again once a slot frees up.
    five.shift()!.close();
    await new Promise((res) => setTimeout(res, 200));
    assert.match((await sixth.cmd(`LOGIN ${B} "${PW}"`)).tagged, /OK/);
    sixth.close();
  } finally {
    for (const c of five) c.close();
  }
});

test('one account never reaches another account’s mailboxes', async () => {
  const a = await tlsLogin(A);
  const b = await tlsLogin(B);
  try {
    assert.match((await a.cmd('CREATE "Private/Secret"')).tagged, /OK/);
    await a.append('"Private/Secret"', simpleMessage('secret'));
    for (const name of ['"Private/Secret"', 'Private/Secret', `"${A}/Private/Secret"`, '"../Private/Secret"', '"/Private/Secret"']) {
      assert.match((await b.cmd(`SELECT ${name}`)).tagged, /NO/, name);
      assert.match((await b.cmd(`STATUS ${name} (MESSAGES)`)).tagged, /NO/, name);
    }
    const list = await b.cmd('LIST "" "*"');
    assert.ok(!list.lines.some((l) => /Private/.test(l)));
    await b.cmd('SELECT INBOX');
    const f = await b.cmd('UID FETCH 1:* (BODY.PEEK[])');
    assert.equal(f.lines.length, 0);
    assert.match((await b.cmd('UID COPY 1:* "Private/Secret"')).tagged, /NO \[TRYCREATE\]|OK/);
    const st = await a.cmd('STATUS "Private/Secret" (MESSAGES)');
    assert.match(st.lines[0]!, /MESSAGES 1\)/);
  } finally {
    a.close();
    b.close();
  }
});

test('mailbox management: create, rename (also INBOX), delete, subscribe, LIST-EXTENDED', async () => {
  const c = await tlsLogin(A);
  try {
    assert.match((await c.cmd('CREATE Projects/2026')).tagged, /OK/);
    assert.match((await c.cmd('CREATE Projects')).tagged, /NO \[ALREADYEXISTS\]/);
    assert.match((await c.cmd('RENAME Projects Work')).tagged, /OK/);
    const l = await c.cmd('LIST "" "Work*"');
    assert.deepEqual(l.lines, ['* LIST (\\HasChildren) "/" "Work"', '* LIST (\\HasNoChildren) "/" "Work/2026"']);
    const pct = await c.cmd('LIST "" "%"');
    assert.ok(pct.lines.includes('* LIST (\\HasChildren) "/" "Work"'));
    assert.ok(!pct.lines.some((x) => x.includes('Work/2026')));
    // CREATE subscribes nothing (RFC 9051 §6.3.7: subscriptions are the client's list).
    assert.match((await c.cmd('SUBSCRIBE Work')).tagged, /OK/);
    assert.match((await c.cmd('SUBSCRIBE Work/2026')).tagged, /OK/);
    assert.match((await c.cmd('UNSUBSCRIBE Work/2026')).tagged, /OK/);
    const sub = await c.cmd('LIST (SUBSCRIBED) "" "Work*" RETURN (CHILDREN STATUS (MESSAGES UIDNEXT))');
    assert.deepEqual(sub.lines, ['* LIST (\\HasChildren \\Subscribed) "/" "Work"', '* STATUS "Work" (MESSAGES 0 UIDNEXT 1)']);
    const special = await c.cmd('LIST (SPECIAL-USE) "" "*"');
    assert.deepEqual(
      special.lines.map((x) => x.split(' ').pop()),
      ['"Archive"', '"Drafts"', '"Junk"', '"Sent"', '"Trash"'],
    );
    // RFC 9051 §6.3.6: renaming INBOX moves its messages and leaves INBOX empty.
    await c.append('INBOX', simpleMessage('old inbox mail'));
    const before = await c.cmd('STATUS INBOX (MESSAGES)');
    const n = Number(/MESSAGES (\d+)/.exec(before.lines[0]!)![1]);
    assert.match((await c.cmd('RENAME INBOX "Old Inbox"')).tagged, /OK/);
    assert.match((await c.cmd('STATUS INBOX (MESSAGES)')).lines[0]!, /MESSAGES 0\)/);
    assert.match((await c.cmd('STATUS "Old Inbox" (MESSAGES)')).lines[0]!, new RegExp(`MESSAGES ${n}\\)`));
    assert.match((await c.cmd('DELETE Work/2026')).tagged, /OK/);
    assert.match((await c.cmd('DELETE INBOX')).tagged, /NO/);
    // Non-ASCII names: modified UTF-7 for IMAP4rev1 clients, UTF-8 after ENABLE UTF8=ACCEPT.
    assert.match((await c.cmd('CREATE "Entw&APw-rfe"')).tagged, /OK/);
    assert.deepEqual((await c.cmd('LIST "" "Entw*"')).lines, ['* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"']);
    await c.cmd('ENABLE UTF8=ACCEPT');
    assert.deepEqual((await c.cmd('LIST "" "Entw*"')).lines, ['* LIST (\\HasNoChildren) "/" "Entwürfe"']);
  } finally {
    c.close();
  }
});

test('commands in the wrong state are refused and change nothing', async () => {
  const c = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
  try {
    assert.match((await c.cmd('SELECT INBOX')).tagged, /BAD .*Log in first/);
    assert.match((await c.cmd('FETCH 1 FLAGS')).tagged, /BAD/);
    await c.login(A, `"${PW}"`);
    assert.match((await c.cmd('FETCH 1 FLAGS')).tagged, /BAD .*Select a mailbox first/);
    assert.match((await c.cmd('LOGIN a b')).tagged, /BAD/);
    const id = await c.cmd('ID ("name" "test-suite" "version" "1.0")');
    assert.match(id.lines[0]!, /^\* ID \("name" "Pillarbox"/);
    assert.match((await c.cmd('LOGOUT')).lines[0]!, /^\* BYE/);
  } finally {
    c.close();
  }
});

test('every command is refused in a state where it is not allowed (RFC 9051 §3)', async () => {
  const notAuth = ['ENABLE CONDSTORE', 'SELECT INBOX', 'EXAMINE INBOX', 'CREATE x', 'DELETE x', 'RENAME x y', 'SUBSCRIBE x', 'UNSUBSCRIBE x', 'LIST "" *', 'LSUB "" *', 'NAMESPACE', 'STATUS INBOX (MESSAGES)', 'APPEND INBOX {1+}\r\nx', 'IDLE', 'GETQUOTA ""', 'GETQUOTAROOT INBOX'];
  const notSelected = ['CHECK', 'CLOSE', 'UNSELECT', 'EXPUNGE', 'UID EXPUNGE 1', 'SEARCH ALL', 'UID SEARCH ALL', 'FETCH 1 FLAGS', 'UID FETCH 1 FLAGS', 'STORE 1 +FLAGS (\\Seen)', 'UID STORE 1 +FLAGS (\\Seen)', 'COPY 1 Trash', 'UID COPY 1 Trash', 'MOVE 1 Trash', 'UID MOVE 1 Trash'];
  const authOnly = ['STARTTLS', 'LOGIN a b', 'AUTHENTICATE PLAIN'];
  const c = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
  try {
    for (const cmd of [...notAuth, ...notSelected]) assert.match((await c.cmd(cmd)).tagged, /^t\d+ BAD /, `not authenticated: ${cmd}`);
    await c.login(A, `"${PW}"`);
    for (const cmd of [...notSelected, ...authOnly]) assert.match((await c.cmd(cmd)).tagged, /^t\d+ BAD /, `authenticated: ${cmd}`);
    await c.cmd('SELECT INBOX');
    for (const cmd of authOnly) assert.match((await c.cmd(cmd)).tagged, /^t\d+ BAD /, `selected: ${cmd}`);
    for (const cmd of ['CAPABILITY', 'NOOP', 'CHECK', 'NAMESPACE']) assert.match((await c.cmd(cmd)).tagged, /^t\d+ OK /, cmd);
  } finally {
    c.close();
  }
});

test('APPEND is refused before the upload when the mailbox is missing or the quota is full', async () => {
  const Q = 'quota@example.com';
  await srv.addUser(Q, PW, { quota: '20KB' });
  const c = await tlsLogin(Q);
  try {
    const tag = c.nextTag();
    c.write(`${tag} APPEND Nowhere {100}\r\n`);
    assert.match(await c.readLine(), new RegExp(`^${tag} NO \\[TRYCREATE\\]`));
    const tag2 = c.nextTag();
    c.write(`${tag2} APPEND INBOX {30000}\r\n`);
    assert.match(await c.readLine(), new RegExp(`^${tag2} NO \\[OVERQUOTA\\]`));
    assert.match((await c.append('INBOX', simpleMessage('fits', 'x'.repeat(5000)))).tagged, /OK/);
    const q = await c.cmd('GETQUOTAROOT INBOX');
    assert.equal(q.lines[0], '* QUOTAROOT "INBOX" ""');
    assert.match(q.lines[1]!, /^\* QUOTA "" \(STORAGE [56] 20\)$/);
    assert.match((await c.cmd('NOOP')).tagged, /OK/);
  } finally {
    c.close();
  }
});

test('IMAP4rev1 LSUB and IMAP4rev2 after ENABLE: ESEARCH answers, no RECENT, LIST in SELECT', async () => {
  const c = await tlsLogin(B);
  try {
    await c.cmd('CREATE Lists/Node');
    await c.cmd('SUBSCRIBE Lists/Node');
    const l = await c.cmd('LSUB "" "%"');
    assert.ok(l.lines.includes('* LSUB (\\Noselect) "/" "Lists"'), l.lines.join('\n'));
    assert.ok(l.lines.includes('* LSUB () "/" "INBOX"'));
    const l2 = await c.cmd('LSUB "" "Lists/*"');
    assert.deepEqual(l2.lines, ['* LSUB () "/" "Lists/Node"']);
    const rev1 = await c.cmd('SELECT INBOX');
    assert.ok(rev1.lines.includes('* 0 RECENT'));
    assert.equal((await c.cmd('SEARCH ALL')).lines[0]!.split(' ')[1], 'SEARCH');
    assert.equal((await c.cmd('ENABLE IMAP4rev2')).lines[0], '* ENABLED IMAP4rev2');
    const rev2 = await c.cmd('SELECT INBOX');
    assert.ok(!rev2.lines.some((x) => /RECENT/.test(x)));
    assert.ok(rev2.lines.includes('* LIST () "/" "INBOX"'));
    assert.match((await c.cmd('SEARCH ALL')).lines[0]!, /^\* ESEARCH \(TAG "t\d+"\)/);
  } finally {
    c.close();
  }
});

test('the per-account limit set with the admin CLI applies to the next login', async () => {
  const L = 'limited@example.com';
  await srv.addUser(L, PW);
  const set = await srv.cli(['user', 'set', L, 'imap.maxConnections', '2']);
  assert.equal(set.code, 0, set.stderr);
  const two = [await tlsLogin(L), await tlsLogin(L)];
  try {
    const third = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
    assert.match((await third.cmd(`LOGIN ${L} "${PW}"`)).tagged, /NO \[LIMIT\] .*at most 2/);
    third.close();
    for (const c of two) assert.match((await c.cmd('NOOP')).tagged, /OK/);
  } finally {
    for (const c of two) c.close();
  }
});
