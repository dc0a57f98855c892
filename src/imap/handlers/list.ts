// LIST (RFC 9051 §6.3.9) with LIST-EXTENDED (RFC 5258), SPECIAL-USE (RFC 6154), CHILDREN
// (RFC 3348; always returned) and LIST-STATUS (RFC 5819).
import type { Handler } from '../commands.ts';
import type { ImapSession } from '../session.ts';
import type { Mailbox } from '../../store/store.ts';
import { decodeMailboxUtf7 } from '../../protocol/imap/utf7.ts';
import { statusLineFor } from './status.ts';

/** A LIST pattern as a RegExp: `*` matches anything, `%` anything but the separator (RFC 9051 §6.3.9). */
export function patternRegExp(s: ImapSession, reference: string, pattern: string): RegExp {
  let full = reference + pattern;
  if (!s.utf8) full = decodeMailboxUtf7(full) ?? full;
  // INBOX is case-insensitive.
  if (/^inbox(\/|$)/i.test(full)) full = 'INBOX' + full.slice(5);
  let re = '';
  for (const ch of full) {
    if (ch === '*') re += '.*';
    else if (ch === '%') re += '[^/]*';
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp('^' + re + '$', 's');
}

export interface ListEntry {
  name: string;
  mailbox: Mailbox | null;
  hasChildren: boolean;
}

/** Every mailbox plus implied parents (non-existent, \Noselect) that have existing children. */
export function allEntries(mailboxes: Mailbox[]): ListEntry[] {
  const byName = new Map<string, ListEntry>();
  for (const m of mailboxes) byName.set(m.name, { name: m.name, mailbox: m, hasChildren: false });
  for (const m of mailboxes) {
    const parts = m.name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      let e = byName.get(p);
      if (!e) byName.set(p, (e = { name: p, mailbox: null, hasChildren: true }));
      e.hasChildren = true;
    }
  }
  return [...byName.values()].sort((a, b) => (a.name === 'INBOX' ? -1 : b.name === 'INBOX' ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export const list: Handler<'LIST'> = async (s, _tag, cmd) => {
  // RFC 9051 §6.3.9: an empty pattern asks for the delimiter and root.
  if (cmd.patterns.length === 1 && cmd.patterns[0] === '' && !cmd.extended) {
    s.write('* LIST (\\Noselect) "/" ""\r\n');
    return 'LIST completed';
  }
  const mailboxes = await s.deps.store.listMailboxes(s.account!.id);
  const entries = allEntries(mailboxes);
  const res = cmd.patterns.filter((p) => p !== '').map((p) => patternRegExp(s, cmd.reference, p));
  const selSubscribed = cmd.selection.includes('SUBSCRIBED');
  const selSpecial = cmd.selection.includes('SPECIAL-USE');
  const showSubscribed = selSubscribed || cmd.returns.subscribed;
  const recursive = cmd.selection.includes('RECURSIVEMATCH');
  const subscribedNames = mailboxes.filter((m) => m.subscribed).map((m) => m.name);
  let out = '';
  for (const e of entries) {
    if (!res.some((re) => re.test(e.name))) continue;
    const mb = e.mailbox;
    // RFC 5258 §3.5: with RECURSIVEMATCH a parent of a matching child is returned with CHILDINFO.
    const childInfo = recursive && selSubscribed && subscribedNames.some((n) => n.startsWith(e.name + '/'));
    if (selSubscribed && !mb?.subscribed && !childInfo) continue;
    if (selSpecial && !mb?.specialUse) continue;
    const attrs: string[] = [];
    if (!mb) attrs.push('\\Noselect');
    attrs.push(e.hasChildren ? '\\HasChildren' : '\\HasNoChildren');
    if (showSubscribed && mb?.subscribed) attrs.push('\\Subscribed');
    if (mb?.specialUse) attrs.push(mb.specialUse);
    out += `* LIST (${attrs.join(' ')}) "/" ${s.mailboxToClient(e.name)}${childInfo ? ' ("CHILDINFO" ("SUBSCRIBED"))' : ''}\r\n`;
    if (cmd.returns.status && mb) {
      s.write(out);
      out = '';
      s.write(await statusLineFor(s, mb, cmd.returns.status));
    }
  }
  if (out) s.write(out);
  return 'LIST completed';
};
