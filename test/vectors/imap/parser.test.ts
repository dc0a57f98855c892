// Command grammar vectors: wire bytes (through the receiver, split at every offset) → typed command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Receiver, type RawCommand } from '../../../src/protocol/imap/receiver.ts';
import { ImapParseError, appendLiteralTarget, isAppendMessageLiteral, parseCommand } from '../../../src/protocol/imap/parser.ts';
import type { TaggedCommand } from '../../../src/protocol/imap/types.ts';
import { decodeMailboxUtf7, encodeMailboxUtf7 } from '../../../src/protocol/imap/utf7.ts';
import { flagList, formatSeqSet, internalDate, seqSetMembers } from '../../../src/protocol/imap/response.ts';

function receive(chunks: Buffer[]): RawCommand[] {
  const r = new Receiver({ maxLine: 10_000, maxCommand: 100_000 });
  const out: RawCommand[] = [];
  for (const c of chunks) {
    r.push(c);
    for (let ev = r.next(); ev; ev = r.next()) {
      if (ev.kind === 'literal') r.accept('buffer');
      else if (ev.kind === 'command') out.push(ev.command);
    }
  }
  return out;
}

function parseWire(wire: string): TaggedCommand {
  const buf = Buffer.from(wire, 'utf8');
  let first: TaggedCommand | null = null;
  for (let i = 0; i <= buf.length; i++) {
    const chunks = i === 0 || i === buf.length ? [buf] : [buf.subarray(0, i), buf.subarray(i)];
    const cmds = receive(chunks);
    assert.equal(cmds.length, 1, `one command at split ${i}`);
    const parsed = parseCommand(cmds[0]!);
    if (first) assert.deepEqual(parsed, first, `split ${i}`);
    else first = parsed;
  }
  return first!;
}

function bad(wire: string, re: RegExp, tag: string | null = 'a') {
  const cmds = receive([Buffer.from(wire, 'utf8')]);
  assert.throws(
    () => parseCommand(cmds[0]!),
    (e: unknown) => e instanceof ImapParseError && re.test(e.message) && e.tag === tag,
  );
}

test('LOGIN with quoted string and literal', () => {
  assert.deepEqual(parseWire('a1 LOGIN "us\\"er" {5}\r\np@s s\r\n'), { tag: 'a1', command: { name: 'LOGIN', user: 'us"er', pass: 'p@s s' } });
});

test('sequence sets with *, ranges and $', () => {
  const c = parseWire('a FETCH 1:3,5,7:*,* FLAGS\r\n').command;
  assert.equal(c.name, 'FETCH');
  if (c.name !== 'FETCH') return;
  assert.deepEqual(c.set, { saved: false, ranges: [[1, 3], [5, 5], [7, -1], [-1, -1]] });
  assert.deepEqual(seqSetMembers(c.set, 8), [1, 2, 3, 5, 7, 8]);
  const d = parseWire('a UID FETCH $ (UID)\r\n').command;
  assert.deepEqual(d.name === 'FETCH' && d.set, { saved: true });
});

