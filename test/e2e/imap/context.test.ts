// CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4) against the real server on both store backends,
// raw line client, exact responses: the RFC's examples rebuilt at a small scale (§4.2, §4.3,
// §4.3.1, §4.3.3, §4.3.4, §4.3.5, §4.4), and two sessions on one mailbox: session B APPENDs,
// STOREs and EXPUNGEs, session A sees ADDTO / REMOVEFROM with the right positions, in the right
// place relative to EXISTS / EXPUNGE / FETCH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crlf, eachBackend, ok } from './conformance-env.ts';
import type { RawImap } from './raw-client.ts';
import { ContextModel } from './context-model.ts';

const msg = (subject: string, body = 'x') => crlf([`Subject: ${subject}`, 'From: a@example.com', 'Date: Fri, 01 Mar 2024 10:00:00 +0000', '', body]);

/** Appends messages (pipelined), one per subject. */
async function appendAll(c: RawImap, name: string, subjects: string[], flags = ''): Promise<void> {
  const tags: string[] = [];
  for (const s of subjects) {
    const m = msg(s);
    const tag = c.nextTag();
    tags.push(tag);
    c.write(`${tag} APPEND ${name}${flags ? ` (${flags})` : ''} {${m.length}+}\r\n${m}\r\n`);
  }
  for (const t of tags) assert.match((await c.until(t, 30_000)).tagged, / OK /);
}

/** A fresh mailbox with messages "s01".."sNN", selected by every client given. */
async function box(name: string, n: number, ...clients: RawImap[]): Promise<void> {
  assert.match((await clients[0]!.cmd(`CREATE ${name}`)).tagged, / OK /);
  await appendAll(clients[0]!, name, Array.from({ length: n }, (_, i) => `s${String(i + 1).padStart(2, '0')}`));
  for (const c of clients) await ok(c, `SELECT ${name}`);
}

/** Sends `tag command` with the tag given (the RFC's examples name their tags). */
async function tagged(c: RawImap, tag: string, command: string): Promise<{ lines: string[]; tagged: string }> {
  c.write(`${tag} ${command}\r\n`);
  return c.until(tag);
}

const esearchLines = (lines: readonly string[]) => lines.filter((l) => l.startsWith('* ESEARCH'));

