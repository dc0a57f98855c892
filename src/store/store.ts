// The Store interface: the only thing sessions (IMAP, POP3, SMTP, web) know about persistence.
// Two implementations sit behind it: sqlite/ (metadata in SQLite, bodies as content-addressed
// files in blob/) and postgres/ (metadata and bodies in PostgreSQL). src/main.ts picks one.
//
// Rules every implementation keeps (tested by test/store/conformance.test.ts):
// - A body is durable (written and fsync'd) before any metadata that references it commits.
// - Every mutation publishes its Changes on `store.bus` after commit, in commit order, and its
//   promise resolves only after that (a listener can already read what the change describes).
// - Every Change is also written to its account's change journal in the same transaction, with
//   the next seq of that account (src/store/journal.ts): no gaps, in commit order.
// - Mailbox creation does not create missing parents: the IMAP layer does (RFC 9051 §6.3.4).
// - UIDs and MODSEQs of a mailbox strictly increase; UIDVALIDITY never repeats for a name.
// - Account quota usage (`usedBytes`) is exact under concurrency and never exceeds the quota
//   through a delivery, append or copy (quota 0 = unlimited).
// - A blob shared by several messages is removed only when the last reference goes.
// - A command over many messages may commit in steps (docs/architecture.md, "Bulk operations"):
//   its promise resolves after the last one; each step's Changes are published at its commit;
//   a COPY is all or nothing; a MOVE leaves each message in exactly one mailbox at every commit.

