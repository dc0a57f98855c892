// SORT / THREAD oracle: the same corpus of real-looking threads (thread-corpus.ts) APPENDed with the
// same INTERNALDATEs to Pillarbox and to a private Dovecot 2.3 (bench/lib/peers.ts: its own config
// in a temp dir, 127.0.0.1 on a high port, never the system service), then every SORT program and
// both THREAD algorithms must answer the same on both. Skipped, with the reason, when Dovecot is
// not installed (CI=true: failed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { installed, needs } from '../../helpers/external.ts';
import { startImapServer, type ImapTestServer } from '../imap/harness.ts';
import { RawImap } from '../imap/raw-client.ts';
import { startDovecot, type Dovecot } from '../../../bench/lib/peers.ts';
import { killTree } from '../../../bench/lib/util.ts';
import { threadCorpus } from './thread-corpus.ts';

const DOVECOT = ['/usr/sbin/dovecot', '/usr/lib/dovecot/imap'];
const USER = { address: 'oracle@example.com', password: 'oracle-pw' };

let dc: Dovecot | undefined;
let pb: ImapTestServer | undefined;
let dConn: RawImap;
let pConn: RawImap;

process.on('exit', () => {
  if (dc) killTree(dc.masterPid());
});

async function fill(c: RawImap): Promise<void> {
  const corpus = threadCorpus(400);
  assert.match((await c.cmd('CREATE Threads')).tagged, / OK /);
  for (let i = 0; i < corpus.length; i += 50) {
    const tags: string[] = [];
    for (const m of corpus.slice(i, i + 50)) {
      const tag = c.nextTag();
      tags.push(tag);
      c.write(`${tag} APPEND Threads "${m.internal}" {${Buffer.byteLength(m.raw)}+}\r\n${m.raw}\r\n`);
    }
    for (const tag of tags) assert.match((await c.until(tag, 60_000)).tagged, / OK /);
  }
  assert.match((await c.cmd('SELECT Threads')).tagged, / OK /);
}

before(async () => {
  if (!installed(...DOVECOT)) return;
  dc = await startDovecot({ accounts: [USER], maxConnections: 5, lmtp: false, packages: ['dovecot-imapd'] });
  pb = await startImapServer();
  await pb.addUser(USER.address, USER.password);
  dConn = await RawImap.connect(dc.ports.imap);
  await dConn.login(USER.address, USER.password);
  pConn = await RawImap.connect(pb.ports.imaps, { tls: true, ca: pb.ca });
  await pConn.login(USER.address, USER.password);
  await fill(dConn);
  await fill(pConn);
});

after(async () => {
  dConn?.close();
  pConn?.close();
  await dc?.stop();
  await pb?.done();
});

/** The untagged answer of `cmd` on one server (exactly one line, and a tagged OK). */
async function answer(c: RawImap, cmd: string): Promise<string> {
  const r = await c.cmd(cmd, 30_000);
  assert.match(r.tagged, /^t\d+ OK /, `${cmd} → ${r.tagged}`);
  assert.equal(r.lines.length, 1, `${cmd}: ${r.lines.join(' | ')}`);
  return r.lines[0]!;
}

const SORTS = [
  'ARRIVAL',
  'REVERSE ARRIVAL',
  'DATE',
  'REVERSE DATE',
  'SUBJECT',
  'REVERSE SUBJECT',
  'SUBJECT DATE',
  'FROM',
  'REVERSE FROM DATE',
  'TO',
  'CC',
  'SIZE',
  'REVERSE SIZE',
  'DISPLAYFROM',
  'DISPLAYTO',
  'DISPLAYFROM REVERSE DATE',
];

test('Dovecot oracle: CAPABILITY of both has SORT, SORT=DISPLAY, THREAD=REFERENCES, THREAD=ORDEREDSUBJECT', needs(...DOVECOT), async () => {
  for (const c of [dConn, pConn]) {
    const caps = (await answer(c, 'CAPABILITY')).split(' ');
    for (const cap of ['SORT', 'SORT=DISPLAY', 'THREAD=REFERENCES', 'THREAD=ORDEREDSUBJECT']) assert.ok(caps.includes(cap), `${cap} in ${caps.join(' ')}`);
  }
});

for (const program of SORTS) {
  for (const uid of ['', 'UID ']) {
    test(`Dovecot oracle: ${uid}SORT (${program}) UTF-8 ALL`, needs(...DOVECOT), async () => {
      const cmd = `${uid}SORT (${program}) UTF-8 ALL`;
      assert.equal(await answer(pConn, cmd), await answer(dConn, cmd));
    });
  }
}

for (const alg of ['REFERENCES', 'ORDEREDSUBJECT']) {
  for (const criteria of ['ALL', 'SINCE 15-Apr-2024', 'NOT SUBJECT budget']) {
    test(`Dovecot oracle: THREAD ${alg} UTF-8 ${criteria}`, needs(...DOVECOT), async () => {
      const cmd = `THREAD ${alg} UTF-8 ${criteria}`;
      assert.equal(await answer(pConn, cmd), await answer(dConn, cmd));
      const ucmd = `UID ${cmd}`;
      assert.equal(await answer(pConn, ucmd), await answer(dConn, ucmd));
    });
  }
}

test('Dovecot oracle: SORT with search criteria', needs(...DOVECOT), async () => {
  for (const cmd of ['SORT (DATE) UTF-8 SUBJECT meeting', 'SORT (SUBJECT) UTF-8 FROM alice', 'UID SORT (REVERSE DATE) UTF-8 OR SEEN SINCE 20-Apr-2024']) {
    assert.equal(await answer(pConn, cmd), await answer(dConn, cmd), cmd);
  }
});
