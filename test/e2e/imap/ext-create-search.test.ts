// Issue 14 extensions, part 1: CREATE-SPECIAL-USE (RFC 6154), WITHIN (RFC 5032), SAVEDATE
// (RFC 8514). Each RFC's examples against the real server (both store backends), raw lines in,
// exact responses out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crlf, eachBackend, mailbox, ok } from './conformance-env.ts';
import type { RawImap } from './raw-client.ts';

const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number) => String(n).padStart(2, '0');
/** date-time in UTC, as the server writes INTERNALDATE / SAVEDATE. */
const dateTime = (ms: number) => {
  const d = new Date(ms);
  return `${p2(d.getUTCDate())}-${MON[d.getUTCMonth()]}-${d.getUTCFullYear()} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} +0000`;
};
/** SEARCH date (RFC 9051 §9 date-text) of a moment, in UTC. */
const day = (ms: number) => {
  const d = new Date(ms);
  return `${d.getUTCDate()}-${MON[d.getUTCMonth()]}-${d.getUTCFullYear()}`;
};
const parseDateTime = (s: string): number => {
  const m = /^(\d{2})-(\w{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) \+0000$/.exec(s)!;
  return Date.UTC(Number(m[3]), MON.indexOf(m[2]!), Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
};

async function savedate(c: RawImap, cmd: string): Promise<number[]> {
  return (await ok(c, cmd)).map((l) => parseDateTime(/SAVEDATE "([^"]+)"/.exec(l)![1]!));
}

eachBackend('IMAP extensions: CREATE-SPECIAL-USE, WITHIN, SAVEDATE', ({ session }) => {
  test('RFC 6154 §5.2: LIST RETURN (SPECIAL-USE) and the SPECIAL-USE selection option', () =>
    session(async (c) => {
      assert.match((await ok(c, 'CAPABILITY'))[0]!, /^\* CAPABILITY .* SPECIAL-USE .*CREATE-SPECIAL-USE /);
      // A fresh account: the default mailboxes (src/store/store.ts DEFAULT_MAILBOXES), nothing else yet.
      assert.deepEqual(await ok(c, 'LIST "" "%" RETURN (SPECIAL-USE)'), [
        '* LIST (\\HasNoChildren) "/" "INBOX"',
        '* LIST (\\HasNoChildren \\Archive) "/" "Archive"',
        '* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"',
        '* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
        '* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
        '* LIST (\\HasNoChildren \\Trash) "/" "Trash"',
      ]);
      await ok(c, 'CREATE ToDo');
      await ok(c, 'CREATE Projects/Deep (USE (\\Archive))');
      // The selection option implies the return option and lists only mailboxes with a use.
      assert.deepEqual(await ok(c, 'LIST (SPECIAL-USE) "" "*"'), [
        '* LIST (\\HasNoChildren \\Archive) "/" "Archive"',
        '* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"',
        '* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
        '* LIST (\\HasNoChildren \\Archive) "/" "Projects/Deep"',
        '* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
        '* LIST (\\HasNoChildren \\Trash) "/" "Trash"',
      ]);
      assert.deepEqual(await ok(c, 'LIST "" "Projects*"'), ['* LIST (\\HasChildren) "/" "Projects"', '* LIST (\\HasNoChildren \\Archive) "/" "Projects/Deep"']);
    }));

  test('RFC 6154 §3/§5.3: CREATE (USE (…)) stores the use; an unsupported one is NO [USEATTR] and creates nothing', () =>
    session(async (c) => {
      await ok(c, 'CREATE MySpecial (USE (\\Drafts))');
      assert.deepEqual(await ok(c, 'LIST "" MySpecial'), ['* LIST (\\HasNoChildren \\Drafts) "/" "MySpecial"']);
      // §5.3: "t3 CREATE Everything (USE (\All))" → "t3 NO [USEATTR] \All not supported" (no virtual mailboxes here).
      const all = await c.cmd('CREATE Everything (USE (\\All))');
      assert.match(all.tagged, /^t\d+ NO \[USEATTR\] \\All not supported$/);
      assert.deepEqual(await ok(c, 'LIST "" Everything'), []);
      // MUST NOT create the mailbox, nor (here) the parents it would have needed.
      assert.match((await c.cmd('CREATE Virt/Flagged (USE (\\Flagged))')).tagged, /^t\d+ NO \[USEATTR\] \\Flagged not supported$/);
      assert.match((await c.cmd('CREATE Odd (USE (\\Important))')).tagged, /^t\d+ NO \[USEATTR\] \\Important not supported$/);
      // One use per mailbox in this store: §5.3's "(USE (\Drafts \Sent))" is refused the same way.
      assert.match((await c.cmd('CREATE Both (USE (\\Drafts \\Sent))')).tagged, /^t\d+ NO \[USEATTR\] Only one special-use attribute per mailbox$/);
      assert.deepEqual(await ok(c, 'LIST "" "Virt*"'), []);
      assert.deepEqual(await ok(c, 'LIST "" "Odd"'), []);
      assert.deepEqual(await ok(c, 'LIST "" "Both"'), []);
      // §6: the list may be empty; the use is case-insensitive and shown in its canonical spelling.
      await ok(c, 'CREATE Plain (USE ())');
      await ok(c, 'CREATE Bin (USE (\\trash))');
      assert.deepEqual(await ok(c, 'LIST "" "Plain"'), ['* LIST (\\HasNoChildren) "/" "Plain"']);
      assert.deepEqual(await ok(c, 'LIST "" "Bin" RETURN (SPECIAL-USE)'), ['* LIST (\\HasNoChildren \\Trash) "/" "Bin"']);
      assert.match((await c.cmd('CREATE Bad (USE \\Sent)')).tagged, /^t\d+ BAD /);
    }));

  test('RFC 5032 §4: SEARCH UNSEEN YOUNGER 259200; OLDER / YOUNGER compare INTERNALDATE with now minus n seconds', () =>
    session(async (c) => {
      assert.match((await ok(c, 'CAPABILITY'))[0]!, / WITHIN( |$)/);
      const now = Date.now();
      await ok(c, 'CREATE Within');
      const put = async (ageSeconds: number, flags: string) => {
        const r = await c.append('Within', crlf([`Subject: ${ageSeconds}s old`, '', 'x']), `${flags} "${dateTime(now - ageSeconds * 1000)}"`);
        assert.match(r.tagged, / OK /);
      };
      await put(10 * 86400, '()'); // 1: ten days
      await put(2 * 86400, '(\\Seen)'); // 2: two days, seen
      await put(86400, '()'); // 3: one day
      await put(600, '()'); // 4: ten minutes
      await put(5 * 86400, '()'); // 5: five days
      await ok(c, 'SELECT Within');
      assert.deepEqual(await ok(c, 'SEARCH UNSEEN YOUNGER 259200'), ['* SEARCH 3 4']);
      assert.deepEqual(await ok(c, 'SEARCH YOUNGER 259200'), ['* SEARCH 2 3 4']);
      assert.deepEqual(await ok(c, 'SEARCH OLDER 259200'), ['* SEARCH 1 5']);
      assert.deepEqual(await ok(c, 'SEARCH OLDER 3600 YOUNGER 518400'), ['* SEARCH 2 3 5']);
      assert.deepEqual(await ok(c, 'UID SEARCH NOT OLDER 3600'), ['* SEARCH 4']);
      const es = await c.cmd('SEARCH RETURN (COUNT) OR OLDER 700000 YOUNGER 700');
      assert.deepEqual(es.lines, [`* ESEARCH (TAG "${es.tagged.split(' ')[0]}") COUNT 2`]);
      // §3: nz-number.
      assert.match((await c.cmd('SEARCH YOUNGER 0')).tagged, /^t\d+ BAD /);
      assert.match((await c.cmd('SEARCH OLDER')).tagged, /^t\d+ BAD /);
    }));

  test('RFC 8514 §4.2/§4.3: FETCH SAVEDATE is when the message came into this mailbox; SAVEDBEFORE/SAVEDON/SAVEDSINCE', () =>
    session(async (c) => {
      assert.match((await ok(c, 'CAPABILITY'))[0]!, / SAVEDATE( |$)/);
      const t0 = Math.floor(Date.now() / 1000) * 1000;
      // An APPEND with an old INTERNALDATE: the save date is still now (§3).
      await mailbox(c, 'Saved', [crlf(['Subject: a', '', 'a'])]);
      assert.match((await c.append('Saved', crlf(['Subject: b', '', 'b']), '"01-Jan-2015 18:50:53 +0100"')).tagged, / OK /);
      await ok(c, 'NOOP');
      const t1 = Date.now();
      const f = await ok(c, 'FETCH 1:2 (SAVEDATE INTERNALDATE)');
      assert.equal(f.length, 2);
      assert.match(f[1]!, /^\* 2 FETCH \(SAVEDATE "[^"]+" INTERNALDATE "01-Jan-2015 17:50:53 \+0000"\)$/);
      const [s1, s2] = f.map((l) => parseDateTime(/SAVEDATE "([^"]+)"/.exec(l)![1]!));
      for (const s of [s1!, s2!]) assert.ok(s >= t0 && s <= t1, `${dateTime(s)} within the APPENDs`);
      // The summary path (UID FETCH of summary items only) and the full one (with a body item) agree.
      assert.deepEqual(await ok(c, 'UID FETCH 2 (SAVEDATE)'), [`* 2 FETCH (UID 2 SAVEDATE "${dateTime(s2!)}")`]);
      const full = await ok(c, 'FETCH 2 (SAVEDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
      assert.equal(full[0], `* 2 FETCH (SAVEDATE "${dateTime(s2!)}" BODY[HEADER.FIELDS (SUBJECT)] {14}\r\nSubject: b\r\n\r\n)`);
      // §4.3 examples: SAVEDON / SAVEDSINCE; the day disregards time and timezone.
      const today = day(s2!);
      const tomorrow = day(s2! + 86400_000);
      assert.deepEqual(await ok(c, `SEARCH SAVEDON ${today}`), ['* SEARCH 1 2']);
      assert.deepEqual(await ok(c, `SEARCH SAVEDSINCE ${today}`), ['* SEARCH 1 2']);
      assert.deepEqual(await ok(c, `SEARCH SAVEDSINCE ${tomorrow}`), ['* SEARCH']);
      assert.deepEqual(await ok(c, `SEARCH SAVEDBEFORE ${tomorrow}`), ['* SEARCH 1 2']);
      assert.deepEqual(await ok(c, 'SEARCH SAVEDBEFORE 1-Jan-2016'), ['* SEARCH']);
      assert.deepEqual(await ok(c, 'SEARCH ON 1-Jan-2015'), ['* SEARCH 2'], 'INTERNALDATE is the one APPEND gave');
      assert.deepEqual(await ok(c, 'SEARCH SAVEDATESUPPORTED'), ['* SEARCH 1 2']);
      // §3: COPY and MOVE give the new message a new save date; the source's does not change.
      await new Promise((r) => setTimeout(r, 1100));
      await ok(c, 'CREATE SavedCopy');
      await ok(c, 'CREATE SavedMove');
      const t2 = Math.floor(Date.now() / 1000) * 1000;
      await ok(c, 'COPY 1 SavedCopy');
      await ok(c, 'MOVE 2 SavedMove');
      assert.deepEqual(await savedate(c, 'FETCH 1 (SAVEDATE)'), [s1]);
      for (const box of ['SavedCopy', 'SavedMove']) {
        await ok(c, `EXAMINE ${box}`);
        const [s] = await savedate(c, 'FETCH 1 (SAVEDATE)');
        assert.ok(s! >= t2 && s! > s2!, `${box}: ${dateTime(s!)} is the copy's own`);
      }
      assert.deepEqual(await ok(c, 'FETCH 1 (INTERNALDATE)'), ['* 1 FETCH (INTERNALDATE "01-Jan-2015 17:50:53 +0000")'], 'MOVE keeps INTERNALDATE');
    }));
});