import type { LiveSessionStore } from './live-sessions.ts';
import { hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { ChangeBus } from './bus.ts';
import type { ChangeJournal } from './journal.ts';
import type { LoginFailureStore } from './login-failures.ts';
import type { QueueStore } from './queue.ts';
import type { DkimKeyStore } from './dkim-keys.ts';
import type { MessageMeta, TextLeaf } from '../protocol/mime/types.ts';
import type { SortKeys } from '../protocol/imap/sort-keys.ts';
import { sentDayOf } from '../protocol/mime/date.ts';

// OBJECTID (RFC 8474) ids, the same for IMAP and the webmail (src/store/threads.ts).
export { emailObjectId, mailboxObjectId, parseThreadObjectId, threadObjectId } from './threads.ts';

/** IMAP system flags (RFC 9051 §2.3.2) as stored: a bit each. */
export const SystemFlag = {
  Seen: 1,
  Answered: 2,
  Flagged: 4,
  Deleted: 8,
  Draft: 16,
} as const;

export const SYSTEM_FLAG_NAMES: ReadonlyArray<readonly [string, number]> = [
  ['\\Seen', SystemFlag.Seen],
  ['\\Answered', SystemFlag.Answered],
  ['\\Flagged', SystemFlag.Flagged],
  ['\\Deleted', SystemFlag.Deleted],
  ['\\Draft', SystemFlag.Draft],
];

export type SpecialUse = '\\Sent' | '\\Drafts' | '\\Trash' | '\\Junk' | '\\Archive' | '\\All' | '\\Flagged';

/** Every account starts with these (issue #4; RFC 6154 attributes). */
/** Subscriptions per account (a name need not exist, so the mailbox count limit does not bound them). */
export const MAX_SUBSCRIPTIONS = 10_000;

export const DEFAULT_MAILBOXES: ReadonlyArray<{ name: string; specialUse: SpecialUse | null }> = [
  { name: 'INBOX', specialUse: null },
  { name: 'Sent', specialUse: '\\Sent' },
  { name: 'Drafts', specialUse: '\\Drafts' },
  { name: 'Trash', specialUse: '\\Trash' },
  { name: 'Junk', specialUse: '\\Junk' },
  { name: 'Archive', specialUse: '\\Archive' },
];

/** Hierarchy separator for mailbox names. */
export const MAILBOX_SEPARATOR = '/';

export interface Domain {
  name: string;
  createdAt: Date;
}

export type PopDeleteAction = 'expunge' | 'trash' | 'archive' | 'keep';

/** Per-account settings; every field optional, defaults applied by `accountSettings()`. */
export interface AccountSettings {
  /** Simultaneous authenticated IMAP connections (default 5). */
  imapMaxConnections?: number;
  pop?: {
    enabled?: boolean;
    /** What DELE does at QUIT. */
    deleteAction?: PopDeleteAction;
    /** Only messages saved at or after this moment (ms since epoch) are shown; null = all. */
    showSince?: number | null;
    /** Mark retrieved messages \Seen. */
    markSeen?: boolean;
  };
}

export interface Account {
  id: number;
  /** Lower-cased `local@domain`. */
  address: string;
  domain: string;
  /** PHC-style hash string (scrypt); never the password. */
  passwordHash: string;
  /** Bytes; 0 = unlimited. */
  quota: number;
  /** Sum of the sizes of every message in every mailbox of the account. */
  usedBytes: number;
  messageCount: number;
  settings: AccountSettings;
  createdAt: Date;
}

export interface Alias {
  /** Lower-cased `local@domain`, or `@domain` for a catch-all. */
  address: string;
  /** Lower-cased addresses, local or external. */
  targets: string[];
  createdAt: Date;
}

export interface Mailbox {
  id: number;
  accountId: number;
  /** Full hierarchical name, `/`-separated, UTF-8 (not modified UTF-7). INBOX is always `INBOX`. */
  name: string;
  specialUse: SpecialUse | null;
  uidValidity: number;
  uidNext: number;
  /** Highest MODSEQ of any change in the mailbox (RFC 7162). Starts at 1. */
  highestModseq: number;
}

export interface MailboxStatus {
  messages: number;
  unseen: number;
  deleted: number;
  /** Total size of the messages in bytes (STATUS SIZE, RFC 8438). */
  size: number;
  uidNext: number;
  uidValidity: number;
  highestModseq: number;
  /** Messages no session has seen yet (IMAP4rev1 \\Recent, RFC 3501 §2.3.2; STATUS RECENT). */
  recent: number;
}

/** What a session keeps per message: cheap to list for a whole mailbox. */
/** The header fields SEARCH has its own keys for (RFC 9051 §6.4.4). */
export type SearchHeaderField = 'subject' | 'from' | 'to' | 'cc' | 'bcc';

export interface MessageSummary {
  uid: number;
  modseq: number;
  /** Bitmask of SystemFlag. */
  systemFlags: number;
  /** User keywords, as given (case preserved), no duplicates (case-insensitive). */
  keywords: string[];
  /** IMAP INTERNALDATE, ms since epoch. */
  internalDate: number;
  /** When the store saved the message, ms since epoch (POP3 "from now on"). */
  savedAt: number;
  /** RFC822.SIZE in bytes. */
  size: number;
  /** SHA-256 hex of the body; also the blob id. */
  blobId: string;
}

/** A message with its cached parse (ENVELOPE, BODYSTRUCTURE, part ranges, search headers). */
export interface MessageRecord extends MessageSummary {
  meta: MessageMeta;
}

/** What SEARCH BODY/TEXT needs to read a message's text: where its text parts are (textPlan). */
export interface MessageTextPlan {
  uid: number;
  size: number;
  blobId: string;
  plan: TextLeaf[];
}

export interface SearchData {
  uid: number;
  sentDate: number | null;
  /** The Date: header's day as written (RFC 3501 §6.4.4), ms at 00:00 UTC; see MessageMeta.sentDay. */
  sentDay: number | null;
  search: MessageMeta['search'];
}

/**
 * What SORT and THREAD (RFC 5256, RFC 5957) need of a message: the keys computed from its parse
 * at delivery (src/protocol/imap/sort-keys.ts) plus INTERNALDATE and size. Without `thread`,
 * messageId is null and refs empty.
 */
export interface SortData extends SortKeys {
  uid: number;
  internalDate: number;
  size: number;
}

export interface BlobRef {
  /** SHA-256 hex of the content. */
  id: string;
  size: number;
}

/** A blob written and durable but not yet referenced: pass it to append/deliver, then release(). */
export interface StagedBlob extends BlobRef {
  /** Drops the staging pin; call after the append/deliver that uses it settled (or failed). */
  release(): void;
  /**
   * Set on a body held in memory instead (memoryBlob): not durable anywhere yet, so only
   * store.queue.enqueue can take it (it stores the bytes in its own transaction); not append/deliver.
   */
  data?: Buffer;
}

/** A body kept in memory for store.queue.enqueue (QueueMessageInput.data), with the id stageBlob would give it. */
export function memoryBlob(data: Buffer): StagedBlob {
  // crypto.hash: one call, no Hash object (createHash() alone cost more than hashing 10 KB).
  const id = hash('sha256', data, 'hex');
  HASHED.set(data, id);
  return { id, size: data.length, data, release() {} };
}

/** The sha256 memoryBlob computed for these bytes, so enqueue's check need not hash them again. */
const HASHED = new WeakMap<Buffer, string>();

/** The blob id (sha256, hex) of bytes held in memory. */
export function blobIdOf(data: Buffer): string {
  return HASHED.get(data) ?? hash('sha256', data, 'hex');
}

export interface NewMessage {
  mailboxId: number;
  systemFlags?: number;
  keywords?: string[];
  /** Default: now. */
  internalDate?: number;
}

/** One message of an appendMessages call. */
export interface AppendItem {
  blob: BlobRef;
  meta: MessageMeta;
  systemFlags?: number;
  keywords?: string[];
  /** Default: now. */
  internalDate?: number;
}

export type DeliveryResult =
  | { ok: true; accountId: number; mailboxId: number; uid: number; modseq: number }
  | { ok: false; reason: 'quota'; accountId: number; mailboxId: number }
  /** accountId is 0: the mailbox no longer exists. */
  | { ok: false; reason: 'no-mailbox'; accountId: number; mailboxId: number };

export type FlagOp = 'add' | 'remove' | 'set';

export interface FlagUpdate {
  uid: number;
  modseq: number;
  systemFlags: number;
  keywords: string[];
}

export interface StoreFlagsResult {
  /** In UID order. */
  updated: FlagUpdate[];
  /** UIDs whose MODSEQ was above UNCHANGEDSINCE (RFC 7162 §3.1.3): not changed. */
  modified: number[];
}

export interface CopyResult {
  /** Pairs of [source UID, destination UID] in source UID order (RFC 4315 COPYUID). */
  mapping: Array<[number, number]>;
  uidValidity: number;
}

/** A message a POP3 session removed from INBOX, kept readable for recent-mode sessions. */
export interface PopRetainedMessage {
  /** UIDVALIDITY and UID it had in INBOX: its POP3 UIDL stays `<uidValidity>.<uid>`. */
  uidValidity: number;
  uid: number;
  size: number;
  blobId: string;
  savedAt: number;
}

/** The POP3 UPDATE state (RFC 1939 §6), applied in one transaction. */
export interface PopUpdate {
  /** INBOX UIDs to mark \Seen. */
  seen: number[];
  /** INBOX UIDs the POP client deleted. */
  remove: number[];
  /**
   * What happens to `remove`: 'expunge' expunges; 'trash' / 'archive' move to the account's
   * \Trash / \Archive mailbox (created when missing); 'keep' adds \Seen and the keyword
   * POP_DELETED_KEYWORD, which hides it from later (non-recent) POP sessions.
   */
  action: PopDeleteAction;
  /**
   * For expunge/trash/archive: removed messages saved at or after this moment are retained for
   * recent mode (holding a blob reference, not counted in usedBytes); retained rows of this
   * INBOX older than it are dropped. null = retain nothing.
   */
  retainSince: number | null;
}

/** Keyword a 'keep' POP delete sets (like Dovecot's pop3_deleted_flag). */
export const POP_DELETED_KEYWORD = '$POPDeleted';

/** Who made a change; sessions skip their own changes on the bus. */
export interface WriteOptions {
  origin?: string;
}

/** 'limit': an implementation limit (mailboxes per account, name length/depth: mailbox-limits.ts). */
export type StoreErrorCode = 'exists' | 'not-found' | 'quota' | 'invalid' | 'has-children' | 'inbox' | 'noperm' | 'limit';

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'StoreError';
  }
}

