// IMAP NOTIFY (RFC 5465): what one session asked to hear of, and when it hears it.
//
// Until the first NOTIFY the session is the base protocol's (src/imap/session.ts: the selected
// mailbox's changes at command completion and during IDLE). After NOTIFY SET, every change on the
// account's bus (src/store/bus.ts) goes through `changed`:
// - the selected mailbox's message events are kept in SelectedMailbox as always; whether and when
//   they are reported follows the SELECTED / SELECTED-DELAYED filter (§6.1);
// - another mailbox's message events become one `* STATUS` per mailbox (coalesced: the numbers are
//   read when it is sent, §5.1–§5.3); MailboxName and SubscriptionChange become `* LIST` (§5.4, §5.5).
// Those wait in `queue` (bounded: limits.imapNotifyQueue, else NOTIFICATIONOVERFLOW, §5.8) until a
// moment the session may write: the end of a command (before its tagged reply) or, between
// commands, the command loop's idle turn (`between`, run by the session's pump so it never
// interleaves with a command's output). §4: IDLE sends exactly the same.
//
// Output is in src/imap/notify-output.ts; the command in src/imap/handlers/notify.ts.

import type { Change } from '../store/bus.ts';
import type { FetchItem } from '../protocol/imap/types.ts';
import type { ImapSession } from './session.ts';
import type { SelectedMailbox } from './selected.ts';
import { fetchNewMessages, ListAttributes, statusLine } from './notify-output.ts';
import { activity, LoopBudget } from '../obs/loop-lag.ts';

/** Event groups in one NOTIFY SET, and mailbox names in its SUBTREE / MAILBOXES filters (NO [LIMIT] beyond). */
export const NOTIFY_MAX_GROUPS = 64;
export const NOTIFY_MAX_NAMES = 1000;

/** The events a group asks for. MessageNew and MessageExpunge always come together (§5): `message`. */
export interface NotifyEvents {
  message: boolean;
  flags: boolean;
  mailboxName: boolean;
  subscription: boolean;
}

/** Mailbox filters other than SELECTED (§6.2–§6.6), store names. INBOXES is PERSONAL here (see the handler). */
export type MailboxFilter = { k: 'personal' } | { k: 'subscribed' } | { k: 'subtree'; names: string[] } | { k: 'mailboxes'; names: ReadonlySet<string> };

export interface NotifySpec {
  /** SELECTED / SELECTED-DELAYED (§6.1): null when absent or NONE. */
  selected: { delayed: boolean; flags: boolean; fetch: FetchItem[] | null } | null;
  groups: Array<{ filter: MailboxFilter; events: NotifyEvents }>;
}

/** NOTIFY NONE (§3.1), and what an overflow leaves (§5.8). */
export const NOTIFY_NONE: NotifySpec = { selected: null, groups: [] };

export type QueueEntry =
  /** `verify`: the mailbox was not known when its change came (created meanwhile): filters checked when sent. */
  | { kind: 'status'; mailboxId: number; message: boolean; flags: boolean; verify: boolean }
  | { kind: 'list'; name: string; oldName: string | null };

const NO_EVENTS: NotifyEvents = { message: false, flags: false, mailboxName: false, subscription: false };

function parentOf(name: string): string | null {
  const i = name.lastIndexOf('/');
  return i > 0 ? name.slice(0, i) : null;
}

