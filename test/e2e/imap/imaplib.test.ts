// A full session with Python's imaplib (over 993 and over 143 with STARTTLS), run as a child
// process: see clients/imaplib_session.py for what it checks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startImapServer, type ImapTestServer } from './harness.ts';
import { needs } from '../../helpers/external.ts';

const PYTHON = needs('python3');

const SCRIPT = fileURLToPath(new URL('./clients/imaplib_session.py', import.meta.url));
let srv: ImapTestServer;
let caFile: string;
const U = 'heidi@example.com';
const PW = 'heidi pass';

before(async () => {
  srv = await startImapServer();
  await srv.addUser(U, PW);
  caFile = join(srv.dataDir, 'test-ca.pem');
  writeFileSync(caFile, srv.ca);
});
after(async () => {
  await srv?.done();
});

function runPython(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('python3', [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, out });
    });
  });
}

test('imaplib full session over 993', PYTHON, async () => {
  const r = await runPython(['127.0.0.1', String(srv.ports.imaps), 'ssl', caFile, U, PW, 'ssl']);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^OK \d+ checks/m);
});

test('imaplib full session over 143 with STARTTLS', PYTHON, async () => {
  const r = await runPython(['127.0.0.1', String(srv.ports.imap), 'starttls', caFile, U, PW, 'starttls']);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^OK \d+ checks/m);
});