/** The change journal (changesSince, journalHead, pruneJournal): src/store/journal.ts. */
export interface Store extends ChangeJournal {
  readonly kind: 'sqlite' | 'postgres';
  readonly bus: ChangeBus;
  /** Failed-login state for throttling, shared with the admin CLI (src/store/login-failures.ts). */
  readonly loginFailures: LoginFailureStore;
  /** Sessions counted against per-account limits across processes and nodes (src/store/live-sessions.ts). */
  readonly liveSessions: LiveSessionStore;
  /** The outbound queue (src/store/queue.ts). */
  readonly queue: QueueStore;
  /** DKIM signing keys per domain (src/store/dkim-keys.ts). */
  readonly dkimKeys: DkimKeyStore;

  close(): Promise<void>;
  /**
   * SQLite with worker processes: undoes the COPYs a dead worker (its pid) was staging, so the
   * mailboxes it held take writes again (src/cluster/primary.ts asks a live worker). PostgreSQL
   * keeps a COPY in one transaction: nothing to undo.
   */
  recoverProcess?(pid: number): Promise<number>;

  // ---- domains
  addDomain(name: string): Promise<Domain>; // StoreError 'exists'
  removeDomain(name: string): Promise<void>; // 'not-found'; 'invalid' if accounts remain
  listDomains(): Promise<Domain[]>;
  getDomain(name: string): Promise<Domain | null>;

