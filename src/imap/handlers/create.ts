// CREATE (RFC 9051 §6.3.4) with CREATE-SPECIAL-USE (RFC 6154 §3, the use shown by LIST §2). Missing parents are created.
// The mailbox limits (src/store/mailbox-limits.ts; the store enforces them on every create) are
// checked for the whole set first, so a refused CREATE adds no parents either: NO [LIMIT].
import type { Handler } from '../commands.ts';
import { ImapNo } from '../errors.ts';
import { StoreError, mailboxObjectId, type SpecialUse } from '../../store/store.ts';
import { checkMailboxCount, checkMailboxName, mailboxLimits } from '../../store/mailbox-limits.ts';
import { ancestors } from './list.ts';

// RFC 6154 §2: the uses a plain mailbox can have. \All and \Flagged describe virtual mailboxes
// (every message / every flagged one), which Pillarbox has not: CREATE refuses them with USEATTR.
const USES = new Map<string, SpecialUse>((['\\Sent', '\\Drafts', '\\Trash', '\\Junk', '\\Archive'] as SpecialUse[]).map((u) => [u.toLowerCase(), u]));

export const create: Handler<'CREATE'> = async (s, _tag, cmd) => {
  const accountId = s.account!.id;
  // RFC 9051 §6.3.4: a trailing separator only says the name will have children.
  let name = s.mailboxFromClient(cmd.mailbox);
  if (name.endsWith('/') && name.length > 1) name = name.slice(0, -1);
  s.checkNewMailboxName(name);
  if (name === 'INBOX') throw new ImapNo('ALREADYEXISTS', 'INBOX always exists');
  // RFC 6154 §3: a use that cannot be given means no mailbox at all, NO [USEATTR] (checked before
  // any parent is created). A mailbox has at most one use here; several are refused the same way.
  let specialUse: SpecialUse | null = null;
  for (const u of cmd.specialUse) {
    if (!USES.has(u.toLowerCase())) throw new ImapNo('USEATTR', `${u} not supported`);
  }
  if (cmd.specialUse.length > 1) throw new ImapNo('USEATTR', 'Only one special-use attribute per mailbox');
  if (cmd.specialUse.length === 1) specialUse = USES.get(cmd.specialUse[0]!.toLowerCase())!;
  const limits = mailboxLimits(s.deps.config.limits);
  checkMailboxName(name, limits);
  const existing = await s.deps.store.listMailboxes(accountId);
  const names = new Set(existing.map((m) => m.name));
  if (names.has(name)) throw new ImapNo('ALREADYEXISTS', `Mailbox ${name} already exists`);
  const missing = ancestors(name).filter((p) => !names.has(p));
  checkMailboxCount(existing.length, missing.length + 1, limits);
  for (const parent of missing) {
    try {
      await s.deps.store.createMailbox(accountId, parent, { origin: s.origin });
    } catch (err) {
      if (!(err instanceof StoreError && err.code === 'exists')) throw err;
    }
  }
  // Not subscribed: RFC 9051 §6.3.4 does not make CREATE subscribe; subscriptions are the
  // client's own list (§6.3.7), so a CREATE answered here leaves LSUB as it was.
  const mb = await s.deps.store.createMailbox(accountId, name, { specialUse, origin: s.origin });
  // RFC 8474 §4.1
  return { code: `MAILBOXID (${mailboxObjectId(mb)})`, text: 'CREATE completed' };
};
