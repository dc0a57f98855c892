// CREATE (RFC 9051 §6.3.4) with CREATE-SPECIAL-USE (RFC 6154 §3). Missing parents are created.
import type { Handler } from '../commands.ts';
import { ImapNo } from '../errors.ts';
import { StoreError, type SpecialUse } from '../../store/store.ts';

const USES = new Map<string, SpecialUse>(
  (['\\Sent', '\\Drafts', '\\Trash', '\\Junk', '\\Archive', '\\All', '\\Flagged'] as SpecialUse[]).map((u) => [u.toLowerCase(), u]),
);

export const create: Handler<'CREATE'> = async (s, _tag, cmd) => {
  const accountId = s.account!.id;
  // RFC 9051 §6.3.4: a trailing separator only says the name will have children.
  let name = s.mailboxFromClient(cmd.mailbox);
  if (name.endsWith('/') && name.length > 1) name = name.slice(0, -1);
  s.checkNewMailboxName(name);
  if (name === 'INBOX') throw new ImapNo('ALREADYEXISTS', 'INBOX always exists');
  let specialUse: SpecialUse | null = null;
  if (cmd.specialUse.length > 1) throw new ImapNo('USEATTR', 'Only one special-use attribute per mailbox');
  if (cmd.specialUse.length === 1) {
    specialUse = USES.get(cmd.specialUse[0]!.toLowerCase()) ?? null;
    if (!specialUse) throw new ImapNo('USEATTR', `Unsupported special-use attribute ${cmd.specialUse[0]}`);
  }
  const parts = name.split('/');
  for (let i = 1; i < parts.length; i++) {
    const parent = parts.slice(0, i).join('/');
    if (!(await s.deps.store.getMailbox(accountId, parent))) {
      try {
        await s.deps.store.createMailbox(accountId, parent, { subscribed: true, origin: s.origin });
      } catch (err) {
        if (!(err instanceof StoreError && err.code === 'exists')) throw err;
      }
    }
  }
  await s.deps.store.createMailbox(accountId, name, { specialUse, subscribed: true, origin: s.origin });
  return 'CREATE completed';
};
