// GETQUOTA / GETQUOTAROOT (RFC 9208): one root "" per account, STORAGE in units of 1024 octets.
import type { Handler } from '../commands.ts';
import type { ImapSession } from '../session.ts';
import { ImapNo } from '../errors.ts';

async function quotaLine(s: ImapSession): Promise<string> {
  const acc = (await s.deps.store.getAccountById(s.account!.id)) ?? s.account!;
  if (!acc.quota) return '* QUOTA "" ()\r\n';
  return `* QUOTA "" (STORAGE ${Math.ceil(acc.usedBytes / 1024)} ${Math.floor(acc.quota / 1024)})\r\n`;
}

export const getquota: Handler<'GETQUOTA'> = async (s, _tag, cmd) => {
  if (cmd.root !== '') throw new ImapNo('NONEXISTENT', 'No such quota root');
  s.write(await quotaLine(s));
  return 'GETQUOTA completed';
};

export const getquotaroot: Handler<'GETQUOTAROOT'> = async (s, _tag, cmd) => {
  const name = s.mailboxFromClient(cmd.mailbox);
  if (!(await s.deps.store.getMailbox(s.account!.id, name))) throw new ImapNo('NONEXISTENT', `Mailbox ${name} does not exist`);
  s.write(`* QUOTAROOT ${s.mailboxToClient(name)} ""\r\n` + (await quotaLine(s)));
  return 'GETQUOTAROOT completed';
};
