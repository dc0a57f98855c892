// SORT and THREAD answered from the per-mailbox key index (src/imap/sort-index.ts,
// thread-cache.ts) stay right while the mailbox changes (RFC 5256 §3: the answer is always over the
// mailbox as the client knows it): after new mail from another session, expunges, and enough
// expunges to compact the index, every SORT / THREAD a user's client sends answers exactly what a
// mailbox never sorted before answers for the same messages (COPY 1:* into a fresh mailbox keeps
// their order, INTERNALDATEs and flags, so sequence numbers match one to one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crlf, eachBackend, ok, ownServer } from './conformance-env.ts';
import type { RawImap } from './raw-client.ts';

const CMDS = [
  'SORT (ARRIVAL) UTF-8 ALL',
  'SORT (DATE) UTF-8 ALL',
  'SORT (REVERSE DATE) UTF-8 ALL',
  'SORT (SUBJECT) UTF-8 ALL',
  'SORT (SUBJECT REVERSE ARRIVAL) UTF-8 ALL',
  'SORT (FROM SIZE) UTF-8 ALL',
  'SORT (DISPLAYFROM) UTF-8 UNSEEN',
  'SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL',
  'THREAD REFERENCES UTF-8 ALL',
  'THREAD ORDEREDSUBJECT UTF-8 ALL',
  'THREAD REFERENCES UTF-8 NOT SUBJECT "lunch"',
];

const SUBJECTS = ['Budget 2024', 'Re: Budget 2024', 'Lunch?', 'Re: Lunch?', 'Fwd: Budget 2024', 'Offsite plan', '[team] Offsite plan', 'zebra crossing'];

/** Message i: a subject from a small set, a Date that is not in arrival order, a reply chain. */
function message(i: number, tag = 'm'): string {
  const day = 1 + ((i * 7) % 27);
  const refs = i > 2 && i % 3 !== 0 ? `References: <${tag}${i - 2}@example.org> <${tag}${i - 1}@example.org>` : null;
  return crlf([
    `From: ${['Carol <carol@example.org>', 'alice@example.org', '"Bob B" <bob@example.org>'][i % 3]}`,
    `Subject: ${SUBJECTS[i % SUBJECTS.length]}`,
    `Date: ${day} Feb 2024 ${String(i % 24).padStart(2, '0')}:00:00 +0000`,
    `Message-ID: <${tag}${i}@example.org>`,
    ...(refs ? [refs] : []),
    '',
    'x'.repeat(10 + ((i * 13) % 50)),
  ]);
}

/** Appends pipelined (LITERAL+); INTERNALDATEs step back now and then, so ARRIVAL is not UID order. */
async function append(c: RawImap, box: string, from: number, to: number, tag = 'm'): Promise<void> {
  const tags: string[] = [];
  for (let i = from; i < to; i++) {
    const m = message(i, tag);
    const day = 1 + (i % 5 === 4 ? i % 3 : 3 + Math.floor(i / 40));
    const t = c.nextTag();
    tags.push(t);
    c.write(`${t} APPEND ${box} ${i % 4 === 0 ? '(\\Seen) ' : ''}"${String(Math.min(day, 28)).padStart(2, '0')}-Mar-2024 10:${String(i % 60).padStart(2, '0')}:00 +0000" {${Buffer.byteLength(m)}+}\r\n${m}\r\n`);
  }
  for (const t of tags) assert.match((await c.until(t, 60_000)).tagged, / OK /);
}

