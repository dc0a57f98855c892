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
];
