// The process-wide bound on password checks (limits.passwordChecks / passwordCheckQueue,
// src/auth/check-gate.ts), through the real server and raw sockets. Each scrypt check holds
// 32 MiB (128·N·r at ln=15, r=8) while it runs; before the bound, parallel failed logins from
// fresh names ran 4 at once (libuv's pool) and the server's RSS rose by 4 × 32 = 128 MiB
// (148 → 276 MB measured; the IMAP fuzzer's seed-12 RSS trip). Here one check at a time and 3
// waiting: the rise stays near 32 MiB, and attempts beyond the queue get each protocol's
// temporary error unchecked.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { RawSmtp } from '../../helpers/smtp.ts';
import { rssOf, sampleRss } from '../../helpers/probe.ts';
import { Lines } from './lines.ts';

const MiB = 1024 * 1024;
const USER = 'dora@example.com';
const PASS = 'dora-pw';
const QUEUE = 3;
let srv: TestServer;
let dataDir: string;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'pillarbox-checks-'));
  writeFileSync(
    join(dataDir, 'config.json'),
    JSON.stringify({ limits: { maxConnectionsPerIp: 300, passwordChecks: 1, passwordCheckQueue: QUEUE, loginFailDelay: 0, loginThrottleDelay: 50, loginThrottleMaxDelay: 400 } }),
  );
  srv = await startServer({ dataDir, plaintext: true });
  await srv.addUser(USER, PASS);
});
after(async () => {
  await srv?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const tagged = (l: string) => l.startsWith('a ');
const b64 = (s: string) => Buffer.from(s).toString('base64');

test('24 parallel failed logins: one scrypt at a time (RSS +32 MiB, not +128), 3 waiting, the rest NO [UNAVAILABLE]; POP3 and SMTP get their temporary errors', async (t) => {
  const src = '127.0.0.3'; // a source with no failures yet: the throttle holds none of these
  const conns = await Promise.all(Array.from({ length: 24 }, () => Lines.open(srv.ports.imap, src)));
  const pop = await Lines.open(srv.ports.pop3, src);
  assert.match(await pop.cmd('USER nobody-pop@example.com'), /^\+OK/);
  const smtp = await RawSmtp.connect(srv.ports.submission);
  await smtp.reply();
  await smtp.cmd('EHLO raw.test');
  const pid = srv.proc.pid!;
  await new Promise((r) => setTimeout(r, 300));
  const baseline = rssOf(pid);
  const rss = sampleRss(pid, 5);
  const mark = srv.output().length;
  const answers = conns.map((c, i) => c.cmd(`a LOGIN nobody${i}@example.com wrong-${i}`, tagged));
  // Once one attempt is refused the queue is full: POP3 and SMTP attempts now are refused too.
  await Promise.race(answers.map(async (a) => ((await a).includes('[UNAVAILABLE]') ? undefined : new Promise(() => {}))));
  const [popAnswer, smtpAnswer] = await Promise.all([pop.cmd('PASS wrong-pop'), smtp.cmd('AUTH PLAIN ' + b64('\0nobody-smtp@example.com\0wrong-smtp'))]);
  const results = await Promise.all(answers);
  const peak = rss.stop();
  const checked = results.filter((l) => l.startsWith('a NO [AUTHENTICATIONFAILED]')).length;
  const busy = results.filter((l) => l.startsWith('a NO [UNAVAILABLE]')).length;
  const log = srv.output().slice(mark).split('\n');
  const busyLogged = log.filter((l) => /auth\.busy user=nobody\d+@/.test(l)).length;
  // A loaded machine may deliver some LOGINs after the first failures were recorded: the
  // throttle may then refuse those itself (also NO [UNAVAILABLE], logged auth.throttled).
  const throttled = log.filter((l) => /auth\.throttled user=nobody\d+@.* action=refused/.test(l)).length;
  t.diagnostic(`server RSS ${(baseline / MiB).toFixed(1)} → peak ${(peak / MiB).toFixed(1)} MB (+${((peak - baseline) / MiB).toFixed(1)}); ${checked} checked, ${busy} refused unchecked (${busyLogged} busy, ${throttled} throttled); POP3 ${popAnswer}; SMTP ${smtpAnswer}`);

  for (const l of results) assert.match(l, /^a NO \[(AUTHENTICATIONFAILED|UNAVAILABLE)\] /);
  assert.equal(checked + busy, 24);
  // The one running and the QUEUE waiting are always checked; the rest arrived while they ran.
  assert.ok(checked >= 1 + QUEUE, `${checked} checked`);
  assert.ok(busyLogged >= 1, 'some attempts were refused while the queue was full (auth.busy)');
  assert.equal(busyLogged + throttled, busy, 'each refusal is logged, as auth.busy or auth.throttled');
  // RFC 3206 §4 [SYS/TEMP]; RFC 4954 §6 454 4.7.0.
  assert.match(popAnswer, /^-ERR \[SYS\/TEMP\] /);
  assert.match(smtpAnswer, /^454 4\.7\.0 /);
  // One check's 32 MiB plus noise; four at once (the old behaviour) would be 128 MiB.
  assert.ok(peak - baseline < 80 * MiB, `server RSS rose ${((peak - baseline) / MiB).toFixed(1)} MB during the burst`);

  // Refusals are not failures: the refused connection carries on and logs in with the right password.
  const refused = conns[results.findIndex((l) => l.includes('[UNAVAILABLE]'))]!;
  assert.match(await refused.cmd('a CAPABILITY', tagged), /^a OK/);
  assert.match(await refused.cmd(`a LOGIN ${USER} ${PASS}`, tagged), /^a OK/);
  for (const c of [...conns, pop]) c.close();
  smtp.close();
});
