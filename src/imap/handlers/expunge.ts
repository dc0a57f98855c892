// EXPUNGE and UID EXPUNGE (RFC 9051 §6.4.3, RFC 4315 §2.1). The untagged EXPUNGE (or VANISHED with
// QRESYNC) responses come from the same bookkeeping the bus feeds, streamed before the tagged OK.
import type { Handler } from '../commands.ts';
import { ImapNo } from '../errors.ts';
import { resolveSet } from '../sequence.ts';

export const expunge: Handler<'EXPUNGE'> = async (s, _tag, cmd) => {
  const sel = s.selected!;
  if (sel.readOnly) throw new ImapNo('READ-ONLY', 'Mailbox is read-only');
  let uids: number[] | undefined;
  if (cmd.uid && cmd.set) {
    uids = resolveSet(s, cmd.set, true);
    if (uids.length === 0) return 'UID EXPUNGE completed';
  }
  const removed = await s.deps.store.expunge(sel.mailboxId, { ...(uids ? { uids } : {}), onlyDeleted: true, origin: s.origin });
  await sel.expungedAll(removed);
  // RFC 9051 §6.4.3: an untagged EXPUNGE for each removed message before the OK.
  await sel.flushTo(s, s.flushOptions(true));
  if (s.qresync) {
    const mb = await s.deps.store.getMailboxById(sel.mailboxId);
    if (mb) return { code: `HIGHESTMODSEQ ${mb.highestModseq}`, text: 'EXPUNGE completed' };
  }
  return 'EXPUNGE completed';
};
