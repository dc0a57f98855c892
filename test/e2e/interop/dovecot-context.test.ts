// CONTEXT=SEARCH oracle (RFC 5267 §4.3): the same two-session script against Pillarbox and a
// private Dovecot 2.3 (bench/lib/peers.ts; its CAPABILITY has CONTEXT=SEARCH, not CONTEXT=SORT):
// session A keeps six SEARCH update contexts, session B (and A itself) APPEND, STORE and EXPUNGE;
// after each step the ESEARCH lines session A gets (initial answers, ADDTO, REMOVEFROM)
// must be the same on both. (Dovecot 2.3.19's imap process dies with signal 11 when new mail meets a
// context over a keyword the mailbox does not have yet, e.g. `KEYWORD $Junk`: the script uses
// system flags only; keywords are covered by test/e2e/imap/context.test.ts.) Skipped, with the reason, when Dovecot is not installed (CI=true: failed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { installed, needs } from '../../helpers/external.ts';
import { startImapServer, type ImapTestServer } from '../imap/harness.ts';
import { RawImap } from '../imap/raw-client.ts';
import { startDovecot, type Dovecot } from '../../../bench/lib/peers.ts';
import { killTree } from '../../../bench/lib/util.ts';

const DOVECOT = ['/usr/sbin/dovecot', '/usr/lib/dovecot/imap'];
const USER = { address: 'ctx-oracle@example.com', password: 'ctx-oracle-pw' };

let dc: Dovecot | undefined;
let pb: ImapTestServer | undefined;
const conns: { dovecot: RawImap[]; pillarbox: RawImap[] } = { dovecot: [], pillarbox: [] };

process.on('exit', () => {
  if (dc) killTree(dc.masterPid());
});

before(async () => {
  if (!installed(...DOVECOT)) return;
  dc = await startDovecot({ accounts: [USER], maxConnections: 5, lmtp: false, packages: ['dovecot-imapd'] });
  pb = await startImapServer();
  await pb.addUser(USER.address, USER.password);
  for (let i = 0; i < 2; i++) {
    const d = await RawImap.connect(dc.ports.imap);
    await d.login(USER.address, USER.password);
    conns.dovecot.push(d);
    const p = await RawImap.connect(pb.ports.imaps, { tls: true, ca: pb.ca });
    await p.login(USER.address, USER.password);
    conns.pillarbox.push(p);
  }
});

after(async () => {
  for (const c of [...conns.dovecot, ...conns.pillarbox]) c.close();
  await dc?.stop();
  await pb?.done();
});

const message = (subject: string, body: string) => `Subject: ${subject}\r\nFrom: a@example.com\r\nDate: Fri, 01 Mar 2024 10:00:00 +0000\r\n\r\n${body}\r\n`;

/** One step: which session, the command (with its own tag), as the script gives it. */
type Step = { who: 'A' | 'B'; cmd: string } | { who: 'A' | 'B'; append: [subject: string, body: string, flags: string] };

const SETUP: Step[] = [
  ...['report one', 'hello', 'report two', 'zebra crossing', 'misc', 'hello again', 'report three', 'last'].map(
    (s, i): Step => ({ who: 'B', append: [s, i % 3 === 0 ? 'a zebra here' : 'nothing', ''] }),
  ),
  { who: 'A', cmd: 's1 SELECT Box' },
  { who: 'B', cmd: 's2 SELECT Box' },
];