  // ---- accounts
  /** Creates the account and its DEFAULT_MAILBOXES. 'exists' if an account has the address; 'not-found' for an unknown domain. */
  createAccount(a: { address: string; passwordHash: string; quota?: number; settings?: AccountSettings }): Promise<Account>;
  getAccount(address: string): Promise<Account | null>;
  getAccountById(id: number): Promise<Account | null>;
  listAccounts(domain?: string): Promise<Account[]>;
  updateAccount(id: number, patch: { passwordHash?: string; quota?: number; settings?: AccountSettings }): Promise<Account>;
  /** Removes the account, its mailboxes and messages; blobs left unreferenced are removed. */
  removeAccount(id: number): Promise<void>;

  // ---- aliases
  /**
   * Creates or replaces. An alias may share its address with an account: the alias then decides
   * where that address's mail goes, and a target equal to the address itself means "that
   * account's mailbox" (support@ → support@, adam@, betty@). 'not-found' for an unknown domain.
   */
  setAlias(address: string, targets: string[]): Promise<Alias>;
  removeAlias(address: string): Promise<void>;
  getAlias(address: string): Promise<Alias | null>;
  listAliases(domain?: string): Promise<Alias[]>;

  // ---- mailboxes
  listMailboxes(accountId: number): Promise<Mailbox[]>;
  getMailbox(accountId: number, name: string): Promise<Mailbox | null>;
  getMailboxById(mailboxId: number): Promise<Mailbox | null>;
  /** 'exists' if the name is taken. New UIDVALIDITY, never one used before for this account. */
  /** `subscribed`: also add the name to the subscriptions (the default mailboxes are; IMAP CREATE does not subscribe). */
  createMailbox(accountId: number, name: string, opts?: { specialUse?: SpecialUse | null; subscribed?: boolean } & WriteOptions): Promise<Mailbox>;
  /**
   * Renames the mailbox and its children (`old/…`). RFC 9051 §6.3.6: renaming INBOX moves all its
   * messages into a new mailbox with the new name and leaves INBOX empty.
   */
  renameMailbox(accountId: number, oldName: string, newName: string, opts?: WriteOptions): Promise<void>;
  /** Deletes the mailbox and its messages; its children are kept. INBOX cannot be deleted ('inbox'). */
  deleteMailbox(accountId: number, name: string, opts?: WriteOptions): Promise<void>;
  /**
   * Adds or removes a name in the account's subscriptions, a list of names of its own (RFC 9051
   * §6.3.7): kept when the mailbox is deleted or renamed; no mailbox needed. At most
   * MAX_SUBSCRIPTIONS names ('limit').
   */
  setSubscribed(accountId: number, name: string, subscribed: boolean, opts?: WriteOptions): Promise<void>;
  /** The subscribed names, in no particular order. */
  listSubscriptions(accountId: number): Promise<string[]>;
  /**
   * IMAP4rev1 \\Recent (RFC 3501 §2.3.2): returns the mailbox's recent boundary B (messages with
   * uid >= B are recent: no session has seen them) and, with `claim`, moves it to at least
   * `uidBelow` in the same atomic step, so the messages in [B, uidBelow) are recent for the caller
   * alone. Two sessions claiming at once never both get a message. 'not-found' without the mailbox.
   */
  claimRecent(mailboxId: number, uidBelow: number, claim: boolean): Promise<number>;
  mailboxStatus(mailboxId: number): Promise<MailboxStatus>;

