// SORT (RFC 5256 §3) and SORT=DISPLAY (RFC 5957) against the real server on both store backends,
// with a raw-line client and exact expected responses: the RFC's own examples first, then each
// sort key, REVERSE, UID SORT, the implicit sequence-number tie-break, CONDSTORE's MODSEQ and the
// errors a client can act on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crlf, eachBackend, mailbox, ok } from './conformance-env.ts';
import type { RawImap } from './raw-client.ts';

/** A message with the given header fields (name: value) and a one-line body. */
const msg = (fields: Record<string, string>, body = 'text') => crlf([...Object.entries(fields).map(([k, v]) => `${k}: ${v}`), '', body]);

/** A fresh mailbox whose messages get the given INTERNALDATEs (IMAP date-time strings), appended pipelined (LITERAL+). */
async function dated(c: RawImap, name: string, messages: Array<[string, string]>): Promise<void> {
  assert.match((await c.cmd(`CREATE ${name}`)).tagged, / OK /);
  for (let i = 0; i < messages.length; i += 100) {
    const tags: string[] = [];
    for (const [date, m] of messages.slice(i, i + 100)) {
      const tag = c.nextTag();
      tags.push(tag);
      c.write(`${tag} APPEND ${name} "${date}" {${Buffer.byteLength(m)}+}\r\n${m}\r\n`);
    }
    for (const tag of tags) assert.match((await c.until(tag, 30_000)).tagged, / OK /);
  }
  assert.match((await c.cmd(`SELECT ${name}`)).tagged, / OK /);
}

