// The logger (src/obs/log.ts): text and JSON lines, what a client-supplied value can do to a
// line, and the cap on bytes waiting for a slow file (drop, count, report `log.dropped`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, formatLine } from '../../src/obs/log.ts';

const T = new Date('2026-12-02T10:00:00.000Z');

test('text lines: bare safe values, JSON-quoted others; a newline from a client stays inside its line', () => {
  const line = formatLine('text', 'info', 'imap.login-failed', { user: 'evil\r\n2026 info imap.login user=adam', ip: '127.0.0.1', n: 3, ok: false, skipped: undefined, err: new Error('boom') }, T);
  assert.equal(line, '2026-12-02T10:00:00.000Z info imap.login-failed user="evil\\r\\n2026 info imap.login user=adam" ip=127.0.0.1 n=3 ok=false err=boom\n');
  assert.equal(line.split('\n').length, 2, 'one line');
  assert.match(formatLine('text', 'info', 'x', { to: ['a@b.example', 'c@d.example'] }, T), / to=\["a@b.example","c@d.example"\]\n$/);
});

test('JSON lines: {"time","level","event",...fields}; fields cannot overwrite the three; long values are cut', () => {
  const o = JSON.parse(formatLine('json', 'warn', 'smtp.rcpt-refused', { to: 'x@y.example', code: 554, event: 'spoof', big: 'a'.repeat(5000) }, T));
  assert.equal(o.time, '2026-12-02T10:00:00.000Z');
  assert.equal(o.level, 'warn');
  assert.equal(o.event, 'smtp.rcpt-refused');
  assert.equal(o.to, 'x@y.example');
  assert.equal(o.code, 554);
  assert.equal(o.field_event, 'spoof');
  assert.ok(o.big.length < 1100);
  assert.deepEqual(Object.keys(o).slice(0, 3), ['time', 'level', 'event']);
});

test('a file that cannot keep up: lines past the cap are dropped, counted and reported as log.dropped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-log-'));
  try {
    const file = join(dir, 'pillarbox.log');
    const log = createLogger({ file, format: 'json', maxBufferedBytes: 8 * 1024 });
    // All in one turn of the event loop: nothing can reach the disk in between.
    for (let i = 0; i < 2000; i++) log.info('test.line', { i, pad: 'x'.repeat(60) });
    assert.ok(log.dropped > 1000, `dropped ${log.dropped}`);
    assert.ok(log.dropped < 2000);
    await log.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const kept = lines.filter((l) => l.event === 'test.line');
    const reports = lines.filter((l) => l.event === 'log.dropped');
    assert.equal(kept.length + log.dropped, 2000, 'every line either written or counted');
    assert.equal(reports.reduce((n, r) => n + r.n, 0), log.dropped, 'every dropped line reported');
    assert.deepEqual(kept.map((l) => l.i), [...Array(kept.length).keys()], 'the first lines are kept, in order');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reopen (logrotate): lines go to a new file at the same path, queued ones to the old one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-log-'));
  try {
    const file = join(dir, 'pillarbox.log');
    const log = createLogger({ file });
    log.info('before.rotate');
    await new Promise((r) => setTimeout(r, 50));
    renameSync(file, file + '.1');
    log.reopen();
    log.info('after.rotate');
    await log.close();
    assert.match(readFileSync(file + '.1', 'utf8'), /before\.rotate/);
    assert.ok(existsSync(file));
    const now = readFileSync(file, 'utf8');
    assert.match(now, /info after\.rotate\n$/);
    assert.doesNotMatch(now, /before\.rotate/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stderr: the lines of one event-loop turn are one write, in order; an error line is written at once', async () => {
  // A child process logging to its stderr (a pipe, written synchronously by Node): every write is seen.
  const { spawn } = await import('node:child_process');
  const code = `
    import { createLogger } from ${JSON.stringify(new URL('../../src/obs/log.ts', import.meta.url).href)};
    const fs = await import('node:fs');
    const orig = process.stderr.write.bind(process.stderr);
    let writes = 0;
    process.stderr.write = (c, ...a) => { writes++; return orig(c, ...a); };
    const log = createLogger('info');
    log.info('a.one', { n: 1 }); log.info('a.two', { n: 2 }); log.warn('a.three');
    const before = writes;
    log.error('a.four');
    const afterError = writes;
    await new Promise((r) => setImmediate(r));
    log.info('a.five');
    fs.writeSync(1, JSON.stringify({ before, afterError }) + '\\n');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exit = await new Promise<number | null>((r) => child.on('close', r));
  assert.equal(exit, 0, err);
  // Nothing written during the turn; the error line took the three before it along, in one write.
  assert.deepEqual(JSON.parse(out), { before: 0, afterError: 1 });
  // And every line arrives, in order (a.five at the end of its own turn).
  assert.deepEqual(err.trim().split('\n').map((l) => l.split(' ')[2]), ['a.one', 'a.two', 'a.three', 'a.four', 'a.five']);
});