  // ---- messages
  /**
   * Summaries ordered by UID. With `changedSince`, only those with modseq > changedSince.
   * The array is the caller's; the summaries in it may be shared with the store's cache and
   * must not be modified (copy one to change it).
   */
  listMessages(mailboxId: number, opts?: { changedSince?: number }): Promise<MessageSummary[]>;
  /** Full records for the given UIDs (missing ones omitted), ordered by UID. */
  getMessages(mailboxId: number, uids: number[]): Promise<MessageRecord[]>;
  /**
   * What header SEARCH keys need (sent date and the decoded search headers) for the given UIDs,
   * ordered by UID — without the MIME tree, so searching a big mailbox stays cheap. With
   * `fields: false`, `search.fields` is left empty (SUBJECT/FROM/TO/CC/BCC keys don't need it).
   */
  getSearchData(mailboxId: number, uids: number[], opts?: { fields?: boolean }): Promise<SearchData[]>;
  /**
   * UIDs (ascending) of the mailbox's messages whose decoded SUBJECT/FROM/TO/CC/BCC header
   * contains `value` (non-empty), compared case-insensitively (RFC 9051 §6.4.4 SEARCH SUBJECT
   * etc.). Backends answer it from data filled at delivery, without reading each message.
   */
  matchHeader(mailboxId: number, field: SearchHeaderField, value: string): Promise<number[]>;
  /**
   * SORT/THREAD keys of the given UIDs, ordered by UID (missing ones omitted). Stored at delivery
   * (one row per body); bodies stored before the keys existed get theirs computed from the cached
   * parse on first use and kept. `thread`: include messageId and refs (THREAD REFERENCES).
   */
  getSortData(mailboxId: number, uids: number[], opts?: { thread?: boolean }): Promise<SortData[]>;
  /**
   * Thread numbers (OBJECTID THREADID, RFC 8474 §5.2; rules in src/store/threads.ts) of the given
   * UIDs, by UID (missing ones omitted). Assigned at delivery and never changed.
   */
  getThreadIds(mailboxId: number, uids: number[]): Promise<Map<number, number>>;
  /** UIDs (ascending) of the mailbox's messages in a thread (SEARCH THREADID, RFC 8474 §6). */
  threadMembers(mailboxId: number, threadId: number): Promise<number[]>;
  /** The text plans (and blob id, size) of the given UIDs, ordered by UID (missing ones omitted). */
  getTextPlans(mailboxId: number, uids: number[]): Promise<MessageTextPlan[]>;
  /**
   * SEARCH BODY (RFC 9051 §6.4.4): for each needle, the UIDs (ascending) among `uids` whose body
   * text — the text plan's parts, transfer- and charset-decoded, HTML tags stripped — contains
   * it, compared case-insensitively. A message gone meanwhile matches nothing. Backends may scan
   * off the event loop (the SQLite/file store scans on worker threads: src/store/blob/body-scan.ts).
   */
  matchBody(mailboxId: number, uids: number[], needles: string[]): Promise<number[][]>;
  /** UIDs expunged with modseq > sinceModseq, ascending (QRESYNC VANISHED (EARLIER)). */
  expungedSince(mailboxId: number, sinceModseq: number): Promise<number[]>;

