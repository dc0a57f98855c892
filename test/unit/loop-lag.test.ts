// The event-loop lag monitor (src/obs/loop-lag.ts): a blocked loop is logged as
// `server.loop-stall ms=… doing=…` with the labels of what ran; the time-slicing helper yields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Activity, LoopBudget, activity, startLoopLagMonitor } from '../../src/obs/loop-lag.ts';
import type { Logger } from '../../src/obs/log.ts';

function capture(): { log: Logger; lines: Array<{ event: string; fields: Record<string, unknown> }> } {
  const lines: Array<{ event: string; fields: Record<string, unknown> }> = [];
  const push = (event: string, fields?: Record<string, unknown>) => lines.push({ event, fields: fields ?? {} });
  return { log: { debug: push, info: push, warn: push, error: push }, lines };
}

test('a real 300 ms block of the event loop is logged with what was running', async () => {
  const { log, lines } = capture();
  const mon = startLoopLagMonitor(log, { thresholdMs: 100 });
  try {
    await new Promise((r) => setTimeout(r, 120));
    activity.run('test.block op=busy-wait', () => {
      const end = performance.now() + 300;
      while (performance.now() < end);
    });
    await new Promise((r) => setTimeout(r, 150));
  } finally {
    mon.stop();
  }
  const stalls = lines.filter((l) => l.event === 'server.loop-stall');
  assert.equal(stalls.length, 1, JSON.stringify(lines));
  assert.ok((stalls[0]!.fields.ms as number) >= 200, `ms=${stalls[0]!.fields.ms}`);
  assert.equal(stalls[0]!.fields.doing, 'test.block op=busy-wait');
  if (process.platform === 'linux') {
    // The thread ran (or waited for a CPU, on a busy machine) for the whole block.
    const f = stalls[0]!.fields as { cpu: number; runq: number; gc: number };
    assert.ok(f.cpu + f.runq >= 250, JSON.stringify(f));
  }
  const summary = lines.find((l) => l.event === 'server.loop-delay');
  assert.ok(summary && (summary.fields.max as number) >= 200, JSON.stringify(summary));
});

test('a stall spent blocked in a system call shows little cpu (Linux schedstat)', { skip: process.platform !== 'linux' }, async () => {
  const { log, lines } = capture();
  const mon = startLoopLagMonitor(log, { thresholdMs: 100 });
  try {
    await new Promise((r) => setTimeout(r, 120));
    // Blocks the thread in futex(2), as a synchronous fsync blocks it in the kernel.
    activity.run('test.block op=sleep', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300));
    await new Promise((r) => setTimeout(r, 150));
  } finally {
    mon.stop();
  }
  const stall = lines.find((l) => l.event === 'server.loop-stall');
  assert.ok(stall, JSON.stringify(lines));
  const f = stall.fields as { ms: number; cpu: number; runq: number };
  assert.ok(f.ms >= 200 && f.cpu < f.ms / 2, JSON.stringify(f));
});

test('with an injected clock: drift below the threshold is quiet, above it names the open operations', () => {
  let now = 0;
  let tick: (() => void) | null = null;
  const act = new Activity(() => now);
  const { log, lines } = capture();
  const mon = startLoopLagMonitor(log, {
    thresholdMs: 100,
    intervalMs: 50,
    activity: act,
    now: () => now,
    setInterval: (fn) => ((tick = fn), {}),
    clearInterval: () => (tick = null),
  });
  now = 50;
  tick!();
  now = 149; // 49 ms late
  tick!();
  assert.equal(lines.length, 0);
  const end = act.begin('imap.command=UID MOVE account=a@example.com mailbox=INBOX');
  now = 160;
  act.begin('store.bulk op=move mailbox=1 messages=131072');
  now = 149 + 50 + 400; // the tick due at 199 comes 400 ms late
  tick!();
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.fields.ms, 400);
  // Both were open for the whole stall (it began at 199): newest first.
  assert.equal(lines[0]!.fields.doing, 'store.bulk op=move mailbox=1 messages=131072; imap.command=UID MOVE account=a@example.com mailbox=INBOX');
  end();
  mon.stop();
  assert.equal(tick, null);
});

test('a stall noticed after the operation ended names that operation', () => {
  let now = 0;
  const act = new Activity(() => now);
  const end = act.begin('imap.command=EXPUNGE');
  now = 500;
  end();
  now = 505;
  assert.equal(act.describe(505, 480), 'imap.command=EXPUNGE');
  assert.equal(act.describe(5000, 100), 'unknown');
});

test('LoopBudget yields a turn only once its slice is used', async () => {
  const b = new LoopBudget(10);
  let ran = false;
  setImmediate(() => (ran = true));
  await b.pause();
  assert.equal(ran, false, 'within budget: no turn');
  const end = performance.now() + 15;
  while (performance.now() < end);
  await b.pause();
  assert.equal(ran, true, 'past budget: other callbacks ran');
});

test('a threshold of 0 turns the monitor off', () => {
  const { log, lines } = capture();
  startLoopLagMonitor(log, { thresholdMs: 0 }).stop();
  assert.equal(lines.length, 0);
});
