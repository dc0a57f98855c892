// Issue #2: `pillarbox serve` starts every listener, writes the ports file once ready, makes a
// self-signed certificate for its hostname, and explains a port it can't bind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, chmodSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { startServer, cliArgv, ROOT, type StartOptions } from '../helpers/server.ts';
import { PORT_NAMES } from '../../src/config/config.ts';
import { needs } from '../helpers/external.ts';
import { RawImap } from './imap/raw-client.ts';
import { appendBodySearchMailbox } from './imap/harness.ts';
import { loadConfig } from '../../src/config/load.ts';
import { PG_URL, probePostgres, freshSchemaName, dropSchema } from '../store/pg-env.ts';

function firstLine(port: number, tls: boolean, ca?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls ? tlsConnect({ host: '127.0.0.1', port, ca: ca ? [ca] : [], servername: 'localhost' }) : netConnect({ host: '127.0.0.1', port });
    s.setEncoding('utf8');
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      const i = buf.indexOf('\r\n');
      if (i >= 0) {
        s.destroy();
        resolve(buf.slice(0, i));
      }
    });
    s.on('error', reject);
  });
}

test('every listener answers on the ports it wrote, TLS with a certificate for the hostname', async () => {
  const srv = await startServer();
  try {
    assert.deepEqual(Object.keys(srv.ports).sort(), ['http', 'imap', 'imaps', 'pop3', 'pop3s', 'smtp', 'submission', 'submissions']);
    const cert = new X509Certificate(srv.ca);
    assert.match(cert.subjectAltName ?? '', /DNS:localhost/);
    assert.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
    assert.match(await firstLine(srv.ports.smtp, false), /^220 localhost/);
    assert.match(await firstLine(srv.ports.submission, false), /^220 /);
    assert.match(await firstLine(srv.ports.submissions, true, srv.ca), /^220 /);
    assert.match(await firstLine(srv.ports.imap, false), /^\* OK/);
    assert.match(await firstLine(srv.ports.imaps, true, srv.ca), /^\* OK/);
    assert.match(await firstLine(srv.ports.pop3, false), /^\+OK/);
    assert.match(await firstLine(srv.ports.pop3s, true, srv.ca), /^\+OK/);
    const res = await fetch(`http://127.0.0.1:${srv.ports.http}/healthz`);
    assert.equal(res.status, 200);
    assert.match(srv.output(), /No domain yet\. Add your first domain and user/);
  } finally {
    await srv.stop();
  }
});

