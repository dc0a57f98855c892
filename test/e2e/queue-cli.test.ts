// Issue 13: `pillarbox queue list|show|retry|delete|flush` as an admin runs it (the CLI process on a
// data folder), on a queue filled through the store the way the server fills it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliResult } from '../helpers/server.ts';
import { openStore, defaultDatabase } from '../../src/store/open.ts';
import { StoreError, type Store } from '../../src/store/store.ts';
import type { QueueMessage } from '../../src/store/queue.ts';

let dataDir: string;
const cli = (args: string[]): Promise<CliResult> => runCli([...args, '--data', dataDir]);
const HOUR = 3_600_000;

async function withStore<T>(fn: (s: Store) => Promise<T>): Promise<T> {
  const s = await openStore(defaultDatabase(dataDir), dataDir);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

async function enqueue(s: Store, rcpts: string[], mailFrom = 'adam@example.com'): Promise<QueueMessage> {
  const staged = await s.stageBlob(Buffer.from(`From: ${mailFrom}\r\nSubject: out ${rcpts[0]}\r\n\r\nhi\r\n`));
  try {
    const now = Date.now();
    return await s.queue.enqueue({ blob: staged, mailFrom, origin: mailFrom ? 'submission' : 'dsn', recipients: rcpts.map((address) => ({ address })), now: now - HOUR, expiresAt: now + 100 * HOUR });
  } finally {
    staged.release();
  }
}

async function listJson(): Promise<{ messages: QueueMessage[]; recipients: number }> {
  const r = await cli(['queue', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

let first: QueueMessage;
let second: QueueMessage;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'pillarbox-queue-cli-'));
  await withStore(async (s) => {
    first = await enqueue(s, ['bob@remote.test', 'carol@other.test']);
    // One attempt each: bob deferred by a greylisting server, due again in an hour; carol's server busy.
    const bs = await s.queue.claim({ now: Date.now(), owner: 'test', leaseMs: 60_000, limit: 10 });
    assert.equal(bs.length, 2);
    const leased = bs.flatMap((b) => b.recipients);
    const bob = leased.find((r) => r.address === 'bob@remote.test')!;
    const others = leased.filter((r) => r !== bob);
    await s.queue.settle(
      'test',
      [
        { recipientId: bob.id, kind: 'deferred', reply: '451-4.7.1 greylisted\r\n451 4.7.1 come back later', nextAttemptAt: Date.now() + HOUR },
        ...others.map((r) => ({ recipientId: r.id, kind: 'deferred' as const, reply: '421 busy', nextAttemptAt: Date.now() + 2 * HOUR })),
      ],
      Date.now(),
    );
    second = await enqueue(s, ['dave@remote.test'], '');
  });
});
after(() => rmSync(dataDir, { recursive: true, force: true }));

test('queue --help and the main help name the commands', async () => {
  const h = await runCli(['queue', '--help']);
  assert.equal(h.code, 0, h.stderr);
  for (const w of ['queue list', 'queue show ID', 'queue retry ID', 'queue delete ID', 'queue flush']) assert.ok(h.stdout.includes(w), w);
  assert.match((await runCli(['--help'])).stdout, /queue list\|show\|retry\|delete\|flush/);
});

test('queue list: every message with its sender, age and recipients (state, attempts, next attempt, last reply)', async () => {
  const r = await cli(['queue', 'list']);
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout;
  assert.match(out, /^2 messages, 3 recipients waiting; due now/);
  assert.match(out, new RegExp(`${first.id}  age 1h0[01]m  from <adam@example\\.com>`));
  assert.match(out, new RegExp(`${second.id}  age 1h0[01]m  from <>`));
  assert.match(out, /bob@remote\.test {2}queued {2}1 attempt {2}next in (59m|1h00m) {2}451-4\.7\.1 greylisted 451 4\.7\.1 come back later\n/);
  assert.match(out, /dave@remote\.test {2}queued {2}0 attempts {2}due now\n/);
  assert.ok(out.indexOf(first.id) < out.indexOf(second.id), 'oldest first');

  const j = await listJson();
  assert.equal(j.messages.length, 2);
  assert.equal(j.recipients, 3);
  assert.deepEqual(j.messages.map((m) => m.id), [first.id, second.id]);
  const bob = j.messages[0]!.recipients.find((x) => x.address === 'bob@remote.test')!;
  assert.equal(bob.attempts, 1);
  assert.equal(bob.lastReply, '451-4.7.1 greylisted\r\n451 4.7.1 come back later');
  assert.ok(bob.nextAttemptAt > Date.now());

  const one = await cli(['queue', 'list', '--limit', '1']);
  assert.match(one.stdout, /more messages not shown \(--limit 1\)/);
  assert.ok(!one.stdout.includes(second.id));
});

test('queue show: one message in full, text and JSON; unknown IDs refused', async () => {
  const r = await cli(['queue', 'show', first.id]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /expires {3}\d{4}-\d\d-\d\dT/);
  assert.match(r.stdout, /carol@other\.test {2}queued {2}1 attempt {2}next in/);
  assert.match(r.stdout, /last tried \d+s ago/);
  const j = JSON.parse((await cli(['queue', 'show', first.id, '--json'])).stdout) as QueueMessage;
  assert.equal(j.id, first.id);
  assert.equal(j.blob.id, first.blob.id);
  const missing = await cli(['queue', 'show', 'nosuchmessage123']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no queued message nosuchmessage123/);
  const bad = await cli(['queue', 'show']);
  assert.notEqual(bad.code, 0);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
});

test('queue retry ID, retry --all and flush make waiting recipients due now', async () => {
  const r = await cli(['queue', 'retry', first.id]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${first.id}: 2 recipients due now`));
  let j = await listJson();
  assert.ok(j.messages[0]!.recipients.every((x) => x.nextAttemptAt <= Date.now()));
  // Deferred again; flush and retry --all bring them back.
  await withStore(async (s) => {
    const bs = await s.queue.claim({ now: Date.now(), owner: 'test', leaseMs: 60_000, limit: 10 });
    const outcomes = bs.flatMap((b) => b.recipients.map((x) => ({ recipientId: x.id, kind: 'deferred' as const, reply: '421 later', nextAttemptAt: Date.now() + HOUR })));
    assert.equal(await s.queue.settle('test', outcomes, Date.now()), 3);
  });
  const f = await cli(['queue', 'flush']);
  assert.equal(f.code, 0, f.stderr);
  assert.match(f.stdout, /^3 recipients due now; the server picks them up at its next poll/);
  j = await listJson();
  assert.ok(j.messages.every((m) => m.recipients.every((x) => x.nextAttemptAt <= Date.now())));
  const all = JSON.parse((await cli(['queue', 'retry', '--all', '--json'])).stdout);
  assert.deepEqual(all, { retried: 0 });
  const missing = await cli(['queue', 'retry', 'nosuchmessage123']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no queued message/);
});

test('queue delete drops the message and its body; a second delete says so', async () => {
  const r = await cli(['queue', 'delete', second.id]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${second.id} deleted`));
  const again = await cli(['queue', 'delete', second.id]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /no queued message/);
  await withStore(async (s) => {
    assert.equal(await s.queue.get(second.id), null);
    await assert.rejects(s.readBlob(second.blob.id), (e) => e instanceof StoreError && e.code === 'not-found');
  });
  assert.equal((await cli(['queue', 'delete', first.id])).code, 0);
  const empty = await cli(['queue', 'list']);
  assert.equal(empty.stdout.trim(), 'the queue is empty');
  const unknown = await cli(['queue', 'purge']);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /unknown queue subcommand "purge"/);
});
