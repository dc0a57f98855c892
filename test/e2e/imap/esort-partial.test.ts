// ESORT (RFC 5267 §3) and PARTIAL (RFC 9394) against the real server on both store backends, raw
// line client, exact responses: the RFCs' examples rebuilt at a smaller scale (RFC 5267 §3.3,
// RFC 7162 example 20, RFC 9394 §3.1 and §3.3/§3.4), SAVE with PARTIAL (RFC 9394 §3.2 table 1),
// and the errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crlf, eachBackend, ok } from './conformance-env.ts';
import type { RawImap } from './raw-client.ts';

/** A fresh mailbox of n messages (subject "s<i>", Date: i hours after 1 Mar 2024), selected. */
async function box(c: RawImap, name: string, n: number, subject = (i: number) => `s${String(i).padStart(3, '0')}`): Promise<void> {
  assert.match((await c.cmd(`CREATE ${name}`)).tagged, / OK /);
  const tags: string[] = [];
  for (let i = 1; i <= n; i++) {
    const m = crlf([`Subject: ${subject(i)}`, `Date: ${new Date(Date.UTC(2024, 2, 1, i)).toUTCString().replace('GMT', '+0000')}`, '', 'x']);
    const tag = c.nextTag();
    tags.push(tag);
    c.write(`${tag} APPEND ${name} {${m.length}+}\r\n${m}\r\n`);
  }
  for (const t of tags) assert.match((await c.until(t, 30_000)).tagged, / OK /);
  assert.match((await c.cmd(`SELECT ${name}`)).tagged, / OK /);
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

eachBackend('ESORT and PARTIAL', ({ login }) => {
  test('CAPABILITY lists ESORT and PARTIAL', async () => {
    const c = await login();
    try {
      const caps = (await ok(c, 'CAPABILITY'))[0]!.split(' ');
      assert.ok(caps.includes('ESORT') && caps.includes('PARTIAL'), caps.join(' '));
    } finally {
      c.close();
    }
  });

  test('RFC 5267 §3.3: UID SORT RETURN () (REVERSE DATE) … → ESEARCH ALL in sort order, no descending ranges', async () => {
    const c = await login();
    try {
      await box(c, 'Esort', 6);
      await ok(c, 'UID STORE 3 +FLAGS.SILENT ($Junk)');
      await ok(c, 'UID STORE 2 +FLAGS.SILENT (\\Deleted)');
      const r = await c.cmd('UID SORT RETURN () (REVERSE DATE) UTF-8 UNDELETED UNKEYWORD $Junk');
      assert.deepEqual(r.lines, [`* ESEARCH (TAG "${r.tagged.split(' ')[0]}") UID ALL 6,5,4,1`]);
      assert.match(r.tagged, / OK UID SORT completed$/);
      // Ascending runs in sort order are ranges (RFC 5267 §3.2); MIN/MAX are the first and last sorted.
      const a = await c.cmd('SORT RETURN (ALL MIN MAX COUNT) (ARRIVAL) UTF-8 ALL');
      assert.deepEqual(a.lines, [`* ESEARCH (TAG "${a.tagged.split(' ')[0]}") MIN 1 MAX 6 COUNT 6 ALL 1:6`]);
      const b = await c.cmd('SORT RETURN (MIN MAX) (REVERSE SUBJECT) UTF-8 NOT UID 3');
      assert.deepEqual(b.lines, [`* ESEARCH (TAG "${b.tagged.split(' ')[0]}") MIN 6 MAX 1`]);
      const e = await c.cmd('SORT RETURN (COUNT ALL) (SUBJECT) UTF-8 SUBJECT nothing');
      assert.deepEqual(e.lines, [`* ESEARCH (TAG "${e.tagged.split(' ')[0]}") COUNT 0`]);
    } finally {
      c.close();
    }
  });

  test('RFC 7162 example 20: SORT RETURN (ALL) (DATE) UTF-8 MODSEQ n → ESEARCH … MODSEQ of the returned messages', async () => {
    const c = await login();
    try {
      await box(c, 'EsortMs', 5);
      const modseqs = async () => (await ok(c, 'FETCH 1:5 (MODSEQ)')).filter((l) => / FETCH /.test(l)).map((l) => Number(/MODSEQ \((\d+)\)/.exec(l)![1]));
      await ok(c, 'STORE 1,2,3,5 +FLAGS.SILENT (\\Flagged)');
      const fl = await modseqs();
      await ok(c, 'STORE 1:5 +FLAGS.SILENT ($x)');
      const since = fl[4]!; // messages changed after: all (the $x store)
      const r = await c.cmd(`SORT RETURN (ALL) (REVERSE DATE) UTF-8 MODSEQ ${since}`);
      const hi = Math.max(...(await modseqs()));
      assert.deepEqual(r.lines, [`* ESEARCH (TAG "${r.tagged.split(' ')[0]}") ALL 5,4,3,2,1 MODSEQ ${hi}`]);
    } finally {
      c.close();
    }
  });

  test('RFC 9394 §3.1 examples: PARTIAL -1:-n (the newest), a range spanning the end, one past it (NIL)', async () => {
    const c = await login();
    try {
      await box(c, 'Partial', 30);
      await ok(c, 'UID STORE 30 +FLAGS.SILENT ($Junk)');
      await ok(c, 'UID STORE 1 +FLAGS.SILENT (\\Deleted)');
      const tagOf = (r: { tagged: string }) => r.tagged.split(' ')[0];
      // 28 results (2..29).
      let r = await c.cmd('UID SEARCH RETURN (PARTIAL -1:-10) UNDELETED UNKEYWORD $Junk');
      assert.deepEqual(r.lines, [`* ESEARCH (TAG "${tagOf(r)}") UID PARTIAL (-1:-10 20:29)`]);
      r = await c.cmd('UID SEARCH RETURN (PARTIAL 25:40) UNDELETED UNKEYWORD $Junk');
      assert.deepEqual(r.lines, [`* ESEARCH (TAG "${tagOf(r)}") UID PARTIAL (25:40 26:29)`]);
      r = await c.cmd('UID SEARCH RETURN (PARTIAL 1:5) UNDELETED UNKEYWORD $Junk');
      assert.deepEqual(r.lines, [`* ESEARCH (TAG "${tagOf(r)}") UID PARTIAL (1:5 2:6)`]);
      r = await c.cmd('UID SEARCH RETURN (PARTIAL 40:50) UNDELETED UNKEYWORD $Junk');
      assert.deepEqual(r.lines, [`* ESEARCH (TAG "${tagOf(r)}") UID PARTIAL (40:50 NIL)`]);
      r = await c.cmd('SEARCH RETURN (PARTIAL -30:-28 COUNT) UNDELETED');
      assert.deepEqual(r.lines, [`* ESEARCH (TAG "${tagOf(r)}") COUNT 29 PARTIAL (-30:-28 2:3)`]);
      // PARTIAL of an extended SORT: positions in sort order.
      r = await c.cmd('UID SORT RETURN (PARTIAL 1:4) (REVERSE SUBJECT) UTF-8 UNDELETED');
      assert.deepEqual(r.lines, [`* ESEARCH (TAG "${tagOf(r)}") UID PARTIAL (1:4 30,29,28,27)`]);
    } finally {
      c.close();
    }
  });

  test('RFC 9394 §3.2 table 1: what $ holds after SAVE with PARTIAL, MIN/MAX and COUNT', async () => {
    const c = await login();
    try {
      await box(c, 'PartialSave', 10);
      const saved = async () => (await ok(c, 'UID SEARCH UID $'))[0];
      assert.equal((await ok(c, 'UID SEARCH RETURN (SAVE PARTIAL 3:4) ALL')).length, 1);
      assert.equal(await saved(), '* SEARCH 3 4');
      await ok(c, 'UID SEARCH RETURN (SAVE PARTIAL 3:4 MIN MAX) ALL');
      assert.equal(await saved(), '* SEARCH 1 3 4 10');
      await ok(c, 'UID SEARCH RETURN (SAVE PARTIAL 3:4 COUNT) ALL');
      assert.equal(await saved(), `* SEARCH ${range(1, 10).join(' ')}`);
    } finally {
      c.close();
    }
  });

  test('RFC 9394 §3.3/§3.4: UID FETCH … (PARTIAL -1:-3), (PARTIAL 1:5), with CHANGEDSINCE in either order', async () => {
    const c = await login();
    try {
      await ok(c, 'ENABLE IMAP4rev2'); // no \\Recent in FLAGS
      await box(c, 'PartialFetch', 12);
      await ok(c, 'UID STORE 4 +FLAGS.SILENT (\\Deleted)');
      await ok(c, 'EXPUNGE');
      assert.deepEqual(await ok(c, 'UID FETCH 2:11 (UID FLAGS) (PARTIAL -1:-3)'), ['* 8 FETCH (UID 9 FLAGS ())', '* 9 FETCH (UID 10 FLAGS ())', '* 10 FETCH (UID 11 FLAGS ())']);
      assert.deepEqual(await ok(c, 'UID FETCH 2:11 (UID FLAGS) (PARTIAL 1:5)'), [
        '* 2 FETCH (UID 2 FLAGS ())',
        '* 3 FETCH (UID 3 FLAGS ())',
        '* 4 FETCH (UID 5 FLAGS ())',
        '* 5 FETCH (UID 6 FLAGS ())',
        '* 6 FETCH (UID 7 FLAGS ())',
      ]);
      const modseqOf = async (uid: number) => Number(/MODSEQ \((\d+)\)/.exec((await ok(c, `UID FETCH ${uid} (MODSEQ)`)).find((l) => / FETCH /.test(l)) ?? '')?.[1]);
      const ms = await modseqOf(12);
      assert.ok(ms > 0);
      await ok(c, 'UID STORE 3,10 +FLAGS.SILENT (\\Flagged)');
      const m10 = await modseqOf(10);
      const expect = [`* 9 FETCH (UID 10 FLAGS (\\Flagged) MODSEQ (${m10}))`];
      assert.deepEqual(await ok(c, `UID FETCH 2:11 (UID FLAGS) (PARTIAL -1:-3 CHANGEDSINCE ${ms})`), expect);
      assert.deepEqual(await ok(c, `UID FETCH 2:11 (UID FLAGS) (CHANGEDSINCE ${ms} PARTIAL -3:-1)`), expect);
      assert.deepEqual(await ok(c, 'UID FETCH 100:200 (FLAGS) (PARTIAL 1:5)'), []);
    } finally {
      c.close();
    }
  });

  test('errors: PARTIAL with ALL, two PARTIALs, 0 or mixed signs, FETCH (not UID FETCH) PARTIAL → BAD', async () => {
    const c = await login();
    try {
      await box(c, 'PartialErr', 2);
      for (const cmd of [
        'SEARCH RETURN (PARTIAL 1:5 ALL) ALL',
        'SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:9) ALL',
        'SEARCH RETURN (PARTIAL 0:5) ALL',
        'SEARCH RETURN (PARTIAL -1:5) ALL',
        'SEARCH RETURN (PARTIAL 1:*) ALL',
        'SORT RETURN (ALL PARTIAL 1:2) (DATE) UTF-8 ALL',
        'FETCH 1:2 (FLAGS) (PARTIAL 1:2)',
      ]) assert.match((await c.cmd(cmd)).tagged, /^t\d+ BAD /, cmd);
    } finally {
      c.close();
    }
  });
});