test('the build `npm start` runs: one plain-JavaScript file that serves and administers like the sources', async () => {
  // Inside the checkout, so the build's package imports resolve from its node_modules.
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  const dir = mkdtempSync(join(ROOT, 'dist', '.test-build-'));
  const built = join(dir, 'pillarbox.mjs');
  const saved = process.env.PILLARBOX_BUILT;
  try {
    const b = spawnSync(process.execPath, [join(ROOT, 'scripts/build.mjs'), '--outfile', built], { encoding: 'utf8' });
    assert.equal(b.status, 0, b.stderr);
    process.env.PILLARBOX_BUILT = built; // test/helpers/server.ts runs `node FILE` instead of the sources
    const srv = await startServer({ plaintext: true });
    try {
      assert.match(srv.output(), /No domain yet\. Add your first domain and user/);
      await srv.addUser('built@example.com', 'pw-built-1');
      const listed = await srv.cli(['user', 'list']);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /built@example\.com/);
      // A login over IMAP against the account the built CLI made.
      const reply = await new Promise<string>((resolve, reject) => {
        const s = netConnect({ host: '127.0.0.1', port: srv.ports.imap });
        s.setEncoding('utf8');
        let buf = '';
        s.on('data', (d) => {
          buf += d;
          if (buf.startsWith('* OK') && !buf.includes('a ')) s.write('a LOGIN built@example.com pw-built-1\r\n');
          const m = /^a (OK|NO|BAD).*$/m.exec(buf);
          if (m) {
            s.destroy();
            resolve(m[0]);
          }
        });
        s.on('error', reject);
      });
      assert.match(reply, /^a OK/);
      // SEARCH BODY on a mailbox big enough for the worker threads: the build ships their module.
      const c = await RawImap.connect(srv.ports.imap);
      try {
        await c.login('built@example.com', 'pw-built-1');
        const want = await appendBodySearchMailbox(c, 'INBOX', 240);
        await c.cmd('SELECT INBOX');
        const found = (await c.cmd('SEARCH BODY zanzibar', 30_000)).lines[0]!.replace(/^\* SEARCH ?/, '').split(' ').filter(Boolean).map(Number);
        assert.deepEqual(found, want.body);
        assert.doesNotMatch(srv.output(), /body-scan-worker-failed/);
      } finally {
        c.close();
      }
    } finally {
      await srv.stop();
    }
  } finally {
    if (saved === undefined) delete process.env.PILLARBOX_BUILT;
    else process.env.PILLARBOX_BUILT = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('config precedence: file < environment < flags', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-cfg-'));
  try {
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ hostname: 'file.example', ports: { imap: 1143, pop3: 1110 }, limits: { maxRecipients: 7 } }));
    const c = loadConfig({ data: dir, 'pop3-port': '2110' }, { PILLARBOX_IMAP_PORT: '3143', PILLARBOX_POP3_PORT: '4110' });
    assert.equal(c.hostname, 'file.example');
    assert.equal(c.ports.imap, 3143);
    assert.equal(c.ports.pop3, 2110);
    assert.equal(c.ports.smtp, 25);
    assert.equal(c.limits.maxRecipients, 7);
    assert.throws(() => loadConfig({ data: dir, 'imap-port': '99999' }, {}), /not a port number/);
    // Logs: file < environment < flags, like every setting.
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ logFormat: 'json', logFile: join(dir, 'from-file.log') }));
    const l1 = loadConfig({ data: dir }, {});
    assert.deepEqual([l1.logFormat, l1.logFile], ['json', join(dir, 'from-file.log')]);
    const l2 = loadConfig({ data: dir, 'log-format': 'text' }, { PILLARBOX_LOG_FILE: join(dir, 'env.log'), PILLARBOX_LOG_FORMAT: 'json' });
    assert.deepEqual([l2.logFormat, l2.logFile], ['text', join(dir, 'env.log')]);
    assert.throws(() => loadConfig({ data: dir, 'log-format': 'xml' }, {}), /--log-format must be text or json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unprivileged user gets a clear message for a port below 1024', process.getuid?.() !== 0 ? { skip: 'needs root to switch to nobody' } : needs('runuser'), () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-lowport-'));
  chmodSync(dir, 0o777);
  try {
    const r = spawnSync('runuser', ['-u', 'nobody', '--', join(ROOT, 'bin/pillarbox'), 'serve', '--data', join(dir, 'd'), '--host', '127.0.0.1', '--hostname', 'localhost', '--smtp-port', '0', '--submission-port', '0', '--submissions-port', '0', '--imap-port', '143'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cannot bind port 143 for imap: ports below 1024 need root.*--imap-port PORT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('serve on PostgreSQL: --database postgres://…, admin CLI on the same database', async (t) => {
  const problem = await probePostgres();
  if (problem) {
    if (process.env.CI === 'true') assert.fail(`PostgreSQL is unreachable in CI: ${problem}`);
    t.skip(`PostgreSQL not reachable: ${problem}`);
    return;
  }
  const schema = freshSchemaName();
  const srv = await startServer({ database: `${PG_URL}?schema=${schema}` });
  try {
    await srv.addUser('pg@example.com', 'pw-pg');
    const show = await srv.cli(['user', 'show', 'pg@example.com', '--json']);
    assert.equal(show.code, 0, show.stderr);
    assert.equal(JSON.parse(show.stdout).mailboxes.length, 6);
    assert.match(srv.output(), /store: postgres/);
    assert.match(await firstLine(srv.ports.imaps, true, srv.ca), /^\* OK/);
  } finally {
    await srv.stop();
    await dropSchema(schema);
  }
});

/** The commands under "No domain yet", as printed. */
function bannerCommands(stdout: string): string[] {
  const i = stdout.indexOf('No domain yet. Add your first domain and user:\n');
  assert.ok(i >= 0, `no first-steps section in:\n${stdout}`);
  const out: string[] = [];
  for (const line of stdout.slice(i).split('\n').slice(1)) {
    if (!line.startsWith('  ')) break;
    out.push(line.trim());
  }
  assert.equal(out.length, 2, stdout);
  return out;
}

/** Runs one printed line with sh in `cwd` (a password on stdin for --password-stdin). */
function sh(line: string, cwd: string, env: NodeJS.ProcessEnv, input: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', line], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out }));
    p.stdin.end(input);
  });
}

/**
 * Starts the server the way a user would, runs every command of the banner as printed from the
 * same folder with the same PATH, and logs in with the account they made.
 */
async function bannerWorks(o: StartOptions & { cwd: string; env: Record<string, string> }, expectPrefix: RegExp): Promise<string[]> {
  const srv = await startServer({ ...o, plaintext: true });
  try {
    const cmds = bannerCommands(srv.stdout());
    for (const c of cmds) assert.match(c, expectPrefix);
    const env = { ...process.env, ...o.env };
    for (const c of cmds) {
      const r = await sh(c, o.cwd, env, 'pw-banner-1\n');
      assert.equal(r.code, 0, `${c} (in ${o.cwd}): ${r.out}`);
    }
    const c = await RawImap.connect(srv.ports.imap);
    try {
      await c.login('you@example.com', 'pw-banner-1');
    } finally {
      c.close();
    }
    return cmds;
  } finally {
    await srv.stop();
  }
}

test('the banner\'s commands work as printed: ./bin/pillarbox from the checkout, with --data', async () => {
  const data = mkdtempSync(join(tmpdir(), 'pillarbox-banner-'));
  try {
    const cmds = await bannerWorks({ command: ['./bin/pillarbox', 'serve'], cwd: ROOT, dataDir: data, env: { PILLARBOX_DATA: '' } }, /^\.\/bin\/pillarbox /);
    assert.equal(cmds[0], `./bin/pillarbox domain add example.com --data ${data}`);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});

test('the banner\'s commands work as printed: an installed `pillarbox` on PATH, default and relative data folders', async () => {
  const home = mkdtempSync(join(tmpdir(), 'pillarbox-global-'));
  try {
    // What npm install -g / npm link makes: a pillarbox on PATH that is a link to bin/pillarbox.
    mkdirSync(join(home, 'bin'));
    symlinkSync(join(ROOT, 'bin/pillarbox'), join(home, 'bin/pillarbox'));
    const env = { PATH: `${join(home, 'bin')}:${process.env.PATH}`, PILLARBOX_DATA: '' };
    mkdirSync(join(home, 'site'));
    const plain = await bannerWorks({ command: ['pillarbox', 'serve'], cwd: join(home, 'site'), dataArg: null, env }, /^pillarbox /);
    assert.equal(plain[0], 'pillarbox domain add example.com', 'the default data folder needs no --data');
    assert.ok(existsSync(join(home, 'site/data/pillarbox.sqlite')));
    const rel = await bannerWorks({ command: ['pillarbox', 'serve'], cwd: join(home, 'site'), dataArg: 'other data', dataDir: join(home, 'site/other data'), env }, /^pillarbox /);
    assert.equal(rel[0], `pillarbox domain add example.com --data './other data'`);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('the banner\'s commands work as printed: `npm start` run from a sub-folder of the checkout', needs('npm'), async () => {
  const data = mkdtempSync(join(tmpdir(), 'pillarbox-npm-'));
  try {
    // npm runs the script in the checkout's root; the user stands in test/.
    const cmds = await bannerWorks({ command: ['npm', 'start', '--silent', '--'], cwd: join(ROOT, 'test'), dataDir: data, env: { PILLARBOX_DATA: '' } }, new RegExp(`^${join(ROOT, 'bin/pillarbox')} `));
    assert.equal(cmds[0], `${join(ROOT, 'bin/pillarbox')} domain add example.com --data ${data}`);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});

test('the ports file exists exactly while the server is ready: written after the banner, removed at stop', async () => {
  // stdout to a file, not a pipe: what the server wrote is on disk the moment write() returns, so
  // "the banner is complete when the ports file appears" is checked without a race of our own.
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-ready-'));
  const portsFile = join(dir, 'ports.json');
  const outFile = join(dir, 'out.txt');
  const fd = openSync(outFile, 'w');
  const args = ['serve', '--data', join(dir, 'data'), '--hostname', 'localhost', '--host', '127.0.0.1', '--ports-file', portsFile, ...PORT_NAMES.flatMap((n) => [`--${n}-port`, '0'])];
  const proc = spawn(process.execPath, [...cliArgv(), ...args], { cwd: ROOT, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  try {
    writeFileSync(portsFile, '{"stale": true}\n'); // from an earlier run: must not count as ready
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (existsSync(portsFile) && !readFileSync(portsFile, 'utf8').includes('stale')) break;
      assert.ok(Date.now() < deadline && proc.exitCode === null, `not ready: ${readFileSync(outFile, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const out = readFileSync(outFile, 'utf8');
    assert.match(out, /^Pillarbox is running/m);
    assert.match(out, /^Ready\.$/m, `the banner was complete when the ports file appeared:\n${out}`);
    assert.deepEqual(Object.keys(JSON.parse(readFileSync(portsFile, 'utf8'))).sort(), [...PORT_NAMES].sort());
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
    assert.equal(existsSync(portsFile), false, 'removed at stop');
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
