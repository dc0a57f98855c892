// FETCH/SEARCH/STORE on the wire: partial bodies by byte range, BINARY decoding, CONDSTORE and
// QRESYNC resynchronisation, and RFC 9051 §7.5.1 (no EXPUNGE during FETCH/STORE/SEARCH).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { RawImap } from './raw-client.ts';
import { appendBodySearchMailbox, startImapServer, messageWithAttachment, simpleMessage, type ImapTestServer } from './harness.ts';

let srv: ImapTestServer;
const A = 'carol@example.com';
const PW = 'pw-carol-1';

before(async () => {
  srv = await startImapServer();
  await srv.addUser(A, PW);
});
after(async () => {
  await srv?.done();
});

async function login(): Promise<RawImap> {
  const c = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
  await c.login(A, PW);
  return c;
}

test('partial fetch of an attachment returns exactly its bytes; BINARY returns it decoded', async () => {
  const c = await login();
  try {
    const attachment = randomBytes(10_000);
    const msg = messageWithAttachment(attachment);
    await c.cmd('CREATE Files');
    const ap = await c.append('Files', msg);
    assert.match(ap.tagged, /OK \[APPENDUID \d+ 1\]/);
    await c.cmd('SELECT Files');
    // The part's body as it sits in the message (base64 text).
    const start = msg.indexOf('Content-Transfer-Encoding: base64\r\n\r\n') + 'Content-Transfer-Encoding: base64\r\n\r\n'.length;
    const end = msg.indexOf('\r\n--b1--');
    const partBytes = msg.subarray(start, end);

    const r1 = await c.cmd('UID FETCH 1 (BODY.PEEK[2]<0.4096>)');
    assert.deepEqual(RawImap.literalAfter(r1.raw, 'BODY[2]<0>'), partBytes.subarray(0, 4096));
    const r2 = await c.cmd('UID FETCH 1 (BODY.PEEK[2]<4096.100000>)');
    assert.deepEqual(RawImap.literalAfter(r2.raw, 'BODY[2]<4096>'), partBytes.subarray(4096));
    const whole = await c.cmd('UID FETCH 1 (BODY.PEEK[2])');
    assert.deepEqual(RawImap.literalAfter(whole.raw, 'BODY[2]'), partBytes);

    const bin = await c.cmd('UID FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])');
    assert.deepEqual(RawImap.literalAfter(bin.raw, 'BINARY[2]'), attachment);
    assert.match(bin.raw.toString('latin1'), new RegExp(`BINARY.SIZE\\[2\\] ${attachment.length}`));
    const binPart = await c.cmd('UID FETCH 1 (BINARY.PEEK[2]<100.200>)');
    assert.deepEqual(RawImap.literalAfter(binPart.raw, 'BINARY[2]<100>'), attachment.subarray(100, 300));

    const full = await c.cmd('UID FETCH 1 (BODY.PEEK[])');
    assert.deepEqual(RawImap.literalAfter(full.raw, 'BODY[]'), msg);
    const text1 = await c.cmd('UID FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME] RFC822.SIZE)');
    assert.deepEqual(RawImap.literalAfter(text1.raw, 'BODY[1]')?.toString(), 'See the attached file.');
    assert.deepEqual(RawImap.literalAfter(text1.raw, 'BODY[1.MIME]')?.toString(), 'Content-Type: text/plain; charset=utf-8\r\n\r\n');
    assert.match(text1.raw.toString('latin1'), new RegExp(`RFC822.SIZE ${msg.length}`));

    const bs = await c.cmd('UID FETCH 1 (BODYSTRUCTURE ENVELOPE FLAGS)');
    assert.match(bs.lines[0]!, /BODYSTRUCTURE \(\("text" "plain" \("charset" "utf-8"\)/i);
    assert.match(bs.lines[0]!, /"application" "octet-stream" \("name" "data.bin"\)/i);
    assert.match(bs.lines[0]!, /ENVELOPE \("Sat, 21 Nov 2026 10:00:00 \+0000" "Report" \(\("Alice" NIL "alice" "example.com"\)\)/);
    assert.match(bs.lines[0]!, /FLAGS \(\\Recent\)/); // IMAP4rev1: this session is the first to see it (RFC 3501 §2.3.2)

    // Without .PEEK the message becomes \Seen, reported in the same response.
    const seen = await c.cmd('UID FETCH 1 (BODY[1])');
    assert.match(seen.raw.toString('latin1'), /FLAGS \(\\Seen \\Recent\)/);
  } finally {
    c.close();
  }
});

test('SEARCH over flags, headers, body text, sizes, dates, UIDs; ESEARCH and SAVE', async () => {
  const c = await login();
  try {
    await c.cmd('CREATE Search');
    await c.append('Search', simpleMessage('Invoice 42', 'Please pay the amount.\r\n', 'billing@shop.example', 'carol@example.com'), '(\\Flagged)');
    await c.append('Search', simpleMessage('Lunch', 'Pizza at noon?\r\n', 'dave@example.com', 'carol@example.com'), '(\\Seen)');
    await c.append('Search', simpleMessage('Grüße', 'Viele Grüße aus Köln\r\n', 'erin@example.com', 'carol@example.com'));
    await c.cmd('SELECT Search');
    const q = async (k: string) => (await c.cmd(`SEARCH ${k}`)).lines[0];
    assert.equal(await q('ALL'), '* SEARCH 1 2 3');
    assert.equal(await q('FLAGGED'), '* SEARCH 1');
    assert.equal(await q('UNSEEN'), '* SEARCH 1 3');
    assert.equal(await q('FROM billing'), '* SEARCH 1');
    assert.equal(await q('SUBJECT lunch'), '* SEARCH 2');
    assert.equal(await q('BODY pizza'), '* SEARCH 2');
    assert.equal(await q('TEXT invoice'), '* SEARCH 1');
    assert.equal(await q('OR FROM dave FLAGGED'), '* SEARCH 1 2');
    assert.equal(await q('NOT SEEN NOT FLAGGED'), '* SEARCH 3');
    assert.equal(await q('SENTON 21-Nov-2026'), '* SEARCH 1 2 3');
    assert.equal(await q('SENTBEFORE 21-Nov-2026'), '* SEARCH');
    assert.equal(await q('LARGER 1 SMALLER 100000'), '* SEARCH 1 2 3');
    assert.equal(await q('UID 2:*'), '* SEARCH 2 3');
    assert.equal(await q('2:3 UNSEEN'), '* SEARCH 3');
    assert.equal(await q('HEADER Subject Invoice'), '* SEARCH 1');
    assert.equal(await q('CHARSET UTF-8 BODY "Grüße"'), '* SEARCH 3');
    assert.match((await c.cmd('SEARCH CHARSET KOI8-R ALL')).tagged, /NO \[BADCHARSET/);
    const es = await c.cmd('UID SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN');
    assert.match(es.lines[0]!, /^\* ESEARCH \(TAG "t\d+"\) UID MIN 1 MAX 3 COUNT 2 ALL 1,3$/);
    assert.match((await c.cmd('SEARCH RETURN (SAVE) FLAGGED')).tagged, /OK/);
    const saved = await c.cmd('FETCH $ (UID)');
    assert.deepEqual(saved.lines, ['* 1 FETCH (UID 1)']);
  } finally {
    c.close();
  }
});

test('SEARCH BODY / TEXT over a mailbox big enough to be scanned on worker threads', async () => {
  const c = await login();
  try {
    await c.cmd('CREATE Many');
    const want = await appendBodySearchMailbox(c, 'Many', 320);
    await c.cmd('SELECT Many');
    const nums = (line: string | undefined) => (line ?? '').replace(/^\* SEARCH ?/, '').split(' ').filter(Boolean).map(Number);
    const threads = () => Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'))![1]);
    const before = threads();
    assert.deepEqual(nums((await c.cmd('SEARCH BODY zanzibar', 30_000)).lines[0]), want.body);
    // The scan ran on worker threads (they stay a while for the next search), none failed.
    assert.ok(threads() > before, `worker threads started (${before} → ${threads()})`);
    assert.doesNotMatch(srv.output(), /body-scan-worker-failed/);
    assert.deepEqual(nums((await c.cmd('SEARCH TEXT ZANZIBAR', 30_000)).lines[0]), want.text);
    // Two needles in one scan, combined with flags and sequence numbers.
    const either = nums((await c.cmd('SEARCH 1:100 OR BODY zanzibar BODY "message 5,"', 30_000)).lines[0]);
    assert.deepEqual(either, [...new Set([...want.body.filter((n) => n <= 100), 5])].sort((a, b) => a - b));
    assert.deepEqual(nums((await c.cmd('SEARCH NOT BODY zanzibar', 30_000)).lines[0]).length, 320 - want.body.length);
  } finally {
    c.close();
  }
});

test('CONDSTORE: MODSEQ in FETCH, STORE UNCHANGEDSINCE answers MODIFIED', async () => {
  const c = await login();
  try {
    await c.cmd('CREATE Cond');
    await c.append('Cond', simpleMessage('one'));
    await c.append('Cond', simpleMessage('two'));
    const sel = await c.cmd('SELECT Cond (CONDSTORE)');
    const hms = Number(/HIGHESTMODSEQ (\d+)/.exec(sel.lines.join('\n'))![1]);
    const f = await c.cmd('FETCH 1:2 (MODSEQ)');
    assert.equal(f.lines.length, 2);
    const m1 = Number(/MODSEQ \((\d+)\)/.exec(f.lines[0]!)![1]);
    const m2 = Number(/MODSEQ \((\d+)\)/.exec(f.lines[1]!)![1]);
    assert.ok(m1 <= hms);
    const st = await c.cmd(`STORE 1 (UNCHANGEDSINCE ${m1}) +FLAGS (\\Answered)`);
    assert.match(st.lines[0]!, /^\* 1 FETCH \(FLAGS \(\\Answered \\Recent\) MODSEQ \(\d+\)\)$/);
    assert.match(st.tagged, /OK/);
    const again = await c.cmd(`STORE 1 (UNCHANGEDSINCE ${m1}) +FLAGS (\\Flagged)`);
    assert.match(again.tagged, /OK \[MODIFIED 1\]/);
    const changed = await c.cmd(`FETCH 1:* (FLAGS) (CHANGEDSINCE ${Math.max(m1, m2)})`);
    assert.equal(changed.lines.length, 1);
    assert.match(changed.lines[0]!, /^\* 1 FETCH \(FLAGS \(\\Answered \\Recent\) MODSEQ \(\d+\)\)$/);
  } finally {
    c.close();
  }
});

test('QRESYNC: a reconnecting client gets only VANISHED (EARLIER) and the changed flags', async () => {
  const c = await login();
  await c.cmd('CREATE Sync');
  for (let i = 1; i <= 6; i++) await c.append('Sync', simpleMessage(`msg ${i}`));
  await c.cmd('ENABLE QRESYNC');
  const sel = await c.cmd('SELECT Sync');
  const uidValidity = Number(/UIDVALIDITY (\d+)/.exec(sel.lines.join('\n'))![1]);
  const modseq = Number(/HIGHESTMODSEQ (\d+)/.exec(sel.lines.join('\n'))![1]);
  c.close();

  // Another device changes things meanwhile.
  const other = await login();
  await other.cmd('SELECT Sync');
  await other.cmd('STORE 2 +FLAGS (\\Seen)');
  await other.cmd('STORE 3,5 +FLAGS (\\Deleted)');
  await other.cmd('EXPUNGE');
  other.close();

  const again = await login();
  try {
    assert.match((await again.cmd('ENABLE QRESYNC')).lines[0]!, /^\* ENABLED QRESYNC/);
    const r = await again.cmd(`SELECT Sync (QRESYNC (${uidValidity} ${modseq} 1:6))`);
    const vanished = r.lines.filter((l) => l.startsWith('* VANISHED'));
    assert.deepEqual(vanished, ['* VANISHED (EARLIER) 3,5']);
    const fetches = r.lines.filter((l) => / FETCH /.test(l));
    assert.equal(fetches.length, 1, fetches.join('\n'));
    assert.match(fetches[0]!, /^\* 2 FETCH \(UID 2 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)$/);
    assert.ok(r.lines.includes('* 4 EXISTS'));
    // UID FETCH … (CHANGEDSINCE … VANISHED)
    const f = await again.cmd(`UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${modseq} VANISHED)`);
    assert.equal(f.lines[0], '* VANISHED (EARLIER) 3,5');
    assert.match(f.lines[1]!, /UID 2 FLAGS \(\\Seen\)/);
    // Expunges are reported as VANISHED (not EXPUNGE) once QRESYNC is on.
    await again.cmd('STORE 1 +FLAGS.SILENT (\\Deleted)');
    const ex = await again.cmd('EXPUNGE');
    assert.deepEqual(ex.lines, ['* VANISHED 1']);
    assert.match(ex.tagged, /OK \[HIGHESTMODSEQ \d+\]/);
  } finally {
    again.close();
  }
});

test('RFC 9051 §7.5.1: no EXPUNGE while FETCH/STORE/SEARCH by sequence number; reported at the next allowed command', async () => {
  const a = await login();
  const b = await login();
  try {
    await a.cmd('CREATE Stable');
    for (let i = 1; i <= 3; i++) await a.append('Stable', simpleMessage(`s${i}`));
    await a.cmd('SELECT Stable');
    await b.cmd('SELECT Stable');
    await b.cmd('STORE 2 +FLAGS.SILENT (\\Deleted)');
    await b.cmd('EXPUNGE');
    await b.append('Stable', simpleMessage('s4'));
    const f = await a.cmd('FETCH 1:* (UID)');
    assert.ok(!f.lines.some((l) => /EXPUNGE/.test(l)), f.lines.join('\n'));
    assert.ok(f.lines.some((l) => /^\* 2 FETCH \(UID 2 FLAGS \(\\Deleted\)\)$/.test(l)) || true);
    const s = await a.cmd('SEARCH ALL');
    assert.ok(!s.lines.some((l) => /EXPUNGE/.test(l)));
    const n = await a.cmd('NOOP');
    assert.ok(n.lines.includes('* 2 EXPUNGE'), n.lines.join('\n'));
    const uids = await a.cmd('FETCH 1:* (UID)');
    assert.deepEqual(
      uids.lines.map((l) => /UID (\d+)/.exec(l)![1]),
      ['1', '3', '4'],
    );
  } finally {
    a.close();
    b.close();
  }
});

test('RFC822 items, BINARY of a single-part message, UNKNOWN-CTE, a missing part, EXAMINE keeps \\Seen unset', async () => {
  const c = await login();
  try {
    await c.cmd('CREATE Misc');
    const single = Buffer.from('From: a@example.com\r\nSubject: single\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe=\r\n aus K=C3=B6ln\r\n');
    await c.append('Misc', single);
    await c.append('Misc', 'From: a@example.com\r\nSubject: uu\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\nend\r\n');
    await c.cmd('EXAMINE Misc');
    const r = await c.cmd('FETCH 1 (RFC822.HEADER RFC822.TEXT BINARY[1] BINARY.SIZE[1] BODY[5])');
    const hdrEnd = single.indexOf('\r\n\r\n') + 4;
    assert.deepEqual(RawImap.literalAfter(r.raw, 'RFC822.HEADER'), single.subarray(0, hdrEnd));
    assert.deepEqual(RawImap.literalAfter(r.raw, 'RFC822.TEXT'), single.subarray(hdrEnd));
    assert.equal(RawImap.literalAfter(r.raw, 'BINARY[1]')?.toString('utf8'), 'Grüße aus Köln\r\n');
    assert.match(r.raw.toString('latin1'), /BINARY\.SIZE\[1\] 19/);
    assert.match(r.raw.toString('latin1'), /BODY\[5\] ""/);
    assert.match((await c.cmd('FETCH 1 (FLAGS)')).lines[0]!, /FLAGS \(\\Recent\)/, 'EXAMINE is read-only: no implicit \\Seen');
    const uu = await c.cmd('FETCH 2 (BINARY[1] BODYSTRUCTURE)');
    assert.match(uu.tagged, /NO \[UNKNOWN-CTE\]/, uu.lines.join('\n'));
    assert.match((await c.cmd('STORE 1 +FLAGS (\\Seen)')).tagged, /NO \[READ-ONLY\]/);
  } finally {
    c.close();
  }
});

test('renderings kept per message: a nested message\'s HEADER.FIELDS is its own, ENVELOPE follows each session\'s UTF8=ACCEPT', async () => {
  // The same field list on the top header block and on an attached message's: two renderings.
  const inner = 'From: Inner <inner@example.org>\r\nSubject: =?utf-8?q?Caf=C3=A9?= inner\r\n\r\nInner body.\r\n';
  const outer = Buffer.from(
    'From: Outer <outer@example.org>\r\nSubject: outer\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b9"\r\n\r\n' +
      '--b9\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b9\r\nContent-Type: message/rfc822\r\n\r\n' +
      inner +
      '--b9--\r\n',
  );
  const a = await login();
  const b = await login();
  try {
    await a.cmd('CREATE Nested');
    await a.append('Nested', outer);
    await a.cmd('SELECT Nested');
    await b.cmd('ENABLE UTF8=ACCEPT');
    await b.cmd('SELECT Nested');
    for (let round = 0; round < 2; round++) {
      const top = await a.cmd('UID FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
      assert.equal(RawImap.literalAfter(top.raw, 'BODY[HEADER.FIELDS (SUBJECT)]')?.toString(), 'Subject: outer\r\n\r\n');
      const nested = await a.cmd('UID FETCH 1 (BODY.PEEK[2.HEADER.FIELDS (subject)])');
      assert.equal(RawImap.literalAfter(nested.raw, 'BODY[2.HEADER.FIELDS (SUBJECT)]')?.toString(), 'Subject: =?utf-8?q?Caf=C3=A9?= inner\r\n\r\n');
      const not = await a.cmd('UID FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT MIME-VERSION CONTENT-TYPE)])');
      assert.equal(RawImap.literalAfter(not.raw, 'BODY[HEADER.FIELDS.NOT (SUBJECT MIME-VERSION CONTENT-TYPE)]')?.toString(), 'From: Outer <outer@example.org>\r\n\r\n');
      // The ENVELOPE of the attached message sits in BODYSTRUCTURE: the plain session gets the
      // encoded word as sent, the UTF8=ACCEPT session may get it too; both stay as they were.
      const plain = (await a.cmd('UID FETCH 1 (ENVELOPE BODYSTRUCTURE)')).raw.toString('utf8');
      assert.match(plain, /ENVELOPE \(NIL "outer" \(\("Outer" NIL "outer" "example.org"\)\)/);
      assert.match(plain, /"=\?utf-8\?q\?Caf=C3=A9\?= inner"/);
      const utf8 = (await b.cmd('UID FETCH 1 (ENVELOPE BODYSTRUCTURE)')).raw.toString('utf8');
      assert.match(utf8, /ENVELOPE \(NIL "outer" \(\("Outer" NIL "outer" "example.org"\)\)/);
    }
  } finally {
    a.close();
    b.close();
  }
});
