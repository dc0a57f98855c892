// Real POP3 clients (Python poplib, fetchmail, getmail6, curl) against the real `pillarbox serve`
// download mailboxes of 200 messages
// byte-exact; a second run downloads nothing, also after a server restart; the account's POP
// policy has its effect on the store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SystemFlag, type AccountSettings } from '../../../src/store/store.ts';
import { makeMessage } from './harness.ts';
import { serverTarget, type Target } from './target.ts';
import { runPoplib, runFetchmail, runGetmail, runCurl, curlList, assertSameMessages } from './clients.ts';
import { needs } from '../../helpers/external.ts';

const POPLIB = needs('python3');
const FETCHMAIL = needs('fetchmail');
const GETMAIL = needs('getmail');
const CURL = needs('curl');

const COUNT = 200;
const PASSWORD = 'pop secret';
let t: Target;
let work: string;
let n = 0;
/** Checks the tests above leave for after the one server restart (a restart costs seconds). */
const afterRestart: Array<() => Promise<void>> = [];

before(async () => {
  t = await serverTarget();
  work = mkdtempSync(join(tmpdir(), 'pillarbox-pop3-clients-'));
});
after(async () => {
  await t.close();
  rmSync(work, { recursive: true, force: true });
});

/** 200 messages of varied size (one of 1 MB), with dot lines, 8-bit text and a long line. */
function mailbox(tag: number): Buffer[] {
  return Array.from({ length: COUNT }, (_, i) => {
    const extra = i === 7 ? 1024 * 1024 : (i * 7919) % 20_000;
    return Buffer.from(makeMessage(tag * 1000 + i, extra));
  });
}

async function account(settings?: AccountSettings, count = COUNT) {
  const id = ++n;
  const address = `client${id}@example.com`;
  await t.addAccount(address, PASSWORD, settings);
  const bodies = mailbox(id).slice(0, count);
  await t.deliver(address, bodies);
  const dir = join(work, `acc${id}`);
  return { address, bodies, dir };
}

const seenAll = (ms: Array<{ systemFlags: number }>) => ms.every((m) => (m.systemFlags & SystemFlag.Seen) !== 0);

test('poplib over STLS leaving mail on the server: 200 byte-exact, then nothing', POPLIB, async () => {
  const { address, bodies, dir } = await account();
  const o = { user: address, password: PASSWORD, stateFile: join(dir, 'uidl-state'), delete: false, stls: true };
  assert.equal(await runPoplib(t, { ...o, outDir: join(dir, 'run1') }), COUNT);
  assertSameMessages(join(dir, 'run1'), bodies);
  assert.equal(await runPoplib(t, { ...o, outDir: join(dir, 'run2') }), 0);
  const inbox = await t.messages(address);
  assert.equal(inbox.length, COUNT);
  assert.ok(seenAll(inbox), 'RETR marked every message \\Seen');
  afterRestart.push(async () => assert.equal(await runPoplib(t, { ...o, outDir: join(dir, 'run3') }), 0, 'poplib: UIDLs are stable across a restart'));
});

test('poplib deleting under the keep policy: 200 byte-exact, then nothing (hidden from POP)', POPLIB, async () => {
  const { address, bodies, dir } = await account({ pop: { deleteAction: 'keep' } });
  // A client without memory: each run has a fresh UIDL state, so only the server's policy hides mail.
  const run = (k: string) => runPoplib(t, { user: address, password: PASSWORD, stateFile: join(dir, `state-${k}`), delete: true, outDir: join(dir, k) });
  assert.equal(await run('run1'), COUNT);
  assertSameMessages(join(dir, 'run1'), bodies);
  assert.equal(await run('run2'), 0);
  const inbox = await t.messages(address);
  assert.equal(inbox.length, COUNT, 'keep: the messages stay in INBOX for IMAP');
  assert.ok(seenAll(inbox));
  afterRestart.push(async () => assert.equal(await run('run3'), 0, 'poplib under keep: still hidden after a restart'));
});

test('fetchmail with keep: 200 byte-exact, a second run downloads nothing', FETCHMAIL, async () => {
  const { address, bodies, dir } = await account();
  const o = { user: address, password: PASSWORD, workDir: join(dir, 'fm'), keep: true };
  assert.equal(await runFetchmail(t, { ...o, outDir: join(dir, 'run1') }), COUNT);
  assertSameMessages(join(dir, 'run1'), bodies, { lf: true });
  assert.equal(await runFetchmail(t, { ...o, outDir: join(dir, 'run2') }), 0);
  assert.equal((await t.messages(address)).length, COUNT);
  afterRestart.push(async () => assert.equal(await runFetchmail(t, { ...o, outDir: join(dir, 'run3') }), 0, 'fetchmail keep after a restart'));
});

