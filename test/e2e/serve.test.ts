// Issue #2: `pillarbox serve` starts every listener, writes the ports file once ready, makes a
// self-signed certificate for its hostname, and explains a port it can't bind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { startServer, ROOT } from '../helpers/server.ts';
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
