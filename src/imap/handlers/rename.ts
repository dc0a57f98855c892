// RENAME (RFC 9051 §6.3.6): children move along; renaming INBOX moves its messages (store rule).
import type { Handler } from '../commands.ts';
import { ImapNo } from '../errors.ts';

export const rename: Handler<'RENAME'> = async (s, _tag, cmd) => {
  const accountId = s.account!.id;
  const from = s.mailboxFromClient(cmd.from);
  let to = s.mailboxFromClient(cmd.to);
  if (to.endsWith('/') && to.length > 1) to = to.slice(0, -1);
  s.checkNewMailboxName(to);
  if (to === 'INBOX') throw new ImapNo('ALREADYEXISTS', 'INBOX always exists');
  if (!(await s.deps.store.getMailbox(accountId, from))) throw new ImapNo('NONEXISTENT', `Mailbox ${from} does not exist`);
  if (await s.deps.store.getMailbox(accountId, to)) throw new ImapNo('ALREADYEXISTS', `Mailbox ${to} already exists`);
  if (to.startsWith(from + '/')) throw new ImapNo('CANNOT', 'Cannot move a mailbox into itself');
  await s.deps.store.renameMailbox(accountId, from, to, { origin: s.origin });
  return 'RENAME completed';
};
