// The store conformance suite: the same tests against every Store implementation (issue #2).
// Backends: sqlite (a temp dir per test) and postgres (a fresh schema per test inside the
// machine's PostgreSQL, dropped afterwards). PostgreSQL unreachable: skipped with the reason
// printed, except with CI=true, where that is a failure.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Change } from '../../src/store/bus.ts';
import { DEFAULT_MAILBOXES, POP_DELETED_KEYWORD, StoreError, SystemFlag, type Account, type Mailbox, type PopUpdate, type Store } from '../../src/store/store.ts';
import type { MessageMeta } from '../../src/protocol/mime/types.ts';
import { PG_URL, dropSchema, freshSchemaName, pgAvailability, probePostgres } from './pg-env.ts';

// ------------------------------------------------------------------ backends

interface Opened {
  store: Store;
  close(): Promise<void>;
}
interface Backend {
  name: string;
  /** Why the backend can't run here (skipped), or undefined. */
  skip?: string;
  /** Why the backend must fail here (CI without PostgreSQL), or undefined. */
  fail?: string;
  open(): Promise<Opened>;
}

const backends: Backend[] = [];

const sqliteModule = fileURLToPath(new URL('../../src/store/sqlite/sqlite-store.ts', import.meta.url));
if (existsSync(sqliteModule)) {
  backends.push({
    name: 'sqlite',
    async open() {
      const mod = (await import(pathToFileURL(sqliteModule).href)) as {
        openSqliteStore(o: { path: string; blobDir: string }): Promise<Store>;
      };
      const dir = mkdtempSync(join(tmpdir(), 'pillarbox-conf-'));
      const store = await mod.openSqliteStore({ path: join(dir, 'store.sqlite'), blobDir: join(dir, 'blobs') });
      return {
        store,
        async close() {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  });
}

const pgProblem = await probePostgres();
backends.push({
  name: 'postgres',
  ...pgAvailability(pgProblem),
  async open() {
    const { openPostgresStore } = await import('../../src/store/postgres/postgres-store.ts');
    const schema = freshSchemaName();
    const store = await openPostgresStore({ url: PG_URL, schema });
    return {
      store,
      async close() {
        await store.close();
        await dropSchema(schema);
      },
    };
  },
});

// ------------------------------------------------------------------ helpers

function meta(subject: string, size: number): MessageMeta {
  return {
    v: 1,
    envelope: {
      date: null,
      subject,
      from: [{ name: null, adl: null, mailbox: 'sender', host: 'example.net' }],
      sender: null,
      replyTo: null,
      to: null,
      cc: null,
      bcc: null,
      inReplyTo: null,
      messageId: null,
    },
    root: {
      headerStart: 0,
      headerEnd: 0,
      bodyStart: 0,
      bodyEnd: size,
      type: 'text',
      subtype: 'plain',
      params: [],
      id: null,
      description: null,
      encoding: '7BIT',
      md5: null,
      disposition: null,
      language: null,
      location: null,
      size,
      lines: 1,
    },
    sentDate: null,
    search: { subject, from: 'sender@example.net', to: '', cc: '', bcc: '', fields: [['subject', subject]] },
  };
}

let bodyCounter = 0;
/** A unique RFC 5322 message of (at least) `size` bytes. */
function body(tag = 'm', size = 200): Buffer {
  const head = `From: sender@example.net\r\nSubject: ${tag} ${++bodyCounter} ${randomBytes(6).toString('hex')}\r\n\r\n`;
  return Buffer.from(head + 'x'.repeat(Math.max(0, size - head.length - 2)) + '\r\n');
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function put(store: Store, mailboxId: number, raw: Buffer, opts: { systemFlags?: number; keywords?: string[]; origin?: string } = {}) {
  const staged = await store.stageBlob(raw);
  try {
    const r = await store.append(staged, meta('t', raw.length), {
      mailboxId,
      ...(opts.systemFlags !== undefined ? { systemFlags: opts.systemFlags } : {}),
      ...(opts.keywords ? { keywords: opts.keywords } : {}),
    }, opts.origin !== undefined ? { origin: opts.origin } : {});
    return { ...r, size: raw.length, blobId: staged.id };
  } finally {
    staged.release();
  }
}

async function account(store: Store, address: string, quota = 0): Promise<{ account: Account; boxes: Record<string, Mailbox> }> {
  const domain = address.slice(address.indexOf('@') + 1);
  if (!(await store.getDomain(domain))) await store.addDomain(domain);
  const acc = await store.createAccount({ address, passwordHash: '$scrypt$test', quota });
  const boxes: Record<string, Mailbox> = {};
  for (const mb of await store.listMailboxes(acc.id)) boxes[mb.name] = mb;
  return { account: acc, boxes };
}

function storeError(code: StoreError['code']) {
  return (err: unknown) => {
    assert.ok(err instanceof StoreError, `expected StoreError '${code}', got ${String(err)}`);
    assert.equal(err.code, code, `expected StoreError '${code}', got '${err.code}': ${err.message}`);
    return true;
  };
}

function isIncreasing(xs: number[]): boolean {
  return xs.every((x, i) => i === 0 || x > xs[i - 1]!);
}

async function usage(store: Store, accountId: number): Promise<{ bytes: number; count: number }> {
  let bytes = 0;
  let count = 0;
  for (const mb of await store.listMailboxes(accountId)) {
    for (const m of await store.listMessages(mb.id)) {
      bytes += m.size;
      count++;
    }
  }
  return { bytes, count };
}

function sameBytes(actual: Buffer, expected: Buffer, what = 'bytes'): void {
  assert.ok(Buffer.isBuffer(actual), `${what}: not a Buffer`);
  assert.ok(actual.equals(expected), `${what}: got ${actual.length} bytes, expected ${expected.length} (sha256 ${sha256(actual).slice(0, 12)} vs ${sha256(expected).slice(0, 12)})`);
}

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Records every change of the given accounts, in arrival order (their journal seqs apart: `seqs`). */
function record(store: Store, ...accountIds: number[]) {
  const seen: Change[] = [];
  const seqs: number[] = [];
  const offs = accountIds.map((id) =>
    store.bus.subscribe(id, (cs) => {
      for (const { seq, ...c } of cs) {
        seqs.push(seq ?? -1);
        seen.push(c as Change);
      }
    }),
  );
  let mark = 0;
  return {
    all: seen,
    seqs,
    /** Changes since the previous take(). */
    take(): Change[] {
      const out = seen.slice(mark);
      mark = seen.length;
      return out;
    },
    stop() {
      for (const off of offs) off();
    },
  };
}

// ------------------------------------------------------------------ the suite

for (const backend of backends) {
  if (backend.fail) {
    it(`${backend.name} store conformance`, () => {
      assert.fail(`CI=true and the ${backend.name} backend cannot run: ${backend.fail}`);
    });
    continue;
  }
  if (backend.skip) {
    console.log(`# ${backend.name} conformance skipped: ${backend.skip}`);
    it(`${backend.name} store conformance`, { skip: backend.skip }, () => {});
    continue;
  }

  describe(`${backend.name} store conformance`, () => {
    /** Each test gets a fresh store. */
    async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
      const o = await backend.open();
      try {
        await fn(o.store);
      } finally {
        await o.close();
      }
    }

    it('domains: add, get, list, remove, with error codes', () =>
      withStore(async (store) => {
        assert.equal(store.kind, backend.name);
        const d = await store.addDomain('Example.COM');
        assert.equal(d.name, 'example.com');
        assert.ok(d.createdAt instanceof Date);
        await assert.rejects(store.addDomain('example.com'), storeError('exists'));
        await store.addDomain('example.org');
        assert.deepEqual((await store.listDomains()).map((x) => x.name), ['example.com', 'example.org']);
        assert.equal((await store.getDomain('EXAMPLE.com'))?.name, 'example.com');
        assert.equal(await store.getDomain('nope.test'), null);
        await assert.rejects(store.removeDomain('nope.test'), storeError('not-found'));
        const a = await store.createAccount({ address: 'u@example.org', passwordHash: 'h' });
        await assert.rejects(store.removeDomain('example.org'), storeError('invalid'));
        await store.removeAccount(a.id);
        await store.removeDomain('example.org');
        assert.deepEqual((await store.listDomains()).map((x) => x.name), ['example.com']);
      }));

    it('accounts and aliases: CRUD, duplicates, unknown domain, account/alias address clash', () =>
      withStore(async (store) => {
        await store.addDomain('example.com');
        const a = await store.createAccount({ address: 'Alice@Example.com', passwordHash: 'hash-1', quota: 5000 });
        assert.equal(a.address, 'alice@example.com');
        assert.equal(a.domain, 'example.com');
        assert.equal(a.passwordHash, 'hash-1');
        assert.equal(a.quota, 5000);
        assert.equal(a.usedBytes, 0);
        assert.equal(a.messageCount, 0);
        assert.deepEqual(a.settings, {});
        await assert.rejects(store.createAccount({ address: 'ALICE@example.com', passwordHash: 'x' }), storeError('exists'));
        await assert.rejects(store.createAccount({ address: 'bob@unknown.test', passwordHash: 'x' }), storeError('not-found'));
        const b = await store.createAccount({ address: 'bob@example.com', passwordHash: 'hash-2' });
        assert.notEqual(a.id, b.id);
        assert.equal((await store.getAccount('ALICE@EXAMPLE.COM'))?.id, a.id);
        assert.equal((await store.getAccountById(b.id))?.address, 'bob@example.com');
        assert.equal(await store.getAccount('nobody@example.com'), null);
        assert.equal(await store.getAccountById(999999), null);
        assert.deepEqual((await store.listAccounts('example.com')).map((x) => x.address), ['alice@example.com', 'bob@example.com']);
        assert.equal((await store.listAccounts()).length, 2);

        const u = await store.updateAccount(a.id, { quota: 9000, passwordHash: 'hash-3', settings: { imapMaxConnections: 2, pop: { markSeen: false } } });
        assert.equal(u.quota, 9000);
        assert.equal(u.passwordHash, 'hash-3');
        assert.deepEqual(u.settings, { imapMaxConnections: 2, pop: { markSeen: false } });
        assert.deepEqual((await store.getAccountById(a.id))?.settings, { imapMaxConnections: 2, pop: { markSeen: false } });
        await assert.rejects(store.updateAccount(999999, { quota: 1 }), storeError('not-found'));
        await assert.rejects(store.updateAccount(a.id, { quota: -1 }), storeError('invalid'));

        const al = await store.setAlias('Sales@Example.com', ['Alice@example.com', 'someone@elsewhere.test']);
        assert.equal(al.address, 'sales@example.com');
        assert.deepEqual(al.targets, ['alice@example.com', 'someone@elsewhere.test']);
        assert.deepEqual((await store.getAlias('SALES@example.com'))?.targets, ['alice@example.com', 'someone@elsewhere.test']);
        await store.setAlias('sales@example.com', ['bob@example.com']);
        assert.deepEqual((await store.getAlias('sales@example.com'))?.targets, ['bob@example.com']);
        await store.setAlias('@example.com', ['alice@example.com']);
        assert.deepEqual((await store.listAliases('example.com')).map((x) => x.address), ['@example.com', 'sales@example.com']);
        assert.equal((await store.listAliases()).length, 2);
        // An alias may share an account's address (support@ → support@, adam@, betty@): the
        // alias decides where that address's mail goes.
        const shared = await store.setAlias('alice@example.com', ['alice@example.com', 'bob@example.com']);
        assert.deepEqual(shared.targets, ['alice@example.com', 'bob@example.com']);
        assert.ok(await store.getAccount('alice@example.com'), 'the account is still there');
        await store.removeAlias('alice@example.com');
        await assert.rejects(store.setAlias('x@unknown.test', ['bob@example.com']), storeError('not-found'));
        await store.removeAlias('Sales@example.com');
        assert.equal(await store.getAlias('sales@example.com'), null);
        await assert.rejects(store.removeAlias('sales@example.com'), storeError('not-found'));
        // Now free: the address can become an account.
        await store.createAccount({ address: 'sales@example.com', passwordHash: 'x' });
      }));

    it('new accounts get the default mailboxes with special-use attributes', () =>
      withStore(async (store) => {
        const { account: acc } = await account(store, 'a@example.com');
        const boxes = await store.listMailboxes(acc.id);
        assert.equal(boxes[0]?.name, 'INBOX');
        assert.deepEqual(
          boxes.map((b) => [b.name, b.specialUse]).sort(),
          DEFAULT_MAILBOXES.map((m) => [m.name, m.specialUse]).sort(),
        );
        // The default mailboxes start subscribed (as the server's own, like Dovecot's auto-subscribed ones).
        assert.deepEqual((await store.listSubscriptions(acc.id)).sort(), DEFAULT_MAILBOXES.map((m) => m.name).sort());
        for (const b of boxes) {
          assert.equal(b.accountId, acc.id);
          assert.equal(b.uidNext, 1);
          assert.ok(b.highestModseq >= 1);
          assert.ok(Number.isInteger(b.uidValidity) && b.uidValidity > 0 && b.uidValidity <= 0xffffffff, `uidvalidity ${b.uidValidity}`);
          assert.deepEqual(await store.getMailboxById(b.id), b);
          const st = await store.mailboxStatus(b.id);
          assert.deepEqual(st, { messages: 0, unseen: 0, deleted: 0, size: 0, uidNext: 1, uidValidity: b.uidValidity, highestModseq: b.highestModseq, recent: 0 });
        }
        assert.equal(new Set(boxes.map((b) => b.uidValidity)).size, boxes.length);
        assert.equal((await store.getMailbox(acc.id, 'inbox'))?.name, 'INBOX');
        assert.equal(await store.getMailbox(acc.id, 'Nope'), null);
        assert.equal(await store.getMailboxById(999999), null);
        await assert.rejects(store.mailboxStatus(999999), storeError('not-found'));
      }));

    it('mailboxes: create, rename with children, INBOX rename (RFC 9051 §6.3.6), delete; UIDVALIDITY never reused', () =>
      withStore(async (store) => {
        const { account: acc, boxes } = await account(store, 'a@example.com');
        const seen = new Set(Object.values(boxes).map((b) => b.uidValidity));
        const fresh = (mb: Mailbox) => {
          assert.ok(!seen.has(mb.uidValidity), `UIDVALIDITY ${mb.uidValidity} of ${mb.name} was used before`);
          seen.add(mb.uidValidity);
        };

        const work = await store.createMailbox(acc.id, 'Work');
        fresh(work);
        assert.equal(work.name, 'Work');
        assert.equal(work.specialUse, null);
        assert.equal(work.uidNext, 1);
        await assert.rejects(store.createMailbox(acc.id, 'Work'), storeError('exists'));
        await assert.rejects(store.createMailbox(acc.id, 'inbox'), storeError('exists'));
        await assert.rejects(store.createMailbox(acc.id, ''), storeError('invalid'));
        await assert.rejects(store.createMailbox(acc.id, 'a//b'), storeError('invalid'));
        const flagged = await store.createMailbox(acc.id, 'Starred', { specialUse: '\\Flagged', subscribed: false });
        fresh(flagged);
        assert.equal(flagged.specialUse, '\\Flagged');
        const proj = await store.createMailbox(acc.id, 'Work/Projects');
        fresh(proj);
        const y = await store.createMailbox(acc.id, 'Work/Projects/2026');
        fresh(y);
        const inProj = await put(store, proj.id, body('proj'));

        // Rename with children: ids, UIDVALIDITY and contents stay.
        await store.renameMailbox(acc.id, 'Work', 'Jobs');
        const names = (await store.listMailboxes(acc.id)).map((b) => b.name);
        assert.ok(!names.some((n) => n === 'Work' || n.startsWith('Work/')), names.join(','));
        const jobs = await store.getMailbox(acc.id, 'Jobs');
        const jobsProj = await store.getMailbox(acc.id, 'Jobs/Projects');
        const jobsY = await store.getMailbox(acc.id, 'Jobs/Projects/2026');
        assert.equal(jobs?.id, work.id);
        assert.equal(jobsProj?.id, proj.id);
        assert.equal(jobsY?.id, y.id);
        assert.equal(jobsProj?.uidValidity, proj.uidValidity);
        assert.deepEqual((await store.listMessages(proj.id)).map((m) => m.uid), [inProj.uid]);
        await assert.rejects(store.renameMailbox(acc.id, 'Work', 'Other'), storeError('not-found'));
        await assert.rejects(store.renameMailbox(acc.id, 'Jobs', 'Sent'), storeError('exists'));
        await assert.rejects(store.renameMailbox(acc.id, 'Jobs', 'Jobs/Sub'), storeError('invalid'));

        // The old name, created again, gets a new UIDVALIDITY.
        const work2 = await store.createMailbox(acc.id, 'Work');
        fresh(work2);

        // RFC 9051 §6.3.6: renaming INBOX moves its messages into the new mailbox and leaves INBOX
        // empty; INBOX's inferiors are unaffected.
        const inbox = boxes.INBOX!;
        const m1 = await put(store, inbox.id, body('in1'), { systemFlags: SystemFlag.Seen });
        const m2 = await put(store, inbox.id, body('in2'), { keywords: ['$Forwarded'] });
        await store.createMailbox(acc.id, 'INBOX/Sub');
        await store.renameMailbox(acc.id, 'INBOX', 'Old Inbox');
        const inboxAfter = await store.getMailbox(acc.id, 'INBOX');
        assert.ok(inboxAfter);
        assert.equal((await store.mailboxStatus(inboxAfter.id)).messages, 0);
        assert.ok(await store.getMailbox(acc.id, 'INBOX/Sub'), 'INBOX/Sub must stay');
        const old = await store.getMailbox(acc.id, 'Old Inbox');
        assert.ok(old);
        fresh(old);
        const moved = await store.listMessages(old.id);
        assert.deepEqual(moved.map((m) => m.blobId).sort(), [m1.blobId, m2.blobId].sort());
        assert.deepEqual(moved.map((m) => m.systemFlags).sort(), [0, SystemFlag.Seen]);
        assert.deepEqual(moved.find((m) => m.blobId === m2.blobId)?.keywords, ['$Forwarded']);
        // A new INBOX message must not reuse a UID under an unchanged UIDVALIDITY.
        const m3 = await put(store, inboxAfter.id, body('in3'));
        assert.ok(inboxAfter.uidValidity !== inbox.uidValidity || m3.uid > Math.max(m1.uid, m2.uid), 'INBOX UID reused');
        assert.equal((await store.getAccountById(acc.id))?.usedBytes, (await usage(store, acc.id)).bytes);

        // Delete.
        await assert.rejects(store.deleteMailbox(acc.id, 'INBOX'), storeError('inbox'));
        await assert.rejects(store.deleteMailbox(acc.id, 'inbox'), storeError('inbox'));
        await assert.rejects(store.deleteMailbox(acc.id, 'Nope'), storeError('not-found'));
        await store.deleteMailbox(acc.id, 'Jobs/Projects/2026');
        await store.deleteMailbox(acc.id, 'Jobs/Projects'); // had a message: usage goes down
        assert.equal(await store.getMailboxById(proj.id), null);
        const acc2 = await store.getAccountById(acc.id);
        const u = await usage(store, acc.id);
        assert.equal(acc2?.usedBytes, u.bytes);
        assert.equal(acc2?.messageCount, u.count);
        // Delete and recreate the same name, again and again: a new UIDVALIDITY each time.
        for (let i = 0; i < 4; i++) {
          const mb = await store.createMailbox(acc.id, 'Jobs/Projects');
          fresh(mb);
          await store.deleteMailbox(acc.id, 'Jobs/Projects');
        }
      }));

    it('claimRecent (RFC 3501 §2.3.2): one atomic boundary per mailbox; concurrent claims never share a message; peeking claims nothing', () =>
      withStore(async (store) => {
        const { boxes } = await account(store, 'recent@example.com');
        const inbox = boxes.INBOX!.id;
        for (let i = 0; i < 3; i++) await put(store, inbox, body());
        assert.equal((await store.mailboxStatus(inbox)).recent, 3);
        assert.equal(await store.claimRecent(inbox, 3, false), 0, 'peek');
        assert.equal((await store.mailboxStatus(inbox)).recent, 3);
        // Ten sessions claim at once up to UIDs 2 and 4: each message goes to exactly one.
        const below = [2, 4, 2, 4, 3, 4, 2, 3, 4, 4];
        const got = await Promise.all(below.map((b) => store.claimRecent(inbox, b, true)));
        const owned = got.flatMap((from, i) => Array.from({ length: Math.max(0, below[i]! - from) }, (_, k) => from + k).filter((u) => u >= 1));
        assert.deepEqual(owned.sort(), [1, 2, 3], `claims ${JSON.stringify(got)}`);
        assert.equal(await store.claimRecent(inbox, 1, true), 4, 'the boundary never moves back');
        assert.equal((await store.mailboxStatus(inbox)).recent, 0);
        await put(store, inbox, body());
        assert.equal((await store.mailboxStatus(inbox)).recent, 1);
        await assert.rejects(store.claimRecent(999999, 5, true), storeError('not-found'));
      }));

    it('subscriptions: a list of names of its own (RFC 9051 §6.3.7): CREATE does not add, DELETE and RENAME keep, no mailbox needed', () =>
      withStore(async (store) => {
        const { account: acc } = await account(store, 'subs@example.com');
        const subs = async () => (await store.listSubscriptions(acc.id)).filter((n) => !DEFAULT_MAILBOXES.some((m) => m.name === n)).sort();
        await store.createMailbox(acc.id, 'Jobs');
        await store.createMailbox(acc.id, 'Jobs/Old');
        assert.deepEqual(await subs(), [], 'createMailbox does not subscribe by default');
        await store.setSubscribed(acc.id, 'Jobs/Old', true);
        await store.setSubscribed(acc.id, 'Jobs/Old', true); // twice: one entry
        await store.setSubscribed(acc.id, 'Nope/Never', true); // no mailbox needed
        assert.deepEqual(await subs(), ['Jobs/Old', 'Nope/Never']);
        await store.deleteMailbox(acc.id, 'Jobs/Old');
        await store.renameMailbox(acc.id, 'Jobs', 'Work');
        assert.deepEqual(await subs(), ['Jobs/Old', 'Nope/Never'], 'the names stay when the mailbox goes');
        await store.setSubscribed(acc.id, 'Jobs/Old', false);
        await store.setSubscribed(acc.id, 'Not/There', false); // no error
        assert.deepEqual(await subs(), ['Nope/Never']);
        await store.setSubscribed(acc.id, 'inbox', true);
        assert.ok((await store.listSubscriptions(acc.id)).includes('INBOX'), 'INBOX normalised');
        await assert.rejects(store.setSubscribed(acc.id, 'a//b', true), storeError('invalid'));
        await assert.rejects(store.setSubscribed(987654, 'X', true), storeError('not-found'));
        const other = await account(store, 'subs2@example.com');
        assert.ok(!(await store.listSubscriptions(other.account.id)).includes('Nope/Never'), 'per account');
        await store.removeAccount(acc.id);
        assert.deepEqual(await store.listSubscriptions(acc.id), []);
      }));

    it('50 concurrent appends: UIDs and MODSEQs strictly increase, published in order', () =>
      withStore(async (store) => {
        const { account: acc, boxes } = await account(store, 'a@example.com');
        const inbox = boxes.INBOX!;
        const rec = record(store, acc.id);
        const raws = Array.from({ length: 50 }, (_, i) => body('c', 150 + i));
        const results = await Promise.all(raws.map((r) => put(store, inbox.id, r)));
        rec.stop();
        assert.equal(new Set(results.map((r) => r.uid)).size, 50);
        const byUid = [...results].sort((a, b) => a.uid - b.uid);
        assert.ok(isIncreasing(byUid.map((r) => r.modseq)), 'MODSEQ must increase with UID');
        assert.ok(results.every((r) => r.uidValidity === inbox.uidValidity));
        const list = await store.listMessages(inbox.id);
        assert.equal(list.length, 50);
        assert.ok(isIncreasing(list.map((m) => m.uid)));
        assert.ok(isIncreasing(list.map((m) => m.modseq)));
        assert.deepEqual(list.map((m) => m.uid), byUid.map((r) => r.uid));
        const st = await store.mailboxStatus(inbox.id);
        assert.equal(st.messages, 50);
        assert.equal(st.unseen, 50);
        assert.ok(st.uidNext > byUid.at(-1)!.uid);
        assert.ok(st.highestModseq >= byUid.at(-1)!.modseq);
        const total = raws.reduce((s, r) => s + r.length, 0);
        assert.equal(st.size, total);
        const a = await store.getAccountById(acc.id);
        assert.equal(a?.usedBytes, total);
        assert.equal(a?.messageCount, 50);
        // The bus saw 50 additions in commit order.
        const added = rec.all.filter((c) => c.kind === 'message-added');
        assert.equal(added.length, 50);
        assert.ok(isIncreasing(added.map((c) => (c.kind === 'message-added' ? c.modseq : 0))), 'changes published out of order');
        assert.ok(isIncreasing(added.map((c) => (c.kind === 'message-added' ? c.uid : 0))));
      }));

    it('getSearchData: sent date and decoded search headers without the MIME tree', () =>
      withStore(async (store) => {
        const { boxes } = await account(store, 's@example.com');
        const inbox = boxes.INBOX!;
        const uids: number[] = [];
        for (const raw of [
          'From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.org>\r\nTo: s@example.com\r\nDate: Tue, 03 Mar 2026 10:00:00 +0000\r\nSubject: =?UTF-8?Q?Rechnung_f=C3=BCr_M=C3=A4rz?=\r\n\r\nhi\r\n',
          'Subject: no date\r\n\r\nbody\r\n',
        ]) {
          const buf = Buffer.from(raw);
          const staged = await store.stageBlob(buf);
          try {
            uids.push((await store.append(staged, parseMessage(buf), { mailboxId: inbox.id })).uid);
          } finally {
            staged.release();
          }
        }
        const data = await store.getSearchData(inbox.id, [uids[1]!, 999, uids[0]!]);
        assert.deepEqual(data.map((d) => d.uid), uids);
        assert.equal(data[0]!.search.subject, 'Rechnung für März');
        assert.match(data[0]!.search.from, /Jürgen/);
        assert.equal(data[0]!.sentDate, Date.UTC(2026, 2, 3, 10));
        assert.equal(data[1]!.sentDate, null);
        assert.equal(data[1]!.search.subject, 'no date');
        assert.ok(data[0]!.search.fields.some(([n]) => n === 'date'));
        const lean = await store.getSearchData(inbox.id, uids, { fields: false });
        assert.equal(lean[0]!.search.subject, 'Rechnung für März');
        assert.equal(lean[0]!.sentDate, Date.UTC(2026, 2, 3, 10));
        assert.deepEqual(lean[0]!.search.fields, []);
        assert.deepEqual(await store.getSearchData(inbox.id, []), []);
      }));

    it('getSearchData.sentDay: the Date: day as written (RFC 3501 §6.4.4), also for metas cached without it', () =>
      withStore(async (store) => {
        const { boxes } = await account(store, 'sd@example.com');
        const inbox = boxes.INBOX!;
        const put1 = async (raw: string, strip: boolean) => {
          const buf = Buffer.from(raw);
          const m = parseMessage(buf);
          if (strip) delete m.sentDay; // as cached before the field existed
          const staged = await store.stageBlob(buf);
          try {
            return (await store.append(staged, m, { mailboxId: inbox.id })).uid;
          } finally {
            staged.release();
          }
        };
        const a = await put1('Date: Sun, 25 Mar 2007 00:00:00 +0200\r\nSubject: a\r\n\r\nx\r\n', false);
        const b = await put1('Date: 25 Mar 2007 23:30:00 -0500 (EST)\r\nSubject: b\r\n\r\ny\r\n', true);
        const n = await put1('Subject: none\r\n\r\nz\r\n', true);
        const data = await store.getSearchData(inbox.id, [a, b, n], { fields: false });
        assert.deepEqual(data.map((d) => d.sentDay), [Date.UTC(2007, 2, 25), Date.UTC(2007, 2, 25), null]);
        assert.equal(data[0]!.sentDate, Date.UTC(2007, 2, 24, 22));
      }));

    it('matchHeader: case-insensitive substring of decoded SUBJECT/FROM/TO/CC/BCC, kept through copy, move, expunge and INBOX rename', () =>
      withStore(async (store) => {
        const { account: acc, boxes } = await account(store, 'h@example.com');
        const inbox = boxes.INBOX!;
        const add = async (mailboxId: number, raw: string) => {
          const buf = Buffer.from(raw);
          const staged = await store.stageBlob(buf);
          try {
            return (await store.append(staged, parseMessage(buf), { mailboxId })).uid;
          } finally {
            staged.release();
          }
        };
        const u1 = await add(inbox.id, 'From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.org>\r\nTo: s@example.com\r\nCc: Team <team@example.net>\r\nSubject: =?UTF-8?Q?Rechnung_f=C3=BCr_M=C3=A4rz?=\r\n\r\nhi\r\n');
        const u2 = await add(inbox.id, 'From: other@example.org\r\nSubject: Invoice 42\r\n\r\nbody\r\n');
        const u3 = await add(inbox.id, 'Subject: none\r\n\r\nbody\r\n');
        assert.deepEqual(await store.matchHeader(inbox.id, 'subject', 'MÄRZ'), [u1], 'non-ASCII folded, encoded word decoded');
        assert.deepEqual(await store.matchHeader(inbox.id, 'subject', 'invoice'), [u2]);
        assert.deepEqual(await store.matchHeader(inbox.id, 'from', 'jürgen'), [u1]);
        assert.deepEqual(await store.matchHeader(inbox.id, 'from', 'EXAMPLE.ORG'), [u1, u2]);
        assert.deepEqual(await store.matchHeader(inbox.id, 'cc', 'team@'), [u1]);
        assert.deepEqual(await store.matchHeader(inbox.id, 'bcc', 'x'), []);
        assert.deepEqual(await store.matchHeader(inbox.id, 'subject', '%'), [], 'no pattern characters');
        assert.deepEqual(await store.matchHeader(inbox.id, 'subject', 'e'), [u1, u2, u3]);

        const copy = await store.copyMessages(inbox.id, [u1], boxes.Archive!.id);
        const moved = await store.moveMessages(inbox.id, [u2], boxes.Trash!.id);
        assert.deepEqual(await store.matchHeader(boxes.Archive!.id, 'subject', 'märz'), [copy.mapping[0]![1]]);
        assert.deepEqual(await store.matchHeader(boxes.Trash!.id, 'subject', 'invoice'), [moved.mapping[0]![1]]);
        assert.deepEqual(await store.matchHeader(inbox.id, 'subject', 'invoice'), [], 'moved away');
        await store.expunge(inbox.id, { uids: [u3], onlyDeleted: false });
        assert.deepEqual(await store.matchHeader(inbox.id, 'subject', 'none'), []);

        await store.renameMailbox(acc.id, 'INBOX', 'Old');
        const old = (await store.getMailbox(acc.id, 'Old'))!;
        assert.deepEqual(await store.matchHeader(old.id, 'subject', 'märz'), [u1], 'INBOX rename takes the messages along');
        assert.deepEqual(await store.matchHeader(inbox.id, 'subject', 'märz'), []);
        await store.deleteMailbox(acc.id, 'Archive');
        assert.deepEqual(await store.matchHeader(boxes.Archive!.id, 'subject', 'märz'), []);
      }));

    it('getTextPlans: the text parts SEARCH BODY reads (HTML marked, non-text attachments left out), also for copies', () =>
      withStore(async (store) => {
        const { boxes } = await account(store, 'p@example.com');
        const raw = Buffer.from(
          'Subject: plan\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain text\r\n' +
            '--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>html=20text</p>\r\n' +
            '--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment\r\n\r\nJVBERi0=\r\n--b--\r\n',
        );
        const staged = await store.stageBlob(raw);
        let uid: number;
        try {
          uid = (await store.append(staged, parseMessage(raw), { mailboxId: boxes.INBOX!.id })).uid;
        } finally {
          staged.release();
        }
        const [p] = await store.getTextPlans(boxes.INBOX!.id, [uid, 999]);
        assert.equal(p!.uid, uid);
        assert.equal(p!.size, raw.length);
        assert.deepEqual(p!.plan.map(([s, e, enc, cs, html]) => [raw.subarray(s, e).toString().trim(), enc.toLowerCase(), cs, html]), [
          ['plain text', '7bit', 'utf-8', 0],
          ['<p>html=20text</p>', 'quoted-printable', null, 1],
        ]);
        const copy = await store.copyMessages(boxes.INBOX!.id, [uid], boxes.Archive!.id);
        const [c] = await store.getTextPlans(boxes.Archive!.id, [copy.mapping[0]![1]]);
        assert.deepEqual(c!.plan, p!.plan);
        assert.deepEqual(await store.getTextPlans(boxes.INBOX!.id, []), []);
      }));

    it('matchBody: decoded text parts, case-insensitive, several needles at once; attachments and gone messages never match', () =>
      withStore(async (store) => {
        const { boxes } = await account(store, 'b@example.com');
        const inbox = boxes.INBOX!.id;
        const put = async (raw: Buffer): Promise<number> => {
          const staged = await store.stageBlob(raw);
          try {
            return (await store.append(staged, parseMessage(raw), { mailboxId: inbox })).uid;
          } finally {
            staged.release();
          }
        };
        const plain = await put(Buffer.from('Subject: a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOff to ZANZIBAR next week\r\n'));
        // HTML, quoted-printable: the word is split by a tag and a soft line break.
        const html = await put(
          Buffer.from('Subject: b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>zan<b>zi</b>=\r\nbar &amp; more</p>\r\n'),
        );
        // base64 in ISO-8859-1.
        const latin = await put(
          Buffer.from(
            `Subject: c\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.from('Grüße aus Köln', 'latin1').toString('base64')}\r\n`,
          ),
        );
        // The needle only inside a PDF attachment and in a header: not body text.
        const attached = await put(
          Buffer.from(
            'Subject: zanzibar\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n' +
              `--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment\r\n\r\nzanzibar ${Buffer.from('zanzibar').toString('base64')}\r\n--b--\r\n`,
          ),
        );
        // Over 2 MB: only the text parts are read, not the attachment before them.
        const big = await put(
          Buffer.from(
            'Subject: big\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n' +
              `--b\r\nContent-Type: application/octet-stream\r\n\r\n${'A'.repeat(2_200_000)}\r\n` +
              '--b\r\nContent-Type: text/plain\r\n\r\nthe Zanzibar report\r\n--b--\r\n',
          ),
        );
        const all = [plain, html, latin, attached, big];
        assert.deepEqual(await store.matchBody(inbox, all, ['zanzibar', 'KÖLN', 'nowhere', '&']), [[plain, html, big], [latin], [], [html]]);
        assert.deepEqual(await store.matchBody(inbox, [big, plain, 999], ['zanzibar']), [[plain, big]], 'only the UIDs asked for, ascending');
        assert.deepEqual(await store.matchBody(inbox, all, []), []);
        // Expunged (and its body removed): matches nothing, and is no error.
        await store.expunge(inbox, { uids: [plain], onlyDeleted: false });
        assert.deepEqual(await store.matchBody(inbox, all, ['zanzibar']), [[html, big]]);
      }));

    it('flags: changes bump MODSEQ, unchanged flags do not; UNCHANGEDSINCE; listMessages(changedSince)', () =>
      withStore(async (store) => {
        const { boxes } = await account(store, 'a@example.com');
        const mb = boxes.INBOX!.id;
        const a = await put(store, mb, body());
        const b = await put(store, mb, body());
        const c = await put(store, mb, body(), { systemFlags: SystemFlag.Seen, keywords: ['$Forwarded', '$forwarded'] });
        let list = await store.listMessages(mb);
        assert.deepEqual(list.find((m) => m.uid === c.uid)?.keywords, ['$Forwarded']);
        assert.equal(list.find((m) => m.uid === c.uid)?.systemFlags, SystemFlag.Seen);
        const before = (await store.mailboxStatus(mb)).highestModseq;

        const r1 = await store.storeFlags(mb, [a.uid, b.uid, c.uid, 9999], 'add', { systemFlags: SystemFlag.Seen, keywords: [] });
        assert.deepEqual(r1.updated.map((u) => u.uid), [a.uid, b.uid]);
        assert.deepEqual(r1.modified, []);
        for (const u of r1.updated) {
          assert.ok(u.modseq > before);
          assert.equal(u.systemFlags, SystemFlag.Seen);
        }
        assert.equal(new Set(r1.updated.map((u) => u.modseq)).size, 2, 'each changed message gets its own MODSEQ');
        list = await store.listMessages(mb);
        assert.equal(list.find((m) => m.uid === c.uid)?.modseq, c.modseq, 'unchanged message keeps its MODSEQ');
        const high1 = (await store.mailboxStatus(mb)).highestModseq;
        assert.equal(high1, Math.max(...r1.updated.map((u) => u.modseq)));
        assert.equal((await store.mailboxStatus(mb)).unseen, 0);

        // The same change again changes nothing and bumps nothing.
        const r2 = await store.storeFlags(mb, [a.uid, b.uid, c.uid], 'add', { systemFlags: SystemFlag.Seen, keywords: [] });
        assert.deepEqual(r2.updated, []);
        assert.equal((await store.mailboxStatus(mb)).highestModseq, high1);

        // Keywords: case-insensitive, case preserved.
        const r3 = await store.storeFlags(mb, [a.uid], 'add', { systemFlags: 0, keywords: ['Work'] });
        assert.deepEqual(r3.updated.map((u) => u.keywords), [['Work']]);
        assert.deepEqual((await store.storeFlags(mb, [a.uid], 'add', { systemFlags: 0, keywords: ['WORK'] })).updated, []);
        const r4 = await store.storeFlags(mb, [a.uid], 'remove', { systemFlags: 0, keywords: ['work'] });
        assert.deepEqual(r4.updated.map((u) => u.keywords), [[]]);
        const r5 = await store.storeFlags(mb, [b.uid], 'set', { systemFlags: SystemFlag.Flagged | SystemFlag.Answered, keywords: ['x', 'Y'] });
        assert.deepEqual(r5.updated.map((u) => [u.systemFlags, u.keywords]), [[SystemFlag.Flagged | SystemFlag.Answered, ['x', 'Y']]]);
        const rb = (await store.getMessages(mb, [b.uid]))[0]!;
        assert.equal(rb.systemFlags, SystemFlag.Flagged | SystemFlag.Answered);
        assert.deepEqual(rb.keywords, ['x', 'Y']);
        assert.equal(rb.modseq, r5.updated[0]!.modseq);
        assert.equal(rb.meta.envelope.subject, 't');

        // RFC 7162 §3.1.3: UNCHANGEDSINCE.
        const mod = rb.modseq;
        const r6 = await store.storeFlags(mb, [b.uid, c.uid], 'add', { systemFlags: SystemFlag.Deleted, keywords: [] }, { unchangedSince: mod - 1 });
        assert.deepEqual(r6.modified, [b.uid]);
        assert.deepEqual(r6.updated.map((u) => u.uid), [c.uid]);
        assert.equal((await store.getMessages(mb, [b.uid]))[0]!.systemFlags & SystemFlag.Deleted, 0);
        const r7 = await store.storeFlags(mb, [b.uid], 'add', { systemFlags: SystemFlag.Deleted, keywords: [] }, { unchangedSince: mod });
        assert.deepEqual(r7.modified, []);
        assert.deepEqual(r7.updated.map((u) => u.uid), [b.uid]);

        // CONDSTORE: only what changed after a MODSEQ.
        const changed = await store.listMessages(mb, { changedSince: mod });
        assert.deepEqual(changed.map((m) => m.uid), [b.uid, c.uid]);
        assert.deepEqual(await store.listMessages(mb, { changedSince: (await store.mailboxStatus(mb)).highestModseq }), []);
        assert.equal((await store.listMessages(mb, { changedSince: 0 })).length, 3);
        await assert.rejects(store.storeFlags(999999, [1], 'add', { systemFlags: SystemFlag.Seen, keywords: [] }), storeError('not-found'));
      }));

    it('expunge: only \\Deleted by default, explicit UIDs, and the expunge log (expungedSince)', () =>
      withStore(async (store) => {
        const { account: acc, boxes } = await account(store, 'a@example.com');
        const mb = boxes.INBOX!.id;
        const ms = [];
        for (let i = 0; i < 5; i++) ms.push(await put(store, mb, body()));
        const [m1, m2, m3, m4, m5] = ms as [typeof ms[0], typeof ms[0], typeof ms[0], typeof ms[0], typeof ms[0]];
        await store.storeFlags(mb, [m2.uid, m4.uid], 'add', { systemFlags: SystemFlag.Deleted, keywords: [] });
        assert.equal((await store.mailboxStatus(mb)).deleted, 2);
        const before = (await store.mailboxStatus(mb)).highestModseq;
        assert.deepEqual(await store.expunge(mb), [m2.uid, m4.uid]);
        const after = (await store.mailboxStatus(mb)).highestModseq;
        assert.ok(after > before, 'expunge gets a new MODSEQ');
        assert.deepEqual(await store.expungedSince(mb, before), [m2.uid, m4.uid]);
        assert.deepEqual(await store.expungedSince(mb, after), []);
        assert.deepEqual((await store.listMessages(mb)).map((m) => m.uid), [m1.uid, m3.uid, m5.uid]);
        let a = await store.getAccountById(acc.id);
        assert.equal(a?.usedBytes, m1.size + m3.size + m5.size);
        assert.equal(a?.messageCount, 3);
        // Nothing to expunge: nothing happens.
        assert.deepEqual(await store.expunge(mb), []);
        assert.equal((await store.mailboxStatus(mb)).highestModseq, after);
        // With uids: only those, and by default only if \Deleted.
        assert.deepEqual(await store.expunge(mb, { uids: [m3.uid] }), []);
        assert.deepEqual(await store.expunge(mb, { uids: [m3.uid, 9999], onlyDeleted: false }), [m3.uid]);
        assert.deepEqual(await store.expungedSince(mb, before), [m2.uid, m3.uid, m4.uid]);
        assert.deepEqual(await store.expungedSince(mb, after), [m3.uid]);
        assert.deepEqual(await store.expunge(mb, { onlyDeleted: false }), [m1.uid, m5.uid]);
        assert.deepEqual(await store.expungedSince(mb, 0), [m1.uid, m2.uid, m3.uid, m4.uid, m5.uid]);
        a = await store.getAccountById(acc.id);
        assert.equal(a?.usedBytes, 0);
        assert.equal(a?.messageCount, 0);
        // UIDs are not reused after an expunge.
        const m6 = await put(store, mb, body());
        assert.ok(m6.uid > m5.uid);
        await assert.rejects(store.expunge(999999), storeError('not-found'));
      }));

    it('copy and move: COPYUID mapping, flags kept, quota enforced on copy', () =>
      withStore(async (store) => {
        const size = 300;
        const { account: acc, boxes } = await account(store, 'a@example.com', 5 * size);
        const { boxes: other } = await account(store, 'b@example.com');
        const inbox = boxes.INBOX!.id;
        const archive = boxes.Archive!;
        const m1 = await put(store, inbox, body('c', size), { systemFlags: SystemFlag.Seen | SystemFlag.Flagged, keywords: ['Work'] });
        const m2 = await put(store, inbox, body('c', size));
        const r = await store.copyMessages(inbox, [m2.uid, m1.uid, 12345], archive.id);
        assert.equal(r.uidValidity, archive.uidValidity);
        assert.equal(r.mapping.length, 2);
        assert.deepEqual(r.mapping.map(([s]) => s), [m1.uid, m2.uid]);
        assert.ok(isIncreasing(r.mapping.map(([, d]) => d)));
        const copies = await store.listMessages(archive.id);
        assert.deepEqual(copies.map((m) => m.uid), r.mapping.map(([, d]) => d));
        assert.equal(copies[0]!.systemFlags, SystemFlag.Seen | SystemFlag.Flagged);
        assert.deepEqual(copies[0]!.keywords, ['Work']);
        assert.equal(copies[0]!.blobId, m1.blobId);
        assert.ok(copies[0]!.modseq > 1);
        let a = await store.getAccountById(acc.id);
        assert.equal(a?.usedBytes, 4 * size);
        assert.equal(a?.messageCount, 4);
        // Two more would be 6 × size > quota: nothing is copied.
        await assert.rejects(store.copyMessages(inbox, [m1.uid, m2.uid], archive.id), storeError('quota'));
        assert.equal((await store.listMessages(archive.id)).length, 2);
        a = await store.getAccountById(acc.id);
        assert.equal(a?.usedBytes, 4 * size);
        // One more fits exactly.
        await store.copyMessages(inbox, [m1.uid], boxes.Drafts!.id);
        assert.equal((await store.getAccountById(acc.id))?.usedBytes, 5 * size);

        // Move works at full quota (usage doesn't change) and leaves the source.
        const before = (await store.mailboxStatus(inbox)).highestModseq;
        const mv = await store.moveMessages(inbox, [m1.uid, m2.uid], boxes.Trash!.id);
        assert.equal(mv.uidValidity, boxes.Trash!.uidValidity);
        assert.deepEqual(mv.mapping.map(([s]) => s), [m1.uid, m2.uid]);
        assert.deepEqual((await store.listMessages(boxes.Trash!.id)).map((m) => m.uid), mv.mapping.map(([, d]) => d));
        assert.deepEqual(await store.listMessages(inbox), []);
        assert.deepEqual(await store.expungedSince(inbox, before), [m1.uid, m2.uid]);
        a = await store.getAccountById(acc.id);
        assert.equal(a?.usedBytes, 5 * size);
        assert.equal(a?.messageCount, 5);
        assert.deepEqual((await store.listMessages(boxes.Trash!.id))[0]!.keywords, ['Work']);
        // The moved bodies are still readable (references carried over).
        assert.equal((await store.readBlob(m1.blobId)).length, size);

        await assert.rejects(store.moveMessages(boxes.Trash!.id, mv.mapping.map(([, d]) => d), other.INBOX!.id), storeError('invalid'));
        await assert.rejects(store.copyMessages(inbox, [1], 999999), storeError('not-found'));
        await assert.rejects(store.copyMessages(999999, [1], inbox), storeError('not-found'));
        const empty = await store.copyMessages(inbox, [424242], archive.id);
        assert.deepEqual(empty.mapping, []);
      }));

    it('quota: exact after 1,000 concurrent deliveries and deletes, never above quota; a full account fails alone', () =>
      withStore(async (store) => {
        const quota = 40_000;
        const { account: full, boxes: fb } = await account(store, 'full@example.com', quota);
        const { account: free, boxes: frb } = await account(store, 'free@example.com');
        let maxSeen = 0;
        let polling = true;
        const poller = (async () => {
          while (polling) {
            const a = await store.getAccountById(full.id);
            maxSeen = Math.max(maxSeen, a!.usedBytes);
            await new Promise((r) => setTimeout(r, 5));
          }
        })();
        let expunged = 0;
        let okFull = 0;
        let quotaFull = 0;
        let freeBytes = 0;
        const targets = [fb.INBOX!.id, fb.Archive!.id];
        await Promise.all(
          Array.from({ length: 1000 }, async (_, i) => {
            const raw = body('q', 150 + (i % 97));
            freeBytes += raw.length;
            const staged = await store.stageBlob(raw);
            let res;
            try {
              res = await store.deliver(staged, meta('q', raw.length), [{ mailboxId: targets[i % 2]! }, { mailboxId: frb.INBOX!.id }]);
            } finally {
              staged.release();
            }
            assert.equal(res.length, 2);
            assert.ok(res[1]!.ok, 'the unlimited account always gets the message');
            const r0 = res[0]!;
            if (r0.ok) {
              okFull++;
              assert.equal(r0.accountId, full.id);
              if (i % 3 !== 0) {
                // Delete two thirds again, concurrently with the other deliveries.
                const gone = await store.expunge(r0.mailboxId, { uids: [r0.uid], onlyDeleted: false });
                assert.deepEqual(gone, [r0.uid]);
                expunged++;
              }
            } else {
              assert.equal(r0.reason, 'quota');
              assert.equal(r0.accountId, full.id);
              quotaFull++;
            }
          }),
        );
        polling = false;
        await poller;
        assert.ok(quotaFull > 0, 'some deliveries must hit the quota');
        assert.ok(okFull > 0);
        const a = await store.getAccountById(full.id);
        const u = await usage(store, full.id);
        assert.equal(a!.usedBytes, u.bytes, 'usedBytes must equal the sum of message sizes');
        assert.equal(a!.messageCount, u.count);
        assert.equal(u.count, okFull - expunged);
        assert.ok(a!.usedBytes <= quota, `usedBytes ${a!.usedBytes} above quota ${quota}`);
        assert.ok(maxSeen <= quota, `usedBytes reached ${maxSeen}, above quota ${quota}`);
        const f = await store.getAccountById(free.id);
        assert.equal(f!.usedBytes, freeBytes);
        assert.equal(f!.messageCount, 1000);
        assert.equal((await usage(store, free.id)).bytes, freeBytes);
      }));

    it('mixed concurrent writes keep usage, blob references and per-mailbox change order exact', () =>
      withStore(async (store) => {
        const { account: a, boxes: ab } = await account(store, 'a@example.com', 60_000);
        const { account: b, boxes: bb } = await account(store, 'b@example.com');
        const rec = record(store, a.id, b.id);
        let seed = 12345;
        const rnd = (n: number) => {
          seed = (seed * 1103515245 + 12345) & 0x7fffffff;
          return seed % n;
        };
        const bodies = Array.from({ length: 12 }, (_, i) => body('mix', 300 + i * 37));
        const aBoxes = [ab.INBOX!.id, ab.Archive!.id, ab.Trash!.id];
        const pick = async (mb: number, n: number) => {
          const l = await store.listMessages(mb);
          return Array.from({ length: Math.min(n, l.length) }, () => l[rnd(l.length)]!.uid);
        };
        const ops = Array.from({ length: 240 }, (_, i) => {
          const kind = rnd(6);
          const from = aBoxes[rnd(3)]!;
          const to = aBoxes[rnd(3)]!;
          const raw = bodies[rnd(bodies.length)]!;
          return async () => {
            try {
              if (kind <= 1) {
                const st = await store.stageBlob(raw);
                try {
                  await store.deliver(st, meta('mix', raw.length), [{ mailboxId: from }, { mailboxId: bb.INBOX!.id }], { origin: `op${i}` });
                } finally {
                  st.release();
                }
              } else if (kind === 2) await store.copyMessages(from, await pick(from, 2), to);
              else if (kind === 3) await store.moveMessages(from, await pick(from, 2), to);
              else if (kind === 4) await store.expunge(rnd(2) ? from : bb.INBOX!.id, { uids: await pick(rnd(2) ? from : bb.INBOX!.id, 2), onlyDeleted: false });
              else await store.storeFlags(from, await pick(from, 3), rnd(2) ? 'add' : 'remove', { systemFlags: SystemFlag.Seen | SystemFlag.Flagged, keywords: ['k'] });
            } catch (err) {
              if (!(err instanceof StoreError && err.code === 'quota')) throw err;
            }
          };
        });
        await Promise.all(ops.map((op) => op()));
        rec.stop();
        for (const acc of [a, b]) {
          const u = await usage(store, acc.id);
          const now = await store.getAccountById(acc.id);
          assert.equal(now!.usedBytes, u.bytes, `usedBytes of ${acc.address}`);
          assert.equal(now!.messageCount, u.count, `messageCount of ${acc.address}`);
          if (acc.quota) assert.ok(now!.usedBytes <= acc.quota);
        }
        const referenced = new Set<string>();
        for (const mb of [...aBoxes, bb.INBOX!.id]) for (const m of await store.listMessages(mb)) referenced.add(m.blobId);
        for (const raw of bodies) {
          const id = sha256(raw);
          if (referenced.has(id)) sameBytes(await store.readBlob(id), raw, `blob ${id.slice(0, 8)}`);
          else await assert.rejects(store.readBlob(id), storeError('not-found'));
        }
        // Per mailbox, changes arrive in commit order: MODSEQs strictly increase.
        const last = new Map<number, number>();
        for (const c of rec.all) {
          if (!('modseq' in c)) continue;
          const prev = last.get(c.mailboxId) ?? 0;
          assert.ok(c.modseq > prev, `mailbox ${c.mailboxId}: ${c.kind} with MODSEQ ${c.modseq} published after ${prev}`);
          last.set(c.mailboxId, c.modseq);
        }
        for (const [mb, m] of last) assert.equal((await store.mailboxStatus(mb)).highestModseq, m);
      }));

    it('a blob shared by three mailboxes goes only with its last reference', () =>
      withStore(async (store) => {
        const { boxes: a } = await account(store, 'a@example.com');
        const { boxes: b } = await account(store, 'b@example.com');
        const raw = body('shared', 500);
        const staged = await store.stageBlob(raw);
        assert.equal(staged.id, sha256(raw));
        assert.equal(staged.size, raw.length);
        // The same content staged twice is the same blob.
        const again = await store.stageBlob(Buffer.from(raw));
        assert.equal(again.id, staged.id);
        again.release();
        const res = await store.deliver(staged, meta('shared', raw.length), [{ mailboxId: a.INBOX!.id }, { mailboxId: a.Archive!.id }, { mailboxId: b.INBOX!.id }]);
        staged.release();
        assert.ok(res.every((r) => r.ok));
        const uidOf = (i: number) => (res[i]!.ok ? (res[i] as { uid: number }).uid : -1);
        sameBytes(await store.readBlob(staged.id), raw);
        await store.expunge(a.INBOX!.id, { uids: [uidOf(0)], onlyDeleted: false });
        sameBytes(await store.readBlob(staged.id), raw);
        await store.expunge(a.Archive!.id, { uids: [uidOf(1)], onlyDeleted: false });
        sameBytes(await store.readBlob(staged.id), raw);
        await store.expunge(b.INBOX!.id, { uids: [uidOf(2)], onlyDeleted: false });
        await assert.rejects(store.readBlob(staged.id), storeError('not-found'));
        await assert.rejects(drain(store.streamBlob(staged.id)));

        // A body staged (pinned) while its last stored copy is expunged stays deliverable.
        const again2 = body('pinned', 350);
        const first = await put(store, a.INBOX!.id, again2);
        const pinned = await store.stageBlob(Buffer.from(again2));
        await store.expunge(a.INBOX!.id, { uids: [first.uid], onlyDeleted: false });
        const late = await store.append(pinned, meta('pinned', again2.length), { mailboxId: a.Archive!.id });
        pinned.release();
        assert.ok(late.uid > 0);
        sameBytes(await store.readBlob(first.blobId), again2, 'pinned body');

        // A copy is a reference too.
        const m = await put(store, a.INBOX!.id, body('copied', 400));
        const cp = await store.copyMessages(a.INBOX!.id, [m.uid], b.Archive!.id);
        await store.expunge(a.INBOX!.id, { uids: [m.uid], onlyDeleted: false });
        assert.equal((await store.readBlob(m.blobId)).length, 400);
        await store.expunge(b.Archive!.id, { uids: [cp.mapping[0]![1]], onlyDeleted: false });
        await assert.rejects(store.readBlob(m.blobId), storeError('not-found'));
        // Deleting a mailbox drops its references.
        const m2 = await put(store, b.Junk!.id, body('junk', 300));
        await store.renameMailbox(b.INBOX!.accountId, 'Junk', 'Spam');
        await store.deleteMailbox(b.INBOX!.accountId, 'Spam');
        await assert.rejects(store.readBlob(m2.blobId), storeError('not-found'));
      }));

    it('every mutation publishes the right changes on the bus, after commit, in order, with origin', () =>
      withStore(async (store) => {
        const { account: acc, boxes } = await account(store, 'a@example.com');
        const { account: other, boxes: ob } = await account(store, 'b@example.com');
        const rec = record(store, acc.id);
        const otherRec = record(store, other.id);
        const visible: Array<Promise<boolean>> = [];
        const off = store.bus.subscribe(acc.id, (cs) => {
          for (const c of cs) {
            // Published after commit: a reader started from the listener sees the message.
            if (c.kind === 'message-added') visible.push(store.getMessages(c.mailboxId, [c.uid]).then((r) => r.length === 1));
          }
        });
        const o = { origin: 'session-1' };
        const inbox = boxes.INBOX!.id;

        const lists = await store.createMailbox(acc.id, 'Lists', o);
        assert.deepEqual(rec.take(), [{ kind: 'mailbox-created', accountId: acc.id, mailboxId: lists.id, name: 'Lists', origin: 'session-1' }]);

        const m = await put(store, inbox, body(), { origin: 'session-1' });
        assert.deepEqual(rec.take(), [{ kind: 'message-added', accountId: acc.id, mailboxId: inbox, uid: m.uid, modseq: m.modseq, keywords: [], origin: 'session-1' }]);

        const fl = await store.storeFlags(inbox, [m.uid], 'add', { systemFlags: SystemFlag.Seen, keywords: ['K'] }, o);
        assert.deepEqual(rec.take(), [
          { kind: 'flags-changed', accountId: acc.id, mailboxId: inbox, uid: m.uid, modseq: fl.updated[0]!.modseq, systemFlags: SystemFlag.Seen, keywords: ['K'], origin: 'session-1' },
        ]);
        await store.storeFlags(inbox, [m.uid], 'add', { systemFlags: SystemFlag.Seen, keywords: [] }, o);
        assert.deepEqual(rec.take(), [], 'no change, nothing published');

        const cp = await store.copyMessages(inbox, [m.uid], lists.id, o);
        const cpChanges = rec.take();
        assert.equal(cpChanges.length, 1);
        assert.deepEqual({ ...cpChanges[0], modseq: 0 }, { kind: 'message-added', accountId: acc.id, mailboxId: lists.id, uid: cp.mapping[0]![1], modseq: 0, keywords: ['K'], origin: 'session-1' });

        const mv = await store.moveMessages(lists.id, [cp.mapping[0]![1]], boxes.Archive!.id, { origin: 'session-2' });
        const mvChanges = rec.take();
        assert.deepEqual(
          mvChanges.map((c) => [c.kind, 'mailboxId' in c ? c.mailboxId : null, c.origin]),
          [
            ['message-added', boxes.Archive!.id, 'session-2'],
            ['messages-expunged', lists.id, 'session-2'],
          ],
        );
        const added = mvChanges[0]!;
        assert.equal(added.kind === 'message-added' && added.uid, mv.mapping[0]![1]);
        assert.deepEqual(added.kind === 'message-added' && added.keywords, ['K'], 'message-added carries the keywords (RFC 3501 §7.2.6 FLAGS updates)');
        const exp = mvChanges[1]!;
        assert.ok(exp.kind === 'messages-expunged');
        assert.deepEqual(exp.uids, [cp.mapping[0]![1]]);
        assert.deepEqual(await store.expungedSince(lists.id, exp.modseq - 1), [cp.mapping[0]![1]]);

        await store.storeFlags(inbox, [m.uid], 'add', { systemFlags: SystemFlag.Deleted, keywords: [] });
        rec.take();
        const gone = await store.expunge(inbox, o);
        const ex = rec.take();
        assert.equal(ex.length, 1);
        assert.deepEqual({ ...ex[0], modseq: 0 }, { kind: 'messages-expunged', accountId: acc.id, mailboxId: inbox, uids: gone, modseq: 0, origin: 'session-1' });
        assert.equal(ex[0]!.kind === 'messages-expunged' && ex[0]!.modseq, (await store.mailboxStatus(inbox)).highestModseq);

        await store.renameMailbox(acc.id, 'Lists', 'Lists2', o);
        assert.deepEqual(rec.take(), [{ kind: 'mailbox-renamed', accountId: acc.id, mailboxId: lists.id, oldName: 'Lists', newName: 'Lists2', origin: 'session-1' }]);
        await store.deleteMailbox(acc.id, 'Lists2', o);
        assert.deepEqual(rec.take(), [{ kind: 'mailbox-deleted', accountId: acc.id, mailboxId: lists.id, name: 'Lists2', origin: 'session-1' }]);

        // One delivery to two accounts: each account's listeners get their own change.
        const raw = body();
        const st = await store.stageBlob(raw);
        const dr = await store.deliver(st, meta('d', raw.length), [{ mailboxId: inbox }, { mailboxId: ob.INBOX!.id }], { origin: 'smtp' });
        st.release();
        const d0 = dr[0]!;
        const d1 = dr[1]!;
        assert.ok(d0.ok && d1.ok);
        assert.deepEqual(rec.take(), [{ kind: 'message-added', accountId: acc.id, mailboxId: inbox, uid: d0.uid, modseq: d0.modseq, keywords: [], origin: 'smtp' }]);
        assert.deepEqual(otherRec.take(), [{ kind: 'message-added', accountId: other.id, mailboxId: ob.INBOX!.id, uid: d1.uid, modseq: d1.modseq, keywords: [], origin: 'smtp' }]);

        // Failed writes publish nothing.
        await assert.rejects(store.createMailbox(acc.id, 'Archive', o), storeError('exists'));
        assert.deepEqual(rec.take(), []);

        await store.removeAccount(acc.id);
        assert.deepEqual(
          rec.take().filter((c) => c.kind === 'account-removed'),
          [{ kind: 'account-removed', accountId: acc.id }],
        );
        off();
        rec.stop();
        otherRec.stop();
        assert.ok(!otherRec.all.some((c) => c.accountId !== other.id), 'a listener only hears its own account');
        assert.ok(rec.seqs.every((q, i) => q === rec.seqs[0]! + i), `published with consecutive journal seqs: ${rec.seqs.join(' ')}`);
        assert.ok((await Promise.all(visible)).every(Boolean), 'a change was published before its commit was visible');
        assert.ok(visible.length >= 4);
      }));

    it('account removal frees everything', () =>
      withStore(async (store) => {
        const { account: a, boxes } = await account(store, 'a@example.com');
        const { account: b, boxes: bb } = await account(store, 'b@example.com');
        const seen = new Set((await store.listMailboxes(a.id)).map((m) => m.uidValidity));
        const own = await put(store, boxes.INBOX!.id, body('own'));
        await store.createMailbox(a.id, 'Folder');
        const folder = (await store.getMailbox(a.id, 'Folder'))!;
        seen.add(folder.uidValidity);
        const own2 = await put(store, folder.id, body('own2'));
        const raw = body('shared');
        const st = await store.stageBlob(raw);
        await store.deliver(st, meta('s', raw.length), [{ mailboxId: boxes.INBOX!.id }, { mailboxId: bb.INBOX!.id }]);
        st.release();

        await store.removeAccount(a.id);
        assert.equal(await store.getAccountById(a.id), null);
        assert.equal(await store.getAccount('a@example.com'), null);
        assert.deepEqual(await store.listMailboxes(a.id), []);
        assert.equal(await store.getMailboxById(boxes.INBOX!.id), null);
        assert.equal(await store.getMailboxById(folder.id), null);
        assert.deepEqual(await store.listMessages(boxes.INBOX!.id), []);
        await assert.rejects(store.readBlob(own.blobId), storeError('not-found'));
        await assert.rejects(store.readBlob(own2.blobId), storeError('not-found'));
        sameBytes(await store.readBlob(st.id), raw, 'a body still referenced by another account stays');
        assert.deepEqual((await store.listAccounts()).map((x) => x.address), ['b@example.com']);
        await assert.rejects(store.removeAccount(a.id), storeError('not-found'));
        const bAfter = await store.getAccountById(b.id);
        assert.equal(bAfter?.usedBytes, raw.length);
        // Deliveries to the removed account's mailboxes report no-mailbox.
        const st2 = await store.stageBlob(body());
        const dr = await store.deliver(st2, meta('x', st2.size), [{ mailboxId: boxes.INBOX!.id }, { mailboxId: bb.INBOX!.id }]);
        st2.release();
        assert.deepEqual(dr[0], { ok: false, reason: 'no-mailbox', accountId: 0, mailboxId: boxes.INBOX!.id });
        assert.ok(dr[1]!.ok);
        // The same address again: a fresh account whose mailboxes never reuse a UIDVALIDITY.
        const again = await store.createAccount({ address: 'a@example.com', passwordHash: 'h' });
        assert.equal(again.usedBytes, 0);
        for (const mb of await store.listMailboxes(again.id)) {
          assert.ok(!seen.has(mb.uidValidity), `UIDVALIDITY ${mb.uidValidity} reused for ${mb.name}`);
          assert.deepEqual(await store.listMessages(mb.id), []);
        }
        await store.removeAccount(b.id);
        await assert.rejects(store.readBlob(st.id), storeError('not-found'));
      }));

    // ---------------------------------------------------------------- POP3 (popUpdate / popRetained)

    /** Calls popUpdate and returns its result with the bus batches it published (one transaction = one batch). */
    async function popUpdateRecorded(store: Store, accountId: number, inboxId: number, u: PopUpdate, origin = 'pop-1') {
      const batches: Change[][] = [];
      const off = store.bus.subscribe(accountId, (cs) => batches.push([...cs]));
      try {
        const result = await store.popUpdate(inboxId, u, { origin });
        return { result, batches };
      } finally {
        off();
      }
    }

    it('POP3 update: keep, expunge, trash and archive each in one transaction, with the right changes', () =>
      withStore(async (store) => {
        const { account: acc, boxes } = await account(store, 'pop@example.com');
        const inbox = boxes.INBOX!.id;
        const m: Array<Awaited<ReturnType<typeof put>>> = [];
        for (let i = 0; i < 8; i++) m.push(await put(store, inbox, body(`pop${i}`, 300 + i)));
        const uid = (i: number) => m[i]!.uid;
        const flagsOf = async (mailboxId: number) => new Map((await store.listMessages(mailboxId)).map((x) => [x.uid, x]));
        const used0 = (await store.getAccountById(acc.id))!.usedBytes;

        // 'keep': \Seen for seen; \Seen + POP_DELETED_KEYWORD for removed; nothing leaves INBOX.
        // UIDs that don't exist are ignored.
        const keep = await popUpdateRecorded(store, acc.id, inbox, { seen: [uid(0), 424242], remove: [uid(1), 999999], action: 'keep', retainSince: null });
        assert.deepEqual(keep.result, { removed: [], mailbox: null });
        let f = await flagsOf(inbox);
        assert.equal(f.size, 8);
        assert.equal(f.get(uid(0))!.systemFlags, SystemFlag.Seen);
        assert.deepEqual(f.get(uid(0))!.keywords, []);
        assert.equal(f.get(uid(1))!.systemFlags, SystemFlag.Seen);
        assert.deepEqual(f.get(uid(1))!.keywords, [POP_DELETED_KEYWORD]);
        assert.equal(f.get(uid(2))!.systemFlags, 0);
        assert.equal(keep.batches.length, 1, 'one transaction, one publish');
        assert.deepEqual(
          keep.batches[0]!.map((c) => [c.kind, 'uid' in c ? c.uid : null, c.origin]),
          [
            ['flags-changed', uid(0), 'pop-1'],
            ['flags-changed', uid(1), 'pop-1'],
          ],
        );
        const kc = keep.batches[0]![1]!;
        assert.ok(kc.kind === 'flags-changed');
        assert.deepEqual(kc.keywords, [POP_DELETED_KEYWORD]);
        assert.equal(kc.modseq, f.get(uid(1))!.modseq);

        // 'expunge': removed messages go (expunge log, quota); removed ones are not flagged first.
        const ex = await popUpdateRecorded(store, acc.id, inbox, { seen: [uid(2), uid(3)], remove: [uid(3), 777777], action: 'expunge', retainSince: null });
        assert.deepEqual(ex.result, { removed: [uid(3)], mailbox: null });
        f = await flagsOf(inbox);
        assert.ok(!f.has(uid(3)));
        assert.equal(f.get(uid(2))!.systemFlags, SystemFlag.Seen);
        assert.equal(ex.batches.length, 1);
        const exKinds = ex.batches[0]!.map((c) => [c.kind, c.origin]);
        assert.deepEqual(exKinds, [
          ['flags-changed', 'pop-1'],
          ['messages-expunged', 'pop-1'],
        ]);
        const exc = ex.batches[0]![1]!;
        assert.ok(exc.kind === 'messages-expunged');
        assert.deepEqual(exc.uids, [uid(3)]);
        assert.deepEqual(await store.expungedSince(inbox, exc.modseq - 1), [uid(3)]);
        assert.equal((await store.getAccountById(acc.id))!.usedBytes, used0 - m[3]!.size);
        await assert.rejects(store.readBlob(m[3]!.blobId), storeError('not-found'));

        // 'trash' into the existing \Trash mailbox: like MOVE (flags kept, usage unchanged); a
        // retrieved message is \Seen there too.
        const usedBefore = (await store.getAccountById(acc.id))!.usedBytes;
        const tr = await popUpdateRecorded(store, acc.id, inbox, { seen: [uid(4)], remove: [uid(4), uid(5)], action: 'trash', retainSince: null });
        assert.deepEqual(tr.result.removed, [uid(4), uid(5)]);
        assert.equal(tr.result.mailbox?.id, boxes.Trash!.id);
        assert.equal(tr.result.mailbox?.specialUse, '\\Trash');
        assert.equal(tr.result.mailbox?.uidNext, boxes.Trash!.uidNext + 2);
        f = await flagsOf(inbox);
        assert.ok(!f.has(uid(4)) && !f.has(uid(5)));
        const inTrash = await store.listMessages(boxes.Trash!.id);
        assert.deepEqual(inTrash.map((x) => x.blobId), [m[4]!.blobId, m[5]!.blobId]);
        assert.deepEqual(inTrash.map((x) => x.systemFlags), [SystemFlag.Seen, 0], 'retrieved (seen) messages moved to Trash are \\Seen');
        assert.equal((await store.getAccountById(acc.id))!.usedBytes, usedBefore);
        assert.equal(tr.batches.length, 1);
        assert.deepEqual(
          tr.batches[0]!.map((c) => [c.kind, 'mailboxId' in c ? c.mailboxId : null, c.origin]),
          [
            ['flags-changed', inbox, 'pop-1'],
            ['message-added', boxes.Trash!.id, 'pop-1'],
            ['message-added', boxes.Trash!.id, 'pop-1'],
            ['messages-expunged', inbox, 'pop-1'],
          ],
        );

        // 'archive' when the account has no \Archive mailbox: created as 'Archive' with that use.
        await store.deleteMailbox(acc.id, 'Archive');
        const ar = await popUpdateRecorded(store, acc.id, inbox, { seen: [], remove: [uid(6)], action: 'archive', retainSince: null });
        const archive = (await store.getMailbox(acc.id, 'Archive'))!;
        assert.ok(archive);
        assert.equal(archive.specialUse, '\\Archive');
        assert.equal(ar.result.mailbox?.id, archive.id);
        assert.deepEqual((await store.listMessages(archive.id)).map((x) => x.blobId), [m[6]!.blobId]);
        assert.equal(ar.batches.length, 1);
        assert.deepEqual(
          ar.batches[0]!.map((c) => [c.kind, 'mailboxId' in c ? c.mailboxId : null]),
          [
            ['mailbox-created', archive.id],
            ['message-added', archive.id],
            ['messages-expunged', inbox],
          ],
        );

        // 'trash' when a mailbox named Trash exists without the special use: that one is used.
        await store.deleteMailbox(acc.id, 'Trash');
        const plain = await store.createMailbox(acc.id, 'Trash');
        const tr2 = await popUpdateRecorded(store, acc.id, inbox, { seen: [], remove: [uid(7)], action: 'trash', retainSince: null });
        assert.equal(tr2.result.mailbox?.id, plain.id);
        assert.equal(tr2.result.mailbox?.specialUse, null);
        assert.deepEqual((await store.listMessages(plain.id)).map((x) => x.blobId), [m[7]!.blobId]);
        assert.ok(!tr2.batches.flat().some((c) => c.kind === 'mailbox-created'));
        assert.equal((await store.listMailboxes(acc.id)).filter((x) => x.name === 'Trash').length, 1);

        // Nothing to remove: nothing moves, no mailbox is created, nothing is published.
        await store.deleteMailbox(acc.id, 'Archive');
        const none = await popUpdateRecorded(store, acc.id, inbox, { seen: [], remove: [uid(6), 31337], action: 'archive', retainSince: null });
        assert.deepEqual(none.result, { removed: [], mailbox: null });
        assert.equal(await store.getMailbox(acc.id, 'Archive'), null);
        assert.deepEqual(none.batches, []);

        assert.deepEqual((await store.listMessages(inbox)).map((x) => x.uid), [uid(0), uid(1), uid(2)]);
        assert.deepEqual(await usage(store, acc.id), {
          bytes: (await store.getAccountById(acc.id))!.usedBytes,
          count: (await store.getAccountById(acc.id))!.messageCount,
        });
        await assert.rejects(store.popUpdate(999999, { seen: [], remove: [1], action: 'expunge', retainSince: null }), storeError('not-found'));
        await assert.rejects(store.popUpdate(999999, { seen: [], remove: [1], action: 'trash', retainSince: null }), storeError('not-found'));
      }));

    it('POP3 retention: removed messages stay listed and readable, outside the quota, until older than retainSince', () =>
      withStore(async (store) => {
        const { account: acc, boxes } = await account(store, 'pop@example.com');
        const { boxes: other } = await account(store, 'other@example.com');
        const inbox = boxes.INBOX!.id;
        const uidValidity = boxes.INBOX!.uidValidity;
        const old = await put(store, inbox, body('old', 310));
        await pause(15);
        const cut = Date.now();
        await pause(5);
        const a = await put(store, inbox, body('a', 320));
        const b = await put(store, inbox, body('b', 330));
        // c's body is also in another account.
        const rawC = body('c', 340);
        const stC = await store.stageBlob(rawC);
        const dC = await store.deliver(stC, meta('c', rawC.length), [{ mailboxId: inbox }, { mailboxId: other.INBOX!.id }]);
        stC.release();
        assert.ok(dC[0]!.ok && dC[1]!.ok);
        const c = { uid: (dC[0] as { uid: number }).uid, blobId: stC.id, size: rawC.length };
        const keepMe = await put(store, inbox, body('stays', 350));
        const saved = new Map((await store.listMessages(inbox)).map((x) => [x.uid, x.savedAt]));
        assert.ok(saved.get(old.uid)! < cut && saved.get(a.uid)! >= cut);

        // Expunge with retention: only messages saved at or after retainSince are retained.
        const r1 = await store.popUpdate(inbox, { seen: [old.uid, a.uid], remove: [old.uid, a.uid], action: 'expunge', retainSince: cut });
        assert.deepEqual(r1.removed, [old.uid, a.uid]);
        assert.deepEqual(await store.popRetained(inbox, 0), [{ uidValidity, uid: a.uid, size: a.size, blobId: a.blobId, savedAt: saved.get(a.uid)! }]);
        assert.deepEqual(await store.popRetained(inbox, saved.get(a.uid)! + 1), []);
        await assert.rejects(store.readBlob(old.blobId), storeError('not-found'), 'not retained: its body goes');
        assert.equal((await store.readBlob(a.blobId)).length, a.size, 'retained: its body stays readable');
        let accNow = (await store.getAccountById(acc.id))!;
        assert.equal(accNow.usedBytes, b.size + c.size + keepMe.size, 'retained messages are not counted in usedBytes');
        assert.equal(accNow.messageCount, 3);
        assert.deepEqual(await store.listMessages(inbox).then((l) => l.map((x) => x.uid)), [b.uid, c.uid, keepMe.uid]);

        // Trash with retention, then expunged from Trash: still listed and readable.
        const r2 = await store.popUpdate(inbox, { seen: [], remove: [b.uid, c.uid], action: 'trash', retainSince: cut });
        assert.equal(r2.mailbox?.id, boxes.Trash!.id);
        const retained = await store.popRetained(inbox, cut);
        assert.deepEqual(retained.map((x) => [x.uidValidity, x.uid, x.blobId, x.size]), [
          [uidValidity, a.uid, a.blobId, a.size],
          [uidValidity, b.uid, b.blobId, b.size],
          [uidValidity, c.uid, c.blobId, c.size],
        ]);
        assert.ok(isIncreasing(retained.map((x) => x.savedAt * 1000 + x.uid)), 'oldest first');
        const trashed = await store.listMessages(boxes.Trash!.id);
        await store.expunge(boxes.Trash!.id, { uids: trashed.map((x) => x.uid), onlyDeleted: false });
        assert.deepEqual(await store.listMessages(boxes.Trash!.id), []);
        assert.equal((await store.readBlob(b.blobId)).length, b.size);
        assert.equal((await store.readBlob(c.blobId)).length, c.size);
        accNow = (await store.getAccountById(acc.id))!;
        assert.equal(accNow.usedBytes, keepMe.size);
        assert.equal(accNow.messageCount, 1);
        assert.deepEqual(await usage(store, acc.id), { bytes: keepMe.size, count: 1 });

        // The next update with a later retainSince drops older rows and frees bodies nothing else holds.
        const later = Math.max(...retained.map((x) => x.savedAt)) + 1;
        const r3 = await store.popUpdate(inbox, { seen: [keepMe.uid], remove: [], action: 'expunge', retainSince: later });
        assert.deepEqual(r3, { removed: [], mailbox: null });
        assert.deepEqual(await store.popRetained(inbox, 0), []);
        await assert.rejects(store.readBlob(a.blobId), storeError('not-found'));
        await assert.rejects(store.readBlob(b.blobId), storeError('not-found'));
        sameBytes(await store.readBlob(c.blobId), rawC, 'a body another account still holds stays');
        assert.equal((await store.listMessages(inbox))[0]!.systemFlags, SystemFlag.Seen);
        assert.equal((await store.getAccountById(acc.id))!.usedBytes, keepMe.size);

        // retainSince null retains nothing.
        await store.popUpdate(inbox, { seen: [], remove: [keepMe.uid], action: 'expunge', retainSince: null });
        assert.deepEqual(await store.popRetained(inbox, 0), []);
        await assert.rejects(store.readBlob(keepMe.blobId), storeError('not-found'));
        assert.equal((await store.getAccountById(acc.id))!.usedBytes, 0);
      }));

    it('POP3 retention: account removal frees retained bodies', () =>
      withStore(async (store) => {
        const { account: acc, boxes } = await account(store, 'pop@example.com');
        const { account: other, boxes: ob } = await account(store, 'other@example.com');
        const inbox = boxes.INBOX!.id;
        const own = await put(store, inbox, body('own', 300));
        const raw = body('shared', 320);
        const st = await store.stageBlob(raw);
        const d = await store.deliver(st, meta('s', raw.length), [{ mailboxId: inbox }, { mailboxId: ob.INBOX!.id }]);
        st.release();
        const sharedUid = (d[0] as { uid: number }).uid;
        const since = Date.now() - 60_000;
        await store.popUpdate(inbox, { seen: [], remove: [own.uid, sharedUid], action: 'archive', retainSince: since });
        await store.expunge(boxes.Archive!.id, { onlyDeleted: false });
        assert.equal((await store.popRetained(inbox, since)).length, 2);
        assert.equal((await store.getAccountById(acc.id))!.usedBytes, 0);
        await store.removeAccount(acc.id);
        assert.deepEqual(await store.popRetained(inbox, 0), []);
        await assert.rejects(store.readBlob(own.blobId), storeError('not-found'));
        sameBytes(await store.readBlob(st.id), raw, 'still referenced by the other account');
        await store.removeAccount(other.id);
        await assert.rejects(store.readBlob(st.id), storeError('not-found'));
      }));

    it('stageBlob: content-addressed, maxBytes refuses bigger input, ranges and streams', () =>
      withStore(async (store) => {
        const { boxes } = await account(store, 'a@example.com');
        const raw = body('s', 100);
        await assert.rejects(store.stageBlob(raw, { maxBytes: 99 }), storeError('invalid'));
        const ok = await store.stageBlob(raw, { maxBytes: 100 });
        assert.equal(ok.id, sha256(raw));
        assert.equal(ok.size, 100);
        // A staged blob can be read back before anything references it (e.g. to parse it).
        sameBytes(await store.readBlob(ok.id), raw);
        ok.release();

        // A stream past maxBytes is refused, and read to its end (the protocol stays in step).
        let ended = false;
        async function* chunks() {
          for (let i = 0; i < 10; i++) yield Buffer.alloc(100, 0x61 + i);
          ended = true;
        }
        await assert.rejects(store.stageBlob(Readable.from(chunks()), { maxBytes: 999 }), storeError('invalid'));
        assert.ok(ended, 'the too-big stream must be drained');

        // A streamed body big enough to take several chunks.
        const big = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), randomBytes(700_000)]);
        const parts: Buffer[] = [];
        for (let i = 0; i < big.length; i += 65536) parts.push(big.subarray(i, i + 65536));
        const st = await store.stageBlob(Readable.from(parts), { maxBytes: big.length });
        assert.equal(st.id, sha256(big));
        assert.equal(st.size, big.length);
        const r = await store.append(st, meta('big', big.length), { mailboxId: boxes.INBOX!.id, internalDate: Date.UTC(2020, 0, 2, 3, 4, 5) });
        st.release();
        const rec = (await store.getMessages(boxes.INBOX!.id, [r.uid, 777]))[0]!;
        assert.equal(rec.size, big.length);
        assert.equal(rec.blobId, st.id);
        assert.equal(rec.internalDate, Date.UTC(2020, 0, 2, 3, 4, 5));
        assert.ok(Math.abs(rec.savedAt - Date.now()) < 60_000);
        assert.equal(rec.meta.root.bodyEnd, big.length);
        sameBytes(await store.readBlob(st.id), big);
        sameBytes(await store.readBlob(st.id, 10, 20), big.subarray(10, 20));
        sameBytes(await store.readBlob(st.id, 600_000), big.subarray(600_000));
        sameBytes(await store.readBlob(st.id, 5, 5), Buffer.alloc(0));
        sameBytes(await store.readBlob(st.id, big.length - 3, big.length + 100), big.subarray(big.length - 3));
        sameBytes(await drain(store.streamBlob(st.id)), big);
        sameBytes(await drain(store.streamBlob(st.id, 3, 300_003)), big.subarray(3, 300_003));
        sameBytes(await drain(store.streamBlob(st.id, 100)), big.subarray(100));
        await assert.rejects(store.readBlob(sha256(Buffer.from('never stored'))), storeError('not-found'));

        // Quota refuses an append that does not fit.
        const { account: small, boxes: sb } = await account(store, 'small@example.com', 150);
        await put(store, sb.INBOX!.id, body('fits', 100));
        await assert.rejects(put(store, sb.INBOX!.id, body('too-much', 100)), storeError('quota'));
        assert.equal((await store.getAccountById(small.id))?.usedBytes, 100);
        await assert.rejects(put(store, 999999, body()), storeError('not-found'));
      }));
  });
}