/** Session A's searching commands and the changes that follow; A's ESEARCH lines are compared after each. */
const SCRIPT: Step[] = [
  { who: 'A', cmd: 'T1 UID SEARCH RETURN (UPDATE COUNT) UNSEEN' },
  { who: 'A', cmd: 'T2 SEARCH RETURN (UPDATE ALL) FLAGGED' },
  { who: 'A', cmd: 'T3 UID SEARCH RETURN (UPDATE MIN MAX) OR DELETED ANSWERED' },
  { who: 'A', cmd: 'T4 SEARCH RETURN (UPDATE COUNT) SUBJECT report' },
  { who: 'A', cmd: 'T5 UID SEARCH RETURN (UPDATE ALL) NOT SEEN UID 3:*' },
  { who: 'A', cmd: 'T6 UID SEARCH RETURN (UPDATE ALL) BODY zebra' },
  { who: 'B', cmd: 'b1 STORE 1:3 +FLAGS (\\Seen)' },
  { who: 'A', cmd: 'a1 NOOP' },
  { who: 'B', cmd: 'b2 STORE 2,4 +FLAGS (\\Flagged)' },
  { who: 'A', cmd: 'a2 NOOP' },
  { who: 'B', append: ['report four', 'zebra again', ''] },
  { who: 'B', append: ['other', 'plain', '(\\Seen)'] },
  { who: 'A', cmd: 'a3 NOOP' },
  { who: 'B', cmd: 'b3 STORE 5 +FLAGS (\\Answered)' },
  { who: 'B', cmd: 'b4 STORE 6 +FLAGS (\\Deleted)' },
  { who: 'A', cmd: 'a4 NOOP' },
  { who: 'B', cmd: 'b5 EXPUNGE' },
  { who: 'A', cmd: 'a5 NOOP' },
  { who: 'A', cmd: 'a6 STORE 1 -FLAGS (\\Seen)' },
  { who: 'A', cmd: 'a7 NOOP' },
  { who: 'B', cmd: 'b6 STORE 2 -FLAGS (\\Flagged)' },
  { who: 'B', cmd: 'b7 STORE 7 +FLAGS (\\Seen \\Deleted)' },
  { who: 'A', cmd: 'a8 NOOP' },
  { who: 'B', cmd: 'b8 EXPUNGE' },
  { who: 'A', cmd: 'a9 NOOP' },
  { who: 'A', cmd: 'c1 CANCELUPDATE "T2"' },
  { who: 'B', cmd: 'b9 STORE 1 +FLAGS (\\Flagged)' },
  { who: 'A', cmd: 'a10 NOOP' },
  { who: 'A', cmd: 'c2 CANCELUPDATE "T2"' },
  // Not compared: OLDER/YOUNGER. Dovecot keeps such a context (never updated as time passes);
  // Pillarbox refuses it with NOUPDATE (test/e2e/imap/context.test.ts, §4.3.1).
];

/** Runs a step on one server; returns A's ESEARCH / NOUPDATE lines and its tagged status word. */
async function run(c: RawImap[], s: Step): Promise<string[]> {
  const conn = c[s.who === 'A' ? 0 : 1]!;
  let r: { lines: string[]; tagged: string };
  if ('append' in s) {
    const [subject, body, flags] = s.append;
    r = await conn.append('Box', message(subject, body), flags);
  } else {
    const tag = s.cmd.split(' ')[0]!;
    conn.write(`${s.cmd}\r\n`);
    r = await conn.until(tag, 15_000);
  }
  assert.match(r.tagged, / (OK|NO) /, `${JSON.stringify(s)} → ${r.tagged}`);
  if (s.who === 'B') return [];
  const status = r.tagged.split(' ')[1]!;
  // NOUPDATE's text is free (only the code is compared); Dovecot puts it before the ESEARCH.
  const lines = r.lines.filter((l) => l.startsWith('* ESEARCH') || l.startsWith('* NO [NOUPDATE')).map((l) => l.replace(/^(\* NO \[NOUPDATE "[^"]*"\]).*$/, '$1'));
  return [...lines.sort((x, y) => Number(x.startsWith('* ESEARCH')) - Number(y.startsWith('* ESEARCH'))), status];
}

test('Dovecot oracle: CAPABILITY of both has CONTEXT=SEARCH', needs(...DOVECOT), async () => {
  for (const c of [conns.dovecot[0]!, conns.pillarbox[0]!]) {
    const r = await c.cmd('CAPABILITY');
    assert.ok(r.lines[0]!.split(' ').includes('CONTEXT=SEARCH'), r.lines[0]);
  }
});

test('Dovecot oracle: RFC 5267 §4.3 SEARCH update contexts (ADDTO / REMOVEFROM after APPEND, STORE, EXPUNGE, own STORE, CANCELUPDATE) answer the same', needs(...DOVECOT), async () => {
  for (const which of ['dovecot', 'pillarbox'] as const) {
    assert.match((await conns[which][1]!.cmd('CREATE Box')).tagged, / OK /);
    for (const s of SETUP) await run(conns[which], s);
  }
  let compared = 0;
  for (const s of SCRIPT) {
    const d = await run(conns.dovecot, s);
    const p = await run(conns.pillarbox, s);
    if (process.env.CTX_ORACLE_TRACE) console.log(JSON.stringify(s), d, p);
    assert.deepEqual(p, d, `after ${JSON.stringify(s)}`);
    if (d.some((l) => / (ADDTO|REMOVEFROM) /.test(l))) compared++;
  }
  assert.ok(compared >= 7, `${compared} steps with updates`);
});
