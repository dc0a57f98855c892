// The mailbox tree limits (src/store/mailbox-limits.ts) hold in every backend, for every caller:
// StoreError 'limit' on a create or rename past maxMailboxes / maxMailboxNameBytes / maxMailboxDepth.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { StoreError, DEFAULT_MAILBOXES, type Store } from '../../src/store/store.ts';
import type { MailboxLimits } from '../../src/store/mailbox-limits.ts';
import { PG_URL, dropSchema, freshSchemaName, pgAvailability, probePostgres } from './pg-env.ts';

const LIMITS: MailboxLimits = { maxMailboxes: 12, maxMailboxNameBytes: 40, maxMailboxDepth: 4 };

const backends: Array<{ name: string; skip?: string; fail?: string; open(): Promise<{ store: Store; close(): Promise<void> }> }> = [
  {
    name: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'pillarbox-limits-'));
      const store = await openSqliteStore({ path: join(dir, 's.sqlite'), blobDir: join(dir, 'blobs'), mailboxLimits: LIMITS });
      return { store, close: async () => { await store.close(); rmSync(dir, { recursive: true, force: true }); } };
    },
  },
  {
    name: 'postgres',
    ...pgAvailability(await probePostgres()),
    async open() {
      const { openPostgresStore } = await import('../../src/store/postgres/postgres-store.ts');
      const schema = freshSchemaName();
      const store = await openPostgresStore({ url: PG_URL, schema, mailboxLimits: LIMITS });
      return { store, close: async () => { await store.close(); await dropSchema(schema); } };
    },
  },
];

const isLimit = (re: RegExp) => (err: unknown) => err instanceof StoreError && err.code === 'limit' && re.test(err.message);

for (const b of backends) {
  describe(`mailbox limits (${b.name})`, { skip: b.skip }, () => {
    it('refuses too many mailboxes, too long or too deep names, and renames that go too deep', async () => {
      if (b.fail) assert.fail(b.fail);
      const { store, close } = await b.open();
      try {
        await store.addDomain('example.org');
        const a = await store.createAccount({ address: 'u@example.org', passwordHash: 'h' });
        await assert.rejects(store.createMailbox(a.id, 'x'.repeat(41)), isLimit(/41 bytes long; the limit is 40/));
        await assert.rejects(store.createMailbox(a.id, 'é'.repeat(21)), isLimit(/42 bytes/), 'bytes, not characters');
        await assert.rejects(store.createMailbox(a.id, 'a/b/c/d/e'), isLimit(/5 hierarchy levels; the limit is 4/));
        await store.createMailbox(a.id, 'a');
        await store.createMailbox(a.id, 'a/b');
        await store.createMailbox(a.id, 'a/b/c');
        // The inferiors move too: a/b/c would become x/y/z/b/c.
        await assert.rejects(store.renameMailbox(a.id, 'a', 'x/y/z'), isLimit(/5 hierarchy levels/));
        assert.ok(await store.getMailbox(a.id, 'a/b/c'), 'nothing was renamed');
        const have = DEFAULT_MAILBOXES.length + 3;
        for (let i = have; i < LIMITS.maxMailboxes; i++) await store.createMailbox(a.id, `m${i}`);
        await assert.rejects(store.createMailbox(a.id, 'one-more'), isLimit(/at most 12 mailboxes/));
        await assert.rejects(store.renameMailbox(a.id, 'INBOX', 'Old'), isLimit(/at most 12 mailboxes/), 'renaming INBOX makes a mailbox');
        await store.renameMailbox(a.id, 'm10', 'n10');
        assert.equal((await store.listMailboxes(a.id)).length, LIMITS.maxMailboxes);
      } finally {
        await close();
      }
    });
  });
}
