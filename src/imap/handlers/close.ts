// CLOSE (RFC 9051 §6.4.1): silently expunge \Deleted messages (read-write only), then unselect.
import type { Handler } from '../commands.ts';

export const close: Handler<'CLOSE'> = async (s) => {
  const sel = s.selected!;
  s.unselect();
  if (!sel.readOnly && !sel.gone) {
    await s.deps.store.expunge(sel.mailboxId, { onlyDeleted: true, origin: s.origin });
  }
  return 'CLOSE completed';
};
