// The server's RSS under a burst of pipelined commands, through the real server and a raw socket.
// V8's young generation grows under sustained work (the bytes surviving its scavenges) and, in a
// Node without pointer compression, reaches 2 × 32 MB semi-spaces by default: 3,980 pipelined
// APPENDs of 19 bytes (the IMAP fuzzer's seed-12 input i2167) took the server's RSS up by 27.5 MB
// kept, the V8 heap in use back at its start. Most of the fuzz run's RSS growth was that young
// generation, not any connection's buffers (fuzz/README.md). The server starts with it capped
// (src/cli/node-flags.ts). Measured here: the server's RSS after a full GC (fuzz/server-mem.ts
// loaded for it), after the same burst 3 times, against the same figure before: what V8 kept
// committed for its young generation (garbage in the old one, collected by that GC, is not).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { askMemory } from '../../../fuzz/target.ts';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { sampleRss } from '../../helpers/probe.ts';
import { SEMI_SPACE_MB, youngGenerationSized } from '../../../src/cli/node-flags.ts';

const MB = 1024 * 1024;
const USER = 'burst@example.com';
const PASS = 'burst-pw';
const APPENDS = 4000;
let srv: TestServer;
let memDir: string;
let memFile: string;

before(async () => {
  memDir = mkdtempSync(join(tmpdir(), 'pillarbox-burst-'));
  memFile = join(memDir, 'mem.json');
  const preload = new URL('../../../fuzz/server-mem.ts', import.meta.url).href;
  srv = await startServer({ plaintext: true, env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --expose-gc --import ${preload}`.trim(), PILLARBOX_FUZZ_MEM: memFile } });
  await srv.addUser(USER, PASS);
});
after(async () => {
  await srv?.stop();
  rmSync(memDir, { recursive: true, force: true });
});

/** The server's RSS (bytes) 1 s after a full GC (V8 hands freed pages back on a background thread). */
async function rssAfterGc(): Promise<number> {
  assert.ok(await askMemory(srv, memFile), 'the server answers SIGUSR2 with its memory figures');
  await new Promise((r) => setTimeout(r, 1000));
  const m = await askMemory(srv, memFile);
  return m!.rss;
}

/** Logs in, sends `APPENDS` tiny LITERAL+ APPENDs in one write, and waits for the last tagged reply. */
async function burst(): Promise<number> {
  const sock: Socket = connect({ host: '127.0.0.1', port: srv.ports.imap });
  let text = '';
  let wake: (() => void) | null = null;
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => {
    text = (text + d).slice(-4096);
    wake?.();
  });
  const until = (re: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${re} in ${JSON.stringify(text.slice(-300))}`)), 60_000);
      wake = () => {
        if (re.test(text)) {
          clearTimeout(t);
          wake = null;
          resolve();
        }
      };
      wake();
    });
  await until(/\* OK/); // linear: literal characters
  sock.write(`l LOGIN ${USER} ${PASS}\r\n`);
  await until(/l OK/); // linear: literal characters
  const cmds: string[] = [];
  for (let i = 0; i < APPENDS; i++) cmds.push(`p${i} APPEND INBOX (\\Flagged) {19+}\r\nSubject: one\r\n\r\na\r\n\r\n`);
  sock.write(cmds.join(''));
  await until(new RegExp(`p${APPENDS - 1} OK`)); // linear: literal characters and digits
  sock.end('z LOGOUT\r\n');
  await new Promise((r) => sock.once('close', r));
  return APPENDS;
}

test(`${APPENDS} pipelined APPENDs, 3 times: after a full GC the server's RSS is within 30 MB of the same figure before`, async (t) => {
  // The first login's scrypt check (32 MiB, freed when it ends) is not what is measured.
  const warm = connect({ host: '127.0.0.1', port: srv.ports.imap });
  warm.resume(); // read (and drop) the replies, so that the close comes
  warm.write(`w LOGIN ${USER} ${PASS}\r\nw2 LOGOUT\r\n`);
  await new Promise((r) => warm.once('close', r));
  const baseline = await rssAfterGc();
  const rss = sampleRss(srv.proc.pid!, 10);
  for (let round = 0; round < 3; round++) assert.equal(await burst(), APPENDS);
  const peak = rss.stop();
  const kept = await rssAfterGc();
  const growth = (kept - baseline) / MB;
  t.diagnostic(`RSS after GC ${(baseline / MB).toFixed(1)} → ${(kept / MB).toFixed(1)} MB (+${growth.toFixed(1)}); peak ${(peak / MB).toFixed(1)}`);
  // Before the cap (V8's default young generation here, 2 × 32 MB): +103 MB; with --max-semi-space-size=32,
  // +49 and +50. Capped (≤ 16 MB in all): +10 to +21 MB.
  assert.ok(growth < 30, `RSS after a full GC ${(baseline / MB).toFixed(1)} → ${(kept / MB).toFixed(1)} MB (+${growth.toFixed(1)})`);
});

test('every launcher starts the server with the same young-generation cap', () => {
  const root = join(import.meta.dirname, '../../..');
  const flag = `--max-semi-space-size=${SEMI_SPACE_MB}`;
  assert.ok(readFileSync(join(root, 'bin/pillarbox'), 'utf8').includes(flag), 'bin/pillarbox');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.ok(pkg.scripts.start!.includes(flag), 'npm start');
  // Started without it, the server says so at start (a warning with the flag to use).
  assert.doesNotMatch(srv.output(), /young-generation-uncapped/);
  assert.equal(youngGenerationSized([], ''), false);
  assert.equal(youngGenerationSized([flag], ''), true);
  assert.equal(youngGenerationSized([], '--max-semi-space-size=4'), true);
});
