// NOTIFY (RFC 5465 §3.1): NOTIFY NONE, NOTIFY SET [STATUS] event-groups. The rules between events
// are checked here (§5, §6.1: BAD), then what is supported (§3.1: NO [BADEVENT (every supported
// event)]) and the size (NO [LIMIT]: §3.1 lets a server refuse a NOTIFY "too complex or expensive").
// The session follows the result in src/imap/notify.ts.
import type { Handler } from '../commands.ts';
import type { ImapSession } from '../session.ts';
import type { NotifyGroup } from '../../protocol/imap/notify-args.ts';
import type { FetchItem } from '../../protocol/imap/types.ts';
import { ImapBad, ImapNo } from '../errors.ts';
import { NOTIFY_MAX_GROUPS, NOTIFY_MAX_NAMES, type MailboxFilter, type NotifyEvents, type NotifySpec } from '../notify.ts';
import { initialStatus } from '../notify-output.ts';

/** The events Pillarbox notifies of. AnnotationChange and the METADATA events need extensions it has not. */
export const SUPPORTED_EVENTS: readonly string[] = ['MessageNew', 'MessageExpunge', 'FlagChange', 'MailboxName', 'SubscriptionChange'];
const MESSAGE_EVENTS: ReadonlySet<string> = new Set(['MessageNew', 'MessageExpunge', 'FlagChange', 'AnnotationChange']);

export const notify: Handler<'NOTIFY'> = async (s, _tag, cmd) => {
  if (!cmd.set) {
    s.notify.none();
    return 'NOTIFY completed';
  }
  await s.notify.set(notifySpec(s, cmd.set.groups));
  await initialStatus(s, s.notify, cmd.set.status);
  // The implicit NOOP (§3.1) is the command end's report of the selected mailbox.
  return 'NOTIFY completed';
};

/** The NOTIFY SET arguments as a spec, or the BAD / NO the command gets. */
export function notifySpec(s: ImapSession, groups: readonly NotifyGroup[]): NotifySpec {
  if (groups.length > NOTIFY_MAX_GROUPS) throw new ImapNo('LIMIT', `NOTIFY SET takes at most ${NOTIFY_MAX_GROUPS} event groups`);
  let names = 0;
  for (const g of groups) if ('names' in g.filter) names += g.filter.names.length;
  if (names > NOTIFY_MAX_NAMES) throw new ImapNo('LIMIT', `NOTIFY SET takes at most ${NOTIFY_MAX_NAMES} mailbox names`);
  const spec: NotifySpec = { selected: null, groups: [] };
  const unsupported = new Set<string>();
  let selectedSeen = false;
  for (const g of groups) {
    const isSelected = g.filter.k === 'selected' || g.filter.k === 'selected-delayed';
    if (isSelected) {
      if (selectedSeen) throw new ImapBad('Only one SELECTED or SELECTED-DELAYED filter (RFC 5465 §6.1)');
      selectedSeen = true;
    }
    const ev = groupEvents(g, isSelected, unsupported);
    if (!ev) continue; // NONE
    if (isSelected) {
      if (ev.events.message) spec.selected = { delayed: g.filter.k === 'selected-delayed', flags: ev.events.flags, fetch: ev.fetch };
      continue;
    }
    const filter = mailboxFilter(s, g.filter);
    if (filter) spec.groups.push({ filter, events: ev.events });
  }
  // §3.1: an unsupported event is a NO (not a BAD) whose BADEVENT lists every supported event.
  if (unsupported.size) throw new ImapNo(`BADEVENT (${SUPPORTED_EVENTS.join(' ')})`, `Not supported: ${[...unsupported].join(' ')}`);
  return spec;
}

/** One group's events after the §5 / §6.1 / §8 rules (BAD), or null for NONE. */
function groupEvents(g: NotifyGroup, isSelected: boolean, unsupported: Set<string>): { events: NotifyEvents; fetch: FetchItem[] | null } | null {
  if (g.events === null) return null;
  const has = new Set<string>();
  let fetch: FetchItem[] | null = null;
  for (const e of g.events) {
    if (!e.known) {
      unsupported.add(e.name);
      continue;
    }
    has.add(e.name);
    if (!SUPPORTED_EVENTS.includes(e.name)) unsupported.add(e.name);
    // §6.1: SELECTED / SELECTED-DELAYED take message events only.
    if (isSelected && !MESSAGE_EVENTS.has(e.name)) throw new ImapBad(`${e.name} cannot be asked for the selected mailbox (RFC 5465 §6.1)`);
    if (e.fetch) {
      // §8: the fetch-att list only with SELECTED / SELECTED-DELAYED.
      if (!isSelected) throw new ImapBad('MessageNew attributes only for SELECTED or SELECTED-DELAYED (RFC 5465 §8)');
      fetch = e.fetch;
    }
  }
  // §5: MessageNew and MessageExpunge together; FlagChange / AnnotationChange only with both.
  if (has.has('MessageNew') !== has.has('MessageExpunge')) throw new ImapBad('MessageNew and MessageExpunge must be asked for together (RFC 5465 §5)');
  if ((has.has('FlagChange') || has.has('AnnotationChange')) && !has.has('MessageNew'))
    throw new ImapBad(`${has.has('FlagChange') ? 'FlagChange' : 'AnnotationChange'} needs MessageNew and MessageExpunge (RFC 5465 §5)`);
  const events = { message: has.has('MessageNew'), flags: has.has('FlagChange'), mailboxName: has.has('MailboxName'), subscription: has.has('SubscriptionChange') };
  return { events, fetch };
}

/** A filter other than SELECTED, with store names; null when it names no mailbox at all. */
function mailboxFilter(s: ImapSession, f: NotifyGroup['filter']): MailboxFilter | null {
  switch (f.k) {
    case 'personal':
    // §6.3: INBOXES is every mailbox an MDA delivers to; here any mailbox can be (user+folder@
    // addresses, README "First domain and users"), so it is PERSONAL as §6.3 says then.
    case 'inboxes':
      return { k: 'personal' };
    case 'subscribed':
      return { k: 'subscribed' };
    case 'subtree':
    case 'mailboxes': {
      // §3.1: a name that is no mailbox is ignored; one that cannot be a name at all likewise.
      const names: string[] = [];
      for (const raw of f.names) {
        try {
          names.push(s.mailboxFromClient(raw));
        } catch (err) {
          if (!(err instanceof ImapNo)) throw err;
        }
      }
      if (names.length === 0) return null;
      return f.k === 'subtree' ? { k: 'subtree', names } : { k: 'mailboxes', names: new Set(names) };
    }
    default:
      return null;
  }
}
