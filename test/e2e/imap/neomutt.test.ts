// A real threading mail reader, Debian's neomutt, opens INBOX over IMAPS (implicit TLS, trusting
// the test certificate) with sort=threads / sort_aux=date and shows the index a user would see: two threads
// (one with a branch), a reply whose parent was never delivered (with its own reply) and a lone
// message. neomutt runs in a tmux pane (a real terminal, fixed 140x40); the test reads the screen
// with `capture-pane`, types like a user (search, open one message, quit) and then checks the
// server with a raw IMAP client: the message read is \Seen there, the others are not.
//
// Server-side THREAD/SORT: neomutt does NOT use them. It fetches every message's headers
// (Message-ID, In-Reply-To, References, Date, Subject, … via BODY.PEEK[HEADER.FIELDS (…)]) and
// threads client-side (mutt_sort_threads, the JWZ algorithm); its IMAP trace (-d 3) is checked for
// that below. Its whole session: AUTHENTICATE PLAIN, ENABLE UTF8=ACCEPT, SELECT, one FETCH 1:9 of
// headers, UID FETCH 5 BODY.PEEK[] when a3 is opened, then at quit UID STORE … (Old) for the
// unread ones, UID STORE 5 +FLAGS.SILENT (\Seen) and CLOSE. So this exercise proves a real
// threading client reads our headers and FLAGS right and that our SELECT/FETCH/STORE session
// carries a whole read; THREAD itself is checked by thread.test.ts, imaplib-sort.test.ts and the
// dovecot oracle.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RawImap } from './raw-client.ts';
import { startImapServer, type ImapTestServer } from './harness.ts';
import { needs } from '../../helpers/external.ts';

const NEOMUTT = needs('neomutt', 'tmux');
const U = 'nora@example.com';
const PW = 'nora-reads-threads';
const HOST = 'thread.test';
let srv: ImapTestServer;
let dir: string;

/** [id, subject, hour of the Date, parent chain (References, oldest first)] */
const MESSAGES: [string, string, string, string[]][] = [
  ['a1', 'Picnic plans', '10:00', []],
  ['b1', 'Budget 2027', '10:30', []],
  ['a2', 'Re: Picnic plans', '11:00', ['a1']],
  ['c2', 'Re: Lost thread', '11:30', ['missing']], // its parent was never delivered
  ['a3', 'Re: Picnic plans', '12:00', ['a1', 'a2']],
  ['a4', 'Re: Picnic plans', '13:00', ['a1']], // a second branch under a1
  ['c3', 'Re: Lost thread', '13:30', ['missing', 'c2']],
  ['b2', 'Re: Budget 2027', '14:00', ['b1']],
  ['d1', 'Lunch menu', '15:00', []],
];
/** What a user sees with sort=threads, sort_aux=date: [id, depth under its thread root]. */
const EXPECTED: [string, number][] = [
  ['a1', 0],
  ['a2', 1],
  ['a3', 2],
  ['a4', 1],
  ['b1', 0],
  ['b2', 1],
  ['c2', 0],
  ['c3', 1],
  ['d1', 0],
];

function raw(id: string, subject: string, hm: string, refs: string[]): string {
  const h = [
    `From: ${id}-sender@example.org`,
    `To: ${U}`,
    `Subject: ${subject}`,
    `Date: Mon, 23 Nov 2026 ${hm}:00 +0000`,
    `Message-ID: <${id}@${HOST}>`,
  ];
  if (refs.length) {
    h.push(`In-Reply-To: <${refs.at(-1)}@${HOST}>`, `References: ${refs.map((r) => `<${r}@${HOST}>`).join(' ')}`);
  }
  return `${h.join('\r\n')}\r\n\r\nThis is message ${id}.\r\n`;
}

async function imap(): Promise<RawImap> {
  const c = await RawImap.connect(srv.ports.imaps, { tls: true, ca: srv.ca });
  await c.login(U, `"${PW}"`);
  return c;
}

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: dir, TERM: 'xterm' } });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, out });
    });
  });
}

/** tmux on a private socket in the test folder (its own server, killed in after()). */
function tmux(...args: string[]): Promise<{ code: number; out: string }> {
  return run('tmux', ['-S', join(dir, 'tmux.sock'), ...args]);
}