export class Notify {
  readonly #s: ImapSession;
  #spec: NotifySpec | null = null;
  /** Mailbox id → name for the account, followed from the bus. */
  readonly #names = new Map<number, string>();
  readonly #subs = new Set<string>();
  /** Events per mailbox id (cleared whenever names or subscriptions change). */
  readonly #byId = new Map<number, NotifyEvents>();
  /** Notifications owed, in the order they arose; one STATUS per mailbox. */
  readonly #queue = new Map<string, QueueEntry>();
  /** UNSEEN last reported per mailbox: without CONDSTORE a flag change is reported only when it moves (§5.1). */
  readonly unseen = new Map<number, number>();
  #overflowed = false;
  #owed = false;
  #delivering = 0;
  /** The session's own APPEND/COPY/EXPUNGE touched its mailbox: its replies are owed even without SELECTED. */
  #ownPending = false;
  /** UIDs the session itself added to the selected mailbox: no MessageNew FETCH for them (§5.2). */
  readonly #ownAdded = new Set<number>();
  #fetchSel: SelectedMailbox | null = null;
  /** The highest UID of `#fetchSel` whose MessageNew FETCH was sent (or not owed). */
  #fetchedUpTo = 0;
  /** Changes that came while a NOTIFY SET was loading the names: applied once it is in place. */
  #loading: Array<readonly Change[]> | null = null;

  constructor(s: ImapSession) {
    this.#s = s;
  }

  /** A NOTIFY command succeeded once (or the first is loading): the session follows it (until the connection ends). */
  get active(): boolean {
    return this.#spec !== null || this.#loading !== null;
  }

  get spec(): NotifySpec | null {
    return this.#spec;
  }

  /** Something may be reported between commands (the session's pump calls `between`). */
  get owed(): boolean {
    return this.#owed;
  }

  /** Output of a notification is being written (IDLE's keepalive waits: it must not split a response). */
  get delivering(): boolean {
    return this.#delivering > 0;
  }

  /** NOTIFY SET (§3.1): replaces the events; the names and subscriptions are read now and followed. */
  async set(spec: NotifySpec): Promise<void> {
    const s = this.#s;
    const accountId = s.account!.id;
    this.#loading = [];
    let buffered: Array<readonly Change[]>;
    try {
      const [mailboxes, subs] = await Promise.all([s.deps.store.listMailboxes(accountId), s.deps.store.listSubscriptions(accountId)]);
      this.#names.clear();
      for (const m of mailboxes) this.#names.set(m.id, m.name);
      this.#subs.clear();
      for (const n of subs) this.#subs.add(n);
    } finally {
      buffered = this.#loading;
      this.#loading = null;
    }
    this.#spec = spec;
    this.#byId.clear();
    this.#overflowed = false;
    this.#ownPending = false;
    this.#ownAdded.clear();
    // What is pending in the selected mailbox now is reported at this command's end (the implicit
    // NOOP, §3.1), with this SET's MessageNew attributes.
    const sel = s.selected;
    this.#fetchSel = sel;
    this.#fetchedUpTo = sel && sel.uids.length ? sel.uids[sel.uids.length - 1]! : 0;
    for (const b of buffered) this.changed(b);
  }

  /** NOTIFY NONE (§3.1). */
  none(): void {
    this.#spec = NOTIFY_NONE;
    this.#byId.clear();
  }

  /** The mailboxes (id, name) whose message events the client follows, the selected one excepted (§3.1 STATUS). */
  watched(): Array<{ id: number; name: string; events: NotifyEvents }> {
    const sel = this.#s.selected;
    const out: Array<{ id: number; name: string; events: NotifyEvents }> = [];
    for (const [id, name] of this.#names) {
      if (sel && sel.mailboxId === id) continue;
      const events = this.#eventsFor(id)!;
      if (events.message || events.flags) out.push({ id, name, events });
    }
    return out;
  }

  /** Wakes the session's command loop to report what is owed (between commands). */
  kick(): void {
    this.#owed = true;
    this.#s.wake();
  }

  // ---- the bus