test('fetch macros and items with sections and partials', () => {
  const all = parseWire('a FETCH 1 ALL\r\n').command;
  assert.deepEqual(all.name === 'FETCH' && all.items.map((i) => i.k), ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE']);
  const full = parseWire('a FETCH 1 full\r\n').command;
  assert.deepEqual(full.name === 'FETCH' && full.items.map((i) => i.k), ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY']);
  const c = parseWire('a UID FETCH 1:* (BODY.PEEK[2.1]<0.4096> BODY[HEADER.FIELDS (From "To")] BODY[1.MIME] BINARY[2] BINARY.SIZE[2] MODSEQ) (CHANGEDSINCE 12345 VANISHED)\r\n').command;
  assert.deepEqual(c, {
    name: 'FETCH',
    uid: true,
    set: { saved: false, ranges: [[1, -1]] },
    macro: false,
    partial: null,
    items: [
      { k: 'BODY[]', peek: true, section: { part: [2, 1], text: null, fields: [] }, partial: { start: 0, length: 4096 } },
      { k: 'BODY[]', peek: false, section: { part: [], text: 'HEADER.FIELDS', fields: ['From', 'To'] }, partial: null },
      { k: 'BODY[]', peek: false, section: { part: [1], text: 'MIME', fields: [] }, partial: null },
      { k: 'BINARY[]', peek: false, part: [2], partial: null },
      { k: 'BINARY.SIZE', part: [2] },
      { k: 'MODSEQ' },
    ],
    changedSince: 12345,
    vanished: true,
  });
});

test('STORE with UNCHANGEDSINCE and flag lists', () => {
  assert.deepEqual(parseWire('s1 UID STORE 4:6 (UNCHANGEDSINCE 20) +FLAGS.SILENT (\\Seen $Work \\Deleted)\r\n').command, {
    name: 'STORE',
    uid: true,
    set: { saved: false, ranges: [[4, 6]] },
    op: 'add',
    silent: true,
    flags: { systemFlags: 1 | 8, keywords: ['$Work'] },
    unchangedSince: 20,
  });
  const c = parseWire('s2 STORE 1 -FLAGS \\Flagged\r\n').command;
  assert.deepEqual(c.name === 'STORE' && [c.op, c.flags], ['remove', { systemFlags: 4, keywords: [] }]);
});

test('SEARCH keys become a tree', () => {
  const c = parseWire('a UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM "alice" (TO bob SINCE 1-Feb-2024) NOT SEEN LARGER 100 UID 1:5 HEADER X-Spam yes MODSEQ 7 KEYWORD $Junk\r\n').command;
  assert.equal(c.name, 'SEARCH');
  if (c.name !== 'SEARCH') return;
  assert.deepEqual(c.returns, ['MIN', 'COUNT']);
  assert.equal(c.charset, 'UTF-8');
  assert.deepEqual(c.key, {
    k: 'and',
    keys: [
      {
        k: 'or',
        a: { k: 'header', field: 'from', value: 'alice' },
        b: { k: 'and', keys: [{ k: 'header', field: 'to', value: 'bob' }, { k: 'date', op: 'since', sent: false, day: Date.UTC(2024, 1, 1) }] },
      },
      { k: 'not', key: { k: 'flag', flag: 1, set: true } },
      { k: 'size', op: 'larger', n: 100 },
      { k: 'uid', set: { saved: false, ranges: [[1, 5]] } },
      { k: 'header', field: 'x-spam', value: 'yes' },
      { k: 'modseq', modseq: 7 },
      { k: 'keyword', keyword: '$Junk', set: true },
    ],
  });
});

test('every RFC 9051 search key parses', () => {
  const keys = [
    'ALL', 'ANSWERED', 'BCC x', 'BEFORE 1-Jan-2020', 'BODY x', 'CC x', 'DELETED', 'DRAFT', 'FLAGGED', 'FROM x', 'HEADER Foo x',
    'KEYWORD k', 'LARGER 1', 'NOT ALL', 'ON "2-Mar-2021"', 'OR SEEN UNSEEN', 'SEEN', 'SENTBEFORE 1-Jan-2020', 'SENTON 1-Jan-2020',
    'SENTSINCE 1-Jan-2020', 'SINCE 1-Jan-2020', 'SMALLER 5', 'SUBJECT x', 'TEXT x', 'TO x', 'UID 1', 'UNANSWERED', 'UNDELETED',
    'UNDRAFT', 'UNFLAGGED', 'UNKEYWORD k', 'UNSEEN', '1:*', '(SEEN FLAGGED)', 'NEW', 'OLD', 'RECENT', 'MODSEQ "/flags/\\\\seen" all 5',
  ];
  for (const k of keys) assert.equal(parseWire(`a SEARCH ${k}\r\n`).command.name, 'SEARCH', k);
});

test('SELECT with CONDSTORE and QRESYNC parameters', () => {
  assert.deepEqual(parseWire('a SELECT INBOX (CONDSTORE)\r\n').command, { name: 'SELECT', mailbox: 'INBOX', condstore: true, qresync: null });
  assert.deepEqual(parseWire('a EXAMINE "Sent" (QRESYNC (67890007 715194045000 41,43:211,214:541))\r\n').command, {
    name: 'EXAMINE',
    mailbox: 'Sent',
    condstore: false,
    qresync: { uidValidity: 67890007, modseq: 715194045000, knownUids: { saved: false, ranges: [[41, 41], [43, 211], [214, 541]] }, seqMatch: null },
  });
});

test('LIST-EXTENDED selection and return options', () => {
  assert.deepEqual(parseWire('a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "Archive/%") RETURN (CHILDREN STATUS (MESSAGES UNSEEN) SPECIAL-USE)\r\n').command, {
    name: 'LIST',
    extended: true,
    selection: ['SUBSCRIBED', 'RECURSIVEMATCH'],
    reference: '',
    patterns: ['INBOX', 'Archive/%'],
    returns: { subscribed: false, children: true, specialUse: true, status: ['MESSAGES', 'UNSEEN'] },
  });
  assert.deepEqual(parseWire('a LIST "" *\r\n').command, {
    name: 'LIST',
    extended: false,
    selection: [],
    reference: '',
    patterns: ['*'],
    returns: { subscribed: false, children: false, specialUse: false, status: null },
  });
});

test('APPEND with flags, date and literal; the message literal is recognised before its data', () => {
  const wire = 'a APPEND "Sent Items" (\\Seen) " 7-Feb-1994 21:52:25 -0800" {5}\r\nHello\r\n';
  const c = parseWire(wire).command;
  assert.deepEqual(c, {
    name: 'APPEND',
    mailbox: 'Sent Items',
    messages: [{ flags: { systemFlags: 1, keywords: [] }, date: Date.UTC(1994, 1, 8, 5, 52, 25), message: Buffer.from('Hello'), literalIndex: 0, utf8: false, catenate: null }],
  });
  const pending = (line: string): RawCommand => ({ segments: [Buffer.from(line)], literals: [], literalInfo: [{ size: 5, nonSync: false, binary: false }] });
  assert.equal(isAppendMessageLiteral(pending('a APPEND INBOX (\\Seen) ')), true);
  assert.equal(isAppendMessageLiteral(pending('a APPEND INBOX ')), true);
  assert.equal(isAppendMessageLiteral(pending('a APPEND ')), false, 'the mailbox name as a literal');
  assert.equal(isAppendMessageLiteral(pending('a APPEND INBOX UTF8 (')), true);
});

test('MULTIAPPEND (RFC 3502), REPLACE (RFC 8508), CATENATE (RFC 4469): every message and which literal is announced', () => {
  const msg = (message: string, literalIndex: number, flags: number | null = null, date: number | null = null) => ({
    flags: flags === null ? null : { systemFlags: flags, keywords: [] },
    date,
    message: Buffer.from(message),
    literalIndex,
    utf8: false,
    catenate: null,
  });
  assert.deepEqual(parseWire('A003 APPEND saved-messages (\\Seen) {3}\r\none (\\Seen) " 7-Feb-1994 22:43:04 -0800" {3}\r\ntwo {5}\r\nthree\r\n').command, {
    name: 'APPEND',
    mailbox: 'saved-messages',
    messages: [msg('one', 0, 1), msg('two', 1, 1, Date.UTC(1994, 1, 8, 6, 43, 4)), msg('three', 2)],
  });
  assert.deepEqual(parseWire('A004 UID REPLACE 2000 Drafts (\\Seen \\Draft) {3}\r\nnew\r\n').command, { name: 'REPLACE', uid: true, target: 2000, mailbox: 'Drafts', message: msg('new', 0, 1 | 16) });
  assert.deepEqual(parseWire('a REPLACE * INBOX {1}\r\nx\r\n').command, { name: 'REPLACE', uid: false, target: -1, mailbox: 'INBOX', message: msg('x', 0) });
  assert.deepEqual(parseWire('A011 UID REPLACE 3002 Drafts CATENATE (TEXT {2}\r\nhi URL "/Drafts/;UID=3002")\r\n').command, {
    name: 'REPLACE',
    uid: true,
    target: 3002,
    mailbox: 'Drafts',
    message: { flags: null, date: null, message: null, literalIndex: -1, utf8: false, catenate: [{ kind: 'text', literalIndex: 0, data: Buffer.from('hi') }, { kind: 'url', url: '/Drafts/;UID=3002' }] },
  });
  for (const bad of ['a APPEND INBOX {1}\r\nx x\r\n', 'a APPEND INBOX {1}\r\nx (\\Seen)\r\n', 'a REPLACE 0 INBOX {1}\r\nx\r\n', 'a APPEND INBOX CATENATE ()\r\n', 'a UID REPLACE 1 INBOX {1}\r\nx {1}\r\ny\r\n']) {
    assert.throws(() => parseWire(bad), ImapParseError, JSON.stringify(bad));
  }
  const pend = (...segs: string[]): RawCommand => ({ segments: segs.map((x) => Buffer.from(x)), literals: segs.slice(1).map(() => null), literalInfo: segs.map(() => ({ size: 5, nonSync: false, binary: false })) });
  assert.deepEqual(appendLiteralTarget(pend('a APPEND INBOX ', ' (\\Seen) " 7-Feb-1994 22:43:04 -0800" ')), { mailbox: 'INBOX', replace: false, message: 1, part: null });
  assert.deepEqual(appendLiteralTarget(pend('a UID REPLACE 7 "My Drafts" ')), { mailbox: 'My Drafts', replace: true, message: 0, part: null });
  assert.equal(appendLiteralTarget(pend('a UID REPLACE 7 Drafts ', ' ')), null, 'REPLACE has one message');
  assert.deepEqual(appendLiteralTarget(pend('a APPEND Drafts CATENATE (URL "/x;UID=1" TEXT ')), { mailbox: 'Drafts', replace: false, message: 0, part: 1 });
  assert.deepEqual(appendLiteralTarget(pend('a APPEND Drafts CATENATE (TEXT ', ' URL "/x;UID=1" TEXT ')), { mailbox: 'Drafts', replace: false, message: 0, part: 2 });
  assert.deepEqual(appendLiteralTarget(pend('a APPEND Drafts CATENATE (TEXT ', ') ')), { mailbox: 'Drafts', replace: false, message: 1, part: null });
  assert.equal(appendLiteralTarget(pend('a FETCH 1 ')), null);
});

test('STATUS, ENABLE, ID, AUTHENTICATE, RENAME, CREATE USE', () => {
  assert.deepEqual(parseWire('a STATUS blurdybloop (UIDNEXT MESSAGES SIZE HIGHESTMODSEQ)\r\n').command, {
    name: 'STATUS',
    mailbox: 'blurdybloop',
    items: ['UIDNEXT', 'MESSAGES', 'SIZE', 'HIGHESTMODSEQ'],
  });
  assert.deepEqual(parseWire('a ENABLE condstore UTF8=ACCEPT\r\n').command, { name: 'ENABLE', caps: ['CONDSTORE', 'UTF8=ACCEPT'] });
  assert.deepEqual(parseWire('a ID ("name" "imapflow" "version" NIL)\r\n').command, { name: 'ID', params: [['name', 'imapflow'], ['version', null]] });
  assert.deepEqual(parseWire('a AUTHENTICATE PLAIN AGEAYg==\r\n').command, { name: 'AUTHENTICATE', mechanism: 'PLAIN', initial: 'AGEAYg==' });
  assert.deepEqual(parseWire('a RENAME INBOX "Old Mail"\r\n').command, { name: 'RENAME', from: 'INBOX', to: 'Old Mail' });
  assert.deepEqual(parseWire('a CREATE Receipts (USE (\\Archive))\r\n').command, { name: 'CREATE', mailbox: 'Receipts', specialUse: ['\\Archive'] });
  assert.deepEqual(parseWire('a UID EXPUNGE 3:5\r\n').command, { name: 'EXPUNGE', uid: true, set: { saved: false, ranges: [[3, 5]] } });
});

test('syntax errors carry the tag', () => {
  bad('a FOO\r\n', /Unknown command/);
  bad('a FETCH 1:x FLAGS\r\n', /sequence set/);
  bad('a FETCH 0 FLAGS\r\n', /sequence set/);
  bad('a FETCH 1 (FLAGS\r\n', /Unbalanced/);
  bad('a FETCH 1 (FLAGS))\r\n', /extra/);
  bad('a SEARCH FOO\r\n', /Unknown search key/);
  bad('a STORE 1 FLAGS (\\Recent)\r\n', /Recent/);
  bad('a LOGIN "unterminated\r\n', /Unterminated/);
  bad('a SEARCH SINCE 1-Foo-2020\r\n', /Invalid date/);
  bad('a UID BOGUS 1\r\n', /not a command/);
  bad('+bad NOOP\r\n', /tag/, null);
});

test('modified UTF-7 mailbox names (RFC 3501 §5.1.3)', () => {
  const cases: Array<[string, string]> = [
    ['INBOX', 'INBOX'],
    ['Entwürfe', 'Entw&APw-rfe'],
    ['~peter/mail/台北/日本語', '~peter/mail/&U,BTFw-/&ZeVnLIqe-'],
    ['A&B', 'A&-B'],
    ['😀', '&2D3eAA-'],
  ];
  for (const [utf8, mutf7] of cases) {
    assert.equal(encodeMailboxUtf7(utf8), mutf7);
    assert.equal(decodeMailboxUtf7(mutf7), utf8);
  }
  assert.equal(decodeMailboxUtf7('&Jjo!'), null);
  assert.equal(decodeMailboxUtf7('&AGE-'), null, 'printable ASCII must not be encoded');
  assert.equal(decodeMailboxUtf7('Ä'), null);
});

test('response pieces', () => {
  assert.equal(flagList(1 | 4, ['$Work']), '(\\Seen \\Flagged $Work)');
  assert.equal(flagList(0, []), '()');
  assert.equal(formatSeqSet([5, 1, 2, 3, 9, 10]), '1:3,5,9:10');
  assert.equal(internalDate(Date.UTC(2026, 10, 2, 3, 4, 5)), '"02-Nov-2026 03:04:05 +0000"');
});

test('SORT / THREAD / PARTIAL / OBJECTID syntax (RFC 5256 §5, RFC 5267 §3, RFC 9394 §4, RFC 8474 §7)', () => {
  assert.deepEqual(parseWire('a UID SORT RETURN (MIN PARTIAL -1:-10) (REVERSE date Subject displayfrom) utf-8 UNSEEN FROM x\r\n').command, {
    name: 'SORT',
    uid: true,
    returns: ['MIN'],
    partial: { lo: 1, hi: 10, last: true, text: '-1:-10' },
    criteria: [
      { key: 'DATE', reverse: true },
      { key: 'SUBJECT', reverse: false },
      { key: 'DISPLAYFROM', reverse: false },
    ],
    charset: 'UTF-8',
    key: { k: 'and', keys: [{ k: 'flag', flag: 1, set: false }, { k: 'header', field: 'from', value: 'x' }] },
  });
  assert.deepEqual(parseWire('a THREAD references "US-ASCII" ALL\r\n').command, { name: 'THREAD', uid: false, algorithm: 'REFERENCES', charset: 'US-ASCII', key: { k: 'all' } });
  const p = parseWire('a UID FETCH 1:* (EMAILID THREADID) (PARTIAL 500:400)\r\n').command;
  assert.deepEqual(p.name === 'FETCH' && [p.items, p.partial], [[{ k: 'EMAILID' }, { k: 'THREADID' }], { lo: 400, hi: 500, last: false, text: '500:400' }]);
  assert.deepEqual(parseWire('a SEARCH THREADID T000001 EMAILID M_1-x\r\n').command, {
    name: 'SEARCH',
    uid: false,
    charset: null,
    returns: null,
    partial: null,
    key: { k: 'and', keys: [{ k: 'objectid', what: 'threadid', id: 'T000001' }, { k: 'objectid', what: 'emailid', id: 'M_1-x' }] },
  });
  for (const bad of ['a SORT (SUBJECT REVERSE) UTF-8 ALL', 'a SORT SUBJECT UTF-8 ALL', 'a THREAD REFS UTF-8 ALL', 'a SEARCH RETURN (PARTIAL 1:2 ALL) ALL', 'a SEARCH EMAILID a.b']) {
    assert.throws(() => parseWire(bad + '\r\n'), /./, bad);
  }
});
