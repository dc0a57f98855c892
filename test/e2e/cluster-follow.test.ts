// Three Pillarbox nodes on one PostgreSQL database (issue 15): a session on node A hears of
// changes made on the other nodes — a message delivered by SMTP to node C is `* n EXISTS` in A's
// IDLE, flags stored on node B are `* n FETCH (FLAGS ...)`, an EXPUNGE on B is `* n EXPUNGE`
// (RFC 9051 §7.4.1, §7.5.2; IDLE RFC 2177) — through the journal's pings (pg_notify) and A's
// FollowingBus (src/store/follow-bus.ts). POP3 on A sees C's delivery at its next login.
// No timing assertions: the latencies are printed. Skipped when PostgreSQL is unreachable (CI=true: fails).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawSmtp } from '../helpers/smtp.ts';
import { deliverOne, untilLine as untilLineWithin } from '../helpers/follow-lines.ts';
import { RawImap } from './imap/raw-client.ts';
import { LineClient } from './pop3/harness.ts';
import { PG_URL, dropSchema, freshSchemaName, pgAvailability, probePostgres } from '../store/pg-env.ts';

const avail = pgAvailability(await probePostgres());
const U = 'follow@example.com';
const PW = 'pw-follow';
const WAIT = 30_000;

async function smtpDeliver(port: number, subject: string): Promise<void> {
  const s = await RawSmtp.connect(port);
  try {
    await deliverOne(s, U, subject, 'hello from another node');
  } finally {
    s.close();
  }
}

const untilLine = (c: RawImap, re: RegExp, seen: string[]) => untilLineWithin(c, re, seen, WAIT);

test('3 nodes on one PostgreSQL: IDLE on node A sees EXISTS, FETCH FLAGS and EXPUNGE for changes made on nodes C and B', { skip: avail.skip, timeout: 180_000 }, async () => {
  if (avail.fail) throw new Error(avail.fail);
  const schema = freshSchemaName();
  const nodes: TestServer[] = [];
  const clients: Array<{ close(): void }> = [];
  try {
    for (const name of ['a', 'b', 'c']) {
      const dataDir = mkdtempSync(join(tmpdir(), `pillarbox-follow-${name}-`));
      writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ cluster: { node: `node-${name}` } }));
      nodes.push(await startServer({ dataDir, plaintext: true, database: `${PG_URL}?schema=${schema}` }));
    }
    const [a, b, c] = nodes as [TestServer, TestServer, TestServer];
    await a.addUser(U, PW);

    const idle = await RawImap.connect(a.ports.imap);
    clients.push(idle);
    await idle.login(U, PW);
    const sel = await idle.cmd('SELECT INBOX');
    assert.ok(sel.lines.includes('* 0 EXISTS'), sel.lines.join('\n'));
    idle.write('i1 IDLE\r\n');
    assert.match(await idle.readLine(), /^\+ /);
    const seen: string[] = [];

    // 1. A message delivered by SMTP to node C: EXISTS on A.
    let t = Date.now();
    await smtpDeliver(c.ports.smtp, 'first');
    const acked = Date.now();
    assert.equal(await untilLine(idle, /^\* \d+ EXISTS$/, seen), '* 1 EXISTS', seen.join('\n'));
    const existsMs = Date.now() - acked;

    // 2. Flags set on node B: FETCH (FLAGS) on A.
    const other = await RawImap.connect(b.ports.imap);
    clients.push(other);
    await other.login(U, PW);
    await other.cmd('SELECT INBOX');
    t = Date.now();
    const st = await other.cmd('STORE 1 +FLAGS (\\Flagged $Important)');
    assert.match(st.tagged, / OK /);
    const fetch = await untilLine(idle, /^\* 1 FETCH /, seen);
    const flagsMs = Date.now() - t;
    assert.match(fetch, /FLAGS \(/);
    assert.match(fetch, /\\Flagged/);
    assert.match(fetch, /\$Important/);

    // 3. EXPUNGE on B: EXPUNGE on A (allowed during IDLE, RFC 2177).
    await smtpDeliver(c.ports.smtp, 'second');
    assert.equal(await untilLine(idle, /^\* \d+ EXISTS$/, seen), '* 2 EXISTS');
    await other.cmd('NOOP');
    assert.match((await other.cmd('STORE 1 +FLAGS (\\Deleted)')).tagged, / OK /);
    t = Date.now();
    assert.match((await other.cmd('EXPUNGE')).tagged, / OK /);
    assert.equal(await untilLine(idle, /^\* \d+ EXPUNGE$/, seen), '* 1 EXPUNGE', seen.join('\n'));
    const expungeMs = Date.now() - t;

    idle.write('DONE\r\n');
    assert.match(await untilLine(idle, /^i1 /, seen), /^i1 OK/);
    // A's view agrees with the store: one message left, the second one.
    const after = await idle.cmd('FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
    assert.match(after.tagged, / OK /);
    assert.equal(after.lines.filter((l) => /^\* \d+ FETCH/.test(l)).length, 1, after.lines.join('\n'));
    assert.match(after.lines.join('\n'), /Subject: second/);

    // 4. POP3 on A: C's delivery is there at login.
    await smtpDeliver(c.ports.smtp, 'third');
    const pop = await LineClient.connect(a.ports.pop3);
    clients.push({ close: () => pop.socket.destroy() });
    assert.match(await pop.cmd(`USER ${U}`), /^\+OK/);
    assert.match(await pop.cmd(`PASS ${PW}`), /^\+OK/);
    assert.match(await pop.cmd('STAT'), /^\+OK 2 /);

    console.log(`# node C SMTP 250 -> EXISTS on node A: ${existsMs} ms; STORE on B -> FETCH on A: ${flagsMs} ms; EXPUNGE on B -> EXPUNGE on A: ${expungeMs} ms`);
  } finally {
    for (const cl of clients) cl.close();
    for (const n of nodes) await n.stop().catch(() => {});
    await dropSchema(schema);
  }
});