  /**
   * Writes a body durably (streamed; never whole in memory for the file store) and pins it until
   * release(). Nothing references it yet, but readBlob/streamBlob already work on it. Input past
   * `maxBytes` is still read to its end (so the peer's protocol stays in step), then refused with
   * StoreError 'invalid'. Callers pass their configured limit (PostgreSQL buffers up to it).
   */
  stageBlob(input: Readable | Buffer, opts?: { maxBytes?: number }): Promise<StagedBlob>;
  /** Reads bytes [start, end) of a blob (whole blob by default). */
  readBlob(blobId: string, start?: number, end?: number): Promise<Buffer>;
  /** Streams bytes [start, end) of a blob. */
  streamBlob(blobId: string, start?: number, end?: number): Readable;

  /**
   * One body into many mailboxes (possibly of different accounts) in one transaction: each target
   * is checked against its account's quota on its own; a full account gets {ok:false, reason:'quota'}
   * and the others still get the message. Returns after the commit is durable.
   */
  deliver(blob: BlobRef, meta: MessageMeta, targets: NewMessage[], opts?: WriteOptions): Promise<DeliveryResult[]>;
  /** One message into one mailbox (IMAP APPEND). StoreError 'quota' when it does not fit. */
  append(blob: BlobRef, meta: MessageMeta, target: NewMessage, opts?: WriteOptions): Promise<{ uid: number; modseq: number; uidValidity: number }>;

  /**
   * Several messages into one mailbox in one transaction (IMAP MULTIAPPEND, RFC 3502: all or
   * none), with consecutive UIDs in input order. With `replace`, one message of the same account
   * is removed in the same transaction (IMAP REPLACE, RFC 8508 §3.4: logged like a UID EXPUNGE,
   * quota counted net of it). StoreError 'quota' when they do not fit; 'not-found' when the
   * mailbox or the message to replace is gone. Implementations: sqlite/append-many.ts, postgres/append-many.ts.
   */
  appendMessages(
    mailboxId: number,
    items: AppendItem[],
    opts?: { replace?: { mailboxId: number; uid: number } } & WriteOptions,
  ): Promise<{ uids: number[]; modseqs: number[]; uidValidity: number }>;

  /** Changes flags; each changed message gets a new MODSEQ. Unchanged messages are not touched. */
  storeFlags(
    mailboxId: number,
    uids: number[],
    op: FlagOp,
    flags: { systemFlags: number; keywords: string[] },
    opts?: { unchangedSince?: number } & WriteOptions,
  ): Promise<StoreFlagsResult>;
  /**
   * Expunges messages. With `uids`, only those; with `onlyDeleted` (default true), only those with
   * \Deleted. Returns the UIDs removed. Logs them with a new MODSEQ for VANISHED (EARLIER).
   */
  expunge(mailboxId: number, opts?: { uids?: number[]; onlyDeleted?: boolean } & WriteOptions): Promise<number[]>;
  /**
   * Copies (new UIDs in target, flags kept). All or nothing (RFC 9051 §6.4.7), also across a crash:
   * StoreError 'quota' if the copies do not fit; until it resolves, none is visible in the target.
   */
  copyMessages(srcMailboxId: number, uids: number[], dstMailboxId: number, opts?: WriteOptions): Promise<CopyResult>;
  /** Copy + expunge from source (RFC 6851 §3.3): each message is moved atomically, in one mailbox at every commit. Same account only. */
  moveMessages(srcMailboxId: number, uids: number[], dstMailboxId: number, opts?: WriteOptions): Promise<CopyResult>;

