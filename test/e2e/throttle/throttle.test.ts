// Login throttling through the real server (pillarbox serve) with real clients: Python's imaplib,
// poplib and smtplib, and raw sockets bound to chosen loopback addresses (127.0.0.1 and 127.0.0.2
// are both loopback on Linux). The servers run with small throttle delays (DATA/config.json
// limits) so the tests take seconds; the policy's own numbers are tested in test/unit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { RawSmtp } from '../../helpers/smtp.ts';
import { Lines } from './lines.ts';
import type { Limits } from '../../../src/config/config.ts';

const PY = fileURLToPath(new URL('./logins.py', import.meta.url));

async function server(limits: Partial<Limits>): Promise<TestServer & { done(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pillarbox-throttle-'));
  writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ limits: { maxConnectionsPerIp: 300, ...limits } }));
  const s = await startServer({ dataDir, plaintext: true });
  return Object.assign(s, {
    async done() {
      await s.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

interface Step {
  proto: 'imap' | 'pop3' | 'smtp';
  src: string;
  user: string;
  password: string;
}
interface Outcome {
  ok: boolean;
  error: string | null;
  ms: number;
}

function python(srv: TestServer, steps: Step[]): Promise<Outcome[]> {
  return new Promise((resolve, reject) => {
    const p = spawn('python3', [PY], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as Outcome[]) : reject(new Error(`logins.py exited ${code}: ${err}`))));
    p.stdin.end(JSON.stringify({ ports: { imap: srv.ports.imap, pop3: srv.ports.pop3, submission: srv.ports.submission }, steps }));
  });
}

const tagged = (l: string) => l.startsWith('a ');
const b64 = (s: string) => Buffer.from(s).toString('base64');
const logLines = (srv: TestServer, re: RegExp) => srv.output().split('\n').filter((l) => re.test(l));

let srv: Awaited<ReturnType<typeof server>>;
const A = 'anna@example.com';
const B = 'bert@example.com';
const C = 'carl@example.com';
before(async () => {
  // Spacing 50 ms doubling to 400 ms; a check queued past 800 ms is refused.
  srv = await server({ loginThrottleDelay: 50, loginThrottleMaxDelay: 400, loginFailDelay: 20 });
  await srv.addUser(A, 'anna-pw');
  await srv.addUser(B, 'bert-pw');
  await srv.addUser(C, 'carl-pw');
});
after(async () => {
  await srv?.done();
});

test('20 wrong passwords for one account: other accounts from that address, and it from another, log in at once; throttle list/clear', async () => {
  const wrong: Step[] = Array.from({ length: 20 }, (_, i) => ({ proto: (['imap', 'pop3', 'smtp'] as const)[i % 3]!, src: '127.0.0.1', user: A, password: `guess-${i}` }));
  const failed = await python(srv, wrong);
  console.log(`20 wrong passwords, response ms: ${failed.map((o) => Math.round(o.ms)).join(' ')}`);
  // Each one checked and answered as a bad password, never as a lockout.
  failed.forEach((o, i) => {
    const want = { imap: /^\[AUTHENTICATIONFAILED\] /, pop3: /^-ERR \[AUTH\] /, smtp: /^535 5\.7\.8 / }[wrong[i]!.proto];
    assert.match(o.error ?? 'ok', want, `attempt ${i + 1} (${wrong[i]!.proto})`);
  });
  // smtplib tries AUTH PLAIN, then AUTH LOGIN with the same password: that repeat is not counted again.
  const lines = logLines(srv, new RegExp(`auth\\.login-failed user=${A} ip=127\\.0\\.0\\.1 .*reason=wrong-password .*delay=\\d+`));
  assert.equal(lines.filter((l) => !l.includes('repeat=true')).length, 20);

  const list = await srv.cli(['throttle', 'list', '--json']);
  assert.equal(list.code, 0, list.stderr);
  const pairs = (JSON.parse(list.stdout) as { pairs: Array<{ ip: string; user: string; failures: number; delayMs: number }> }).pairs;
  assert.deepEqual(pairs.map((p) => [p.ip, p.user, p.failures]), [['127.0.0.1', A, 20]]);
  assert.equal(pairs[0]!.delayMs, 400, 'at the cap');
  assert.match((await srv.cli(['throttle', 'list'])).stdout, new RegExp(`^127\\.0\\.0\\.1\\s+${A}\\s+20\\s`, 'm'));

  const others = await python(srv, [
    ...(['imap', 'pop3', 'smtp'] as const).map((proto) => ({ proto, src: '127.0.0.1', user: B, password: 'bert-pw' })),
    ...(['imap', 'pop3', 'smtp'] as const).map((proto) => ({ proto, src: '127.0.0.2', user: A, password: 'anna-pw' })),
  ]);
  assert.deepEqual(others.map((o) => o.error), [null, null, null, null, null, null]);
  assert.deepEqual(logLines(srv, new RegExp(`auth\\.throttled .*(user=${B}|ip=127\\.0\\.0\\.2)`)), [], 'neither was held');

  // The admin clears the pair: it logs in at once, without being held.
  const cleared = await srv.cli(['throttle', 'clear', A, '127.0.0.1']);
  assert.equal(cleared.code, 0, cleared.stderr);
  assert.match(cleared.stdout, /cleared 1 entry/);
  const heldBefore = logLines(srv, /auth\.throttled/).length;
  const again = await python(srv, [{ proto: 'imap', src: '127.0.0.1', user: A, password: 'anna-pw' }]);
  assert.equal(again[0]!.error, null);
  assert.equal(logLines(srv, /auth\.throttled/).length, heldBefore);
  assert.match((await srv.cli(['throttle', 'list'])).stdout, /no failed logins recorded/);
});

test('100 parallel wrong LOGINs and the right one from 2 addresses: only the free allowance is checked at once', async () => {
  // 70 wrong from 127.0.0.1 (more than the 3 checked + 64 waiting one pair allows, so some are
  // refused at once, while the first checks still run), 30 from 127.0.0.2, the right one (last) from .1.
  const src = (i: number) => (i < 100 ? (i % 10 < 7 ? '127.0.0.1' : '127.0.0.2') : '127.0.0.1');
  const conns = await Promise.all(Array.from({ length: 101 }, (_, i) => Lines.open(srv.ports.imap, src(i))));
  // Made ready before the flood: a POP3 and an SMTP session of the same pair, one command from a password.
  const pop = await Lines.open(srv.ports.pop3, '127.0.0.1');
  assert.match(await pop.cmd(`USER ${C}`), /^\+OK/);
  const smtp = await RawSmtp.connect(srv.ports.submission);
  await smtp.reply();
  await smtp.cmd('EHLO raw.test');
  const mark = srv.output().length;
  const t0 = Date.now();
  const answers = conns.map(async (c, i) => {
    const l = await c.cmd(`a LOGIN ${C} ${i === 100 ? 'carl-pw' : `guess-${i}`}`, tagged);
    return { l, ms: Date.now() - t0 };
  });
  // As soon as the first refusals come back, the pair's queue is full: the same pair on POP3 and
  // SMTP is refused too, with each protocol's temporary error.
  await Promise.race(answers.map(async (a) => ((await a).l.includes('[UNAVAILABLE]') ? undefined : new Promise(() => {}))));
  const [popAnswer, smtpAnswer] = await Promise.all([pop.cmd('PASS guess-pop'), smtp.cmd('AUTH PLAIN ' + b64(`\0${C}\0guess-smtp`))]);
  const results = await Promise.all(answers);
  const log = srv.output().slice(mark).split('\n');
  const checked = log.filter((l) => l.includes(`auth.login-failed user=${C}`));
  const atOnce = checked.filter((l) => !/ held=true/.test(l));
  console.log(
    `parallel: ${results.filter((r) => r.l.includes('[AUTHENTICATIONFAILED]')).length} checked and refused as wrong, ` +
      `${results.filter((r) => r.l.includes('[UNAVAILABLE]')).length} refused unchecked (NO [UNAVAILABLE]), ` +
      `${checked.length} password checks in the log, ${atOnce.length} of them not held; right password: ${results[100]!.l} after ${results[100]!.ms} ms`,
  );
  for (const r of results) assert.match(r.l, /^a (NO \[AUTHENTICATIONFAILED\]|NO \[UNAVAILABLE\]|OK)/);
  assert.ok(atOnce.length <= 6, `${atOnce.length} checks went at full speed (allowance: 3 per address)`);
  assert.ok(checked.length >= 6 && checked.length <= 40, `${checked.length} checks`);
  if (!results[100]!.l.includes('[UNAVAILABLE]')) {
    assert.match(results[100]!.l, /^a OK/);
    assert.ok(log.some((l) => /auth\.throttled .*ip=127\.0\.0\.1 .*action=delayed/.test(l)), 'the right password went through only after a wait');
  }
  // RFC 2449 §8 / RFC 3206 §4 [SYS/TEMP]; RFC 4954 §6 454 4.7.0.
  assert.match(popAnswer, /^-ERR \[SYS\/TEMP\] /);
  assert.match(smtpAnswer, /^454 4\.7\.0 /);
  // A refused session carries on, and once the queue has drained the right password gets in,
  // held by the pair's delay (at most 400 ms here) rather than locked out.
  const refused = conns[results.findIndex((r, i) => src(i) === '127.0.0.1' && r.l.includes('[UNAVAILABLE]'))]!;
  assert.match(await refused.cmd('a CAPABILITY', tagged), /^a OK/);
  await new Promise((r) => setTimeout(r, 1200));
  assert.match(await refused.cmd(`a AUTHENTICATE PLAIN ${b64(`\0${C}\0carl-pw`)}`, tagged), /^a OK/);
  for (const c of [...conns, pop]) c.close();
  smtp.close();
});

test('repeated failures are slowed more and more (the delay curve), and the right password is then delayed, not refused', async () => {
  // Spacing 150 ms doubling to 1.2 s: large against a password check, so the curve is visible.
  const s2 = await server({ loginThrottleDelay: 150, loginThrottleMaxDelay: 1200, loginFailDelay: 20 });
  try {
    const D = 'dora@example.com';
    await s2.addUser(D, 'dora-pw');
    const c = await Lines.open(s2.ports.imap, '127.0.0.1');
    const ms: number[] = [];
    for (let i = 0; i < 8; i++) {
      const t = Date.now();
      assert.match(await c.cmd(`a LOGIN ${D} wrong-${i}`, tagged), /^a NO \[AUTHENTICATIONFAILED\]/, `attempt ${i + 1}`);
      ms.push(Date.now() - t);
    }
    const t = Date.now();
    assert.match(await c.cmd(`a LOGIN ${D} dora-pw`, tagged), /^a OK/);
    const rightMs = Date.now() - t;
    console.log(`delay curve (attempt → response ms): ${ms.map((m, i) => `${i + 1}→${m}`).join(' ')}; right password → ${rightMs} ms (OK)`);
    // The server's delay after each failure (what the next attempt of the pair waits for): 0, 0,
    // then 150 ms doubling to the 1.2 s cap — from its log, so independent of the machine's speed.
    const delays = logLines(s2, new RegExp(`auth\\.login-failed user=${D} `)).map((l) => Number(/ delay=(\d+)/.exec(l)![1]));
    console.log(`server delay after each failure (ms): ${delays.join(' ')}`);
    assert.equal(delays.length, 8);
    assert.deepEqual(delays.slice(0, 2), [0, 0]);
    for (let i = 1; i < 8; i++) assert.ok(delays[i]! >= delays[i - 1]!, `delays grow: ${delays.join(' ')}`);
    assert.ok(delays[3]! > delays[2]! && delays[5]! > delays[3]!, `delays grow: ${delays.join(' ')}`);
    assert.equal(delays[7], 1200);
    // Client side, lower bounds only (a slow machine only adds time): check n starts at least one
    // gap after check n−1 started, so (answer n) − (request n−1) = ms[n−1] + ms[n] ≥ the gap.
    assert.ok(ms[5]! + ms[6]! >= 1000 && ms[6]! + ms[7]! >= 1000, `attempts 7 and 8 held about 1.2 s: ${ms.join(' ')}`);
    assert.ok(ms[7]! + rightMs >= 1000, 'the right password waits its turn');
    assert.match(logLines(s2, /auth\.throttled /).at(-1)!, new RegExp(`user=${D} ip=127\\.0\\.0\\.1 action=delayed`));
    c.close();
  } finally {
    await s2.done();
  }
});
