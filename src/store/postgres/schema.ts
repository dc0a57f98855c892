// PostgreSQL schema, as numbered migrations applied in order at open (schema_migrations records
// them), all in one transaction under an advisory lock so two processes opening the same database
// at once don't race. Never edit a released migration: add the next number.

export interface PgMigration {
  version: number;
  /** SQL run as one multi-statement query. `nowSeconds` seeds the UIDVALIDITY sequence. */
  sql: (nowSeconds: number) => string;
}

export const PG_MIGRATIONS: ReadonlyArray<PgMigration> = [
  {
    version: 1,
    sql: (nowSeconds) => `
CREATE TABLE domains (
  name text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  address text NOT NULL UNIQUE,
  domain text NOT NULL REFERENCES domains(name),
  password_hash text NOT NULL,
  quota bigint NOT NULL DEFAULT 0 CHECK (quota >= 0),
  used_bytes bigint NOT NULL DEFAULT 0,
  message_count bigint NOT NULL DEFAULT 0,
  settings jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_domain ON accounts(domain);
CREATE TABLE aliases (
  address text PRIMARY KEY,
  domain text NOT NULL REFERENCES domains(name),
  targets jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX aliases_domain ON aliases(domain);
-- UIDVALIDITY (RFC 9051 §2.3.1.1) comes from one sequence for the whole store, seeded from the
-- clock when the schema is created: a value is never handed out twice, so a recreated mailbox
-- name (even of a removed and recreated account) always gets a new one. 32-bit, non-zero.
CREATE SEQUENCE uidvalidity_seq START WITH ${Math.max(1, Math.floor(nowSeconds))} MINVALUE 1 MAXVALUE 4294967295;
CREATE TABLE mailboxes (
  id bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name text NOT NULL,
  special_use text,
  subscribed boolean NOT NULL DEFAULT true,
  uid_validity bigint NOT NULL,
  uid_next bigint NOT NULL DEFAULT 1,
  highest_modseq bigint NOT NULL DEFAULT 1,
  UNIQUE (account_id, name)
);
-- One row per distinct body (id = SHA-256 hex). refcount = messages referencing it; the row goes
-- when it drops to 0. The MIME parse made at delivery is cached here once for every copy.
-- STORAGE EXTERNAL: out of line, uncompressed, so substring() reads only the chunks it needs
-- (FETCH BODY[part] and streamed reads of big messages).
CREATE TABLE blobs (
  id text PRIMARY KEY,
  size bigint NOT NULL,
  refcount bigint NOT NULL CHECK (refcount >= 0),
  meta text NOT NULL,
  data bytea NOT NULL
);
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE messages (
  mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  uid bigint NOT NULL,
  modseq bigint NOT NULL,
  system_flags integer NOT NULL DEFAULT 0,
  keywords jsonb NOT NULL DEFAULT '[]',
  internal_date bigint NOT NULL,
  saved_at bigint NOT NULL,
  size bigint NOT NULL,
  blob_id text NOT NULL REFERENCES blobs(id),
  PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX messages_blob ON messages(blob_id);
-- RFC 7162 §3.2.10: what was expunged at which MODSEQ, for VANISHED (EARLIER).
CREATE TABLE expunged (
  mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  uid bigint NOT NULL,
  modseq bigint NOT NULL,
  PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
`,
  },
  {
    version: 2,
    // Delivery in one round trip: the whole locked section runs in the server, so a busy mailbox
    // is held for one statement plus COMMIT instead of a round trip per step. Same lock order as
    // the rest of the store: mailboxes (ascending id) → accounts (ascending id) → blob.
    // p_targets: [{mailbox_id, system_flags, keywords, internal_date}]; p_data NULL = the blob
    // must already exist (raises P0002). One row per target: res 'ok' | 'quota' | 'no-mailbox'.
    sql: () => `
CREATE FUNCTION pb_deliver(p_blob text, p_size bigint, p_meta text, p_data bytea, p_targets jsonb, p_now bigint)
RETURNS TABLE (idx int, res text, acc bigint, mbox bigint, new_uid bigint, new_modseq bigint, uidv bigint)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
  t record;
  ok_i int[] := '{}';
  ok_mb bigint[] := '{}';
  ok_acc bigint[] := '{}';
BEGIN
  PERFORM 1 FROM mailboxes m
    WHERE m.id IN (SELECT (e->>'mailbox_id')::bigint FROM jsonb_array_elements(p_targets) e)
    ORDER BY m.id FOR NO KEY UPDATE;
  FOR t IN
    SELECT (e.ord - 1)::int AS i, (e.v->>'mailbox_id')::bigint AS mailbox_id, m.account_id
    FROM jsonb_array_elements(p_targets) WITH ORDINALITY AS e(v, ord)
    LEFT JOIN mailboxes m ON m.id = (e.v->>'mailbox_id')::bigint
    ORDER BY m.account_id NULLS FIRST, e.ord
  LOOP
    IF t.account_id IS NULL THEN
      idx := t.i; res := 'no-mailbox'; acc := 0; mbox := t.mailbox_id; new_uid := NULL; new_modseq := NULL; uidv := NULL;
      RETURN NEXT;
      CONTINUE;
    END IF;
    UPDATE accounts a SET used_bytes = a.used_bytes + p_size, message_count = a.message_count + 1
      WHERE a.id = t.account_id AND (a.quota = 0 OR a.used_bytes + p_size <= a.quota);
    IF FOUND THEN
      ok_i := ok_i || t.i; ok_mb := ok_mb || t.mailbox_id; ok_acc := ok_acc || t.account_id;
    ELSE
      idx := t.i; res := 'quota'; acc := t.account_id; mbox := t.mailbox_id; new_uid := NULL; new_modseq := NULL; uidv := NULL;
      RETURN NEXT;
    END IF;
  END LOOP;
  IF cardinality(ok_i) = 0 THEN
    RETURN;
  END IF;
  IF p_data IS NOT NULL THEN
    INSERT INTO blobs (id, size, refcount, meta, data) VALUES (p_blob, p_size, cardinality(ok_i), p_meta, p_data)
      ON CONFLICT (id) DO UPDATE SET refcount = blobs.refcount + EXCLUDED.refcount;
  ELSE
    UPDATE blobs SET refcount = refcount + cardinality(ok_i) WHERE id = p_blob;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'blob % is neither staged nor stored', p_blob USING ERRCODE = 'P0002';
    END IF;
  END IF;
  FOR t IN SELECT * FROM unnest(ok_i, ok_mb, ok_acc) AS u(i, mailbox_id, account_id) ORDER BY i LOOP
    UPDATE mailboxes m SET uid_next = m.uid_next + 1, highest_modseq = m.highest_modseq + 1
      WHERE m.id = t.mailbox_id
      RETURNING m.uid_next - 1, m.highest_modseq, m.uid_validity INTO new_uid, new_modseq, uidv;
    INSERT INTO messages (mailbox_id, uid, modseq, system_flags, keywords, internal_date, saved_at, size, blob_id)
      SELECT t.mailbox_id, new_uid, new_modseq, (e->>'system_flags')::int, e->'keywords', (e->>'internal_date')::bigint, p_now, p_size, p_blob
      FROM (SELECT p_targets->t.i AS e) x;
    idx := t.i; res := 'ok'; acc := t.account_id; mbox := t.mailbox_id;
    RETURN NEXT;
  END LOOP;
END
$fn$;
`,
  },
  {
    version: 3,
    // Messages a POP3 client removed from INBOX, kept (holding one blob reference each, outside
    // the quota) so recent-mode POP sessions still list them. inbox_id has no cascade: deleting
    // the mailbox while rows remain fails, so their blob references can't leak (removeAccount
    // drops them first). Same meaning as the SQLite table of that name.
    sql: () => `
CREATE TABLE pop_retained (
  inbox_id bigint NOT NULL REFERENCES mailboxes(id),
  account_id bigint NOT NULL,
  uid_validity bigint NOT NULL,
  uid bigint NOT NULL,
  blob_id text NOT NULL REFERENCES blobs(id),
  size bigint NOT NULL,
  saved_at bigint NOT NULL,
  PRIMARY KEY (inbox_id, uid_validity, uid)
);
CREATE INDEX pop_retained_saved ON pop_retained(inbox_id, saved_at);
CREATE INDEX pop_retained_account ON pop_retained(account_id);
CREATE INDEX pop_retained_blob ON pop_retained(blob_id);
`,
  },
  {
    version: 4,
    // Failed logins per (source, login name) for throttling; same meaning as the SQLite table.
    sql: () => `
CREATE TABLE login_failures (
  ip text NOT NULL,
  username text NOT NULL,
  score double precision NOT NULL,
  failures bigint NOT NULL,
  first_failure_at bigint NOT NULL,
  last_failure_at bigint NOT NULL,
  PRIMARY KEY (ip, username)
);
CREATE INDEX login_failures_username ON login_failures(username);
CREATE INDEX login_failures_last ON login_failures(last_failure_at);
`,
  },
  {
    version: 5,
    // The outbound queue (src/store/postgres/queue.ts); same meaning as the SQLite tables of that
    // name (migration 7 there). A message holds one reference on its blob (refcount), dropped when
    // it leaves the queue; a blob the queue stored first has meta 'null' until a delivery fills it
    // in, so pb_deliver is redefined to do that. Lock order: queue_messages rows → queue_recipients
    // rows → blob rows; claims lock recipients with SKIP LOCKED and never wait.
    sql: () => `
CREATE TABLE queue_messages (
  seq bigserial PRIMARY KEY,
  id text NOT NULL UNIQUE,
  blob_id text NOT NULL REFERENCES blobs(id),
  size bigint NOT NULL,
  mail_from text NOT NULL,
  envid text,
  ret text,
  account_id bigint,
  origin text NOT NULL,
  created_at bigint NOT NULL,
  expires_at bigint NOT NULL
);
CREATE INDEX queue_messages_blob ON queue_messages(blob_id);
CREATE TABLE queue_recipients (
  id bigserial PRIMARY KEY,
  message_id text NOT NULL REFERENCES queue_messages(id),
  address text NOT NULL,
  domain text NOT NULL,
  orcpt text,
  notify text,
  state text NOT NULL DEFAULT 'queued',
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at bigint NOT NULL,
  last_attempt_at bigint,
  last_reply text,
  delay_warned boolean NOT NULL DEFAULT false,
  lease_owner text,
  lease_until bigint
);
CREATE INDEX queue_recipients_due ON queue_recipients(state, next_attempt_at);
CREATE INDEX queue_recipients_message ON queue_recipients(message_id, domain);
${deliverFillingQueueMeta(PG_MIGRATIONS[1]!.sql(0))}
`,
  },
  {
    version: 6,
    // DKIM signing keys per domain; same meaning as the SQLite table.
    sql: () => `
CREATE TABLE dkim_keys (
  domain text NOT NULL,
  selector text NOT NULL,
  algorithm text NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
  private_key text NOT NULL,
  created_at bigint NOT NULL,
  active boolean NOT NULL,
  retired_at bigint,
  PRIMARY KEY (domain, selector)
);
`,
  },
  {
    version: 7,
    // Subscriptions as their own list of names; same meaning as the SQLite table (migration 9).
    sql: () => `
CREATE TABLE subscriptions (
  account_id bigint NOT NULL,
  name text NOT NULL,
  PRIMARY KEY (account_id, name)
);
INSERT INTO subscriptions (account_id, name) SELECT account_id, name FROM mailboxes WHERE subscribed;
-- IMAP4rev1 \\Recent boundary (as SQLite migration 9).
ALTER TABLE mailboxes ADD COLUMN recent_uid bigint NOT NULL DEFAULT 0;
UPDATE mailboxes SET recent_uid = uid_next;
`,
  },
  {
    version: 8,
    // SORT / THREAD keys per body (as SQLite migration 10; src/store/postgres/sort.ts): written
    // with the body at its first delivery, removed with it; bodies stored before get theirs on
    // first use.
    sql: () => `
CREATE TABLE blob_sort (
  blob_id text PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
  sent bigint,
  subject text NOT NULL,
  reply boolean NOT NULL,
  from_key text NOT NULL,
  to_key text NOT NULL,
  cc_key text NOT NULL,
  display_from text NOT NULL,
  display_to text NOT NULL,
  message_id text,
  refs text NOT NULL
);
-- Threads per account (as SQLite migration 10; src/store/postgres/threads.ts).
CREATE SEQUENCE thread_seq;
CREATE TABLE thread_ids (
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  msgid text NOT NULL,
  thread_id bigint NOT NULL,
  PRIMARY KEY (account_id, msgid)
);
CREATE TABLE message_threads (
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  blob_id text NOT NULL,
  thread_id bigint NOT NULL,
  PRIMARY KEY (account_id, blob_id)
);
CREATE INDEX message_threads_thread ON message_threads(account_id, thread_id);
CREATE TABLE thread_backfill (account_id bigint PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE);
INSERT INTO thread_backfill (account_id)
  SELECT DISTINCT mb.account_id FROM mailboxes mb WHERE EXISTS (SELECT 1 FROM messages m WHERE m.mailbox_id = mb.id);
`,
  },
  {
    version: 10,
    // Queued message = prefix (DKIM-Signature fields) + blob from byte body_start (as SQLite migration 12).
    sql: () => `
ALTER TABLE queue_messages ADD COLUMN prefix text NOT NULL DEFAULT '';
ALTER TABLE queue_messages ADD COLUMN body_start bigint NOT NULL DEFAULT 0;
`,
  },
  {
    version: 11,
    sql: () => `
-- Sessions counted against per-account limits across nodes (src/store/live-sessions.ts): one row
-- per live node with its heartbeat (ms since the epoch), one per authenticated IMAP or POP3 session.
CREATE TABLE live_nodes (node text PRIMARY KEY, heartbeat_at bigint NOT NULL);
CREATE TABLE live_sessions (
  id bigserial PRIMARY KEY,
  node text NOT NULL,
  protocol text NOT NULL,
  account_id bigint NOT NULL,
  started_at bigint NOT NULL
);
CREATE INDEX live_sessions_account ON live_sessions(protocol, account_id);
CREATE INDEX live_sessions_node ON live_sessions(node);
`,
  },
  {
    version: 12,
    // The change journal (as SQLite migration 15; src/store/journal.ts).
    sql: () => `
CREATE TABLE change_journal (
  account_id bigint NOT NULL,
  seq bigint NOT NULL,
  n integer NOT NULL DEFAULT 1,
  kind smallint NOT NULL,
  mailbox_id bigint,
  uid bigint,
  modseq bigint,
  data text,
  at bigint NOT NULL,
  PRIMARY KEY (account_id, seq)
);
CREATE TABLE change_heads (
  account_id bigint PRIMARY KEY,
  seq bigint NOT NULL,
  floor bigint NOT NULL DEFAULT 0
);
`,
  },
];

