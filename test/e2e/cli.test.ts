// Issue #2: the admin CLI works, and every bad input gets one clear line on stderr, a non-zero
// exit, and leaves the store unchanged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runCli, cliArgv, ROOT, type CliResult } from '../helpers/server.ts';
import { needs } from '../helpers/external.ts';
import { openStore, defaultDatabase } from '../../src/store/open.ts';
import { verifyPassword } from '../../src/auth/password.ts';

let dataDir: string;
const cli = (args: string[], input?: string): Promise<CliResult> => runCli([...args, '--data', dataDir], input === undefined ? {} : { input });

/** Everything the admin commands can change, as one comparable value. */
async function snapshot(): Promise<string> {
  const [d, u, a] = await Promise.all([cli(['domain', 'list', '--json']), cli(['user', 'list', '--json']), cli(['alias', 'list', '--json'])]);
  for (const r of [d, u, a]) assert.equal(r.code, 0, r.stderr);
  return JSON.stringify([JSON.parse(d.stdout), JSON.parse(u.stdout), JSON.parse(a.stdout)]);
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'pillarbox-cli-'));
  mkdirSync(dataDir, { recursive: true });
});
after(() => rmSync(dataDir, { recursive: true, force: true }));

test('help: the command and each subcommand say what they do', async () => {
  const main = await runCli(['--help']);
  assert.equal(main.code, 0);
  for (const word of ['serve', 'domain', 'user', 'alias']) assert.match(main.stdout, new RegExp(word));
  for (const [cmd, expect] of [
    ['serve', /--imap-port/],
    ['domain', /domain add DOMAIN/],
    ['user', /user add ADDRESS/],
    ['alias', /alias add ADDRESS TARGET/],
  ] as const) {
    const r = await runCli([cmd, '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, expect);
  }
});

test('domains, users, quotas, settings and aliases', async () => {
  assert.equal((await cli(['domain', 'add', 'Example.COM'])).code, 0);
  assert.equal((await cli(['domain', 'add', 'other.org'])).code, 0);
  const add = await cli(['user', 'add', 'Adam@example.com', '--password', 'correct horse', '--quota', '500MB']);
  assert.equal(add.code, 0, add.stderr);
  assert.equal((await cli(['user', 'add', 'betty@example.com', '--password-stdin'], 'b-secret\n')).code, 0);
  assert.equal((await cli(['user', 'add', 'support@example.com', '--password', 'x'])).code, 0);

  const list = JSON.parse((await cli(['user', 'list', 'example.com', '--json'])).stdout);
  assert.deepEqual(
    list.map((u: { address: string; quota: number }) => [u.address, u.quota]),
    [
      ['adam@example.com', 500 * 1024 * 1024],
      ['betty@example.com', 0],
      ['support@example.com', 0],
    ],
  );
  assert.match((await cli(['user', 'list'])).stdout, /adam@example.com\s+0 messages, 0B of 500MB/);

  // The password is stored hashed, and verifies.
  const store = await openStore(defaultDatabase(dataDir), dataDir);
  const adam = (await store.getAccount('adam@example.com'))!;
  assert.doesNotMatch(adam.passwordHash, /correct horse/);
  assert.ok(await verifyPassword('correct horse', adam.passwordHash));
  assert.deepEqual(
    (await store.listMailboxes(adam.id)).map((m) => [m.name, m.specialUse]),
    [
      ['INBOX', null],
      ['Archive', '\\Archive'],
      ['Drafts', '\\Drafts'],
      ['Junk', '\\Junk'],
      ['Sent', '\\Sent'],
      ['Trash', '\\Trash'],
    ],
  );
  const betty = (await store.getAccount('betty@example.com'))!;
  assert.ok(await verifyPassword('b-secret', betty.passwordHash));
  await store.close();

  assert.equal((await cli(['user', 'passwd', 'adam@example.com', '--password', 'new one'])).code, 0);
  assert.equal((await cli(['user', 'quota', 'adam@example.com', '1GB'])).code, 0);
  assert.equal((await cli(['user', 'set', 'adam@example.com', 'pop.deleteAction', 'trash'])).code, 0);
  assert.equal((await cli(['user', 'set', 'adam@example.com', 'imap.maxConnections', '3'])).code, 0);
  const show = JSON.parse((await cli(['user', 'show', 'adam@example.com', '--json'])).stdout);
  assert.equal(show.quota, 1024 ** 3);
  assert.equal(show.settings.pop.deleteAction, 'trash');
  assert.equal(show.settings.imapMaxConnections, 3);
  assert.equal(show.mailboxes.length, 6);
  assert.match((await cli(['user', 'show', 'adam@example.com'])).stdout, /pop\.deleteAction\s+trash/);

  assert.equal((await cli(['alias', 'add', 'support@example.com', 'support@example.com', 'adam@example.com'])).code, 0);
  assert.equal((await cli(['alias', 'add', 'support@example.com', 'betty@example.com'])).code, 0, 'adds a target');
  assert.equal((await cli(['alias', 'add', 'team@example.com', 'adam@example.com', 'betty@example.com', 'friend@elsewhere.net'])).code, 0);
  assert.equal((await cli(['alias', 'add', '@other.org', 'adam@example.com'])).code, 0);
  const aliases = JSON.parse((await cli(['alias', 'list', '--json'])).stdout);
  assert.deepEqual(aliases, [
    { address: '@other.org', targets: ['adam@example.com'] },
    { address: 'support@example.com', targets: ['support@example.com', 'adam@example.com', 'betty@example.com'] },
    { address: 'team@example.com', targets: ['adam@example.com', 'betty@example.com', 'friend@elsewhere.net'] },
  ]);
  assert.equal((await cli(['alias', 'remove', 'team@example.com', 'friend@elsewhere.net'])).code, 0);
  assert.deepEqual(JSON.parse((await cli(['alias', 'list', 'example.com', '--json'])).stdout), [
    { address: 'support@example.com', targets: ['support@example.com', 'adam@example.com', 'betty@example.com'] },
    { address: 'team@example.com', targets: ['adam@example.com', 'betty@example.com'] },
  ]);
});

test('bad input: one clear line, non-zero exit, store unchanged', async () => {
  const before = await snapshot();
  const cases: Array<[string[], RegExp, string?]> = [
    [['user', 'add', 'not-an-address', '--password', 'x'], /not a valid email address/],
    [['user', 'add', 'a@@example.com', '--password', 'x'], /not a valid email address/],
    [['user', 'add', 'x@unknown-domain.test', '--password', 'x'], /unknown domain unknown-domain\.test/],
    [['user', 'add', 'adam@example.com', '--password', 'x'], /already exists/],
    [['user', 'add', 'new@example.com', '--password', 'x', '--quota', '12XB'], /"12XB" is not a size/],
    [['user', 'add', 'new@example.com'], /missing password/],
    [['user', 'add', 'new@example.com', '--password-stdin'], /password is empty/, ''],
    [['user', 'quota', 'adam@example.com', 'lots'], /not a size/],
    [['user', 'quota', 'nobody@example.com', '1GB'], /no account nobody@example\.com/],
    [['user', 'passwd', 'adam@example.com'], /missing password/],
    [['user', 'set', 'adam@example.com', 'pop.deleteAction', 'shred'], /must be expunge, trash, archive or keep/],
    [['user', 'set', 'adam@example.com', 'no.such', '1'], /unknown setting/],
    [['user', 'remove', 'nobody@example.com'], /no account/],
    [['user', 'frobnicate'], /unknown user subcommand/],
    [['domain', 'add', 'example.com'], /already exists/],
    [['domain', 'add', 'bad_domain!'], /not a valid domain/],
    [['domain', 'add'], /missing DOMAIN/],
    [['domain', 'remove', 'example.com'], /still has 3 account/],
    [['domain', 'remove', 'never.test'], /no such domain/],
    [['alias', 'add', 'x@example.com'], /at least one TARGET/],
    [['alias', 'add', 'x@example.com', 'not an address'], /not a valid email address/],
    [['alias', 'add', 'x@unknown.test', 'adam@example.com'], /unknown domain/],
    [['alias', 'remove', 'nothing@example.com'], /no alias/],
    [['user', 'add', 'y@example.com', '--password', 'x', '--bogus'], /Unknown option '--bogus'/],
    [['frob'], /unknown command "frob"/],
    [['serve', '--log-file', '/nonexistent-dir/pillarbox.log'], /cannot open the log file \/nonexistent-dir\/pillarbox\.log/],
    [['serve', '--log-format', 'xml'], /--log-format must be text or json/],
  ];
  for (const [args, expect, input] of cases) {
    const r = await cli(args, input);
    assert.notEqual(r.code, 0, `${args.join(' ')} should fail`);
    assert.match(r.stderr, expect, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
  }
  assert.equal(await snapshot(), before, 'nothing changed');
});

test('a missing data folder is a clear error', async () => {
  const r = await runCli(['user', 'list', '--data', join(dataDir, 'nope')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /does not exist/);
});

test('common options before or after the command', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-cli-order-'));
  try {
    assert.equal((await runCli(['--data', dir, 'domain', 'add', 'before.example'])).code, 0);
    assert.equal((await runCli(['domain', 'add', 'after.example', '--data', dir])).code, 0);
    const before = await runCli([`--data=${dir}`, '--json', 'domain', 'list']);
    assert.equal(before.code, 0, before.stderr);
    assert.deepEqual(JSON.parse(before.stdout).map((d: { domain: string }) => d.domain), ['after.example', 'before.example']);
    const after = await runCli(['domain', 'list', '--json', '--data', dir]);
    assert.equal(after.stdout, before.stdout);
    const bad = await runCli(['--imap-port', '1', 'serve']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /unknown option "--imap-port" before the command.*go after it/);
    const noValue = await runCli(['--data']);
    assert.match(noValue.stderr, /option --data needs a value/);
    const help = await runCli(['--data', dir, '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /before or after the command/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--password-stdin from a pipe takes the first line', async () => {
  assert.equal((await cli(['user', 'add', 'piped@example.com', '--password-stdin'], 'first line\nsecond line\n')).code, 0);
  const store = await openStore(defaultDatabase(dataDir), dataDir);
  try {
    const a = (await store.getAccount('piped@example.com'))!;
    assert.ok(await verifyPassword('first line', a.passwordHash));
  } finally {
    await store.close();
  }
});

const PTY = join(ROOT, 'test/helpers/pty_run.py');
/** The CLI on a real terminal (python3's pty), typing `answers` at each "assword for" prompt. */
function onTerminal(args: string[], answers: string[]): { code: number; screen: string } {
  const r = spawnSync('python3', [PTY, 'assword for', ...answers, '--', process.execPath, ...cliArgv(), ...args, '--data', dataDir], { encoding: 'utf8', timeout: 90_000 });
  assert.ok(r.stdout, `pty_run printed nothing: ${r.stderr}`);
  return { code: r.status ?? -1, screen: JSON.parse(r.stdout.trim().split('\n').pop()!) as string };
}

test('--password-stdin on a terminal: asks twice on the terminal, shows nothing typed, the account works', needs('python3'), async () => {
  const pw = 'tty sëcret 42';
  const r = onTerminal(['user', 'add', 'tty@example.com', '--password-stdin'], [pw, pw]);
  assert.equal(r.code, 0, r.screen);
  assert.match(r.screen, /^Password for tty@example\.com: \r?\nRetype the password for tty@example\.com: \r?\nadded tty@example\.com/);
  assert.ok(!r.screen.includes('sëcret') && !r.screen.includes('42'), `the password was echoed: ${JSON.stringify(r.screen)}`);
  // passwd too, then the new password is the one that verifies.
  const p = onTerminal(['user', 'passwd', 'tty@example.com', '--password-stdin'], ['second pw', 'second pw']);
  assert.equal(p.code, 0, p.screen);
  assert.ok(!p.screen.includes('second pw'));
  const store = await openStore(defaultDatabase(dataDir), dataDir);
  try {
    const a = (await store.getAccount('tty@example.com'))!;
    assert.ok(await verifyPassword('second pw', a.passwordHash));
  } finally {
    await store.close();
  }
  // Two different answers: refused, nothing created.
  const m = onTerminal(['user', 'add', 'typo@example.com', '--password-stdin'], ['one', 'two']);
  assert.equal(m.code, 1);
  assert.match(m.screen, /the passwords do not match/);
  assert.match((await cli(['user', 'show', 'typo@example.com'])).stderr, /no account/);
});
