// Fills a mailbox with many messages fast, for the large-mailbox tests (test/e2e/imap/bulk-*.test.ts).
// A few distinct bodies are delivered through the Store API (stageBlob → parse → deliver, exactly
// what SMTP stores); the rest are rows that reuse those bodies, written with one set-based SQL
// statement per table straight into the SQLite file, with every counter the store keeps (UIDNEXT,
// HIGHESTMODSEQ, blob refcounts, quota usage) set as the store would have. Each message has its own
// INTERNALDATE (BASE_DATE + i seconds for UID i), which COPY and MOVE keep: the tests use it to
// tell messages apart after a crash.

import Database from 'better-sqlite3';
import { openStore, defaultDatabase } from '../../src/store/open.ts';
import { parseMessage } from '../../src/protocol/mime/parser.ts';
import { hashPassword } from '../../src/auth/password.ts';

export const BASE_DATE = Date.UTC(2024, 0, 1);
const TEMPLATES = 32;

/** Creates `domain` and the accounts (password `pw`), then puts `count` messages in `address`'s `mailbox`. */
export async function fillSqlite(dataDir: string, accounts: string[], target: { address: string; mailbox: string; count: number }): Promise<void> {
  const database = defaultDatabase(dataDir);
  const store = await openStore(database, dataDir);
  let mailboxId: number;
  let accountId: number;
  try {
    const hash = await hashPassword('pw');
    for (const a of accounts) {
      const domain = a.slice(a.indexOf('@') + 1);
      if (!(await store.getDomain(domain))) await store.addDomain(domain);
      await store.createAccount({ address: a, passwordHash: hash });
    }
    const acct = (await store.getAccount(target.address))!;
    accountId = acct.id;
    mailboxId = (await store.getMailbox(acct.id, target.mailbox))!.id;
    const n = Math.min(TEMPLATES, target.count);
    for (let i = 1; i <= n; i++) {
      const raw = Buffer.from(
        `From: Sender ${i} <s${i}@example.net>\r\nTo: ${target.address}\r\nSubject: bulk template ${i}\r\n` +
          `Message-ID: <bulk-${i}@example.net>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nBody of template ${i}.\r\n${'x'.repeat(200 + i)}\r\n`,
      );
      const staged = await store.stageBlob(raw);
      const [r] = await store.deliver(staged, parseMessage(raw), [{ mailboxId, internalDate: BASE_DATE + i * 1000 }]);
      staged.release();
      if (!r?.ok || r.uid !== i) throw new Error('template delivery failed');
    }
  } finally {
    await store.close();
  }
  if (target.count <= TEMPLATES) return;
  const db = new Database(database);
  try {
    db.pragma('journal_mode = WAL');
    const N = target.count;
    db.transaction(() => {
      // UIDs TEMPLATES+1..N, each a copy of template ((uid-1) % TEMPLATES) + 1, MODSEQ uid+1
      // (the mailbox starts at HIGHESTMODSEQ 1 and each delivery adds one).
      db.prepare(
        `WITH RECURSIVE seq(u) AS (SELECT ? UNION ALL SELECT u + 1 FROM seq WHERE u < ?)
         INSERT INTO messages (mailbox_id, uid, modseq, system_flags, keywords, internal_date, saved_at, size, blob_id)
         SELECT t.mailbox_id, seq.u, seq.u + 1, 0, '[]', ? + seq.u * 1000, t.saved_at, t.size, t.blob_id
         FROM seq JOIN messages t ON t.mailbox_id = ? AND t.uid = ((seq.u - 1) % ?) + 1`,
      ).run(TEMPLATES + 1, N, BASE_DATE, mailboxId, TEMPLATES);
      db.prepare(
        `INSERT INTO message_search (mailbox_id, uid, subject, from_addr, to_addr, cc_addr, bcc_addr, text_plan)
         SELECT m.mailbox_id, m.uid, t.subject, t.from_addr, t.to_addr, t.cc_addr, t.bcc_addr, t.text_plan
         FROM messages m JOIN message_search t ON t.mailbox_id = m.mailbox_id AND t.uid = ((m.uid - 1) % ?) + 1
         WHERE m.mailbox_id = ? AND m.uid > ?`,
      ).run(TEMPLATES, mailboxId, TEMPLATES);
      db.prepare(
        `UPDATE blobs SET refcount = (SELECT count(*) FROM messages WHERE blob_id = blobs.id)
         WHERE id IN (SELECT blob_id FROM messages WHERE mailbox_id = ? AND uid <= ?)`,
      ).run(mailboxId, TEMPLATES);
      db.prepare('UPDATE mailboxes SET uid_next = ?, highest_modseq = ? WHERE id = ?').run(N + 1, N + 1, mailboxId);
      db.prepare(
        `UPDATE accounts SET used_bytes = (SELECT coalesce(sum(m.size), 0) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.account_id = accounts.id),
                             message_count = (SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.account_id = accounts.id)
         WHERE id = ?`,
      ).run(accountId);
    }).immediate();
  } finally {
    db.close();
  }
}
