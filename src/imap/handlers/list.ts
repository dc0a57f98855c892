// LIST (RFC 9051 §6.3.9) with LIST-EXTENDED (RFC 5258), SPECIAL-USE (RFC 6154), CHILDREN
// (RFC 3348; always returned) and LIST-STATUS (RFC 5819).
//
// Linear in the account's names: patterns are matched by src/protocol/imap/list-pattern.ts (no
// RegExp), \HasChildren and CHILDINFO come from one pass over every name's ancestors (at most
// maxMailboxDepth each), and the reply is written in slices with the event loop given back
// between them, so a big tree neither holds the loop nor piles up output (writeAwait).
import type { Handler } from '../commands.ts';
import type { ImapSession } from '../session.ts';
import type { Mailbox } from '../../store/store.ts';
import { ImapNo } from '../errors.ts';
import { decodeMailboxUtf7 } from '../../protocol/imap/utf7.ts';
import { compileListPattern, MAX_WILDCARD_PART, type ListPattern } from '../../protocol/imap/list-pattern.ts';
import { statusLineFor } from './status.ts';

/** Entries written (and matched) between two turns of the event loop. */
export const LIST_SLICE = 128;

/** A LIST/LSUB pattern (reference + pattern) as a matcher on store names (RFC 9051 §6.3.9). */
export function listMatcher(s: ImapSession, reference: string, pattern: string): ListPattern {
  let full = reference + pattern;
  if (!s.utf8) full = decodeMailboxUtf7(full) ?? full;
  // INBOX is case-insensitive (RFC 9051 §5.1).
  if (full.slice(0, 5).toUpperCase() === 'INBOX' && (full.length === 5 || full[5] === '/')) full = 'INBOX' + full.slice(5);
  const m = compileListPattern(full, '/', s.deps.config.limits.maxMailboxNameBytes);
  if (!m) throw new ImapNo('LIMIT', `The pattern is too long after its first wildcard (at most ${MAX_WILDCARD_PART} characters)`);
  return m;
}

/** Every proper ancestor of `name` (`a/b/c` → `a`, `a/b`). */
export function ancestors(name: string): string[] {
  const out: string[] = [];
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) out.push(name.slice(0, i));
  return out;
}

/** Gives the event loop a turn (between slices of a long reply). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export interface ListEntry {
  name: string;
  mailbox: Mailbox | null;
  hasChildren: boolean;
}

/**
 * Every mailbox plus implied parents (non-existent, \Noselect) that have existing children; plus
 * `extra` names (subscribed ones without a mailbox, their parents: LIST-EXTENDED, RFC 5258).
 */
export function allEntries(mailboxes: Mailbox[], extra: Iterable<string> = []): ListEntry[] {
  const byName = new Map<string, ListEntry>();
  for (const m of mailboxes) byName.set(m.name, { name: m.name, mailbox: m, hasChildren: false });
  for (const m of mailboxes) {
    for (const p of ancestors(m.name)) {
      const e = byName.get(p);
      if (e) e.hasChildren = true;
      else byName.set(p, { name: p, mailbox: null, hasChildren: true });
    }
  }
  for (const name of extra) if (!byName.has(name)) byName.set(name, { name, mailbox: null, hasChildren: false });
  return [...byName.values()].sort((a, b) => (a.name === 'INBOX' ? -1 : b.name === 'INBOX' ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export const list: Handler<'LIST'> = async (s, _tag, cmd) => {
  // RFC 9051 §6.3.9: an empty pattern asks for the delimiter and root.
  if (cmd.patterns.length === 1 && cmd.patterns[0] === '' && !cmd.extended) {
    s.write('* LIST (\\Noselect) "/" ""\r\n');
    return 'LIST completed';
  }
  const matchers = cmd.patterns.filter((p) => p !== '').map((p) => listMatcher(s, cmd.reference, p));
  const matches = (name: string) => matchers.some((m) => m.test(name));
  const mailboxes = await s.deps.store.listMailboxes(s.account!.id);
  const selSubscribed = cmd.selection.includes('SUBSCRIBED');
  const selSpecial = cmd.selection.includes('SPECIAL-USE');
  const showSubscribed = selSubscribed || cmd.returns.subscribed;
  const recursive = cmd.selection.includes('RECURSIVEMATCH');
  // Subscriptions are names of their own (RFC 9051 §6.3.7): a subscribed name may have no mailbox.
  const subs = new Set(showSubscribed ? await s.deps.store.listSubscriptions(s.account!.id) : []);
  // RFC 5258 §3.5: with RECURSIVEMATCH, a parent with a subscribed descendant the pattern does not
  // return gets CHILDINFO (a descendant that is returned anyway makes it redundant: SHOULD NOT).
  const childInfo = new Set<string>();
  if (recursive && selSubscribed) for (const n of subs) if (!matches(n)) for (const p of ancestors(n)) childInfo.add(p);
  const entries = allEntries(mailboxes, selSubscribed ? [...subs, ...childInfo] : []);
  let out = '';
  let n = 0;
  for (const e of entries) {
    if (++n % LIST_SLICE === 0) {
      if (out) await s.writeAwait(out);
      out = '';
      await nextTurn();
      if (s.closed) return null;
    }
    if (!matches(e.name)) continue;
    const mb = e.mailbox;
    const subscribed = subs.has(e.name);
    const info = childInfo.has(e.name);
    if (selSubscribed && !subscribed && !info) continue;
    if (selSpecial && !mb?.specialUse) continue;
    const attrs: string[] = [];
    // RFC 5258 §3: a name returned for the selection criteria without a mailbox is \NonExistent.
    if (!mb) attrs.push(selSubscribed ? '\\NonExistent' : '\\Noselect');
    attrs.push(e.hasChildren ? '\\HasChildren' : '\\HasNoChildren');
    if (showSubscribed && subscribed) attrs.push('\\Subscribed');
    if (mb?.specialUse) attrs.push(mb.specialUse);
    out += `* LIST (${attrs.join(' ')}) "/" ${s.mailboxToClient(e.name)}${info ? ' ("CHILDINFO" ("SUBSCRIBED"))' : ''}\r\n`;
    if (cmd.returns.status && mb) {
      await s.writeAwait(out);
      out = '';
      await s.writeAwait(await statusLineFor(s, mb, cmd.returns.status));
    }
  }
  if (out) await s.writeAwait(out);
  return 'LIST completed';
};