test('fetchmail without keep (expunge policy): 200 byte-exact, INBOX emptied, a second run downloads nothing', FETCHMAIL, async () => {
  const { address, bodies, dir } = await account();
  const o = { user: address, password: PASSWORD, workDir: join(dir, 'fm'), keep: false };
  assert.equal(await runFetchmail(t, { ...o, outDir: join(dir, 'run1') }), COUNT);
  assertSameMessages(join(dir, 'run1'), bodies, { lf: true });
  assert.equal((await t.messages(address)).length, 0);
  assert.equal(await runFetchmail(t, { ...o, outDir: join(dir, 'run2') }), 0);
});

test('getmail6: 200 byte-exact, then nothing', GETMAIL, async () => {
  const { address, bodies, dir } = await account();
  const o = { user: address, password: PASSWORD, workDir: join(dir, 'gm'), delete: false };
  assert.equal(await runGetmail(t, { ...o, outDir: join(dir, 'run1') }), COUNT);
  assertSameMessages(join(dir, 'run1'), bodies);
  assert.equal(await runGetmail(t, { ...o, outDir: join(dir, 'run2') }), 0);
  afterRestart.push(async () => assert.equal(await runGetmail(t, { ...o, outDir: join(dir, 'run3') }), 0, 'getmail after a restart'));
});

test('curl pop3s: 200 byte-exact; DELE under keep hides them from POP but not from the store', CURL, async () => {
  const { address, bodies, dir } = await account({ pop: { deleteAction: 'keep' } });
  const o = { user: address, password: PASSWORD };
  assert.equal((await curlList(t, o)).length, COUNT);
  await runCurl(t, { ...o, outDir: join(dir, 'run1'), count: COUNT });
  assertSameMessages(join(dir, 'run1'), bodies);
  await runCurl(t, { ...o, outDir: join(dir, 'dele'), count: COUNT, dele: true });
  assert.deepEqual(await curlList(t, o), []);
  const inbox = await t.messages(address);
  assert.equal(inbox.length, COUNT);
  assert.ok(seenAll(inbox));
  afterRestart.push(async () => assert.deepEqual(await curlList(t, o), [], 'curl after a restart'));
});

test('after a server restart, a second run of each client above still downloads nothing', async () => {
  const ran = [POPLIB, POPLIB, FETCHMAIL, GETMAIL, CURL].filter((o) => !o.skip).length;
  assert.equal(afterRestart.length, ran, 'every client test above that ran left its check');
  await t.restart();
  for (const check of afterRestart) await check();
});

test('POP deletion under expunge, trash and archive, as the store sees it afterwards', POPLIB, async () => {
  for (const action of ['expunge', 'trash', 'archive'] as const) {
    const { address, dir } = await account({ pop: { deleteAction: action } }, 50);
    assert.equal(await runPoplib(t, { user: address, password: PASSWORD, outDir: join(dir, 'run1'), stateFile: join(dir, 'state'), delete: true }), 50);
    assert.equal((await t.messages(address)).length, 0, `${action}: INBOX empty`);
    if (action !== 'expunge') {
      const moved = await t.messages(address, action === 'trash' ? '\\Trash' : '\\Archive');
      assert.equal(moved.length, 50, `${action}: all in the special-use mailbox`);
      assert.ok(seenAll(moved));
    } else {
      assert.equal((await t.messages(address, '\\Trash')).length, 0);
    }
  }
});

test('recent mode: two recent: clients each get all 200 while a normal client deleted them in between (keep policy)', POPLIB, async () => {
  const { address, bodies, dir } = await account({ pop: { deleteAction: 'keep' } });
  assert.equal(await runPoplib(t, { user: address, password: PASSWORD, outDir: join(dir, 'normal'), stateFile: join(dir, 's0'), delete: true }), COUNT);
  for (const k of ['a', 'b']) {
    assert.equal(await runPoplib(t, { user: `recent:${address}`, password: PASSWORD, outDir: join(dir, k), stateFile: join(dir, `s-${k}`), delete: true }), COUNT);
    assertSameMessages(join(dir, k), bodies);
  }
  assert.equal((await t.messages(address)).length, COUNT);
});

test('recent mode after a normal client expunged the messages', POPLIB, async () => {
  const { address, dir } = await account();
  assert.equal(await runPoplib(t, { user: address, password: PASSWORD, outDir: join(dir, 'normal'), stateFile: join(dir, 's0'), delete: true }), COUNT);
  assert.equal(await runPoplib(t, { user: `recent:${address}`, password: PASSWORD, outDir: join(dir, 'a'), stateFile: join(dir, 's-a'), delete: false }), COUNT);
  assert.equal(readdirSync(join(dir, 'a')).length, COUNT);
});
