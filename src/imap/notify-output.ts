// What NOTIFY (RFC 5465) writes: `* STATUS` for a mailbox other than the selected one (§5.1–§5.3,
// and §3.1's STATUS option), `* LIST` for MailboxName / SubscriptionChange (§5.4, §5.5), and the
// MessageNew FETCH for the selected mailbox (§5.2). State and timing are in src/imap/notify.ts.

import type { ImapSession } from './session.ts';
import type { Notify } from './notify.ts';
import type { FetchItem, ImapCommand } from '../protocol/imap/types.ts';
import { StoreError, type Mailbox, type MailboxStatus } from '../store/store.ts';
import { fetch } from './handlers/fetch.ts';
import { toReply } from './errors.ts';
import { ancestors } from './handlers/list.ts';
import { LoopBudget } from '../obs/loop-lag.ts';

type Item = 'MESSAGES' | 'UIDNEXT' | 'UIDVALIDITY' | 'UNSEEN' | 'HIGHESTMODSEQ';

function formatStatus(s: ImapSession, name: string, st: MailboxStatus, items: readonly Item[]): string {
  const value: Record<Item, number> = {
    MESSAGES: st.messages,
    UIDNEXT: st.uidNext,
    UIDVALIDITY: st.uidValidity,
    UNSEEN: st.unseen,
    HIGHESTMODSEQ: st.highestModseq,
  };
  return `* STATUS ${s.mailboxToClient(name)} (${items.map((i) => `${i} ${value[i]}`).join(' ')})\r\n`;
}

/** HIGHESTMODSEQ in every notification STATUS once CONDSTORE (or QRESYNC) is on (§5.1–§5.3). */
function modseqs(s: ImapSession): boolean {
  return s.condstore || s.qresync;
}

/**
 * The STATUS of a mailbox whose messages changed, or null when there is nothing to say.
 * `message` (MessageNew / MessageExpunge, §5.2, §5.3): MESSAGES, UIDNEXT, UIDVALIDITY, UNSEEN
 * (+ HIGHESTMODSEQ). Only flags (FlagChange, §5.1): with CONDSTORE UIDVALIDITY, UNSEEN and
 * HIGHESTMODSEQ; without, UNSEEN when it moved since last told, else nothing.
 */
export async function statusLine(s: ImapSession, n: Notify, mailboxId: number, name: string, message: boolean): Promise<string | null> {
  let st: MailboxStatus;
  try {
    st = await s.deps.store.mailboxStatus(mailboxId);
  } catch (err) {
    if (err instanceof StoreError) return null; // deleted meanwhile
    throw err;
  }
  let items: Item[];
  if (message) items = ['MESSAGES', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', ...(modseqs(s) ? (['HIGHESTMODSEQ'] as const) : [])];
  else if (modseqs(s)) items = ['UIDVALIDITY', 'UNSEEN', 'HIGHESTMODSEQ'];
  else if (n.unseen.get(mailboxId) !== st.unseen) items = ['UNSEEN'];
  else return null;
  n.unseen.set(mailboxId, st.unseen);
  return formatStatus(s, name, st, items);
}

/**
 * NOTIFY SET: each watched mailbox's STATUS (§3.1 STATUS option: MESSAGES, UIDNEXT, UIDVALIDITY
 * for MessageNew; HIGHESTMODSEQ with FlagChange, as the server supports CONDSTORE; UNSEEN too),
 * written when `write`; else only read where a flag change is told by its UNSEEN (§5.1).
 */
export async function initialStatus(s: ImapSession, n: Notify, write: boolean): Promise<void> {
  // Up to maxMailboxes counts, each a read of its mailbox: the event loop gets turns between.
  const budget = new LoopBudget();
  for (const m of n.watched()) {
    await budget.pause();
    if (s.closed) return;
    if (!write && (modseqs(s) || !m.events.flags)) continue;
    let st: MailboxStatus;
    try {
      st = await s.deps.store.mailboxStatus(m.id);
    } catch (err) {
      if (err instanceof StoreError) continue;
      throw err;
    }
    n.unseen.set(m.id, st.unseen);
    if (!write) continue;
    const items: Item[] = ['MESSAGES', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN'];
    if (m.events.flags || modseqs(s)) items.push('HIGHESTMODSEQ');
    await s.writeAwait(formatStatus(s, m.name, st, items));
  }
}

/** LIST attributes as they are now (§5.5: "all mailbox attributes MUST be accurately computed"). */
export class ListAttributes {
  readonly #byName = new Map<string, Mailbox>();
  readonly #parents = new Set<string>();
  readonly #subs: ReadonlySet<string>;

  constructor(mailboxes: readonly Mailbox[], subs: ReadonlySet<string>) {
    for (const m of mailboxes) {
      this.#byName.set(m.name, m);
      for (const p of ancestors(m.name)) this.#parents.add(p);
    }
    this.#subs = subs;
  }

  /**
   * `* LIST (…) "/" name`, with OLDNAME after a rename (§5.4). A name that is no mailbox (deleted)
   * is \NonExistent (§5.4 MUST); \Subscribed iff subscribed (§5.5); children attributes (§5.4 SHOULD).
   */
  line(s: ImapSession, name: string, oldName: string | null): string {
    const mb = this.#byName.get(name);
    const attrs: string[] = [];
    const children = this.#parents.has(name);
    if (!mb) attrs.push('\\NonExistent');
    if (children) attrs.push('\\HasChildren');
    else if (mb) attrs.push('\\HasNoChildren');
    if (this.#subs.has(name)) attrs.push('\\Subscribed');
    if (mb?.specialUse) attrs.push(mb.specialUse);
    const old = oldName === null ? '' : ` ("OLDNAME" (${s.mailboxToClient(oldName)}))`;
    return `* LIST (${attrs.join(' ')}) "/" ${s.mailboxToClient(name)}${old}\r\n`;
  }
}

/** Consecutive UIDs as ranges, for a UID FETCH set. */
function ranges(uids: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const u of uids) {
    const last = out[out.length - 1];
    if (last && last[1] === u - 1) last[1] = u;
    else out.push([u, u]);
  }
  return out;
}

/**
 * §5.2: `* n FETCH (UID u …)` with the client's MessageNew attributes, for messages it was just
 * told of (EXISTS). Rendered by the FETCH command's own code, as a UID FETCH of those messages.
 */
export async function fetchNewMessages(s: ImapSession, uids: readonly number[], items: FetchItem[]): Promise<void> {
  const cmd: ImapCommand & { name: 'FETCH' } = {
    name: 'FETCH',
    uid: true,
    set: { saved: false, ranges: ranges(uids) },
    items,
    changedSince: null,
    vanished: false,
    macro: false,
    partial: null,
  };
  try {
    await fetch(s, '*', cmd);
  } catch (err) {
    // A message part that cannot be given (BINARY of a bad encoding): the notification is skipped.
    if (!toReply(err)) throw err;
  }
}