  /** The account's changes, after the selected mailbox applied them (session.ts). Synchronous and O(changes). */
  changed(changes: readonly Change[]): void {
    if (this.#loading) {
      this.#loading.push(changes);
      return;
    }
    if (!this.#spec) return;
    const sel = this.#s.selected;
    let renames: Array<Change & { kind: 'mailbox-renamed' }> | null = null;
    for (const c of changes) {
      switch (c.kind) {
        case 'message-added':
        case 'messages-expunged':
        case 'flags-changed':
          if (sel && c.mailboxId === sel.mailboxId) this.#selectedChange(c, sel);
          // §5: the client's own changes are not notified (it knows them).
          else if (c.origin !== this.#s.origin) this.#messageChange(c);
          break;
        case 'mailbox-created':
        case 'mailbox-deleted':
          this.#mailboxChange(c);
          break;
        case 'mailbox-renamed':
          (renames ??= []).push(c);
          break;
        case 'subscription-changed':
          if (c.subscribed) this.#subs.add(c.name);
          else this.#subs.delete(c.name);
          this.#byId.clear();
          if (c.origin !== this.#s.origin && this.#eventsForName(c.name, true).subscription) this.#queueList(c.name, null);
          break;
        case 'account-removed':
          break;
      }
    }
    if (renames) this.#renamed(renames);
    if (this.#queue.size > this.#s.deps.config.limits.imapNotifyQueue) this.#overflow();
    const pending = sel !== null && sel.hasPending && (this.#spec.selected !== null || this.#ownPending);
    if (this.#queue.size > 0 || this.#overflowed || pending) this.kick();
  }

  #selectedChange(c: Change & { kind: 'message-added' | 'messages-expunged' | 'flags-changed' }, sel: SelectedMailbox): void {
    if (c.origin === this.#s.origin) {
      if (c.kind === 'flags-changed') return;
      this.#ownPending = true;
      if (c.kind === 'message-added') this.#ownAdded.add(c.uid);
      return;
    }
    // §3.1: SELECTED without FlagChange: other sessions' flag changes are not reported.
    const spec = this.#spec!.selected;
    if (c.kind === 'flags-changed' && spec && !spec.flags) sel.pendingFlags.delete(c.uid);
  }

  #messageChange(c: Change & { kind: 'message-added' | 'messages-expunged' | 'flags-changed' }): void {
    const events = this.#eventsFor(c.mailboxId);
    const flags = c.kind === 'flags-changed';
    if (events === null) return this.#queueStatus(c.mailboxId, !flags, flags, true);
    if (flags ? events.flags : events.message) this.#queueStatus(c.mailboxId, !flags, flags, false);
  }

  #mailboxChange(c: Change & { kind: 'mailbox-created' | 'mailbox-deleted' }): void {
    const created = c.kind === 'mailbox-created';
    if (created) this.#names.set(c.mailboxId, c.name);
    else {
      this.#names.delete(c.mailboxId);
      this.#queue.delete(`S${c.mailboxId}`);
      this.unseen.delete(c.mailboxId);
    }
    this.#byId.clear();
    if (c.origin === this.#s.origin) return; // §5: not the client's own CREATE / DELETE
    // §5.4: the mailbox and its direct parent are affected by a create or delete.
    for (const n of [c.name, parentOf(c.name)]) if (n !== null && this.#eventsForName(n).mailboxName) this.#queueList(n, null);
    // §5.1: a new UIDVALIDITY (a mailbox made anew) is told with STATUS to a client following its messages.
    const events = created ? this.#eventsFor(c.mailboxId) : null;
    if (events && (events.message || events.flags)) this.#queueStatus(c.mailboxId, true, false, false);
  }

  /** §5.4: one LIST with OLDNAME per renamed mailbox, none for the children that moved with it. */
  #renamed(renames: Array<Change & { kind: 'mailbox-renamed' }>): void {
    for (const c of renames) this.#names.set(c.mailboxId, c.newName);
    this.#byId.clear();
    for (const c of renames) {
      if (c.origin === this.#s.origin) continue;
      if (renames.some((o) => o !== c && c.oldName.startsWith(o.oldName + '/'))) continue;
      if (this.#eventsForName(c.newName).mailboxName || this.#eventsForName(c.oldName).mailboxName) this.#queueList(c.newName, c.oldName);
    }
  }

  #queueStatus(mailboxId: number, message: boolean, flags: boolean, verify: boolean): void {
    const key = `S${mailboxId}`;
    const e = this.#queue.get(key);
    if (e && e.kind === 'status') {
      e.message ||= message;
      e.flags ||= flags;
      e.verify &&= verify;
      return;
    }
    this.#queue.set(key, { kind: 'status', mailboxId, message, flags, verify });
  }

  #queueList(name: string, oldName: string | null): void {
    const key = oldName === null ? `L${name}` : `R${name}\0${oldName}`;
    if (!this.#queue.has(key)) this.#queue.set(key, { kind: 'list', name, oldName });
  }

  /** §5.8: too many notifications waiting. The client is told, and it is as if it said NOTIFY NONE. */
  #overflow(): void {
    this.#s.deps.log.info('imap.notify-overflow', { session: this.#s.id, queued: this.#queue.size });
    this.#queue.clear();
    this.none();
    this.#overflowed = true;
  }

  // ---- filters

  /** The events that apply to a mailbox (not as the selected one), or null when its name is not known. */
  #eventsFor(mailboxId: number): NotifyEvents | null {
    const cached = this.#byId.get(mailboxId);
    if (cached) return cached;
    const name = this.#names.get(mailboxId);
    if (name === undefined) return null;
    const events = this.#eventsForName(name);
    this.#byId.set(mailboxId, events);
    return events;
  }

  /** The union of the groups whose filter takes `name`; `subscriptionEvent`: the name was (un)subscribed just now. */
  #eventsForName(name: string, subscriptionEvent = false): NotifyEvents {
    let out = NO_EVENTS;
    for (const g of this.#spec?.groups ?? []) {
      if (!this.#matches(g.filter, name, subscriptionEvent)) continue;
      const e = g.events;
      out = { message: out.message || e.message, flags: out.flags || e.flags, mailboxName: out.mailboxName || e.mailboxName, subscription: out.subscription || e.subscription };
    }
    return out;
  }

  #matches(f: MailboxFilter, name: string, subscriptionEvent: boolean): boolean {
    switch (f.k) {
      case 'personal':
        return true;
      case 'subscribed': // §6.4, re-evaluated on every subscription change
        return subscriptionEvent || this.#subs.has(name);
      case 'subtree': // §6.5: the mailbox and all below it
        return f.names.some((n) => name === n || name.startsWith(n + '/'));
      case 'mailboxes': // §6.6: exactly these names, no wildcards
        return f.names.has(name);
    }
  }

  // ---- delivery

  /** Before a command's tagged reply (session.flushChangesAsync): the command's own rule for expunges. */
  async commandEnd(allowExpunge: boolean): Promise<void> {
    await this.#deliver(allowExpunge);
  }

  /**
   * Between commands, from the session's command loop (§3.1: "the client listens for event
   * notifications all the time"). SELECTED sends expunges at once (§5.3: such a client no longer
   * relies on sequence numbers); SELECTED-DELAYED keeps them for a command that allows them, or
   * IDLE (§6.1.2, RFC 3501 §7.4.1).
   */
  async between(): Promise<void> {
    this.#owed = false;
    const spec = this.#spec;
    if (!spec) return;
    const s = this.#s;
    const allowExpunge = s.idle.active || (spec.selected !== null && !spec.selected.delayed);
    const done = activity.begin(`imap.notify account=${s.account?.address ?? '-'} mailbox=${s.selected?.name ?? '-'}`);
    try {
      await this.#deliver(allowExpunge);
    } finally {
      done();
    }
  }

  /** Writes what is owed; a failure is logged (the notification is lost, the session goes on). */
  async #deliver(allowExpunge: boolean): Promise<void> {
    const s = this.#s;
    this.#delivering++;
    try {
      if (this.#overflowed) {
        this.#overflowed = false;
        const n = s.deps.config.limits.imapNotifyQueue;
        await s.writeAwait(`* OK [NOTIFICATIONOVERFLOW] More than ${n} notifications were waiting; NOTIFY is now NONE\r\n`);
      }
      await this.#flushSelected(allowExpunge);
      await this.#flushQueue();
    } catch (err) {
      s.deps.log.error('imap.notify-failed', { session: s.id, err });
    } finally {
      this.#delivering--;
    }
  }

  async #flushSelected(allowExpunge: boolean): Promise<void> {
    const s = this.#s;
    const sel = s.selected;
    if (!sel) return;
    if (this.#fetchSel !== sel) {
      this.#fetchSel = sel;
      this.#fetchedUpTo = sel.uids.length ? sel.uids[sel.uids.length - 1]! : 0;
      this.#ownAdded.clear();
    }
    // §3.1: without SELECTED the client hears of no message event in its mailbox; what its own
    // commands did is still answered (its APPEND's EXISTS), and that answer brings what came
    // before it, so the sequence numbers stay the client's. A FLAGS update is no message event.
    if (!this.#spec?.selected && !this.#ownPending) {
      const flags = sel.flagsResponses();
      if (flags) await s.writeAwait(flags);
      return;
    }
    this.#ownPending = false;
    await sel.flushTo(s, s.flushOptions(allowExpunge));
    if (s.selected !== sel) return;
    await this.#fetchNew(sel);
  }

