// LSUB (RFC 3501 §6.3.9; removed in IMAP4rev2, kept for IMAP4rev1 clients). A "%" that stops at a
// level above a subscribed mailbox returns that level with \Noselect.
import type { Handler } from '../commands.ts';
import { patternRegExp } from './list.ts';

export const lsub: Handler<'LSUB'> = async (s, _tag, cmd) => {
  if (cmd.pattern === '') {
    s.write('* LSUB (\\Noselect) "/" ""\r\n');
    return 'LSUB completed';
  }
  const re = patternRegExp(s, cmd.reference, cmd.pattern);
  const subscribed = (await s.deps.store.listMailboxes(s.account!.id)).filter((m) => m.subscribed).map((m) => m.name);
  const out = new Map<string, boolean>(); // name → selectable (subscribed itself)
  for (const name of subscribed) {
    if (re.test(name)) out.set(name, true);
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (!out.has(parent) && re.test(parent) && !subscribed.includes(parent)) out.set(parent, false);
    }
  }
  const names = [...out.keys()].sort((a, b) => (a === 'INBOX' ? -1 : b === 'INBOX' ? 1 : a < b ? -1 : a > b ? 1 : 0));
  s.write(names.map((n) => `* LSUB (${out.get(n) ? '' : '\\Noselect'}) "/" ${s.mailboxToClient(n)}\r\n`).join(''));
  return 'LSUB completed';
};
