// Sequence sets against the selected mailbox (RFC 9051 §9 sequence-set, RFC 5182 "$").
import type { SeqSet } from '../protocol/imap/types.ts';
import { seqSetHas, seqSetMembers } from '../protocol/imap/response.ts';
import type { ImapSession } from './session.ts';
import { ImapBad } from './errors.ts';

/** The UIDs (ascending) a command's set names. Sequence numbers past EXISTS are a BAD. */
export function resolveSet(s: ImapSession, set: SeqSet, uid: boolean): number[] {
  const sel = s.selected!;
  if (set.saved) {
    const have = new Set(sel.uids);
    return s.savedSearch.filter((u) => have.has(u));
  }
  if (uid) {
    const max = sel.uids.length ? sel.uids[sel.uids.length - 1]! : 0;
    return sel.uids.filter((u) => seqSetHas(set, u, max));
  }
  const n = sel.uids.length;
  for (const [a, b] of set.ranges) {
    if (a > n || b > n) throw new ImapBad(`Invalid message sequence number (there are ${n} messages)`);
  }
  return seqSetMembers(set, n).map((seq) => sel.uids[seq - 1]!);
}
