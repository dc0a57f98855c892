// LSUB (RFC 3501 §6.3.9; removed in IMAP4rev2, kept for IMAP4rev1 clients).
import type { Handler } from '../commands.ts';
import { allEntries, patternRegExp } from './list.ts';

export const lsub: Handler<'LSUB'> = async (s, _tag, cmd) => {
  if (cmd.pattern === '') {
    s.write('* LSUB (\\Noselect) "/" ""\r\n');
    return 'LSUB completed';
  }
  const re = patternRegExp(s, cmd.reference, cmd.pattern);
  let out = '';
  for (const e of allEntries(await s.deps.store.listMailboxes(s.account!.id))) {
    if (!e.mailbox?.subscribed || !re.test(e.name)) continue;
    out += `* LSUB () "/" ${s.mailboxToClient(e.name)}\r\n`;
  }
  s.write(out);
  return 'LSUB completed';
};
