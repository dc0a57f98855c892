// SORT and THREAD with Python's imaplib (its sort() and thread() methods, uid('SORT'/'THREAD')),
// run as a child process: see clients/imaplib_sort.py for what it checks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startImapServer, type ImapTestServer } from './harness.ts';
import { needs } from '../../helpers/external.ts';

const PYTHON = needs('python3');
const SCRIPT = fileURLToPath(new URL('./clients/imaplib_sort.py', import.meta.url));
let srv: ImapTestServer;
let caFile: string;

before(async () => {
  if (PYTHON.skip) return;
  srv = await startImapServer();
  await srv.addUser('ivy@example.com', 'ivy pass');
  caFile = join(srv.dataDir, 'test-ca.pem');
  writeFileSync(caFile, srv.ca);
});
after(async () => {
  await srv?.done();
});

test('imaplib sort() and thread() over 993', PYTHON, async () => {
  const r = await new Promise<{ code: number; out: string }>((resolve) => {
    const p = spawn('python3', [SCRIPT, '127.0.0.1', String(srv.ports.imaps), caFile, 'ivy@example.com', 'ivy pass'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, out });
    });
  });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^OK \d+ checks/m);
});
