// A real sync client from Debian, mbsync (isync), does a two-way sync of an account with 500
// messages in 5 folders over STARTTLS and COMPRESS=DEFLATE, then a second sync after changes on both sides; both sides
// must agree and nothing may be duplicated.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { RawImap } from './raw-client.ts';
import { startImapServer, type ImapTestServer } from './harness.ts';
import { needs } from '../../helpers/external.ts';

const MBSYNC = needs('mbsync');
const U = 'ivan@example.com';
const PW = 'ivan-sync-pw';
const FOLDERS = ['INBOX', 'Work', 'Lists', 'Family', 'Receipts'];
let srv: ImapTestServer;
let dir: string;

function msg(folder: string, i: number): string {
  return `From: sender${i}@example.org\r\nTo: ${U}\r\nSubject: ${folder} message ${i}\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <${folder}.${i}@test.example>\r\n\r\nBody of ${folder} ${i}\r\n`;
}

async function imap(): Promise<RawImap> {
  const c = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
  await c.login(U, `"${PW}"`);
  return c;
}

/** Message-IDs on the server per folder. */
async function serverIds(): Promise<Map<string, string[]>> {
  const c = await imap();
  const out = new Map<string, string[]>();
  try {
    for (const f of FOLDERS) {
      await c.cmd(`EXAMINE ${f}`);
      const r = await c.cmd('FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])', 20000);
      out.set(
        f,
        [...r.raw.toString('latin1').matchAll(/Message-ID: <([^>]+)>/gi)].map((m) => m[1]!).sort(),
      );
    }
  } finally {
    c.close();
  }
  return out;
}

function localDir(f: string): string {
  return join(dir, 'mail', f);
}

/** Message-IDs in the local Maildir per folder. */
function localIds(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of FOLDERS) {
    const ids: string[] = [];
    for (const sub of ['cur', 'new']) {
      const d = join(localDir(f), sub);
      if (!existsSync(d)) continue;
      for (const name of readdirSync(d)) {
        const m = /Message-ID: <([^>]+)>/i.exec(readFileSync(join(d, name), 'latin1'));
        if (m) ids.push(m[1]!);
      }
    }
    out.set(f, ids.sort());
  }
  return out;
}

function mbsync(extra: string[] = []): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('mbsync', [...extra, '-c', join(dir, 'mbsyncrc'), '-a'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 120_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, out });
    });
  });
}

before(async () => {
  if (MBSYNC.skip) return;
  srv = await startImapServer();
  await srv.addUser(U, PW);
  dir = join(srv.dataDir, 'mbsync-client');
  mkdirSync(join(dir, 'mail'), { recursive: true });
  writeFileSync(join(dir, 'ca.pem'), srv.ca);
  writeFileSync(
    join(dir, 'mbsyncrc'),
    [
      'IMAPAccount remote',
      'Host localhost',
      `Port ${srv.ports.imap}`,
      `User ${U}`,
      `Pass "${PW}"`,
      'SSLType STARTTLS',
      `CertificateFile ${join(dir, 'ca.pem')}`,
      '',
      'IMAPStore remote',
      'Account remote',
      '',
      'MaildirStore local',
      `Path ${join(dir, 'mail')}/`,
      `Inbox ${join(dir, 'mail', 'INBOX')}`,
      'SubFolders Verbatim',
      '',
      'Channel sync',
      'Far :remote:',
      'Near :local:',
      'Patterns *',
      'Create Both',
      'Expunge Both',
      'SyncState *',
      'Sync All',
      '',
    ].join('\n'),
  );
  // 500 messages in 5 folders, appended with LITERAL+.
  const c = await imap();
  for (const f of FOLDERS) {
    if (f !== 'INBOX') await c.cmd(`CREATE ${f}`);
    // Pipelined: LITERAL+ lets the client send every APPEND without waiting.
    const tags: string[] = [];
    for (let i = 1; i <= 100; i++) {
      const body = Buffer.from(msg(f, i));
      const tag = c.nextTag();
      tags.push(tag);
      c.write(Buffer.concat([Buffer.from(`${tag} APPEND ${f}${i % 10 === 0 ? ' (\\Seen)' : ''} {${body.length}+}\r\n`), body, Buffer.from('\r\n')]));
    }
    for (const tag of tags) assert.match((await c.until(tag, 20000)).tagged, /OK/);
  }
  c.close();
});

