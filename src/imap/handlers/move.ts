// MOVE and UID MOVE (RFC 6851): COPYUID in an untagged OK before the EXPUNGEs (§4.3).
import type { Handler } from '../commands.ts';
import { ImapNo } from '../errors.ts';
import { resolveSet } from '../sequence.ts';
import { copyUid, targetMailbox } from './copy.ts';

export const move: Handler<'MOVE'> = async (s, _tag, cmd) => {
  const sel = s.selected!;
  if (sel.readOnly) throw new ImapNo('READ-ONLY', 'Mailbox is read-only');
  const uids = resolveSet(s, cmd.set, cmd.uid);
  const dst = await targetMailbox(s, cmd.mailbox);
  if (uids.length === 0) return 'MOVE completed';
  if (dst.id === sel.mailboxId) throw new ImapNo('CANNOT', 'Source and destination are the same mailbox');
  const r = await s.deps.store.moveMessages(sel.mailboxId, uids, dst.id, { origin: s.origin });
  s.write(`* OK [${copyUid(r.uidValidity, r.mapping)}] Moved\r\n`);
  sel.expunged(r.mapping.map((m) => m[0]));
  return 'MOVE completed';
};
