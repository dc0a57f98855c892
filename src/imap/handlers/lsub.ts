// LSUB (RFC 3501 §6.3.9; removed in IMAP4rev2, kept for IMAP4rev1 clients): the subscribed names
// (a list of its own, RFC 3501 §6.3.6, whether or not a mailbox has the name). A "%" that stops at
// a level above a subscribed name returns that level with \Noselect unless it is subscribed
// itself; a level whose subscribed children the pattern returns anyway is not repeated (as
// Dovecot). Linear in the names, like LIST (see list.ts).
import type { Handler } from '../commands.ts';
import { LIST_SLICE, ancestors, listMatcher, nextTurn } from './list.ts';

export const lsub: Handler<'LSUB'> = async (s, _tag, cmd) => {
  if (cmd.pattern === '') {
    s.write('* LSUB (\\Noselect) "/" ""\r\n');
    return 'LSUB completed';
  }
  const m = listMatcher(s, cmd.reference, cmd.pattern);
  const subscribed = new Set(await s.deps.store.listSubscriptions(s.account!.id));
  const out = new Map<string, boolean>(); // name → subscribed itself (else \Noselect)
  let n = 0;
  for (const name of subscribed) {
    if (++n % LIST_SLICE === 0) await nextTurn();
    if (m.test(name)) {
      out.set(name, true);
      continue;
    }
    for (const parent of ancestors(name)) {
      if (!out.has(parent) && !subscribed.has(parent) && m.test(parent)) out.set(parent, false);
    }
  }
  const names = [...out.keys()].sort((a, b) => (a === 'INBOX' ? -1 : b === 'INBOX' ? 1 : a < b ? -1 : a > b ? 1 : 0));
  for (let i = 0; i < names.length; i += LIST_SLICE) {
    await s.writeAwait(names.slice(i, i + LIST_SLICE).map((nm) => `* LSUB (${out.get(nm) ? '' : '\\Noselect'}) "/" ${s.mailboxToClient(nm)}\r\n`).join(''));
  }
  return 'LSUB completed';
};
