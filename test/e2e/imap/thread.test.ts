// THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3, §4) against the real server on both
// store backends, raw-line client, exact expected responses: the RFC's examples (A283/A284/A285,
// messages 166–208 rebuilt so that both algorithms give the RFC's answers), then the rules one
// at a time (missing parents, subject gathering, loops, duplicate ids, UID THREAD).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crlf, eachBackend, ok } from './conformance-env.ts';
import type { RawImap } from './raw-client.ts';

interface M {
  subject: string;
  id?: string;
  refs?: string;
  inReplyTo?: string;
  /** Minutes after 5 Mar 2000 00:00 UTC (the Date: header). */
  min?: number;
  /** INTERNALDATE (IMAP date-time). */
  internal?: string;
}

function raw(m: M): string {
  const lines = ['From: a@example.com', `Subject: ${m.subject}`];
  if (m.min !== undefined) lines.push(`Date: ${new Date(Date.UTC(2000, 2, 5) + m.min * 60_000).toUTCString().replace('GMT', '+0000')}`);
  if (m.id) lines.push(`Message-ID: <${m.id}>`);
  if (m.refs) lines.push(`References: ${m.refs}`);
  if (m.inReplyTo) lines.push(`In-Reply-To: ${m.inReplyTo}`);
  return crlf([...lines, '', 'text']);
}

/** A fresh mailbox with the messages (pipelined APPENDs, LITERAL+), selected. */
async function box(c: RawImap, name: string, msgs: M[]): Promise<void> {
  assert.match((await c.cmd(`CREATE ${name}`)).tagged, / OK /);
  for (let i = 0; i < msgs.length; i += 100) {
    const tags: string[] = [];
    for (const m of msgs.slice(i, i + 100)) {
      const tag = c.nextTag();
      tags.push(tag);
      const r = raw(m);
      c.write(`${tag} APPEND ${name}${m.internal ? ` "${m.internal}"` : ''} {${Buffer.byteLength(r)}+}\r\n${r}\r\n`);
    }
    for (const tag of tags) assert.match((await c.until(tag, 30_000)).tagged, / OK /);
  }
  assert.match((await c.cmd(`SELECT ${name}`)).tagged, / OK /);
}

/**
 * Messages 1–208 of the RFC 5256 §3 examples: 1–165 before 5-Mar-2000 (left out by SINCE), and
 * 166–208 with subjects, references and dates chosen so that ORDEREDSUBJECT and REFERENCES give
 * exactly the RFC's A283 and A285 answers.
 */
function rfcMailbox(): M[] {
  const out: M[] = [];
  for (let i = 1; i <= 165; i++) out.push({ subject: `old ${i}`, internal: '01-Mar-2000 00:00:00 +0000' });
  // Sent-date order of 166–208 (satisfies both answers' orderings).
  const order = [166, 167, 168, 169, 172, 170, 171, 173, 174, 175, 176, 178, 181, 180, 179, 177, 183, 182, 188, 184, 185, 186, 187, 189, 190, 191, 192, 193, 194, 195, 196, 197, 198, 199, 200, 202, 201, 203, 204, 205, 206, 207, 208];
  // ORDEREDSUBJECT threads (A283): the base subject of each message.
  const subjectOf = (n: number): string => {
    const groups: Array<[string, number[]]> = [
      ['s9', [174, 175, 176, 178, 181, 180]],
      ['s11', [177, 183, 182, 188, 184, 185, 186, 187, 189]],
      ['s16', [194, 195]],
      ['s17', [196, 197, 198]],
      ['s19', [200, 202]],
      ['s24', [206, 207]],
    ];
    for (const [s, ns] of groups) if (ns.includes(n)) return ns[0] === n ? s : `Re: ${s}`;
    return `t${n}`;
  };
  // REFERENCES (A285): missing parents x1–x4 make the dummies; the rest are replies.
  const refsOf: Record<number, string> = {
    170: '<x1@example.com>',
    179: '<x1@example.com>',
    ...Object.fromEntries([174, 175, 176, 178, 181, 180].map((n) => [n, '<x2@example.com>'])),
    ...Object.fromEntries([177, 183, 182, 188, 185, 187].map((n) => [n, '<x3@example.com>'])),
    184: '<x3@example.com> <m188@example.com>',
    189: '<x3@example.com> <m188@example.com>',
    186: '<x3@example.com> <m185@example.com>',
    194: '<x4@example.com>',
    195: '<x4@example.com>',
    196: '<x4@example.com> <m195@example.com>',
    198: '<m197@example.com>',
    202: '<m200@example.com>',
    206: '<m205@example.com>',
    207: '<m205@example.com> <m206@example.com>',
  };
  for (let n = 166; n <= 208; n++) {
    out.push({ subject: subjectOf(n), id: `m${n}@example.com`, refs: refsOf[n], min: order.indexOf(n), internal: '06-Mar-2000 00:00:00 +0000' });
  }
  return out;
}