async function screen(): Promise<string> {
  return (await tmux('capture-pane', '-p', '-t', 'nm')).out;
}

/** Polls the screen until `ok` holds (generous: neomutt may be slow under load). */
async function waitScreen(ok: (s: string) => boolean, what: string, ms = 60_000): Promise<string> {
  const end = Date.now() + ms;
  let s = '';
  while (Date.now() < end) {
    s = await screen();
    if (ok(s)) return s;
    await sleep(200);
  }
  throw new Error(`neomutt screen never showed ${what}:\n${s}`);
}

before(async () => {
  if (NEOMUTT.skip) return;
  srv = await startImapServer();
  await srv.addUser(U, PW);
  dir = join(srv.dataDir, 'neomutt-client');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'ca.pem'), srv.ca);
  const c = await imap();
  for (const [id, subject, hm, refs] of MESSAGES) {
    assert.match((await c.append('INBOX', raw(id, subject, hm, refs))).tagged, / OK /);
  }
  c.close();
  writeFileSync(
    join(dir, 'muttrc'),
    [
      `set folder="imaps://127.0.0.1:${srv.ports.imaps}/"`,
      'set spoolfile="+INBOX"',
      `set imap_user="${U}"`,
      `set imap_pass="${PW}"`,
      `set ssl_ca_certificates_file="${join(dir, 'ca.pem')}"`,
      `set certificate_file="${join(dir, 'ca.pem')}"`,
      'set ssl_force_tls=yes',
      'set sort=threads',
      'set sort_aux=date',
      'set ascii_chars=yes', // the thread tree as |-> and `-> (what the assertions read)
      'set index_format="%s @%i"',
      'set header_cache=""',
      'set message_cachedir=""',
      'set mail_check_stats=no',
      'set imap_check_subscribed=no',
      'set record=""',
      'set quit=yes',
      'set wait_key=no',
      'set help=no',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'tmux.conf'), 'set -g remain-on-exit on\nset -g status off\n');
});

after(async () => {
  if (dir && existsSync(join(dir, 'tmux.sock'))) await tmux('kill-server');
  await srv?.done();
});