/**
 * Migration 2's pb_deliver, replaced by one that also fills in the meta of a blob only the queue
 * held so far (meta 'null'). Derived from that migration's text (released migrations never change).
 */
function deliverFillingQueueMeta(v2: string): string {
  const edits: Array<[string, string]> = [
    ['CREATE FUNCTION pb_deliver(', 'CREATE OR REPLACE FUNCTION pb_deliver('],
    [
      'ON CONFLICT (id) DO UPDATE SET refcount = blobs.refcount + EXCLUDED.refcount;',
      "ON CONFLICT (id) DO UPDATE SET refcount = blobs.refcount + EXCLUDED.refcount, meta = CASE WHEN blobs.meta = 'null' THEN EXCLUDED.meta ELSE blobs.meta END;",
    ],
    [
      'UPDATE blobs SET refcount = refcount + cardinality(ok_i) WHERE id = p_blob;',
      "UPDATE blobs SET refcount = refcount + cardinality(ok_i), meta = CASE WHEN meta = 'null' THEN p_meta ELSE meta END WHERE id = p_blob;",
    ],
  ];
  let sql = v2;
  for (const [from, to] of edits) {
    if (!sql.includes(from)) throw new Error(`PostgreSQL migration 5: pb_deliver text not found: ${from}`);
    sql = sql.replace(from, to);
  }
  return sql;
}