eachBackend('THREAD', ({ login }) => {
  test('CAPABILITY lists THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3)', async () => {
    const c = await login();
    try {
      const caps = (await ok(c, 'CAPABILITY'))[0]!.split(' ');
      assert.ok(caps.includes('THREAD=ORDEREDSUBJECT') && caps.includes('THREAD=REFERENCES'), caps.join(' '));
    } finally {
      c.close();
    }
  });

  test('RFC 5256 §3 examples A283, A284, A285: the answers for messages 166–208, and an empty THREAD', async () => {
    const c = await login();
    try {
      await box(c, 'Rfc', rfcMailbox());
      assert.deepEqual(await ok(c, 'THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000'), [
        '* THREAD (166)(167)(168)(169)(172)(170)(171)(173)(174 (175)(176)(178)(181)(180))(179)(177 (183)(182)(188)(184)(185)(186)(187)(189))(190)(191)(192)(193)(194 195)(196 (197)(198))(199)(200 202)(201)(203)(204)(205)(206 207)(208)',
      ]);
      assert.deepEqual(await ok(c, 'THREAD ORDEREDSUBJECT US-ASCII TEXT "gewp"'), ['* THREAD']);
      const r = await c.cmd('THREAD REFERENCES UTF-8 SINCE 5-MAR-2000');
      assert.deepEqual(r.lines, [
        '* THREAD (166)(167)(168)(169)(172)((170)(179))(171)(173)((174)(175)(176)(178)(181)(180))((177)(183)(182)(188 (184)(189))(185 186)(187))(190)(191)(192)(193)((194)(195 196))(197 198)(199)(200 202)(201)(203)(204)(205 206 207)(208)',
      ]);
      assert.match(r.tagged, /^t\d+ OK THREAD completed$/);
    } finally {
      c.close();
    }
  });

  test('RFC 5256 §4: siblings of a parent not in the mailbox are one thread ((3)(5)); UID THREAD answers UIDs', async () => {
    const c = await login();
    try {
      await box(c, 'Missing', [
        { subject: 'a', id: 'a@x', min: 1 },
        { subject: 'b', id: 'b@x', min: 2 },
        { subject: 'Re: p', id: 'c@x', refs: '<gone@x>', min: 3 },
        { subject: 'd', id: 'd@x', min: 4 },
        { subject: 'Re: p', id: 'e@x', inReplyTo: '<gone@x>', min: 5 },
      ]);
      await ok(c, 'STORE 1 +FLAGS.SILENT (\\Deleted)');
      await ok(c, 'EXPUNGE');
      assert.deepEqual(await ok(c, 'THREAD REFERENCES UTF-8 ALL'), ['* THREAD (1)((2)(4))(3)']);
      assert.deepEqual(await ok(c, 'UID THREAD REFERENCES UTF-8 ALL'), ['* THREAD (2)((3)(5))(4)']);
      assert.deepEqual(await ok(c, 'UID THREAD ORDEREDSUBJECT UTF-8 ALL'), ['* THREAD (2)(3 5)(4)']);
      assert.deepEqual(await ok(c, 'UID THREAD REFERENCES UTF-8 NOT UID 3'), ['* THREAD (2)(4)(5)']);
    } finally {
      c.close();
    }
  });

  test('RFC 5256 §3 REFERENCES step 5: threads with one base subject gather (a reply under the original, two originals under a dummy)', async () => {
    const c = await login();
    try {
      await box(c, 'Subjects', [
        { subject: 'Lunch', id: '1@x', min: 1 },
        { subject: 'Re: Lunch', id: '2@x', min: 2 },
        { subject: 'Plans', id: '3@x', min: 3 },
        { subject: '[team] Plans', id: '4@x', min: 4 },
        { subject: 'Fwd: Plans', id: '5@x', min: 5 },
        { subject: '', id: '6@x', min: 6 },
        { subject: '', id: '7@x', min: 7 },
      ]);
      assert.deepEqual(await ok(c, 'THREAD REFERENCES UTF-8 ALL'), ['* THREAD (1 2)((3)(4)(5))(6)(7)']);
    } finally {
      c.close();
    }
  });

  test('RFC 5256 §3 REFERENCES step 1: no loops, duplicate Message-IDs get unique ones, a later References replaces a parent', async () => {
    const c = await login();
    try {
      await box(c, 'Loops', [
        { subject: 'x1', id: 'a@x', refs: '<b@x>', min: 1 },
        { subject: 'x2', id: 'b@x', refs: '<a@x>', min: 2 },
        { subject: 'x3', id: 'a@x', min: 3 },
        { subject: 'x4', id: 'c@x', refs: '<zz@x> <a@x>', min: 4 },
      ]);
      // 1 (a) is the child of b (2); 2's References would make a loop: 2 stays a root. 3 repeats
      // a@x: its own unique id. 4 names a@x last: child of 1.
      assert.deepEqual(await ok(c, 'THREAD REFERENCES UTF-8 ALL'), ['* THREAD (2 1 4)(3)']);
    } finally {
      c.close();
    }
  });

  test('errors: unknown algorithm → BAD; unknown charset → NO [BADCHARSET]', async () => {
    const c = await login();
    try {
      await box(c, 'Terr', [{ subject: 'a' }]);
      assert.match((await c.cmd('THREAD XYZZY UTF-8 ALL')).tagged, /^t\d+ BAD Unknown threading algorithm XYZZY$/);
      assert.match((await c.cmd('THREAD REFERENCES EBCDIC ALL')).tagged, /^t\d+ NO \[BADCHARSET \(UTF-8 US-ASCII\)\] /);
    } finally {
      c.close();
    }
  });
});
