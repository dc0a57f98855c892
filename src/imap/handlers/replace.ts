// REPLACE and UID REPLACE (RFC 8508): APPEND of a new message and expunge of one of the selected
// mailbox in one store transaction (§3.4: no intermediate state, the quota counted net, nothing
// expunged when the append fails). APPENDUID in an untagged OK before the EXPUNGE (§4.3); the
// replaced message is logged like a UID EXPUNGE for CONDSTORE/QRESYNC (§4.5).
import type { Handler } from '../commands.ts';
import type { ImapSession } from '../session.ts';
import type { ImapCommand } from '../../protocol/imap/types.ts';
import { ImapBad, ImapNo } from '../errors.ts';
import { StagedLiterals, appendItem, appendMailbox, messageData } from './append-data.ts';

/** The UID of the message to replace: a sequence number must exist (else BAD), a UID must be known (else NO). */
function replacedUid(s: ImapSession, cmd: ImapCommand & { name: 'REPLACE' }): number {
  const sel = s.selected!;
  const n = sel.uids.length;
  if (cmd.uid) {
    const uid = cmd.target === -1 ? (sel.uids[n - 1] ?? 0) : cmd.target;
    if (!sel.seqOf(uid)) throw new ImapNo('NONEXISTENT', `No message with UID ${cmd.target === -1 ? '*' : cmd.target}`);
    return uid;
  }
  const seq = cmd.target === -1 ? n : cmd.target;
  if (seq < 1 || seq > n) throw new ImapBad(`Invalid message sequence number (there are ${n} messages)`);
  return sel.uids[seq - 1]!;
}

export const replace: Handler<'REPLACE'> = async (s, _tag, cmd) => {
  const staged = new StagedLiterals(s.takeAppend());
  try {
    const sel = s.selected!;
    if (sel.readOnly) throw new ImapNo('READ-ONLY', 'Mailbox is read-only');
    const uid = replacedUid(s, cmd);
    const mb = await appendMailbox(s, cmd.mailbox);
    const item = appendItem(cmd.message, await messageData(s, cmd.message, staged));
    const r = await s.deps.store.appendMessages(mb.id, [item], { replace: { mailboxId: sel.mailboxId, uid }, origin: s.origin });
    await s.writeAwait(`* OK [APPENDUID ${r.uidValidity} ${r.uids[0]}] Replacement message ready\r\n`);
    if (mb.id === sel.mailboxId) sel.added(r.uids);
    sel.expunged([uid]);
    // The EXISTS / EXPUNGE (VANISHED) go out with the session's flush before the tagged OK.
    return `${cmd.uid ? 'UID REPLACE' : 'REPLACE'} completed`;
  } finally {
    staged.release();
  }
};