/** The index lines (the ones that end in a test Message-ID) as [id, depth, line]. */
function indexRows(s: string): [string, number, string][] {
  const rows: [string, number, string][] = [];
  for (const line of s.split('\n')) {
    const m = /@<(\w+)@thread\.test>\s*$/.exec(line);
    if (!m) continue;
    // ascii_chars tree: a reply starts "|->" or "`->" after one "| " or "  " per level above it.
    const tree = /^((?:[|` ] )*)[|`]->/.exec(line);
    rows.push([m[1]!, tree ? tree[1]!.length / 2 + 1 : 0, line]);
  }
  return rows;
}

async function keys(...k: string[]): Promise<void> {
  for (const key of k) {
    const literal = key.length === 1 || !/^[A-Z][a-z]+$/.test(key);
    const r = await tmux('send-keys', '-t', 'nm', ...(literal ? ['-l', key] : [key]));
    assert.equal(r.code, 0, r.out);
  }
}

test('neomutt shows our threads nested under their parents and marks the message read as \\Seen', NEOMUTT, async () => {
  const r = await tmux('-f', join(dir, 'tmux.conf'), 'new-session', '-d', '-s', 'nm', '-x', '140', '-y', '40',
    `HOME=${dir} TERM=xterm exec neomutt -n -F ${join(dir, 'muttrc')} -d 3 -l ${join(dir, 'neomutt.log')}`);
  assert.equal(r.code, 0, r.out);

  // 1. The index: every message, in thread order, each reply one level under its parent.
  const s = await waitScreen((t) => EXPECTED.every(([id]) => t.includes(`@<${id}@${HOST}>`)), 'all 9 messages');
  const rows = indexRows(s);
  assert.deepEqual(rows.map(([id, depth]) => [id, depth]), EXPECTED, `thread order and nesting:\n${s}`);
  // Thread roots show their subject; the reply whose parent is missing heads its own thread.
  for (const [id, subject] of [['a1', 'Picnic plans'], ['b1', 'Budget 2027'], ['c2', 'Re: Lost thread'], ['d1', 'Lunch menu']]) {
    assert.ok(rows.find(([i]) => i === id)![2].startsWith(subject), `${id} shows "${subject}":\n${s}`);
  }

  // 2. Read a3 like a user: search for it, open it (the pager shows its body), back, quit.
  await keys('/');
  await waitScreen((t) => /Search for:/.test(t), 'the search prompt');
  await keys('~i a3@thread', 'Enter');
  // (The cursor is not in the plain-text capture; typed keys queue, so Enter acts after the search.)
  await waitScreen((t) => !/Search for:/.test(t), 'the search done');
  await keys('Enter');
  await waitScreen((t) => t.includes('This is message a3.'), "a3's body in the pager");
  await keys('q');
  await waitScreen((t) => t.includes('@<d1@thread.test>'), 'the index again');
  await keys('q');
  const end = Date.now() + 60_000;
  let pane = '';
  // tmux marks the pane dead at the terminal's EOF; the exit status it fills in once it reaps the
  // process, which on a loaded machine it sometimes never shows (the pane stays "1  "). A status,
  // when there is one, must be 0; without one, what neomutt does at a clean quit (its flags stored
  // on the server, checked below) is the proof.
  while (!/^1 /.test((pane = (await tmux('display-message', '-p', '-t', 'nm', '#{pane_dead} #{pane_dead_status} #{pane_dead_signal}')).out))) {
    assert.ok(Date.now() < end, `neomutt did not quit (pane: ${pane}):\n${await screen()}`);
    await sleep(200);
  }
  for (let i = 0; i < 25 && /^1\s*$/.test(pane); i++) {
    await sleep(200);
    pane = (await tmux('display-message', '-p', '-t', 'nm', '#{pane_dead} #{pane_dead_status} #{pane_dead_signal}')).out;
  }
  assert.ok(/^1 (0 |\s*$)/.test(pane), `neomutt's exit (dead, status, signal): ${pane}\n${await screen()}`);

  // 3. The server: a3, and only a3, is \Seen (neomutt stored the flag on its own session).
  const c = await imap();
  await c.cmd('EXAMINE INBOX');
  const f = await c.cmd('FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])', 20_000);
  c.close();
  const seen = [...f.raw.toString('latin1').matchAll(/FLAGS \(([^)]*)\)[\s\S]*?Message-ID: <(\w+)@/gi)]
    .filter((m) => m[1]!.includes('\\Seen'))
    .map((m) => m[2]);
  assert.deepEqual(seen, ['a3'], f.raw.toString('latin1'));
  // neomutt's mark_old: the messages it showed but the user did not read keep its "Old" keyword
  // (a keyword our PERMANENTFLAGS \* lets it store), so the next session shows them as old.
  const old = [...f.raw.toString('latin1').matchAll(/FLAGS \(([^)]*)\)/g)].filter((m) => /\bOld\b/.test(m[1]!)).length;
  assert.equal(old, 8, f.raw.toString('latin1'));

  // 4. neomutt's IMAP trace: it threaded client-side from fetched headers, never asking THREAD/SORT.
  // (neomutt names the log file with a rotation number: neomutt.log0.)
  const logs = readdirSync(dir).filter((n) => n.startsWith('neomutt.log'));
  assert.ok(logs.length > 0, `no neomutt log in ${readdirSync(dir).join(' ')}`);
  const trace = logs.map((n) => readFileSync(join(dir, n), 'latin1')).join('');
  // One log entry per socket write; pipelined commands follow on their own lines.
  const sent = [...trace.matchAll(/(?:^|> )(a\d{4} [^\r\n]*)/gm)].map((m) => m[1]!);
  assert.ok(sent.some((l) => /FETCH .*HEADER\.FIELDS \([^)]*REFERENCES/i.test(l)), sent.join('\n'));
  assert.ok(sent.some((l) => /^a\d{4} UID STORE \d+ \+FLAGS(\.SILENT)? \(\\Seen\)/.test(l)), sent.join('\n'));
  assert.ok(!sent.some((l) => /^a\d{4} (UID )?(THREAD|SORT) /i.test(l)), sent.join('\n'));
});