async function answers(c: RawImap): Promise<string[][]> {
  const out: string[][] = [];
  for (const cmd of CMDS) out.push((await ok(c, cmd)).filter((l) => /^\* (SORT|THREAD|ESEARCH)/.test(l)).map((l) => l.replace(/\(TAG "[^"]*"\) /, '')));
  return out;
}

/** The same messages copied into a fresh mailbox, which has never been sorted: its answers. */
async function fresh(c: RawImap, from: string, to: string): Promise<string[][]> {
  await ok(c, `CREATE ${to}`);
  await ok(c, `COPY 1:* ${to}`);
  await ok(c, `SELECT ${to}`);
  const r = await answers(c);
  await ok(c, `SELECT ${from}`);
  return r;
}

function sameAnswers(got: string[][], want: string[][], when: string): void {
  CMDS.forEach((cmd, i) => assert.deepEqual(got[i], want[i], `${cmd} ${when}`));
}

eachBackend('SORT / THREAD index', ({ login }) => {
  test('answers follow new mail from another session and expunges', async () => {
    const a = await login();
    const b = await login();
    try {
      await ok(a, 'CREATE Cached');
      await append(a, 'Cached', 0, 40);
      await ok(a, 'SELECT Cached');
      sameAnswers(await answers(a), await fresh(a, 'Cached', 'Fresh0'), 'at first');
      // Asked twice (cached now): the same answers.
      sameAnswers(await answers(a), await fresh(a, 'Cached', 'Fresh1'), 'asked again');
      // New mail: replies to earlier messages, a subject that sorts first, an older INTERNALDATE.
      await append(b, 'Cached', 40, 52);
      const first = crlf(['From: aaron@example.org', 'Subject: aaa first', 'Date: 1 Jan 2020 00:00:00 +0000', 'Message-ID: <first@example.org>', 'References: <m5@example.org>', '', 'hi']);
      assert.match((await b.append('Cached', first)).tagged, / OK /);
      await ok(a, 'NOOP');
      const now = await answers(a);
      // The user's view: the new message sorts first by subject and by date.
      assert.match(now[CMDS.indexOf('SORT (SUBJECT) UTF-8 ALL')]![0]!, /^\* SORT 53 /);
      assert.match(now[CMDS.indexOf('SORT (DATE) UTF-8 ALL')]![0]!, /^\* SORT 53 /);
      sameAnswers(now, await fresh(a, 'Cached', 'Fresh2'), 'after new mail');
      // Another session expunges some; this one hears of it and asks again.
      await ok(b, 'SELECT Cached');
      await ok(b, 'STORE 2,9,17:19,40 +FLAGS (\\Deleted)');
      await ok(b, 'EXPUNGE');
      await ok(a, 'NOOP');
      sameAnswers(await answers(a), await fresh(a, 'Cached', 'Fresh3'), 'after expunges');
    } finally {
      a.close();
      b.close();
    }
  });

  test('after most of a mailbox is expunged (the index is compacted) and more mail comes', async () => {
    const a = await login();
    const b = await login();
    try {
      await ok(a, 'CREATE Compact');
      await append(a, 'Compact', 0, 480);
      await ok(a, 'SELECT Compact');
      await answers(a);
      await ok(b, 'SELECT Compact');
      await ok(b, 'STORE 1:300 +FLAGS (\\Deleted)');
      await ok(b, 'EXPUNGE');
      await append(b, 'Compact', 480, 500, 'n');
      await ok(a, 'NOOP');
      const exists = (await ok(a, 'SEARCH ALL'))[0]!.split(' ').length - 2;
      assert.equal(exists, 200);
      sameAnswers(await answers(a), await fresh(a, 'Compact', 'FreshC'), 'after compaction');
      // Sequence numbers of this session, UIDs of the mailbox: UID SORT answers the UIDs.
      const uids = (await ok(a, 'UID SORT (ARRIVAL) UTF-8 ALL'))[0]!.split(' ').slice(2).map(Number);
      assert.equal(uids.length, 200);
      assert.ok(uids.every((u) => u > 300), 'no expunged UID in the answer');
    } finally {
      a.close();
      b.close();
    }
  });

  test('a session that has not heard of new mail yet gets its own view', async () => {
    const a = await login();
    const b = await login();
    try {
      await ok(a, 'CREATE Views');
      await append(a, 'Views', 0, 10);
      await ok(a, 'SELECT Views');
      await ok(b, 'SELECT Views');
      const before = await ok(a, 'SORT (SUBJECT) UTF-8 ALL');
      // b appends and sorts at once (its index now knows 11 messages); a sorts before any NOOP:
      // sequence numbers are a's, and the new message is only there once a was told of it.
      await b.append('Views', crlf(['Subject: aaa', 'Message-ID: <v@example.org>', '', 'x']));
      assert.match((await ok(b, 'SORT (SUBJECT) UTF-8 ALL')).at(-1)!, /^\* SORT 11 /);
      const r = await a.cmd('SORT (SUBJECT) UTF-8 ALL');
      assert.match(r.tagged, / OK /);
      const at = r.lines.findIndex((l) => l.startsWith('* SORT'));
      // Told before the answer (an EXISTS ahead of it): the new message is in it; else not yet.
      if (r.lines.slice(0, at).includes('* 11 EXISTS')) assert.match(r.lines[at]!, /^\* SORT 11 /);
      else assert.deepEqual(r.lines[at], before.find((l) => l.startsWith('* SORT')));
    } finally {
      a.close();
      b.close();
    }
  });
});

// The background key-index build at SELECT (limits.sortPrewarmMessages): a SORT / THREAD sent right
// behind the SELECT (while the build runs), and after new mail, answers exactly what a server that
// never prewarms answers for the same mailbox.
test('a mailbox prewarmed at SELECT answers as one that is not', async () => {
  const run = (prewarm: number) => {
    let out: string[][] = [];
    return ownServer({ sortPrewarmMessages: prewarm }, async (c, another) => {
      await ok(c, 'CREATE Big');
      await append(c, 'Big', 0, 60);
      await ok(c, 'SELECT Big');
      out = await answers(c);
      const b = await another();
      await append(b, 'Big', 60, 70);
      await ok(c, 'NOOP');
      out = [...out, ...(await answers(c))];
    }).then(() => out);
  };
  const [off, on] = [await run(0), await run(1)];
  assert.equal(on.length, CMDS.length * 2);
  on.forEach((lines, i) => assert.deepEqual(lines, off[i], `${CMDS[i % CMDS.length]}${i >= CMDS.length ? ' after new mail' : ''}`));
});
