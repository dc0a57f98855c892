// Bulk steps are time-bounded (issue 12: IMAP bulk STORE steps of 110–114 ms, UID COPY 174 ms in
// the fuzz run). A step's size is a guess from the steps before it (src/store/chunks.ts); when the
// rows suddenly cost more — here 2,000 cheap messages, then 2,000 that carry 1,500 keywords each —
// the old steps, sized for the cheap rows, took 150 ms of CPU each. Now every step also stops
// itself after ~10 ms between rows (Chunker.deadline), and the first step is small. Measured in
// CPU time of one event-loop turn (test/helpers/turns.ts), so a loaded machine does not flip it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { fillSqlite } from '../helpers/bulk-fill.ts';
import { watchTurns } from '../helpers/turns.ts';
import { defaultDatabase, openStore } from '../../src/store/open.ts';
import { SystemFlag } from '../../src/store/store.ts';

const CHEAP = 2000;
const HEAVY = 2000;
const KEYWORDS = JSON.stringify(Array.from({ length: 1500 }, (_, i) => `kw${i}`));
/** Before: a turn of 153 ms CPU (the first heavy step, sized for cheap rows); now 11–16 ms (a ~10 ms step plus its commit). */
const TURN_LIMIT_MS = 50;

test('a bulk STORE / COPY / EXPUNGE whose rows become expensive half-way keeps every turn short', { timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pillarbox-bulk-steps-'));
  try {
    await fillSqlite(dir, ['big@example.com'], { address: 'big@example.com', mailbox: 'INBOX', count: CHEAP + HEAVY });
    const db = new Database(defaultDatabase(dir));
    db.prepare('UPDATE messages SET keywords = ? WHERE uid > ?').run(KEYWORDS, CHEAP);
    db.close();
    const store = await openStore(defaultDatabase(dir), dir);
    try {
      const acct = (await store.getAccount('big@example.com'))!;
      const inbox = (await store.getMailbox(acct.id, 'INBOX'))!;
      const archive = (await store.getMailbox(acct.id, 'Archive'))!;
      const uids = Array.from({ length: CHEAP + HEAVY }, (_, i) => i + 1);
      const phases: Array<[string, () => Promise<unknown>]> = [
        ['STORE +FLAGS (\\Seen)', () => store.storeFlags(inbox.id, uids, 'add', { systemFlags: SystemFlag.Seen, keywords: [] }, {})],
        ['STORE +FLAGS ($New)', () => store.storeFlags(inbox.id, uids, 'add', { systemFlags: 0, keywords: ['$New'] }, {})],
        ['COPY', () => store.copyMessages(inbox.id, uids, archive.id, {})],
        ['MOVE', () => store.moveMessages(archive.id, uids, inbox.id, {})],
        ['STORE +FLAGS (\\Deleted) + EXPUNGE', async () => {
          await store.storeFlags(inbox.id, uids, 'add', { systemFlags: SystemFlag.Deleted, keywords: [] }, {});
          await store.expunge(inbox.id, {});
        }],
      ];
      for (const [name, run] of phases) {
        const watch = watchTurns();
        const c0 = process.threadCpuUsage();
        await run();
        const c1 = process.threadCpuUsage();
        const r = watch.stop();
        const cpu = (c1.user - c0.user + c1.system - c0.system) / 1000;
        t.diagnostic(`${name}: ${cpu.toFixed(0)} ms CPU in ${r.turns} turns, longest turn ${r.maxMs.toFixed(1)} ms CPU`);
        assert.ok(r.maxMs < TURN_LIMIT_MS, `${name}: a turn of ${r.maxMs.toFixed(1)} ms CPU (limit ${TURN_LIMIT_MS})`);
      }
      // All of it was done: the originals expunged, the moved copies back in INBOX above them.
      const left = await store.listMessages(inbox.id);
      assert.equal(left.length, CHEAP + HEAVY);
      assert.ok(left.every((m) => m.uid > CHEAP + HEAVY && m.systemFlags === SystemFlag.Seen));
      assert.equal(left.filter((m) => m.keywords.length > 1000).length, HEAVY);
      assert.equal((await store.listMessages(archive.id)).length, 0);
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