eachBackend('CONTEXT=SEARCH and CONTEXT=SORT', ({ login }) => {
  test('CAPABILITY lists CONTEXT=SEARCH and CONTEXT=SORT (with ESORT and SORT, RFC 5267 §4.1)', async () => {
    const c = await login();
    try {
      const caps = (await ok(c, 'CAPABILITY'))[0]!.split(' ');
      for (const cap of ['CONTEXT=SEARCH', 'CONTEXT=SORT', 'ESORT', 'SORT', 'ESEARCH']) assert.ok(caps.includes(cap), cap);
    } finally {
      c.close();
    }
  });

  test('RFC 5267 §4.2: RETURN (CONTEXT COUNT) is a hint: the COUNT, nothing more', async () => {
    const c = await login();
    try {
      await box('Ctx42', 5, c);
      await ok(c, 'STORE 2 +FLAGS.SILENT (\\Deleted)');
      await ok(c, 'STORE 4 +FLAGS.SILENT ($Junk)');
      const r = await tagged(c, 'A01', 'SEARCH RETURN (CONTEXT COUNT) UNDELETED UNKEYWORD $Junk');
      assert.deepEqual(r.lines, ['* ESEARCH (TAG "A01") COUNT 3']);
      assert.match(r.tagged, /^A01 OK /);
    } finally {
      c.close();
    }
  });

  test('RFC 5267 §4.3: UID SEARCH RETURN (UPDATE COUNT) … then a searching command with UPDATE under the same tag is BAD', async () => {
    const c = await login();
    try {
      await box('Ctx43', 4, c);
      await ok(c, 'STORE 1,3 +FLAGS.SILENT (\\Deleted $Junk)');
      const r = await tagged(c, 'B01', 'UID SEARCH RETURN (UPDATE COUNT) DELETED KEYWORD $Junk');
      assert.deepEqual(r.lines, ['* ESEARCH (TAG "B01") UID COUNT 2']);
      assert.match(r.tagged, /^B01 OK /);
      const bad = await tagged(c, 'B01', 'SORT RETURN (UPDATE) (DATE) UTF-8 FLAGGED');
      assert.deepEqual(bad.lines, []);
      assert.match(bad.tagged, /^B01 BAD .*[Tt]ag reuse/);
      // Without UPDATE the tag may be used again (only UPDATE contexts are protected).
      assert.match((await tagged(c, 'B01', 'UID SEARCH RETURN (COUNT) ALL')).tagged, /^B01 OK /);
      // RETURN (UPDATE) alone has no result option: an empty ESEARCH (as Dovecot 2.3).
      const e = await tagged(c, 'B09', 'UID SEARCH RETURN (UPDATE) FLAGGED');
      assert.deepEqual(e.lines, ['* ESEARCH (TAG "B09") UID']);
    } finally {
      c.close();
    }
  });

  test('RFC 5267 §4.3.1: past the limit, * NO [NOUPDATE "tag"] after the ESEARCH, other return options honoured; SORT refused does not mean SEARCH refused', async () => {
    const c = await login();
    try {
      await box('Ctx431', 3, c);
      for (let i = 1; i <= 3; i++) assert.deepEqual(esearchLines((await tagged(c, `S0${i}`, 'UID SORT RETURN (UPDATE COUNT) (SUBJECT) UTF-8 ALL')).lines), [`* ESEARCH (TAG "S0${i}") UID COUNT 3`]);
      const r = await tagged(c, 'B02', 'UID SORT RETURN (UPDATE COUNT) (SUBJECT) UTF-8 KEYWORD $Junk');
      assert.equal(r.lines[0], '* ESEARCH (TAG "B02") UID COUNT 0');
      assert.match(r.lines[1]!, /^\* NO \[NOUPDATE "B02"\] Too many SORT contexts/);
      assert.match(r.tagged, /^B02 OK /);
      // SEARCH contexts still go up to 10 in all.
      for (let i = 4; i <= 10; i++) assert.equal((await tagged(c, `S${String(i).padStart(2, '0')}`, 'SEARCH RETURN (UPDATE COUNT) ALL')).lines.length, 1);
      const x = await tagged(c, 'B03', 'SEARCH RETURN (UPDATE MIN) ALL');
      assert.deepEqual(x.lines, ['* ESEARCH (TAG "B03") MIN 1', '* NO [NOUPDATE "B03"] Too many contexts (at most 10): CANCELUPDATE one first']);
      // CANCELUPDATE frees one: the next is accepted.
      assert.match((await tagged(c, 'C1', 'CANCELUPDATE "S05"')).tagged, /^C1 OK /);
      assert.deepEqual((await tagged(c, 'B04', 'SEARCH RETURN (UPDATE MIN) ALL')).lines, ['* ESEARCH (TAG "B04") MIN 1']);
      // OLDER / YOUNGER answers change with time alone: refused (RFC 5032 §2).
      assert.match((await tagged(c, 'C2', 'CANCELUPDATE "S06"')).tagged, /^C2 OK /);
      const w = await tagged(c, 'B05', 'UID SEARCH RETURN (UPDATE COUNT) YOUNGER 3600');
      assert.equal(w.lines[0], '* ESEARCH (TAG "B05") UID COUNT 3');
      assert.match(w.lines[1]!, /^\* NO \[NOUPDATE "B05"\] OLDER\/YOUNGER/);
    } finally {
      c.close();
    }
  });

  test('RFC 5267 §4.3.3: flags set by another session → FETCH, then * ESEARCH (TAG "B01") UID ADDTO (0 uids) (only the ADDTO, not the COUNT)', async () => {
    const a = await login();
    const b = await login();
    try {
      await box('Ctx433', 6, a, b);
      assert.deepEqual((await tagged(a, 'B01', 'UID SEARCH RETURN (UPDATE COUNT) DELETED KEYWORD $Junk')).lines, ['* ESEARCH (TAG "B01") UID COUNT 0']);
      await ok(b, 'STORE 4 +FLAGS.SILENT (\\Deleted \\Seen)');
      await ok(b, 'STORE 5 +FLAGS.SILENT ($Junk \\Seen)');
      await ok(b, 'STORE 4:5 +FLAGS.SILENT ($Junk \\Deleted)');
      const r = await a.cmd('NOOP');
      const fetches = r.lines.filter((l) => / FETCH /.test(l));
      assert.equal(fetches.length, 2, r.lines.join('\n'));
      assert.deepEqual(esearchLines(r.lines), ['* ESEARCH (TAG "B01") UID ADDTO (0 4:5)']);
      // After the FETCH it follows (RFC 5267 §4.3.2: "when they normally emit the causal FETCH").
      assert.ok(r.lines.indexOf('* ESEARCH (TAG "B01") UID ADDTO (0 4:5)') > r.lines.indexOf(fetches[1]!));
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5267 §4.3.3: SORT context, three results added at the front → UID ADDTO (1 1:3), the preferred form', async () => {
    const a = await login();
    const b = await login();
    try {
      await box('Ctx433s', 5, a, b);
      await ok(a, 'UID STORE 4:5 +FLAGS.SILENT (\\Flagged)');
      assert.deepEqual((await tagged(a, 'C01', 'UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 FLAGGED')).lines, ['* ESEARCH (TAG "C01") UID ALL 4:5']);
      await ok(b, 'UID STORE 1:3 +FLAGS.SILENT (\\Flagged)');
      assert.deepEqual(esearchLines((await a.cmd('NOOP')).lines), ['* ESEARCH (TAG "C01") UID ADDTO (1 1:3)']);
      // REVERSE order: each new result at its own position, sets in sort order.
      assert.deepEqual((await tagged(a, 'C02', 'SORT RETURN (UPDATE ALL) (REVERSE SUBJECT) UTF-8 FLAGGED NOT 3')).lines, ['* ESEARCH (TAG "C02") ALL 5,4,2,1']);
      await ok(b, 'STORE 4 -FLAGS.SILENT (\\Flagged)');
      await ok(b, 'STORE 2 -FLAGS.SILENT (\\Flagged)');
      const r = await a.cmd('NOOP');
      // C01 (1:5): 2 leaves position 2, then 4 (now third) position 3; C02 (5,4,2,1): 4 at 2, then 2 at 2 too.
      assert.deepEqual(esearchLines(r.lines), ['* ESEARCH (TAG "C01") UID REMOVEFROM (2 2 3 4)', '* ESEARCH (TAG "C02") REMOVEFROM (2 4,2)']);
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5267 §4.3.4: an expunged result → REMOVEFROM (0 uid) first, the EXPUNGE after it (also when the EXPUNGE must wait)', async () => {
    const a = await login();
    const b = await login();
    try {
      await box('Ctx434', 5, a, b);
      await ok(a, 'STORE 2:4 +FLAGS.SILENT (\\Deleted)');
      assert.deepEqual((await tagged(a, 'B01', 'UID SEARCH RETURN (UPDATE COUNT) DELETED')).lines, ['* ESEARCH (TAG "B01") UID COUNT 3']);
      assert.deepEqual((await tagged(a, 'B02', 'SEARCH RETURN (UPDATE) DELETED')).lines, ['* ESEARCH (TAG "B02")']);
      await ok(b, 'UID EXPUNGE 3');
      // A FETCH by number may not be told of expunges (RFC 9051 §7.5.1): the REMOVEFROM may come now.
      const f = await a.cmd('FETCH 1 (FLAGS)');
      assert.deepEqual(esearchLines(f.lines), ['* ESEARCH (TAG "B01") UID REMOVEFROM (0 3)', '* ESEARCH (TAG "B02") REMOVEFROM (0 3)']);
      assert.ok(!f.lines.some((l) => / EXPUNGE$/.test(l)));
      const r = await tagged(a, 'B03', 'NOOP');
      assert.deepEqual(r.lines, ['* 3 EXPUNGE']);
      assert.match(r.tagged, /^B03 OK /);
      // Now straight away: both in one response, REMOVEFROM numbered before the EXPUNGE.
      await ok(b, 'EXPUNGE');
      const n = await a.cmd('NOOP');
      assert.deepEqual(n.lines, ['* ESEARCH (TAG "B01") UID REMOVEFROM (0 2,4)', '* ESEARCH (TAG "B02") REMOVEFROM (0 2:3)', '* 3 EXPUNGE', '* 2 EXPUNGE']);
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5267 §4.3.4: the session\'s own MOVE, and EXPUNGE with QRESYNC: REMOVEFROM before the EXPUNGE / VANISHED', async () => {
    const a = await login();
    const b = await login();
    try {
      await ok(a, 'ENABLE QRESYNC');
      await box('CtxMove', 5, a, b);
      await tagged(a, 'V1', 'UID SORT RETURN (UPDATE) (REVERSE SUBJECT) UTF-8 ALL');
      await tagged(a, 'V2', 'UID SEARCH RETURN (UPDATE) ALL');
      const m = await a.cmd('UID MOVE 4 INBOX');
      const lines = m.lines.filter((l) => !l.startsWith('* OK [COPYUID'));
      assert.deepEqual(lines, ['* ESEARCH (TAG "V1") UID REMOVEFROM (2 4)', '* ESEARCH (TAG "V2") UID REMOVEFROM (0 4)', '* VANISHED 4']);
      await ok(b, 'UID STORE 1,5 +FLAGS.SILENT (\\Deleted)');
      await ok(b, 'EXPUNGE');
      const n = (await a.cmd('NOOP')).lines.filter((l) => !/ FETCH /.test(l));
      assert.deepEqual(n, ['* ESEARCH (TAG "V1") UID REMOVEFROM (1 5 3 1)', '* ESEARCH (TAG "V2") UID REMOVEFROM (0 1,5)', '* VANISHED 1,5']);
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5267 §4.3.5: CANCELUPDATE "B01" → OK No further updates; nothing more for B01; an unknown tag is NO', async () => {
    const a = await login();
    const b = await login();
    try {
      await box('Ctx435', 3, a, b);
      await tagged(a, 'B01', 'UID SEARCH RETURN (UPDATE) FLAGGED');
      await tagged(a, 'B02', 'UID SEARCH RETURN (UPDATE) FLAGGED');
      const r = await tagged(a, 'B04', 'CANCELUPDATE "B01"');
      assert.deepEqual(r.lines, []);
      assert.equal(r.tagged, 'B04 OK No further updates');
      await ok(b, 'STORE 1 +FLAGS.SILENT (\\Flagged)');
      assert.deepEqual(esearchLines((await a.cmd('NOOP')).lines), ['* ESEARCH (TAG "B02") UID ADDTO (0 1)']);
      assert.match((await tagged(a, 'B05', 'CANCELUPDATE "B01"')).tagged, /^B05 NO /);
      assert.match((await tagged(a, 'B06', 'CANCELUPDATE B02')).tagged, /^B06 BAD /); // RFC 5267 §5: quoted
      // The tag is free again after CANCELUPDATE.
      assert.match((await tagged(a, 'B01', 'UID SEARCH RETURN (UPDATE) SEEN')).tagged, /^B01 OK /);
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5267 §4.4 / RFC 9394 §3.1: PARTIAL with UPDATE: the window now, updates for every result', async () => {
    const a = await login();
    const b = await login();
    try {
      await box('Ctx44', 8, a, b);
      assert.deepEqual((await tagged(a, 'A02', 'UID SEARCH RETURN (PARTIAL 1:3 UPDATE) UNDELETED')).lines, ['* ESEARCH (TAG "A02") UID PARTIAL (1:3 1:3)']);
      assert.deepEqual((await tagged(a, 'A03', 'UID SORT RETURN (PARTIAL -1:-2 UPDATE) (REVERSE SUBJECT) UTF-8 UNDELETED')).lines, ['* ESEARCH (TAG "A03") UID PARTIAL (-1:-2 2,1)']);
      await ok(b, 'UID STORE 7 +FLAGS.SILENT (\\Deleted)');
      assert.deepEqual(esearchLines((await a.cmd('NOOP')).lines), ['* ESEARCH (TAG "A02") UID REMOVEFROM (0 7)', '* ESEARCH (TAG "A03") UID REMOVEFROM (2 7)']);
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5267 §4.3.3: a message APPENDed by another session → EXISTS, then ADDTO (0 n) in message numbers; SORT ADDTO at its sorted position', async () => {
    const a = await login();
    const b = await login();
    try {
      await box('CtxAdd', 4, a, b);
      assert.deepEqual((await tagged(a, 'N1', 'SEARCH RETURN (UPDATE COUNT) UNSEEN')).lines, ['* ESEARCH (TAG "N1") COUNT 4']);
      assert.deepEqual((await tagged(a, 'N2', 'UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 ALL')).lines, ['* ESEARCH (TAG "N2") UID ALL 1:4']);
      assert.deepEqual((await tagged(a, 'N3', 'UID SEARCH RETURN (UPDATE COUNT) SUBJECT s025')).lines, ['* ESEARCH (TAG "N3") UID COUNT 0']);
      await appendAll(b, 'CtxAdd', ['s025']); // between s02 and s03
      const r = await a.cmd('NOOP');
      const lines = r.lines.filter((l) => !/RECENT$/.test(l));
      assert.deepEqual(lines, ['* 5 EXISTS', '* ESEARCH (TAG "N1") ADDTO (0 5)', '* ESEARCH (TAG "N2") UID ADDTO (3 5)', '* ESEARCH (TAG "N3") UID ADDTO (0 5)']);
      await appendAll(b, 'CtxAdd', ['s00'], '\\Seen');
      const r2 = (await a.cmd('NOOP')).lines.filter((l) => !/RECENT$/.test(l));
      assert.deepEqual(r2, ['* 6 EXISTS', '* ESEARCH (TAG "N2") UID ADDTO (1 6)']);
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5267 §4.3 (errata to RFC 3501): sequence numbers and * in the program are taken when the command is received', async () => {
    const a = await login();
    const b = await login();
    try {
      await box('CtxSeq', 3, a, b);
      await tagged(a, 'Q1', 'SEARCH RETURN (UPDATE) 2:*');
      await tagged(a, 'Q2', 'UID SEARCH RETURN (UPDATE) UID 2:*');
      await tagged(a, 'Q3', 'SEARCH RETURN (UPDATE) ALL');
      await appendAll(b, 'CtxSeq', ['new']);
      const r = (await a.cmd('NOOP')).lines.filter((l) => !/RECENT$/.test(l));
      assert.deepEqual(r, ['* 4 EXISTS', '* ESEARCH (TAG "Q3") ADDTO (0 4)']);
      // Numbers in updates follow the session's numbering after an expunge.
      await ok(b, 'STORE 1 +FLAGS.SILENT (\\Deleted)');
      await ok(b, 'EXPUNGE');
      const e = (await a.cmd('NOOP')).lines;
      assert.deepEqual(e, ['* ESEARCH (TAG "Q3") REMOVEFROM (0 1)', '* 1 EXPUNGE']);
      await ok(b, 'STORE 2 +FLAGS.SILENT (\\Deleted)'); // UID 3: message 2 now
      await ok(b, 'EXPUNGE');
      assert.deepEqual((await a.cmd('NOOP')).lines, ['* ESEARCH (TAG "Q1") REMOVEFROM (0 2)', '* ESEARCH (TAG "Q2") UID REMOVEFROM (0 3)', '* ESEARCH (TAG "Q3") REMOVEFROM (0 2)', '* 2 EXPUNGE']);
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5267 §4.3: header, body and flag keys together; the session\'s own STORE reports before its tagged OK', async () => {
    const a = await login();
    const b = await login();
    try {
      await box('CtxMix', 2, a, b);
      await tagged(a, 'M1', 'UID SEARCH RETURN (UPDATE) UNSEEN SUBJECT hello');
      await tagged(a, 'M2', 'UID SEARCH RETURN (UPDATE) BODY zanzibar');
      assert.match((await b.append('CtxMix', msg('hello there', 'a trip to Zanzibar'))).tagged, / OK /); // uid 3
      assert.match((await b.append('CtxMix', msg('other', 'zanzibar too'))).tagged, / OK /); // uid 4
      assert.match((await b.append('CtxMix', msg('hello again'), '(\\Seen)')).tagged, / OK /); // uid 5
      assert.deepEqual(esearchLines((await a.cmd('NOOP')).lines), ['* ESEARCH (TAG "M1") UID ADDTO (0 3)', '* ESEARCH (TAG "M2") UID ADDTO (0 3:4)']);
      const r = await a.cmd('UID STORE 3 +FLAGS (\\Seen)');
      assert.deepEqual(esearchLines(r.lines), ['* ESEARCH (TAG "M1") UID REMOVEFROM (0 3)']);
      assert.ok(r.lines.findIndex((l) => / FETCH /.test(l)) < r.lines.findIndex((l) => l.startsWith('* ESEARCH')));
      await ok(b, 'UID STORE 5 -FLAGS.SILENT (\\Seen)');
      assert.deepEqual(esearchLines((await a.cmd('NOOP')).lines), ['* ESEARCH (TAG "M1") UID ADDTO (0 5)']);
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5267 §4.3.2: updates arrive during IDLE without a command', async () => {
    const a = await login();
    const b = await login();
    try {
      await box('CtxIdle', 3, a, b);
      await tagged(a, 'I1', 'UID SORT RETURN (UPDATE) (REVERSE SUBJECT) UTF-8 FLAGGED');
      a.write('I2 IDLE\r\n');
      assert.match(await a.readLine(), /^\+ /);
      await ok(b, 'UID STORE 2 +FLAGS.SILENT (\\Flagged)');
      const lines: string[] = [];
      while (!lines.some((l) => l.startsWith('* ESEARCH'))) lines.push(await a.readLine());
      assert.equal(lines.find((l) => l.startsWith('* ESEARCH')), '* ESEARCH (TAG "I1") UID ADDTO (1 2)');
      a.write('DONE\r\n');
      assert.match((await a.until('I2')).tagged, /^I2 OK /);
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5267 §4.3: updates cease when the mailbox is no longer selected (SELECT, EXAMINE, CLOSE, UNSELECT); the tag is free again', async () => {
    const a = await login();
    const b = await login();
    try {
      await box('CtxSel', 2, a, b);
      for (const leave of ['SELECT CtxSel', 'EXAMINE CtxSel', 'UNSELECT', 'CLOSE']) {
        if (leave === 'UNSELECT' || leave === 'CLOSE') await ok(a, 'SELECT CtxSel');
        assert.match((await tagged(a, 'G1', 'UID SEARCH RETURN (UPDATE) FLAGGED')).tagged, /^G1 OK /);
        await ok(a, leave);
        if (leave === 'UNSELECT' || leave === 'CLOSE') await ok(a, 'SELECT CtxSel');
        await ok(b, 'UID STORE 1 +FLAGS.SILENT (\\Flagged)');
        await ok(b, 'UID STORE 1 -FLAGS.SILENT (\\Flagged)');
        await ok(b, 'UID STORE 2 +FLAGS.SILENT (\\Flagged)');
        assert.deepEqual(esearchLines((await a.cmd('NOOP')).lines), [], leave);
        assert.match((await tagged(a, 'G2', 'CANCELUPDATE "G1"')).tagged, /^G2 NO /, leave);
        await ok(b, 'UID STORE 2 -FLAGS.SILENT (\\Flagged)');
      }
    } finally {
      a.close();
      b.close();
    }
  });

  test('RFC 5267 §4.3.2–§4.3.4: 300 random APPEND/STORE/EXPUNGE by session B; session A\'s contexts, applied as a client would, equal a fresh SEARCH/SORT', async () => {
    const a = await login();
    const b = await login();
    try {
      await box('CtxRandom', 40, a, b);
      let seed = 12345;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
      const progs = [
        { tag: 'R1', cmd: 'UID SEARCH RETURN (UPDATE ALL) UNSEEN', fresh: 'UID SEARCH RETURN (ALL) UNSEEN', seq: false },
        { tag: 'R2', cmd: 'SEARCH RETURN (UPDATE ALL) OR FLAGGED SUBJECT s1', fresh: 'SEARCH RETURN (ALL) OR FLAGGED SUBJECT s1', seq: true },
        { tag: 'R3', cmd: 'UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 NOT DELETED', fresh: 'UID SORT RETURN (ALL) (SUBJECT) UTF-8 NOT DELETED', seq: false },
        { tag: 'R4', cmd: 'SORT RETURN (UPDATE ALL) (REVERSE SUBJECT) UTF-8 UNSEEN', fresh: 'SORT RETURN (ALL) (REVERSE SUBJECT) UTF-8 UNSEEN', seq: true },
      ];
      const models: ContextModel[] = [];
      let exists = 40;
      for (const p of progs) {
        const r = await tagged(a, p.tag, p.cmd);
        models.push(new ContextModel(p.tag, allOfLine(r.lines[0]!), exists, p.seq));
      }
      // Session B's own message count, from every response it gets.
      const track = (r: { lines: string[]; tagged: string }) => {
        assert.match(r.tagged, / OK /);
        for (const l of r.lines) {
          const m = /^\* (\d+) (EXISTS|EXPUNGE)$/.exec(l);
          if (m) exists = m[2] === 'EXISTS' ? Number(m[1]) : exists - 1;
        }
      };
      for (let step = 0; step < 300; step++) {
        const x = rnd();
        if (x < 0.25) track(await b.append('CtxRandom', msg(`s${Math.floor(rnd() * 60)}`), rnd() < 0.5 ? '(\\Seen)' : ''));
        else if (x < 0.85) {
          const n = exists ? 1 + Math.floor(rnd() * exists) : 0;
          const flag = ['\\Seen', '\\Flagged', '\\Deleted'][Math.floor(rnd() * 3)];
          if (n) track(await b.cmd(`STORE ${n}${rnd() < 0.3 ? `:${Math.min(exists, n + 3)}` : ''} ${rnd() < 0.5 ? '+' : '-'}FLAGS.SILENT (${flag})`));
        } else track(await b.cmd('EXPUNGE'));
        track(await b.cmd('NOOP'));
        if (step % 3 === 0) {
          const lines = (await a.cmd(rnd() < 0.5 ? 'NOOP' : 'FETCH 1 (UID)')).lines;
          for (const m of models) m.feed(lines);
        }
      }
      const lines = (await a.cmd('NOOP')).lines;
      for (const m of models) m.feed(lines);
      for (let i = 0; i < progs.length; i++) {
        const fresh = await a.cmd(progs[i]!.fresh);
        assert.deepEqual(models[i]!.list, allOfLine(fresh.lines[0]!), `${progs[i]!.tag}: ${progs[i]!.cmd}`);
        assert.ok(models[i]!.updates > 5, `${progs[i]!.tag} got ${models[i]!.updates} updates`);
      }
    } finally {
      a.close();
      b.close();
    }
  });
});

function allOfLine(line: string): number[] {
  const m = / ALL (\S+)/.exec(line);
  if (!m) return [];
  const out: number[] = [];
  for (const part of m[1]!.split(',')) {
    const [x, y] = part.split(':').map(Number) as [number, number | undefined];
    if (y === undefined) out.push(x);
    else for (let v = x; v <= y; v++) out.push(v);
  }
  return out;
}
