// SUBSCRIBE / UNSUBSCRIBE (RFC 9051 §6.3.7, §6.3.8).
import type { Handler } from '../commands.ts';
import { ImapNo } from '../errors.ts';

export const subscribe: Handler<'SUBSCRIBE' | 'UNSUBSCRIBE'> = async (s, _tag, cmd) => {
  const name = s.mailboxFromClient(cmd.mailbox);
  const mb = await s.deps.store.getMailbox(s.account!.id, name);
  if (!mb) {
    if (cmd.name === 'UNSUBSCRIBE') return 'UNSUBSCRIBE completed';
    throw new ImapNo('NONEXISTENT', `Mailbox ${name} does not exist`);
  }
  await s.deps.store.setSubscribed(s.account!.id, name, cmd.name === 'SUBSCRIBE');
  return `${cmd.name} completed`;
};
