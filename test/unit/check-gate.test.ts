// The password-check gate (src/auth/check-gate.ts): at most `concurrency` checks run, `queue` more
// wait in arrival order, the rest are refused at once; a check that throws frees its slot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUSY, CheckGate } from '../../src/auth/check-gate.ts';

function deferred(): { promise: Promise<string>; resolve: (v: string) => void; reject: (e: Error) => void } {
  let resolve!: (v: string) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<string>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}
const turn = () => new Promise((r) => setImmediate(r));

test('two run, one waits, the fourth is refused; slots pass on in arrival order, also after a throw', async () => {
  const gate = new CheckGate(2, 1);
  const started: number[] = [];
  const ds = [deferred(), deferred(), deferred(), deferred()];
  const run = (i: number) => gate.run(() => (started.push(i), ds[i]!.promise));
  const p0 = run(0);
  const p1 = run(1);
  const p2 = run(2);
  assert.equal(await run(3), BUSY);
  await turn();
  assert.deepEqual(started, [0, 1]);
  assert.deepEqual([gate.running, gate.waiting], [2, 1]);

  ds[1]!.reject(new Error('scrypt failed'));
  await assert.rejects(p1, /scrypt failed/);
  await turn();
  assert.deepEqual(started, [0, 1, 2], 'the waiting check got the freed slot');
  assert.deepEqual([gate.running, gate.waiting], [2, 0]);

  ds[0]!.resolve('a');
  ds[2]!.resolve('c');
  assert.deepEqual([await p0, await p2], ['a', 'c']);
  assert.deepEqual([gate.running, gate.waiting], [0, 0]);
  const later = gate.run(async () => 'later');
  assert.equal(await later, 'later');
});

test('concurrency below 1 means 1; queue 0 refuses whenever every slot is taken', async () => {
  const gate = new CheckGate(0, 0);
  const d = deferred();
  const first = gate.run(() => d.promise);
  assert.equal(await gate.run(async () => 'x'), BUSY);
  d.resolve('ok');
  assert.equal(await first, 'ok');
  assert.equal(await gate.run(async () => 'x'), 'x');
});