  // ---- POP3
  /**
   * The POP3 UPDATE state (in steps of a slice of the messages each for a big one), publishing the same Changes as storeFlags /
   * expunge / moveMessages. Returns the UIDs removed from INBOX (none for 'keep') and the
   * mailbox they went to (trash/archive).
   */
  popUpdate(inboxId: number, u: PopUpdate, opts?: WriteOptions): Promise<{ removed: number[]; mailbox: Mailbox | null }>;
  /** Retained messages of this INBOX with savedAt >= since, oldest first (recent mode). */
  popRetained(inboxId: number, since: number): Promise<PopRetainedMessage[]>;
}

/** Settings with defaults applied. */
export function accountSettings(a: Pick<Account, 'settings'>): Required<Omit<AccountSettings, 'pop'>> & { pop: Required<NonNullable<AccountSettings['pop']>> } {
  const pop = a.settings.pop ?? {};
  return {
    imapMaxConnections: a.settings.imapMaxConnections ?? 5,
    pop: {
      enabled: pop.enabled ?? true,
      deleteAction: pop.deleteAction ?? 'expunge',
      showSince: pop.showSince ?? null,
      markSeen: pop.markSeen ?? true,
    },
  };
}

/** Keyword list normalisation: no duplicates ignoring case, order kept. */
export function normalizeKeywords(keywords: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const k of keywords) {
    const l = k.toLowerCase();
    if (!seen.has(l)) {
      seen.add(l);
      out.push(k);
    }
  }
  return out;
}

/** Applies a flag operation; returns the new flags. */
export function applyFlagOp(
  cur: { systemFlags: number; keywords: string[] },
  op: FlagOp,
  f: { systemFlags: number; keywords: string[] },
): { systemFlags: number; keywords: string[] } {
  if (op === 'set') return { systemFlags: f.systemFlags, keywords: normalizeKeywords(f.keywords) };
  if (op === 'add') return { systemFlags: cur.systemFlags | f.systemFlags, keywords: normalizeKeywords([...cur.keywords, ...f.keywords]) };
  const drop = new Set(f.keywords.map((k) => k.toLowerCase()));
  return { systemFlags: cur.systemFlags & ~f.systemFlags, keywords: cur.keywords.filter((k) => !drop.has(k.toLowerCase())) };
}

export function sameFlags(a: { systemFlags: number; keywords: string[] }, b: { systemFlags: number; keywords: string[] }): boolean {
  if (a.systemFlags !== b.systemFlags || a.keywords.length !== b.keywords.length) return false;
  const s = new Set(a.keywords.map((k) => k.toLowerCase()));
  return b.keywords.every((k) => s.has(k.toLowerCase()));
}

/**
 * SearchData.sentDay from a cached meta's `sentDay` (set at delivery) or, for metas cached before
 * it existed, from its stored Date: value (`envelope.date`) — RFC 3501 §6.4.4's date as written.
 */
export function storedSentDay(sentDay: unknown, envelopeDate: unknown, sentDate: number | null): number | null {
  if (typeof sentDay === 'number') return sentDay;
  if (sentDay === null && sentDate === null) return null;
  return sentDayOf(typeof envelopeDate === 'string' ? envelopeDate : null, sentDate);
}
