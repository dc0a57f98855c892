// DELETE (RFC 9051 §6.3.5): INBOX cannot be deleted.
import type { Handler } from '../commands.ts';
import { ImapNo } from '../errors.ts';

export const del: Handler<'DELETE'> = async (s, _tag, cmd) => {
  const name = s.mailboxFromClient(cmd.mailbox);
  if (name === 'INBOX') throw new ImapNo('CANNOT', 'INBOX cannot be deleted');
  if (!(await s.deps.store.getMailbox(s.account!.id, name))) throw new ImapNo('NONEXISTENT', `Mailbox ${name} does not exist`);
  await s.deps.store.deleteMailbox(s.account!.id, name, { origin: s.origin });
  return 'DELETE completed';
};
