// store.loginFailures (the failed-login state login throttling keeps, shared with the admin CLI),
// the same tests against every backend: sqlite (a temp dir per test) and postgres (a fresh schema
// per test). PostgreSQL unreachable: skipped with the reason printed, except with CI=true.

import assert from 'node:assert/strict';
import { eachBackend } from './backends.ts';


const HL = 300_000;
const T = 1_700_000_000_000;

eachBackend('loginFailures', (run) => {
  run('record adds 1 to a score that halves every half-life; failures count every one', async ({ store }) => {
    const lf = store.loginFailures;
    const r1 = await lf.record('192.0.2.1', 'a@example.com', T, HL);
    assert.deepEqual(r1, { ip: '192.0.2.1', username: 'a@example.com', score: 1, failures: 1, firstFailureAt: T, lastFailureAt: T });
    const r2 = await lf.record('192.0.2.1', 'a@example.com', T + HL, HL);
    assert.equal(r2.score, 1.5);
    assert.equal(r2.failures, 2);
    assert.equal(r2.firstFailureAt, T);
    assert.equal(r2.lastFailureAt, T + HL);
    // A failure stamped earlier than the last one (another process's clock): no decay, last kept.
    const r3 = await lf.record('192.0.2.1', 'a@example.com', T, HL);
    assert.equal(r3.score, 2.5);
    assert.equal(r3.lastFailureAt, T + HL);
    assert.deepEqual(await lf.list(), [r3]);
  });

  run('list filters by source and by name, ordered by source then name', async ({ store }) => {
    const lf = store.loginFailures;
    for (const [ip, u] of [['2001:db8:1:2::/64', 'b@x'], ['192.0.2.1', 'b@x'], ['192.0.2.1', 'a@x'], ['198.51.100.7', '*']]) await lf.record(ip!, u!, T, HL);
    assert.deepEqual((await lf.list()).map((r) => `${r.ip} ${r.username}`), ['192.0.2.1 a@x', '192.0.2.1 b@x', '198.51.100.7 *', '2001:db8:1:2::/64 b@x']);
    assert.deepEqual((await lf.list({ ip: '192.0.2.1' })).map((r) => r.username), ['a@x', 'b@x']);
    assert.deepEqual((await lf.list({ username: 'b@x' })).map((r) => r.ip), ['192.0.2.1', '2001:db8:1:2::/64']);
    assert.deepEqual(await lf.list({ ip: '192.0.2.1', username: 'zz' }), []);
  });

  run('clear removes a pair, a name everywhere, a source, or everything, and says how many', async ({ store }) => {
    const lf = store.loginFailures;
    const seed = async () => {
      await lf.clear();
      for (const ip of ['10.0.0.1', '10.0.0.2']) for (const u of ['a@x', 'b@x']) await lf.record(ip, u, T, HL);
    };
    await seed();
    assert.equal(await lf.clear({ ip: '10.0.0.1', username: 'a@x' }), 1);
    assert.equal((await lf.list()).length, 3);
    await seed();
    assert.equal(await lf.clear({ username: 'a@x' }), 2);
    assert.deepEqual((await lf.list()).map((r) => r.username), ['b@x', 'b@x']);
    await seed();
    assert.equal(await lf.clear({ ip: '10.0.0.2' }), 2);
    assert.deepEqual((await lf.list()).map((r) => r.ip), ['10.0.0.1', '10.0.0.1']);
    await seed();
    assert.equal(await lf.clear(), 4);
    assert.deepEqual(await lf.list(), []);
  });

  run('prune drops rows whose last failure is older than the cut-off', async ({ store }) => {
    const lf = store.loginFailures;
    await lf.record('10.0.0.1', 'old@x', T - 10 * HL, HL);
    await lf.record('10.0.0.1', 'new@x', T, HL);
    assert.equal(await lf.prune(T - HL), 1);
    assert.deepEqual((await lf.list()).map((r) => r.username), ['new@x']);
  });

  run('parallel failures from two store handles (server and CLI processes) are all counted', async ({ store, other }) => {
    const second = await other();
    await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? store : second).loginFailures.record('10.0.0.9', 'a@x', T, HL)));
    const [row] = await store.loginFailures.list();
    assert.equal(row!.failures, 40);
    assert.equal(row!.score, 40);
    // What one handle clears, the other no longer sees.
    assert.equal(await second.loginFailures.clear({ ip: '10.0.0.9' }), 1);
    assert.deepEqual(await store.loginFailures.list(), []);
  });
});
