// SUBSCRIBE / UNSUBSCRIBE (RFC 9051 §6.3.7, §6.3.8; RFC 3501 §6.3.6, §6.3.7). Subscriptions are a
// list of names of their own: UNSUBSCRIBE removes a name whether or not its mailbox still exists
// (the server never drops one because the mailbox went). SUBSCRIBE checks that the mailbox exists
// (RFC 9051 §6.3.7 allows it; Dovecot does the same).
import type { Handler } from '../commands.ts';
import { ImapNo } from '../errors.ts';

export const subscribe: Handler<'SUBSCRIBE' | 'UNSUBSCRIBE'> = async (s, _tag, cmd) => {
  const name = s.mailboxFromClient(cmd.mailbox);
  const on = cmd.name === 'SUBSCRIBE';
  if (on && !(await s.deps.store.getMailbox(s.account!.id, name))) throw new ImapNo('NONEXISTENT', `Mailbox ${name} does not exist`);
  await s.deps.store.setSubscribed(s.account!.id, name, on, { origin: s.origin });
  return `${cmd.name} completed`;
};
