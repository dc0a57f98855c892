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
  // RFC 6851 §3.3: the store moves a step of messages per commit, each message in exactly one
  // mailbox at every commit; the tagged OK comes after the last step. The destination may be the
  // selected mailbox itself (RFC 6851 §3.1 does not forbid it): the messages get new UIDs there
  // and the old ones are expunged, reported as EXPUNGEs and then EXISTS.
  const r = await s.deps.store.moveMessages(sel.mailboxId, uids, dst.id, { origin: s.origin });
  if (r.mapping.length) await s.writeAwait(`* OK [${copyUid(r.uidValidity, r.mapping)}] Moved\r\n`);
  if (dst.id === sel.mailboxId) sel.added(r.mapping.map((m) => m[1]));
  await sel.expungedAll(r.mapping.map((m) => m[0]));
  // The EXPUNGEs (or VANISHED), streamed with backpressure before the tagged OK.
  await sel.flushTo(s, s.flushOptions(true));
  return 'MOVE completed';
};
