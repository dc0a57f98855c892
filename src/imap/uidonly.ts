// UIDONLY (RFC 9586). Once enabled (ENABLE UIDONLY, §3.1) the client may not use message sequence
// numbers in any command argument: tagged BAD [UIDREQUIRED] (§3); FETCH responses become UIDFETCH
// responses carrying the UID instead of a sequence number (§3.3), and EXPUNGE responses become
// VANISHED (RFC 7162 §3.2.10 syntax) even without QRESYNC. The session still keeps its sequence
// map (src/imap/selected.ts): UIDONLY changes what is said, not what is kept.

import type { ImapCommand, SearchKey } from '../protocol/imap/types.ts';

export const UIDREQUIRED_TEXT = 'Message numbers are not allowed once UIDONLY is enabled';

/** True when `cmd` uses message sequence numbers (RFC 9586 §3): a non-UID message command, a sequence-set search key, QRESYNC seq-match-data. */
export function usesSequenceNumbers(cmd: ImapCommand): boolean {
  // FETCH, STORE, SEARCH, COPY, MOVE, REPLACE (and any later command with a `uid` form) without
  // UID; EXPUNGE has no message argument.
  if ('uid' in cmd && !cmd.uid && cmd.name !== 'EXPUNGE') return true;
  if ('key' in cmd && hasSeqKey(cmd.key as SearchKey, 0)) return true;
  if ((cmd.name === 'SELECT' || cmd.name === 'EXAMINE') && cmd.qresync?.seqMatch) return true;
  return false;
}

function hasSeqKey(k: SearchKey, depth: number): boolean {
  if (depth > 100) return false;
  switch (k.k) {
    case 'seq':
      return !k.set.saved; // "$" (RFC 5182) is a saved UID set
    case 'and':
      return k.keys.some((x) => hasSeqKey(x, depth + 1));
    case 'or':
      return hasSeqKey(k.a, depth + 1) || hasSeqKey(k.b, depth + 1);
    case 'not':
      return hasSeqKey(k.key, depth + 1);
    default:
      return false;
  }
}

/**
 * The opening of one message's FETCH response, items to follow: `* <seq> FETCH (`, or with UIDONLY
 * `* <uid> UIDFETCH (` (RFC 9586 §3.3: the UID is the response's number); then the UID item when
 * `withUid` (with UIDONLY only when the client asked for it: a msg-att list is never empty).
 * `more`: an item was written (the next one needs a space).
 */
export function fetchOpen(uidOnly: boolean, seq: number, uid: number, withUid: boolean): { head: string; more: boolean } {
  const head = uidOnly ? `* ${uid} UIDFETCH (` : `* ${seq} FETCH (`;
  return withUid ? { head: `${head}UID ${uid}`, more: true } : { head, more: false };
}