eachBackend('SORT', ({ login }) => {
  test('CAPABILITY lists SORT and SORT=DISPLAY (RFC 5256 §3, RFC 5957 §5)', async () => {
    const c = await login();
    try {
      const caps = (await ok(c, 'CAPABILITY'))[0]!.split(' ');
      assert.ok(caps.includes('SORT') && caps.includes('SORT=DISPLAY'), caps.join(' '));
    } finally {
      c.close();
    }
  });

  test('RFC 5256 §3 examples A283/A284: SORT (SUBJECT REVERSE DATE) → 5 3 4 1 2; no match → an empty SORT', async () => {
    const c = await login();
    try {
      await mailbox(c, 'Rfc283', [
        msg({ Subject: 'b', Date: 'Tue, 2 Jan 2024 10:00:00 +0000' }),
        msg({ Subject: 'Re: B', Date: 'Mon, 1 Jan 2024 10:00:00 +0000' }),
        msg({ Subject: '[list] a', Date: 'Thu, 4 Jan 2024 10:00:00 +0000' }),
        msg({ Subject: 'Fwd: A (fwd)', Date: 'Wed, 3 Jan 2024 10:00:00 +0000' }),
        msg({ From: 'x@example.com' }),
      ]);
      const r = await c.cmd('SORT (SUBJECT REVERSE DATE) UTF-8 ALL');
      assert.deepEqual(r.lines, ['* SORT 5 3 4 1 2']);
      assert.match(r.tagged, /^t\d+ OK SORT completed$/);
      assert.deepEqual(await ok(c, 'SORT (SUBJECT) US-ASCII TEXT "not in mailbox"'), ['* SORT']);
    } finally {
      c.close();
    }
  });

  test('RFC 5256 §3 example A282: SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994 → 2 84 882 (882 messages)', async () => {
    const c = await login();
    try {
      const subjects: Record<number, string> = { 2: 'alpha', 84: 'Re: beta', 882: 'gamma' };
      const msgs: Array<[string, string]> = [];
      for (let i = 1; i <= 882; i++) {
        const date = subjects[i] ? '01-Feb-1994 00:00:00 +0000' : '31-Jan-1994 23:59:59 +0000';
        msgs.push([date, msg({ Subject: subjects[i] ?? `old ${i}` })]);
      }
      await dated(c, 'Rfc282', msgs);
      assert.deepEqual(await ok(c, 'SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994'), ['* SORT 2 84 882']);
    } finally {
      c.close();
    }
  });

  test('each key (RFC 5256 §3, RFC 5957 §4): ARRIVAL, DATE (zones; INTERNALDATE without Date:), SIZE, FROM/TO/CC (addr-mailbox), DISPLAYFROM/DISPLAYTO', async () => {
    const c = await login();
    try {
      await dated(c, 'Keys', [
        ['05-Jan-2024 00:00:00 +0000', msg({ From: '"Zoe" <alice@z.example>', To: 'bob@b.example', Cc: 'yves@y.example', Date: 'Mon, 1 Jan 2024 23:30:00 -0200' }, 'x'.repeat(1000))],
        ['03-Jan-2024 00:00:00 +0000', msg({ From: 'Carl <carl@c.example>', To: '"Ann" <zed@z.example>', Date: 'Tue, 2 Jan 2024 00:30:00 +0000' }, 'x'.repeat(500))],
        ['04-Jan-2024 00:00:00 +0000', msg({ From: 'bert@b.example', To: 'undisclosed-recipients:;', Cc: 'Al <al@a.example>, zz@z.example' }, 'x'.repeat(750))],
        ['01-Jan-2024 00:00:00 +0000', msg({ From: '=?utf-8?q?=C3=89mile?= <dan@d.example>', To: 'amy@a.example', Date: 'Tue, 2 Jan 2024 01:30:00 +0100' }, 'x')],
      ]);
      const sort = async (crit: string) => (await ok(c, `SORT (${crit}) UTF-8 ALL`))[0];
      assert.equal(await sort('ARRIVAL'), '* SORT 4 2 3 1');
      // Sent dates in UTC: 1 = 2 Jan 01:30, 2 = 2 Jan 00:30, 4 = 2 Jan 00:30 (same: sequence order), 3 = INTERNALDATE 4 Jan.
      assert.equal(await sort('DATE'), '* SORT 2 4 1 3');
      assert.equal(await sort('REVERSE DATE'), '* SORT 3 1 2 4');
      assert.equal(await sort('SIZE'), '* SORT 4 2 3 1');
      assert.equal(await sort('FROM'), '* SORT 1 3 2 4');
      // TO: message 3's first address is the group's start: its addr-mailbox is the group name.
      assert.equal(await sort('TO'), '* SORT 4 1 3 2');
      assert.equal(await sort('CC'), '* SORT 2 4 3 1');
      // DISPLAYFROM: "Zoe", "Carl", bert@b.example, "Émile" (decoded; É is E + accent after NFKD).
      assert.equal(await sort('DISPLAYFROM'), '* SORT 3 2 4 1');
      // DISPLAYTO: amy@a.example, "Ann", bob@b.example, undisclosed-recipients (RFC 5957 §3: a mailbox without host).
      assert.equal(await sort('DISPLAYTO'), '* SORT 4 2 1 3');
      assert.equal(await sort('REVERSE DISPLAYTO'), '* SORT 3 1 2 4');
      assert.equal(await sort('SUBJECT'), '* SORT 1 2 3 4', 'no Subject: all empty, sequence order');
      assert.equal(await sort('REVERSE SUBJECT'), '* SORT 1 2 3 4', 'REVERSE does not reverse the implicit sequence order');
    } finally {
      c.close();
    }
  });

  test('UID SORT answers UIDs; search criteria narrow the set; sequence numbers follow expunges', async () => {
    const c = await login();
    try {
      await mailbox(c, 'Uids', [msg({ Subject: 'c' }), msg({ Subject: 'x' }), msg({ Subject: 'b' }), msg({ Subject: 'a' })]);
      await ok(c, 'STORE 2 +FLAGS.SILENT (\\Deleted)');
      await ok(c, 'EXPUNGE');
      assert.deepEqual(await ok(c, 'UID SORT (SUBJECT) UTF-8 ALL'), ['* SORT 4 3 1']);
      assert.deepEqual(await ok(c, 'SORT (SUBJECT) UTF-8 ALL'), ['* SORT 3 2 1']);
      assert.deepEqual(await ok(c, 'SORT (REVERSE SUBJECT) UTF-8 NOT SUBJECT a'), ['* SORT 1 2']);
      assert.deepEqual(await ok(c, 'UID SORT (SUBJECT) UTF-8 UID 1,4'), ['* SORT 4 1']);
    } finally {
      c.close();
    }
  });

  test('RFC 7162 §3.1.9: a MODSEQ criterion appends the highest MODSEQ of the result', async () => {
    const c = await login();
    try {
      await mailbox(c, 'Modseq', [msg({ Subject: 'b' }), msg({ Subject: 'a' })]);
      await ok(c, 'STORE 2 +FLAGS.SILENT (\\Flagged)');
      const ms = /2 FETCH \(.*MODSEQ \((\d+)\)/.exec((await ok(c, 'FETCH 2 (MODSEQ)')).join('\n'))![1];
      assert.deepEqual(await ok(c, 'SORT (SUBJECT) UTF-8 MODSEQ 1'), [`* SORT 2 1 (MODSEQ ${ms})`]);
      assert.deepEqual(await ok(c, `SORT (SUBJECT) UTF-8 MODSEQ ${Number(ms) + 1}`), ['* SORT']);
    } finally {
      c.close();
    }
  });

  test('errors: unknown charset → NO [BADCHARSET]; bad sort key, missing charset → BAD; outside SELECTED → BAD', async () => {
    const c = await login();
    try {
      assert.match((await c.cmd('SORT (SUBJECT) UTF-8 ALL')).tagged, /^t\d+ BAD SORT: Select a mailbox first$/);
      await mailbox(c, 'Errs', [msg({ Subject: 'a' })]);
      assert.match((await c.cmd('SORT (SUBJECT) KOI8-R ALL')).tagged, /^t\d+ NO \[BADCHARSET \(UTF-8 US-ASCII\)\] /);
      assert.match((await c.cmd('SORT (COLOR) UTF-8 ALL')).tagged, /^t\d+ BAD Unknown sort key COLOR$/);
      assert.match((await c.cmd('SORT () UTF-8 ALL')).tagged, /^t\d+ BAD /);
      assert.match((await c.cmd('SORT (SUBJECT) ALL')).tagged, /^t\d+ BAD /);
      assert.match((await c.cmd('SORT (REVERSE) UTF-8 ALL')).tagged, /^t\d+ BAD /);
    } finally {
      c.close();
    }
  });
});