  /** §5.2: after the EXISTS, a FETCH with the MessageNew attributes for each new message (not the client's own). */
  async #fetchNew(sel: SelectedMailbox): Promise<void> {
    const n = sel.uids.length;
    const last = n ? sel.uids[n - 1]! : 0;
    if (last <= this.#fetchedUpTo) return;
    const from = this.#fetchedUpTo;
    this.#fetchedUpTo = last;
    const fresh: number[] = [];
    for (let i = n - 1; i >= 0 && sel.uids[i]! > from; i--) if (!this.#ownAdded.has(sel.uids[i]!)) fresh.push(sel.uids[i]!);
    for (const u of this.#ownAdded) if (u <= last) this.#ownAdded.delete(u);
    const items = this.#spec?.selected?.fetch;
    if (!items || fresh.length === 0) return;
    fresh.reverse();
    await fetchNewMessages(this.#s, fresh, items);
  }

  /** The STATUS and LIST responses owed, each computed now (one pass: what comes meanwhile waits for the next). */
  async #flushQueue(): Promise<void> {
    if (this.#queue.size === 0) return;
    const s = this.#s;
    const entries = [...this.#queue.values()];
    this.#queue.clear();
    let attrs: ListAttributes | null = null;
    const budget = new LoopBudget();
    for (const e of entries) {
      await budget.pause();
      if (s.closed) return;
      let line: string | null;
      if (e.kind === 'status') line = await this.#status(e);
      else {
        attrs ??= new ListAttributes(await s.deps.store.listMailboxes(s.account!.id), this.#subs);
        line = attrs.line(s, e.name, e.oldName);
      }
      if (line) await s.writeAwait(line);
    }
  }

  async #status(e: QueueEntry & { kind: 'status' }): Promise<string | null> {
    const s = this.#s;
    if (s.selected?.mailboxId === e.mailboxId) return null; // selected since: its own updates say it
    let name = this.#names.get(e.mailboxId);
    if (name === undefined || e.verify) {
      const mb = await s.deps.store.getMailboxById(e.mailboxId);
      if (!mb) return null;
      name = mb.name;
      this.#names.set(mb.id, name);
      this.#byId.delete(mb.id);
      const events = this.#eventsFor(mb.id)!;
      if (!((e.message && events.message) || (e.flags && events.flags))) return null;
    }
    return statusLine(s, this, e.mailboxId, name, e.message);
  }
}