after(async () => {
  await srv?.done();
});

test('mbsync: two-way sync of 500 messages in 5 folders, then again after changes on both sides', MBSYNC, async () => {
  const t0 = Date.now();
  const first = await mbsync();
  console.log(`first sync ${Date.now() - t0} ms`);
  assert.equal(first.code, 0, first.out);
  const l1 = localIds();
  for (const f of FOLDERS) assert.equal(l1.get(f)!.length, 100, `${f} after first sync`);
  assert.deepEqual(l1, await serverIds());

  // Server side: delete 10 INBOX messages, flag some, add 20 to Work.
  const c = await imap();
  await c.cmd('SELECT INBOX');
  await c.cmd('STORE 1:10 +FLAGS.SILENT (\\Deleted)');
  await c.cmd('EXPUNGE');
  await c.cmd('STORE 1:5 +FLAGS.SILENT (\\Flagged)');
  for (let i = 101; i <= 120; i++) await c.append('Work', msg('Work', i), '', true);
  c.close();

  // Client side: 15 new messages in Lists, 5 deleted in Family, 3 marked seen in Receipts.
  for (let i = 0; i < 15; i++) writeFileSync(join(localDir('Lists'), 'new', `1763700000.${process.pid}_${i}.testhost`), msg('Lists', 200 + i));
  const fam = readdirSync(join(localDir('Family'), 'cur')).sort().slice(0, 5);
  for (const name of fam) unlinkSync(join(localDir('Family'), 'cur', name));
  // Unseen messages sit in new/; reading one moves it to cur/ with the S flag (Maildir spec).
  const rec = readdirSync(join(localDir('Receipts'), 'new')).sort().slice(0, 3);
  assert.equal(rec.length, 3);
  for (const name of rec) {
    const base = name.includes(':2,') ? name.slice(0, name.indexOf(':2,')) : name;
    renameSync(join(localDir('Receipts'), 'new', name), join(localDir('Receipts'), 'cur', `${base}:2,S`));
  }

  const second = await mbsync();
  assert.equal(second.code, 0, second.out);
  const l2 = localIds();
  const s2 = await serverIds();
  assert.deepEqual(l2, s2, 'both sides agree');
  assert.equal(s2.get('INBOX')!.length, 90);
  assert.equal(s2.get('Work')!.length, 120);
  assert.equal(s2.get('Lists')!.length, 115);
  assert.equal(s2.get('Family')!.length, 95);
  assert.equal(s2.get('Receipts')!.length, 100);
  for (const [f, ids] of s2) assert.equal(new Set(ids).size, ids.length, `no duplicates in ${f}`);

  // Flags went both ways.
  const v = await imap();
  await v.cmd('EXAMINE Receipts');
  const seen = await v.cmd('SEARCH SEEN');
  assert.equal(seen.lines[0]!.split(' ').length - 2, 10 + 3, seen.lines[0]);
  v.close();
  const flaggedLocal = readdirSync(join(localDir('INBOX'), 'cur')).filter((n) => /:2,[A-Z]*F/.test(n));
  assert.equal(flaggedLocal.length, 5);

  // A third sync with no changes changes nothing. Its network trace (-Dn) shows mbsync turned on
  // COMPRESS=DEFLATE (RFC 4978) after login: all three syncs ran compressed.
  const third = await mbsync(['-Dn']);
  assert.equal(third.code, 0, third.out);
  assert.match(third.out, /COMPRESS DEFLATE\r?\n/);
  assert.match(third.out, / OK DEFLATE active/);
  assert.deepEqual(localIds(), l2);
  assert.deepEqual(await serverIds(), s2);
});
