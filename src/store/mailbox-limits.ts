// Limits on an account's mailbox tree, checked by every store backend inside the transaction that
// creates or renames mailboxes, so no caller (IMAP CREATE with its implied parents, RENAME, the
// admin CLI, a future webmail) can get around them. Refusals are StoreError('limit'), which IMAP
// answers `NO [LIMIT]` (RFC 5530 §3).
//
// Why these defaults (config `limits`, src/config/config.ts):
// - maxMailboxes 1,000: a hand-made folder tree has tens to a few hundred folders; 1,000 keeps a
//   full `LIST "" *` (with CHILDREN, RFC 3348) to a few ms and its reply under ~100 KB, where
//   before one client made 5,406 mailboxes with 12 CREATEs and every LIST took 3-8 s.
// - maxMailboxNameBytes 1,000 (UTF-8, the whole name; the stores' own rule also refuses more than
//   1,000 characters) and maxMailboxDepth 16 levels: people don't make longer or deeper names;
//   each CREATE then adds at most 15 parents (one CREATE made 449 before), and the LIST matcher's
//   cost per name is bounded by its length (src/protocol/imap/list-pattern.ts).

import { DEFAULT_LIMITS, type Limits } from '../config/config.ts';
import { MAILBOX_SEPARATOR, StoreError } from './store.ts';

export type MailboxLimits = Pick<Limits, 'maxMailboxes' | 'maxMailboxNameBytes' | 'maxMailboxDepth'>;

export const DEFAULT_MAILBOX_LIMITS: MailboxLimits = {
  maxMailboxes: DEFAULT_LIMITS.maxMailboxes,
  maxMailboxNameBytes: DEFAULT_LIMITS.maxMailboxNameBytes,
  maxMailboxDepth: DEFAULT_LIMITS.maxMailboxDepth,
};

/** The limits a store enforces: the configured ones, a 0 or missing value meaning the default. */
export function mailboxLimits(l: Partial<MailboxLimits> | undefined): MailboxLimits {
  const pick = (k: keyof MailboxLimits) => (l?.[k] && l[k]! > 0 ? l[k]! : DEFAULT_MAILBOX_LIMITS[k]);
  return { maxMailboxes: pick('maxMailboxes'), maxMailboxNameBytes: pick('maxMailboxNameBytes'), maxMailboxDepth: pick('maxMailboxDepth') };
}

/** Throws StoreError('limit') when a (normalised, `/`-separated) name is too long or too deep. */
export function checkMailboxName(name: string, limits: MailboxLimits, separator = '/'): void {
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > limits.maxMailboxNameBytes) {
    throw new StoreError('limit', `Mailbox name is ${bytes} bytes long; the limit is ${limits.maxMailboxNameBytes} bytes`);
  }
  let depth = 1;
  for (let i = name.indexOf(separator); i >= 0; i = name.indexOf(separator, i + 1)) depth++;
  if (depth > limits.maxMailboxDepth) {
    throw new StoreError('limit', `Mailbox name has ${depth} hierarchy levels; the limit is ${limits.maxMailboxDepth}`);
  }
}

/** Throws StoreError('limit') when an account with `existing` mailboxes may not get `adding` more. */
export function checkMailboxCount(existing: number, adding: number, limits: MailboxLimits): void {
  if (existing + adding > limits.maxMailboxes) {
    throw new StoreError('limit', `An account may have at most ${limits.maxMailboxes} mailboxes (it has ${existing})`);
  }
}

/** INBOX is case-insensitive (RFC 9051 §5.1), also as the first level of a hierarchical name; other names are kept as given. */
export function normalizeName(name: string): string {
  if (name.toUpperCase() === 'INBOX') return 'INBOX';
  if (name.toUpperCase().startsWith('INBOX' + MAILBOX_SEPARATOR)) return 'INBOX' + name.slice(5);
  return name;
}

/** The normalised name, or StoreError('invalid') for an empty level, control characters or over 1,000 characters. */
export function validateName(name: string): string {
  const n = normalizeName(name);
  if (n === '' || n.length > 1000) throw new StoreError('invalid', 'mailbox name must be 1–1000 characters');
  if (n.startsWith(MAILBOX_SEPARATOR) || n.endsWith(MAILBOX_SEPARATOR) || n.includes(MAILBOX_SEPARATOR + MAILBOX_SEPARATOR))
    throw new StoreError('invalid', 'mailbox name has an empty hierarchy level');
  // A single character class: linear, no backtracking.
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(n)) throw new StoreError('invalid', 'mailbox name contains control characters');
  return n;
}
