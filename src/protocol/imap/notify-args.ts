// NOTIFY arguments (RFC 5465 §8): `NOTIFY NONE` / `NOTIFY SET [STATUS] event-group…`. Pure: the
// grammar only; the rules between events (§5, §6.1) and what is supported are the handler's
// (src/imap/handlers/notify.ts), so an unknown event name parses (it is an `event-ext` atom) and
// is refused there with NO [BADEVENT] (§3.1).

import type { Reader } from './reader.ts';
import type { FetchItem } from './types.ts';
import { fetchAtt } from './fetch-args.ts';

/** The event names RFC 5465 defines, in its spelling (matched case-insensitively, §8). */
export const NOTIFY_EVENTS = [
  'MessageNew',
  'MessageExpunge',
  'FlagChange',
  'AnnotationChange',
  'MailboxName',
  'SubscriptionChange',
  'MailboxMetadataChange',
  'ServerMetadataChange',
] as const;
export type NotifyEventName = (typeof NOTIFY_EVENTS)[number];

const BY_UPPER = new Map<string, NotifyEventName>(NOTIFY_EVENTS.map((e) => [e.toUpperCase(), e]));

/** One event of an event group: a known name, or an unknown atom (`known` false) as sent. */
export interface NotifyEvent {
  name: string;
  known: boolean;
  /** MessageNew's fetch-att list (§8 message-event), or null. */
  fetch: FetchItem[] | null;
}

/** filter-mailboxes (§6): store names are the client's here; the handler converts them. */
export type NotifyFilter =
  | { k: 'selected' | 'selected-delayed' | 'inboxes' | 'personal' | 'subscribed' }
  | { k: 'subtree' | 'mailboxes'; names: string[] };

export interface NotifyGroup {
  filter: NotifyFilter;
  /** null: NONE (§8 events). */
  events: NotifyEvent[] | null;
}

export type NotifyCommand = { name: 'NOTIFY'; set: null } | { name: 'NOTIFY'; set: { status: boolean; groups: NotifyGroup[] } };

/** Parses what follows `NOTIFY` (§8 notify). */
export function parseNotify(r: Reader): NotifyCommand {
  r.sp();
  if (r.takeWord('NONE')) return { name: 'NOTIFY', set: null };
  if (!r.takeWord('SET')) r.fail('NOTIFY needs SET or NONE');
  r.sp();
  const status = r.takeWord('STATUS');
  if (status) r.sp();
  const groups: NotifyGroup[] = [];
  for (;;) {
    groups.push(eventGroup(r));
    if (!r.take(' ')) break;
  }
  return { name: 'NOTIFY', set: { status, groups } };
}

/** event-group = "(" filter-mailboxes SP events ")" */
function eventGroup(r: Reader): NotifyGroup {
  r.expect('(');
  const filter = filterMailboxes(r);
  r.sp();
  let events: NotifyEvent[] | null = null;
  if (!r.takeWord('NONE')) events = r.list(() => event(r), false);
  r.expect(')');
  return { filter, events };
}

function filterMailboxes(r: Reader): NotifyFilter {
  // "selected-delayed" first: "selected" alone does not match it (the '-' is an atom char).
  for (const k of ['selected-delayed', 'selected', 'inboxes', 'personal', 'subscribed'] as const) if (r.takeWord(k.toUpperCase())) return { k };
  for (const k of ['subtree', 'mailboxes'] as const) {
    if (!r.takeWord(k.toUpperCase())) continue;
    r.sp();
    // one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")"
    const names = r.peek() === '(' ? r.list(() => r.astring(), false) : [r.astring()];
    return { k, names };
  }
  return r.fail('Expected a NOTIFY mailbox filter (SELECTED, SELECTED-DELAYED, INBOXES, PERSONAL, SUBSCRIBED, SUBTREE or MAILBOXES)');
}

/** event = message-event / mailbox-event / user-event / event-ext (an atom). */
function event(r: Reader): NotifyEvent {
  const atom = r.atom('NOTIFY event');
  const name = BY_UPPER.get(atom.toUpperCase());
  let fetch: FetchItem[] | null = null;
  // "MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]
  if (name === 'MessageNew' && r.peek() === ' ' && r.seg[r.pos + 1] === '(') {
    r.sp();
    fetch = r.list(() => fetchAtt(r), false);
  }
  return { name: name ?? atom, known: name !== undefined, fetch };
}
