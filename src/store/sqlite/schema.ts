// SQLite schema, as numbered migrations applied in order at open (schema_migrations records them).
// Never edit a released migration: add the next number.

export const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE domains (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
CREATE TABLE accounts (
  id INTEGER PRIMARY KEY,
  address TEXT NOT NULL UNIQUE,
  domain TEXT NOT NULL REFERENCES domains(name),
  password_hash TEXT NOT NULL,
  quota INTEGER NOT NULL DEFAULT 0,
  used_bytes INTEGER NOT NULL DEFAULT 0,
  message_count INTEGER NOT NULL DEFAULT 0,
  settings TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL
);
CREATE INDEX accounts_domain ON accounts(domain);
CREATE TABLE aliases (
  address TEXT PRIMARY KEY,
  domain TEXT NOT NULL REFERENCES domains(name),
  targets TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX aliases_domain ON aliases(domain);
CREATE TABLE mailboxes (
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id),
  name TEXT NOT NULL,
  special_use TEXT,
  subscribed INTEGER NOT NULL DEFAULT 1,
  uid_validity INTEGER NOT NULL,
  uid_next INTEGER NOT NULL DEFAULT 1,
  highest_modseq INTEGER NOT NULL DEFAULT 1,
  UNIQUE (account_id, name)
);
-- One row per distinct body: the MIME parse computed at delivery is cached here once, shared by
-- every message (copy, alias fan-out) that references the same content.
CREATE TABLE blobs (
  id TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  refcount INTEGER NOT NULL,
  meta TEXT NOT NULL
);
CREATE TABLE messages (
  mailbox_id INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  modseq INTEGER NOT NULL,
  system_flags INTEGER NOT NULL DEFAULT 0,
  keywords TEXT NOT NULL DEFAULT '[]',
  internal_date INTEGER NOT NULL,
  saved_at INTEGER NOT NULL,
  size INTEGER NOT NULL,
  blob_id TEXT NOT NULL,
  PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX messages_blob ON messages(blob_id);
-- RFC 7162 §3.2.10: what was expunged at which MODSEQ, for VANISHED (EARLIER).
CREATE TABLE expunged (
  mailbox_id INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  modseq INTEGER NOT NULL,
  PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
`,
  },
  {
    version: 2,
    sql: `
-- Messages a POP3 client removed from INBOX, kept (blob referenced, outside quota) so that
-- recent-mode POP sessions still see the last 30 days.
CREATE TABLE pop_retained (
  inbox_id INTEGER NOT NULL,
  account_id INTEGER NOT NULL,
  uid_validity INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  blob_id TEXT NOT NULL,
  size INTEGER NOT NULL,
  saved_at INTEGER NOT NULL,
  PRIMARY KEY (inbox_id, uid_validity, uid)
) WITHOUT ROWID;
CREATE INDEX pop_retained_saved ON pop_retained(inbox_id, saved_at);
`,
  },
  {
    version: 3,
    sql: `CREATE INDEX pop_retained_account ON pop_retained(account_id);`,
  },
  {
    version: 4,
    sql: `
-- What SEARCH needs per message, one small row in mailbox order (no random reads of each body's
-- 2 KB cached parse): the five header fields SEARCH SUBJECT/FROM/TO/CC/BCC look at, decoded and
-- case-folded (pb_fold = JavaScript toLowerCase, registered by the store), so a header search
-- is one range scan with instr() inside SQLite returning only the matches; and the text plan
-- (pb_text_plan: the byte ranges, encodings and charsets of the text parts, as JSON) that
-- SEARCH BODY/TEXT reads the body by.
CREATE TABLE message_search (
  mailbox_id INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  subject TEXT NOT NULL,
  from_addr TEXT NOT NULL,
  to_addr TEXT NOT NULL,
  cc_addr TEXT NOT NULL,
  bcc_addr TEXT NOT NULL,
  text_plan TEXT NOT NULL,
  PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
INSERT INTO message_search (mailbox_id, uid, subject, from_addr, to_addr, cc_addr, bcc_addr, text_plan)
  SELECT m.mailbox_id, m.uid,
         pb_fold(coalesce(json_extract(b.meta, '$.search.subject'), '')), pb_fold(coalesce(json_extract(b.meta, '$.search.from'), '')),
         pb_fold(coalesce(json_extract(b.meta, '$.search.to'), '')), pb_fold(coalesce(json_extract(b.meta, '$.search.cc'), '')),
         pb_fold(coalesce(json_extract(b.meta, '$.search.bcc'), '')), pb_text_plan(b.meta)
  FROM messages m JOIN blobs b ON b.id = m.blob_id;
`,
  },
  {
    version: 5,
    sql: `
-- Failed logins per (source, login name) for throttling (src/auth/throttle-policy.ts): a score
-- that halves every half-life, shared with the admin CLI (pillarbox throttle list|clear).
-- ip is an IPv4 address or an IPv6 /64; username may name no account ('*' = past the cap).
CREATE TABLE login_failures (
  ip TEXT NOT NULL,
  username TEXT NOT NULL,
  score REAL NOT NULL,
  failures INTEGER NOT NULL,
  first_failure_at INTEGER NOT NULL,
  last_failure_at INTEGER NOT NULL,
  PRIMARY KEY (ip, username)
) WITHOUT ROWID;
CREATE INDEX login_failures_username ON login_failures(username);
CREATE INDEX login_failures_last ON login_failures(last_failure_at);
`,
  },
  {
    version: 6,
    sql: `
-- Bulk operations under way (src/store/sqlite/bulk.ts), so a crash can be cleaned up at the next
-- start: 'copy' = a COPY staging rows in mailbox_id at UIDs >= uid_from: while the row exists they
-- are not part of the mailbox, which shows UIDNEXT uid_from and HIGHESTMODSEQ hms (deleting the
-- row publishes the copy; recovery deletes the rows instead); 'drop' = a deleted mailbox whose
-- messages are still being removed (finished at recovery; its id is not reused meanwhile).
-- account_id 0: no quota usage to keep.
CREATE TABLE bulk_ops (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  mailbox_id INTEGER NOT NULL,
  account_id INTEGER NOT NULL,
  uid_from INTEGER NOT NULL DEFAULT 0,
  hms INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
`,
  },
  {
    version: 7,
    sql: `
-- The outbound queue (src/store/sqlite/queue.ts): one row per message waiting to go to other
-- hosts, one per recipient. A message holds one reference on its blob (blobs.refcount; a blob the
-- queue created has meta 'null' until a delivery fills it in), dropped when the message leaves the
-- queue. seq = insertion order (list paging). A recipient stays 'queued' until settled
-- sent/failed/expired; while leased (lease_owner, lease_until) its next_attempt_at is lease_until,
-- so a claim finds due, unleased work from queue_recipients_due alone and a crashed owner's
-- recipients come due again when the lease ends.
CREATE TABLE queue_messages (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  blob_id TEXT NOT NULL,
  size INTEGER NOT NULL,
  mail_from TEXT NOT NULL,
  envid TEXT,
  ret TEXT,
  account_id INTEGER,
  origin TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE queue_recipients (
  id INTEGER PRIMARY KEY,
  message_id TEXT NOT NULL REFERENCES queue_messages(id),
  address TEXT NOT NULL,
  domain TEXT NOT NULL,
  orcpt TEXT,
  notify TEXT,
  state TEXT NOT NULL DEFAULT 'queued',
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_attempt_at INTEGER,
  last_reply TEXT,
  delay_warned INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_until INTEGER
);
-- queue_recipients_due carries domain and message_id so a claim's window is read from the index alone.
CREATE INDEX queue_recipients_due ON queue_recipients(state, next_attempt_at, domain, message_id);
CREATE INDEX queue_recipients_message ON queue_recipients(message_id, domain);
`,
  },
  {
    version: 8,
    sql: `
-- DKIM signing keys per domain (src/store/dkim-keys.ts): every active key signs outgoing mail of
-- the domain; a retired one stays listed (active = 0) until removed. No foreign key to domains:
-- keys of a removed domain stay until removed with the CLI.
CREATE TABLE dkim_keys (
  domain TEXT NOT NULL,
  selector TEXT NOT NULL,
  algorithm TEXT NOT NULL,
  private_key TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  active INTEGER NOT NULL,
  retired_at INTEGER,
  PRIMARY KEY (domain, selector)
) WITHOUT ROWID;
`,
  },
  {
    version: 9,
    sql: `
-- Subscriptions are a list of names of their own (RFC 3501 §6.3.6, RFC 9051 §6.3.7): a name stays
-- subscribed when its mailbox is deleted (LIST-EXTENDED then shows \\NonExistent, RFC 5258), and
-- CREATE does not subscribe. Seeded from the old mailboxes.subscribed column, no longer read.
CREATE TABLE subscriptions (
  account_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  PRIMARY KEY (account_id, name)
) WITHOUT ROWID;
INSERT INTO subscriptions (account_id, name) SELECT account_id, name FROM mailboxes WHERE subscribed = 1;
-- IMAP4rev1 \\Recent (RFC 3501 §2.3.2): messages with uid >= recent_uid have been seen by no
-- session yet; the first read-write session to learn of them moves the boundary past them in one
-- UPDATE (store.claimRecent), so no two sessions both get one. Existing mail is not recent.
ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET recent_uid = uid_next;
`,
  },
  {
    version: 10,
    sql: `
-- SORT / THREAD keys (RFC 5256, RFC 5957) of each body, computed from its parse at delivery
-- (src/protocol/imap/sort-keys.ts, src/store/sqlite/sort.ts): like blobs.meta they belong to the
-- content, so every copy shares them and COPY/MOVE/EXPUNGE need no work here; the row goes with
-- its blob. Strings are i;unicode-casemap collation keys. Bodies stored before this migration get
-- their row on first use (SqliteSortKeys.read), so an upgrade costs nothing at open.
CREATE TABLE blob_sort (
  blob_id TEXT PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
  sent INTEGER,
  subject TEXT NOT NULL,
  reply INTEGER NOT NULL,
  from_key TEXT NOT NULL,
  to_key TEXT NOT NULL,
  cc_key TEXT NOT NULL,
  display_from TEXT NOT NULL,
  display_to TEXT NOT NULL,
  message_id TEXT,
  refs TEXT NOT NULL
) WITHOUT ROWID;
-- Conversation threads per account (OBJECTID THREADID, RFC 8474 §5.2; src/store/threads.ts,
-- src/store/sqlite/threads.ts): thread_ids maps every Message-ID a delivered message named to its
-- thread; message_threads is the thread of a body in the account (copies share it). Thread
-- numbers come from settings 'last_thread_id'. Accounts with mail from before this migration are
-- listed in thread_backfill and get their threads on first use.
CREATE TABLE thread_ids (
  account_id INTEGER NOT NULL,
  msgid TEXT NOT NULL,
  thread_id INTEGER NOT NULL,
  PRIMARY KEY (account_id, msgid)
) WITHOUT ROWID;
CREATE TABLE message_threads (
  account_id INTEGER NOT NULL,
  blob_id TEXT NOT NULL,
  thread_id INTEGER NOT NULL,
  PRIMARY KEY (account_id, blob_id)
) WITHOUT ROWID;
CREATE INDEX message_threads_thread ON message_threads(account_id, thread_id);
CREATE TABLE thread_backfill (account_id INTEGER PRIMARY KEY);
INSERT OR IGNORE INTO settings (key, value) VALUES ('last_thread_id', '0');
INSERT INTO thread_backfill (account_id)
  SELECT DISTINCT mb.account_id FROM mailboxes mb WHERE EXISTS (SELECT 1 FROM messages m WHERE m.mailbox_id = mb.id);
`,
  },
  {
    version: 12,
    sql: `
-- Outbound (issue 13): a queued message is sent as prefix + its blob from byte body_start. prefix
-- holds the DKIM-Signature fields made at submission (committed with the row, so a crash never
-- sends the message unsigned), body_start skips the Return-Path stored on top of every received
-- body: the received blob is queued as it is, instead of a second, signed copy being written.
ALTER TABLE queue_messages ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE queue_messages ADD COLUMN body_start INTEGER NOT NULL DEFAULT 0;
`,
  },
  {
    version: 13,
    sql: `
-- A queued body small enough (QUEUE_LIMITS.inlineBody) and wanted by the queue only is kept here
-- instead of in a file: written in the enqueue transaction, so one group-committed fsync makes body
-- and queue entry durable together, instead of a file fsync, a folder fsync and then the commit.
-- NULL for every body that has a file (all the others).
ALTER TABLE blobs ADD COLUMN data BLOB;
`,
  },
  {
    version: 14,
    sql: `
-- Sessions counted against per-account limits across processes (src/store/live-sessions.ts):
-- one row per live node with its heartbeat, one per authenticated IMAP or POP3 session.
CREATE TABLE live_nodes (node TEXT PRIMARY KEY, heartbeat_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE live_sessions (
  id INTEGER PRIMARY KEY,
  node TEXT NOT NULL,
  protocol TEXT NOT NULL,
  account_id INTEGER NOT NULL,
  started_at INTEGER NOT NULL
);
CREATE INDEX live_sessions_account ON live_sessions(protocol, account_id);
CREATE INDEX live_sessions_node ON live_sessions(node);
`,
  },
  {
    version: 15,
    sql: `
-- The change journal (issue 15; src/store/journal.ts): every committed Change with its account's
-- sequence number, written in the same transaction. A row is n entries ending at seq (a run of
-- message entries: UIDs and MODSEQs from uid/modseq up by one each). kind: a code (journal.ts
-- KINDS); data: the entry's other fields as JSON. at: commit time (ms), for the pruning horizon. change_heads: the
-- account's latest seq and the highest seq pruned (floor; asking from before it means resync).
-- No foreign key: an account's journal outlives it (its account-removed entry is read after).
CREATE TABLE change_journal (
  account_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  n INTEGER NOT NULL DEFAULT 1,
  kind INTEGER NOT NULL,
  mailbox_id INTEGER,
  uid INTEGER,
  modseq INTEGER,
  data TEXT,
  at INTEGER NOT NULL,
  PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;
CREATE TABLE change_heads (
  account_id INTEGER PRIMARY KEY,
  seq INTEGER NOT NULL,
  floor INTEGER NOT NULL DEFAULT 0
);
`,
  },
  {
    version: 16,
    sql: `
-- Which process stages a COPY (its pid; 0: before --workers). With several worker processes, one
-- killed mid-COPY leaves its staged rows to the others: the primary asks a live worker to undo
-- that process's copies (SqliteBulk.recoverStep), as a restart's recovery does for all of them.
ALTER TABLE bulk_ops ADD COLUMN owner INTEGER NOT NULL DEFAULT 0;
-- Body files whose last reference went, with several worker processes: another worker may have
-- staged the same content meanwhile (its pin is in its memory), so the file is not unlinked at
-- once but swept later, under the write lock, once no blobs row names it (peers.ts).
CREATE TABLE dead_blobs (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
`,
  },
  {
    version: 17,
    sql: `
-- The messages marked \Deleted (SystemFlag.Deleted = 8), per mailbox by UID: EXPUNGE (and CLOSE)
-- finds them without reading every row of the mailbox (bulk.ts expunge: the scan was most of an
-- EXPUNGE's cost in a mailbox of a hundred messages). The query's term is written the same way.
CREATE INDEX messages_deleted ON messages(mailbox_id, uid) WHERE (system_flags & 8) != 0;
`,
  },
];
